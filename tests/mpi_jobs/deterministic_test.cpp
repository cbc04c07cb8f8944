// Deterministic mode (distributed.deterministic) across whole jobs: after 20 steps the parameters and the
// optimizer states are h5diff-identical on 1, 2 and 4 ranks and at 1 or 2 threads (the MLP with dropout,
// ResNet-20 with synchronised batch norm, DCGAN), a run killed on 2 ranks and resumed on 4 ends identical to
// an uninterrupted single process, and a world size that does not divide the micro-shards is refused.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "io/checkpoint/checkpoint_store.h"
#include "src/core/error.h"
#include "tests/support/command.h"
#include "tests/support/fashion_mnist.h"
#include "tests/support/job.h"
#include "tests/support/temp_dir.h"

namespace lockstep::test {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kSteps = 20;

std::string train(const fs::path& config, const std::string& args = "") {
  return quote(LOCKSTEP_TOOL) + " train " + quote(config.string()) + " --progress lines" +
         (args.empty() ? "" : " " + args);
}

fs::path checkpoint_dir(const fs::path& output, std::int64_t step) {
  return output / "checkpoints" / io::CheckpointStore::directory_name(step);
}

// A deterministic run of `task` (global batch 32 in 8 micro-shards, no evaluation) with `rest` appended.
void write_config(const fs::path& path, const std::string& task, const std::string& data_keys,
                  const std::string& rest, std::int64_t every = 0) {
  std::ofstream(path) << "task = \"" << task << "\"\n[run]\nseed = 11\nepochs = 1\nmax_steps = " << kSteps
                      << "\noutput = \"" << (path.parent_path() / path.stem()).string()
                      << "\"\n[data]\npath = \"" << fashion_mnist_h5().string()
                      << "\"\ntest_split = \"\"\nglobal_batch_size = 32\n"
                      << data_keys << "[distributed]\ndeterministic = true\nmicro_shards = 8\n"
                      << "[checkpoint]\nevery_steps = " << every << "\n"
                      << rest;
}

// Trains the config on 1 rank at 1 and 2 threads and on 2 and 4 ranks (1 thread each), with `args` on the
// command line, and expects the final checkpoints identical.
void expect_same_bits_at_any_world_size(const std::string& task, const std::string& data_keys,
                                        const std::string& rest, const std::string& groups,
                                        const std::string& args = "") {
  TempDir dir;
  struct Run {
    const char* name;
    int ranks;
    int threads;
  };
  const Run runs[] = {{"w1t1", 1, 1}, {"w1t2", 1, 2}, {"w2t1", 2, 1}, {"w4t1", 4, 1}};
  for (const Run& r : runs) {
    const fs::path config = dir / str_cat(r.name, ".toml");
    write_config(config, task, data_keys, rest);
    const std::string command =
        train(config, str_cat("run.threads=", r.threads, args.empty() ? "" : " ", args));
    const CommandResult result =
        run_job(r.ranks == 1 ? command : mpirun(LOCKSTEP_MPIEXEC, r.ranks, command), 300);
    ASSERT_EQ(result.status, 0) << result.output;
    EXPECT_NE(result.output.find("deterministic"), std::string::npos) << result.output;
    if (!args.empty()) {
      EXPECT_NE(result.output.find("bf16 convolutions and matrix products"), std::string::npos)
          << result.output;
    }
  }
  const fs::path reference = checkpoint_dir(dir / "w1t1", kSteps);
  for (const Run& r : runs) {
    if (std::string(r.name) == "w1t1") continue;
    SCOPED_TRACE(str_cat(r.ranks, " ranks x ", r.threads, " threads against 1 x 1"));
    expect_same_models_and_optimizers(reference, checkpoint_dir(dir / r.name, kSteps), groups);
  }
}

TEST(MpiDeterministic, MlpWithDropoutIsTheSameOnOneTwoAndFourRanksAndTwoThreads) {
  expect_same_bits_at_any_world_size("classifier", "",
                                     "[model]\nname = \"mlp\"\nhidden = [64, 32]\ndropout = 0.3\n"
                                     "[optimizer]\nname = \"sgd\"\nlr = 0.05\nmomentum = 0.9\n",
                                     "model");
}

TEST(MpiDeterministic, ResNet20WithSyncBatchNormIsTheSameOnOneTwoAndFourRanksAndTwoThreads) {
  expect_same_bits_at_any_world_size(
      "classifier", "crop_padding = 2\nflip = true\n",
      "[model]\nname = \"resnet20\"\n"
      "[optimizer]\nname = \"sgd\"\nlr = 0.05\nmomentum = 0.9\nweight_decay = 5e-4\n",
      "model");
}

TEST(MpiDeterministic, DcganIsTheSameOnOneTwoAndFourRanksAndTwoThreads) {
  expect_same_bits_at_any_world_size("gan", "pad_to = 32\nnormalize = \"tanh\"\n",
                                     "[gan]\nlatent = 16\nsamples = 16\n"
                                     "[generator]\nname = \"dcgan\"\nwidth = 16\n"
                                     "[discriminator]\nname = \"dcgan\"\nwidth = 16\n",
                                     "generator discriminator");
}

// bf16 mixed precision keeps the promise: its kernels (oneDNN's bf16 convolutions and matmuls where the CPU
// has them, else the f32 ones on rounded operands) give the same bits at any world size and thread count.
TEST(MpiDeterministic, ResNet20AndDcganInBf16AreTheSameOnOneTwoAndFourRanksAndTwoThreads) {
  expect_same_bits_at_any_world_size(
      "classifier", "crop_padding = 2\nflip = true\n",
      "[model]\nname = \"resnet20\"\n"
      "[optimizer]\nname = \"sgd\"\nlr = 0.05\nmomentum = 0.9\nweight_decay = 5e-4\n",
      "model", "run.precision=bf16");
  expect_same_bits_at_any_world_size("gan", "pad_to = 32\nnormalize = \"tanh\"\n",
                                     "[gan]\nlatent = 16\nsamples = 16\n"
                                     "[generator]\nname = \"dcgan\"\nwidth = 16\n"
                                     "[discriminator]\nname = \"dcgan\"\nwidth = 16\n",
                                     "generator discriminator", "run.precision=bf16");
}

// ResNet-20 killed with SIGKILL on 2 ranks after its step-5 checkpoint, resumed on 4, against one process
// straight through: the same bits.
TEST(MpiDeterministic, KilledOnTwoRanksAndResumedOnFourEndsAsOneProcess) {
  TempDir dir;
  const std::string rest =
      "[model]\nname = \"resnet20\"\n[optimizer]\nname = \"sgd\"\nlr = 0.05\nmomentum = 0.9\n"
      "[schedule]\nname = \"cosine\"\n";
  const fs::path straight = dir / "straight.toml", chain = dir / "chain.toml";
  write_config(straight, "classifier", "flip = true\n", rest, 5);
  write_config(chain, "classifier", "flip = true\n", rest, 5);
  const CommandResult one = run_job(train(straight), 300);
  ASSERT_EQ(one.status, 0) << one.output;

  const fs::path marker = checkpoint_dir(dir / "chain", 5);
  const KilledJob killed = run_until_then_kill(
      mpirun(LOCKSTEP_MPIEXEC, 2, train(chain)), [&] { return fs::exists(marker); }, chain.string(),
      dir / "killed.log", 300);
  ASSERT_TRUE(killed.reached) << "the job ended (status " << killed.status << ") before " << marker
                              << " appeared:\n"
                              << killed.output;
  ASSERT_FALSE(fs::exists(checkpoint_dir(dir / "chain", kSteps))) << "the job finished before it was killed";
  const CommandResult resumed = run_job(mpirun(LOCKSTEP_MPIEXEC, 4, train(chain)), 300);
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("saved by 2 ranks"), std::string::npos) << resumed.output;
  expect_same_models_and_optimizers(checkpoint_dir(dir / "straight", kSteps), checkpoint_dir(dir / "chain", kSteps), "model");
}

TEST(MpiDeterministic, WorldSizeThatDoesNotDivideTheMicroShardsIsRefused) {
  TempDir dir;
  const fs::path config = dir / "three.toml";
  write_config(config, "classifier", "",
               "[model]\nname = \"mlp\"\nhidden = [8]\n[optimizer]\nname = \"sgd\"\nlr = 0.1\n");
  const CommandResult result =
      run_job(mpirun(LOCKSTEP_MPIEXEC, 3, train(config, "data.global_batch_size=48")));
  EXPECT_NE(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("distributed.micro_shards"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("8 micro-shards on 3 ranks"), std::string::npos) << result.output;
}

}  // namespace
}  // namespace lockstep::test
