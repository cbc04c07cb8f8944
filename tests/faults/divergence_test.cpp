// A diverging run of every task (Adam at lr 1e6: the loss turns NaN or Inf, or explodes while staying
// finite, since Adam moves each weight by at most lr per step): `lockstep train` stops with exit 1 at the
// step it diverged, naming the step, the figure (and so the network) and the setting to change, and commits
// no checkpoint of it: every checkpoint left verifies and holds finite, bounded weights.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/checkpoint/checkpoint_state.h"
#include "io/checkpoint/checkpoint_store.h"
#include "io/state/state_file.h"
#include "src/core/error.h"
#include "tests/faults/faults.h"
#include "tests/support/fashion_mnist.h"
#include "tests/support/job.h"
#include "tests/support/temp_dir.h"
#include "tests/support/text_corpus.h"

namespace lockstep::test {
namespace {

namespace fs = std::filesystem;

struct Diverging {
  const char* name;
  const char* task;
  const char* data_keys;
  const char* sections;
  const char* overrides;             // the learning rates
  std::vector<const char*> figures;  // the message names one of these
  const char* hint;                  // and this setting
};

const std::vector<Diverging>& cases() {
  static const std::vector<Diverging> kCases = {
      {"classifier (MLP)",
       "classifier",
       "",
       "[model]\nname = \"mlp\"\nhidden = [32]\n[optimizer]\nname = \"adam\"\n",
       "optimizer.lr=1e6",
       {"the loss "},
       "optimizer.lr"},
      {"DCGAN",
       "gan",
       "pad_to = 32\nnormalize = \"tanh\"\n",
       "[gan]\nlatent = 16\nsamples = 4\n[generator]\nname = \"dcgan\"\nwidth = 8\n"
       "[discriminator]\nname = \"dcgan\"\nwidth = 8\n",
       "generator.optimizer.lr=1e6 discriminator.optimizer.lr=1e6",
       {"the generator's loss", "the discriminator's loss"},
       "discriminator.optimizer.lr"},
      {"WGAN-GP",
       "gan",
       "pad_to = 32\nnormalize = \"tanh\"\n",
       "[gan]\nlatent = 16\nsamples = 4\nloss = \"wasserstein-gp\"\nd_steps = 2\n[generator]\nname = "
       "\"dcgan\"\n"
       "width = 8\n[discriminator]\nname = \"wgan-critic\"\nwidth = 8\nnorm = \"layer\"\n",
       "generator.optimizer.lr=1e6 discriminator.optimizer.lr=1e6",
       {"the generator's loss", "the discriminator's loss", "the critic's gradient norm"},
       "discriminator.optimizer.lr"},
      {"variational autoencoder",
       "autoencoder",
       "",
       "[autoencoder]\nhidden = [32]\ncode = 8\nsamples = 4\nvariational = true\n",
       "optimizer.lr=1e6",
       {"the objective", "the reconstruction loss", "the KL"},
       "optimizer.lr"},
      {"PixelCNN",
       "pixelcnn",
       "",
       "[pixelcnn]\nwidth = 8\nblocks = 1\nsamples = 2\n",
       "optimizer.lr=1e6",
       {"the negative log-likelihood"},
       "optimizer.lr"},
      {"CycleGAN",
       "cyclegan",
       "pad_to = 32\nnormalize = \"tanh\"\n",
       "[cyclegan]\npool_size = 2\nsamples = 2\neval_images = 0\n[generator]\nname = \"cyclegan-resnet\"\n"
       "width = 4\nresidual_blocks = 1\n[discriminator]\nname = \"patchgan\"\nwidth = 4\n",
       "generator.optimizer.lr=1e6 discriminator.optimizer.lr=1e6",
       {"the generators' adversarial loss", "the discriminators' loss", "the cycle loss",
        "the identity loss"},
       "discriminator.optimizer.lr"},
      {"character LSTM",  // on the test text corpus (tests/support/text_corpus.h)
       "charlm",
       "",
       "[charlm]\nembedding = 8\nhidden = 16\nlayers = 1\nsamples = 0\n",
       "optimizer.lr=1e6",
       {"the cross-entropy"},
       "optimizer.lr"},
  };
  return kCases;
}

// The step in "train: at step N (": -1 when missing.
std::int64_t stopped_at(const std::string& output) {
  const std::string key = "train: at step ";
  const std::size_t at = output.find(key);
  return at == std::string::npos ? -1 : std::stoll(output.substr(at + key.size()));
}

TEST(Faults, EveryTaskThatDivergesStopsAtTheStepNamingTheFigureAndCommitsNothingOfIt) {
  TempDir dir;
  std::string stops;
  int index = 0;
  for (const Diverging& c : cases()) {
    SCOPED_TRACE(c.name);
    const fs::path out = dir / str_cat("run", index);
    const fs::path config = dir / str_cat("run", index++, ".toml");
    std::ofstream(config)
        << "task = \"" << c.task << "\"\n[run]\nseed = 1\nmax_steps = 30\nthreads = 1\noutput = \""
        << out.string() << "\"\n[data]\npath = \""
        << (std::string(c.task) == "charlm" ? small_text_h5() : small_fashion_mnist_h5()).string()
        << "\"\nbatch_size = 16\ntest_split = \"\"\n"
        << c.data_keys << c.sections << "[checkpoint]\nevery_steps = 1\nkeep_last = 100\n";
    const CommandResult job = run_job(train_command(config, c.overrides), kJobLimitS);
    EXPECT_EQ(job.status, 1) << job.output;
    const std::int64_t step = stopped_at(job.output);
    ASSERT_GT(step, 0) << "no 'train: at step N' in:\n" << job.output;
    stops += str_cat(stops.empty() ? "" : ", ", c.name, " at step ", step);
    bool named = false;
    for (const char* figure : c.figures) named = named || job.output.find(figure) != std::string::npos;
    EXPECT_TRUE(named) << "the message names none of the task's figures:\n" << job.output;
    EXPECT_NE(job.output.find("the run diverged; nothing of it was saved"), std::string::npos) << job.output;
    EXPECT_NE(job.output.find(c.hint), std::string::npos) << job.output;
    const std::vector<io::CheckpointInfo> saved = io::CheckpointStore(out / "checkpoints").list();
    if (!saved.empty()) {
      EXPECT_NE(job.output.find(str_cat("the last checkpoint is '", saved.back().path.string(), "'")),
                std::string::npos)
          << job.output;
    }
    for (const io::CheckpointInfo& info : saved) {
      EXPECT_LT(info.step, step) << "a checkpoint of the diverged step";
      std::string why;
      EXPECT_TRUE(io::CheckpointStore::verify(info.path, &why)) << why;
      for (const auto& [group, dict] : io::read_state_groups(info.path / "model.h5"))
        for (const auto& [name, tensor] : dict)
          for (const double v : tensor.to(DType::f64).to_vector<double>())
            ASSERT_TRUE(std::isfinite(v) && std::abs(v) < 1e12) << info.path << " " << group << "/" << name;
    }
  }
  figure("every task at Adam lr 1e6 stopped with exit 1, no diverged checkpoint: " + stops);
}

}  // namespace
}  // namespace lockstep::test
