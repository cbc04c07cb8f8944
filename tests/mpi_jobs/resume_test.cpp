// Checkpoints across whole jobs: `lockstep train` under mpirun killed with SIGKILL on every rank and run
// again with the same command resumes bit for bit (ResNet with synchronised batch norm, DCGAN, CycleGAN with
// its image pools); CycleGAN's 2 ranks train as one process with their union batch; a run resumed
// at another world size keeps the global batch and the global sample order; `--resume` errors name what is
// wrong. (A damaged newest checkpoint and the other faults are in tests/faults.)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "io/checkpoint/checkpoint_store.h"
#include "io/h5/h5.h"
#include "io/state/state_file.h"
#include "src/core/error.h"
#include "tests/support/command.h"
#include "tests/support/fashion_mnist.h"
#include "tests/support/job.h"
#include "tests/support/temp_dir.h"
#include "tests/support/text_corpus.h"

namespace lockstep::test {
namespace {

namespace fs = std::filesystem;

// The test's own hard limit on any one job (it is killed past it).
constexpr int kLimitS = 120;
// Steps between checkpoints in the kill-and-resume tests; the runs train 3 x kEvery steps.
constexpr std::int64_t kEvery = 4;

// `lockstep train CONFIG ARGS` as one process.
std::string train(const fs::path& config, const std::string& args = "") {
  return quote(LOCKSTEP_TOOL) + " train " + quote(config.string()) + " --progress lines" +
         (args.empty() ? "" : " " + args);
}

// `lockstep train CONFIG ARGS` as a job of `np` ranks on this machine.
std::string mpirun_train(int np, const fs::path& config, const std::string& args = "") {
  return mpirun(LOCKSTEP_MPIEXEC, np, train(config, args));
}

fs::path checkpoint_dir(const fs::path& output, std::int64_t step) {
  return output / "checkpoints" / io::CheckpointStore::directory_name(step);
}

// The steps of the committed checkpoints under <output>/checkpoints, ascending.
std::vector<std::int64_t> committed_steps(const fs::path& output) {
  std::vector<std::int64_t> steps;
  for (const io::CheckpointInfo& info : io::CheckpointStore(output / "checkpoints").list())
    steps.push_back(info.step);
  return steps;
}

// --- Comparing checkpoints -----------------------------------------------------------------------------

// Group `group` of the HDF5 file `path` as a state dict.
nn::StateDict read_group(const fs::path& path, const std::string& group) {
  const io::h5::File file(path, io::h5::Access::kRead);
  return io::read_state_dict(file.root().group(group));
}

// For each tensor of `a`'s group `group`: max |a - b| / max |b|; the largest over the tensors, with the
// tensor's name. Names and sizes must match.
std::pair<double, std::string> max_relative_difference(const fs::path& a, const fs::path& b,
                                                       const std::string& group) {
  const nn::StateDict da = read_group(a, group), db = read_group(b, group);
  EXPECT_EQ(da.size(), db.size()) << a << " vs " << b;
  std::pair<double, std::string> worst{0.0, ""};
  for (const auto& [name, ta] : da) {
    const Tensor* tb = db.find(name);
    if (tb == nullptr) {
      ADD_FAILURE() << "'" << name << "' is in " << a << " but not in " << b;
      continue;
    }
    const std::vector<double> va = ta.to(DType::f64).to_vector<double>(),
                              vb = tb->to(DType::f64).to_vector<double>();
    if (va.size() != vb.size()) {
      ADD_FAILURE() << "'" << name << "' has " << va.size() << " values in " << a << " but " << vb.size()
                    << " in " << b;
      continue;
    }
    double diff = 0.0, scale = 0.0;
    for (std::size_t i = 0; i < va.size(); ++i) {
      diff = std::max(diff, std::abs(va[i] - vb[i]));
      scale = std::max(scale, std::abs(vb[i]));
    }
    const double relative = diff == 0.0 ? 0.0 : diff / std::max(scale, 1e-30);
    if (relative >= worst.first) worst = {relative, name};
  }
  return worst;
}

// The value of `field` in the last record of <output>/metrics.jsonl (NaN when missing).
double last_metric(const fs::path& output, const std::string& field) {
  const std::vector<std::string> lines = lines_of(read_text(output / "metrics.jsonl"));
  if (lines.empty()) return std::nan("");
  const std::string key = "\"" + field + "\":";
  const std::size_t at = lines.back().find(key);
  if (at == std::string::npos) return std::nan("");
  return std::strtod(lines.back().c_str() + at + key.size(), nullptr);
}

// --- Configs -------------------------------------------------------------------------------------------

// Writes a config of `task` for `output` on the Fashion-MNIST training split (no test split: no evaluation)
// with `run_keys` and `data_keys` added to [run] and [data], then the `rest` sections; returns `path`.
fs::path write_config(const fs::path& path, const std::string& task, const fs::path& output,
                      const std::string& run_keys, const std::string& data_keys, const std::string& rest) {
  std::ofstream(path) << "task = \"" << task << "\"\n[run]\nepochs = 1\noutput = \"" << output.string()
                      << "\"\n"
                      << run_keys << "[data]\npath = \"" << fashion_mnist_h5().string()
                      << "\"\ntest_split = \"\"\n"
                      << data_keys << rest;
  return path;
}

// A kill-and-resume run of `task`: seed `seed`, 3 x kEvery steps, a checkpoint every kEvery; `data_keys` in
// [data] and the `sections` before [checkpoint].
fs::path resume_config(const fs::path& path, const std::string& task, const fs::path& output, int seed,
                       const std::string& data_keys, const std::string& sections) {
  return write_config(path, task, output, str_cat("seed = ", seed, "\nmax_steps = ", 3 * kEvery, "\n"),
                      data_keys, str_cat(sections, "[checkpoint]\nevery_steps = ", kEvery, "\n"));
}

// ResNet-20 (19 batch norms, synchronised over the ranks by default), SGD with momentum and weight decay, a
// cosine schedule, random crops and flips, 8 images per rank: 3 x kEvery steps, a checkpoint every kEvery.
fs::path resnet_config(const fs::path& path, const fs::path& output) {
  return resume_config(path, "classifier", output, 5, "batch_size = 8\ncrop_padding = 2\nflip = true\n",
                       "[model]\nname = \"resnet20\"\n"
                       "[optimizer]\nname = \"sgd\"\nlr = 0.05\nmomentum = 0.9\nweight_decay = 5e-4\n"
                       "[schedule]\nname = \"cosine\"\n");
}

// A DCGAN (width 64: steps long enough for the kill to land mid-run on an idle machine; latent 16; 32x32:
// padded Fashion-MNIST scaled to [-1, 1]) with the paper's Adam at two time scales (G 1e-4, D 4e-4),
// one-sided label smoothing and a generator average, 16 images per rank: 3 x kEvery steps, a checkpoint
// every kEvery.
fs::path dcgan_config(const fs::path& path, const fs::path& output) {
  return resume_config(path, "gan", output, 2, "batch_size = 16\npad_to = 32\nnormalize = \"tanh\"\n",
                       "[gan]\nlatent = 16\nsamples = 16\nreal_label = 0.9\nema_decay = 0.999\n"
                       "[generator]\nname = \"dcgan\"\nwidth = 64\n"
                       "[discriminator]\nname = \"dcgan\"\nwidth = 64\n"
                       "[generator.optimizer]\nlr = 1e-4\n[discriminator.optimizer]\nlr = 4e-4\n");
}

// A CycleGAN, sneakers <-> ankle boots at 32x32 (the example's networks: steps long enough for the kill to
// land mid-run on an idle machine), pools of 12 images (full after two steps of 2 x 4 images, so the
// resumed steps draw from the pools' stream), 4 images per rank: 3 x kEvery steps, a checkpoint every kEvery.
fs::path cyclegan_config(const fs::path& path, const fs::path& output) {
  return resume_config(path, "cyclegan", output, 4, "batch_size = 4\npad_to = 32\nnormalize = \"tanh\"\n",
                       "[cyclegan]\npool_size = 12\nsamples = 2\neval_images = 0\n"
                       "[generator]\nname = \"cyclegan-resnet\"\nwidth = 32\nresidual_blocks = 6\n"
                       "[discriminator]\nname = \"patchgan\"\nwidth = 64\n");
}

// The course's MLP GAN at its own widths (the 23 MiB checkpoints and 64 images per rank keep the kill
// mid-run), non-saturating loss: 3 x kEvery steps, a checkpoint every kEvery.
fs::path mlp_gan_config(const fs::path& path, const fs::path& output) {
  return resume_config(path, "gan", output, 4, "batch_size = 64\nnormalize = \"tanh\"\n",
                       "[gan]\nsamples = 16\n[generator]\nname = \"mlp\"\n[discriminator]\nname = \"mlp\"\n");
}

// A conditional DCGAN (width 64, as dcgan_config) with the real batch's labels and random ones: 3 x kEvery
// steps, a checkpoint every kEvery.
fs::path cgan_config(const fs::path& path, const fs::path& output) {
  return resume_config(path, "gan", output, 6, "batch_size = 16\npad_to = 32\nnormalize = \"tanh\"\n",
                       "[gan]\nlatent = 16\nsamples = 20\nconditional = true\n"
                       "[generator]\nname = \"dcgan\"\nwidth = 64\n"
                       "[discriminator]\nname = \"dcgan\"\nwidth = 64\n");
}

// WGAN-GP: a layer-norm critic (width 64) under the gradient penalty, each rank drawing its own interpolates,
// 2 critic steps per generator step: 3 x kEvery steps, a checkpoint every kEvery.
fs::path wgan_gp_config(const fs::path& path, const fs::path& output) {
  return resume_config(path, "gan", output, 7, "batch_size = 16\npad_to = 32\nnormalize = \"tanh\"\n",
                       "[gan]\nlatent = 16\nsamples = 16\nloss = \"wasserstein-gp\"\nd_steps = 2\n"
                       "[generator]\nname = \"dcgan\"\nwidth = 32\n"
                       "[discriminator]\nname = \"wgan-critic\"\nwidth = 64\nnorm = \"layer\"\n");
}

// Convolutional autoencoders (64 images per rank keep the kill mid-run): `keys` pick the kind.
fs::path autoencoder_config(const fs::path& path, const fs::path& output, const std::string& keys) {
  return resume_config(path, "autoencoder", output, 8, "batch_size = 64\n",
                       str_cat("[autoencoder]\narchitecture = \"conv\"\ncode = 16\nsamples = 16\n", keys));
}

// A small MLP with SGD and momentum, a global batch of 24 (shared out over the ranks), each rank logging its
// batches' sample indices: `max_steps` steps, a checkpoint every `every` steps.
fs::path mlp_config(const fs::path& path, const fs::path& output, std::int64_t max_steps,
                    std::int64_t every) {
  return write_config(path, "classifier", output,
                      str_cat("seed = 3\nsample_log = true\nmax_steps = ", max_steps, "\n"),
                      "global_batch_size = 24\n",
                      str_cat("[model]\nname = \"mlp\"\nhidden = [32]\n"
                              "[optimizer]\nname = \"sgd\"\nlr = 0.05\nmomentum = 0.9\n"
                              "[checkpoint]\nevery_steps = ",
                              every, "\n"));
}

// --- Killed on every rank, then resumed ----------------------------------------------------------------

// Trains `make_config`'s run on 2 ranks straight for 3 x kEvery steps, and again as a job killed with SIGKILL
// on every rank as soon as checkpoint kEvery exists, then resumed by the same command. The final
// checkpoints' models (`groups` of model.h5), optimizer files and the task's states (`trainer_groups` of
// trainer.h5) must be identical.
void expect_killed_and_resumed_equals_straight(
    const std::function<fs::path(const fs::path&, const fs::path&)>& make_config, const std::string& groups,
    const std::string& trainer_groups = "") {
  TempDir dir;
  const std::int64_t last = 3 * kEvery;
  const fs::path straight_out = dir / "straight", killed_out = dir / "killed";
  const fs::path straight_config = make_config(dir / "straight.toml", straight_out);
  const fs::path killed_config = make_config(dir / "killed.toml", killed_out);

  const CommandResult straight = run_job(mpirun_train(2, straight_config));
  ASSERT_EQ(straight.status, 0) << straight.output;
  ASSERT_TRUE(fs::is_directory(checkpoint_dir(straight_out, last))) << straight.output;

  const std::string command = mpirun_train(2, killed_config);
  const fs::path marker = checkpoint_dir(killed_out, kEvery);
  const KilledJob killed = run_until_then_kill(
      command, [&] { return fs::exists(marker); }, killed_config.string(), dir / "killed.log", kLimitS);
  ASSERT_TRUE(killed.reached) << "the job ended (status " << killed.status << ") before "
                              << checkpoint_dir(killed_out, kEvery) << " appeared:\n"
                              << killed.output;
  EXPECT_EQ(killed.status, 128 + SIGKILL) << killed.output;
  // The kill must land mid-run, or the resume below would test nothing.
  ASSERT_FALSE(fs::exists(checkpoint_dir(killed_out, last)))
      << "the job finished before it was killed (" << killed.seconds
      << " s): make the run longer or checkpoint earlier\n"
      << killed.output;
  EXPECT_EQ(killed.output.find("done: "), std::string::npos) << killed.output;
  const std::vector<std::int64_t> saved = committed_steps(killed_out);
  ASSERT_FALSE(saved.empty()) << killed.output;
  const std::int64_t newest = saved.back();
  EXPECT_GE(newest, kEvery);
  EXPECT_LT(newest, last);

  const CommandResult resumed = run_job(command);
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find(str_cat("resumed from ", checkpoint_dir(killed_out, newest).string(),
                                        ": step ", newest, ",")),
            std::string::npos)
      << "expected a resume from step " << newest << ":\n"
      << resumed.output;
  ASSERT_TRUE(fs::is_directory(checkpoint_dir(killed_out, last))) << resumed.output;

  expect_same_checkpoint_contents(checkpoint_dir(straight_out, last), checkpoint_dir(killed_out, last),
                                  groups, trainer_groups);
  // The logged figures too (every rank's running sums are in the checkpoint): the same bytes.
  EXPECT_EQ(read_text(straight_out / "metrics.jsonl"), read_text(killed_out / "metrics.jsonl"));
}

TEST(MpiResume, ResNetWithSyncBatchNormKilledOnEveryRankResumesBitForBit) {
  expect_killed_and_resumed_equals_straight(resnet_config, "model");
}

TEST(MpiResume, DcganKilledOnEveryRankResumesBitForBit) {
  expect_killed_and_resumed_equals_straight(dcgan_config, "generator discriminator generator_ema");
}

// The generator's update is applied by the next discriminator step, after its backward on the real batch,
// while the generator's all-reduce is in flight (launch/train/gan.cpp); a checkpoint applies it at once.
// Two ranks, 8 steps: checkpointing after every step (each update applied at its step's end) and only at
// the end give the same bits. A DCGAN with generator clipping and an average, plain batch norm (so the real
// batch's backward does not wait for the generator's buckets); a conditional WGAN-GP with 2 critic steps per
// generator step (a step without a generator update in between); a weight-clipped WGAN.
TEST(MpiGan, TheGeneratorsDeferredUpdateTrainsAsAnUpdateAppliedAtOnce) {
  const std::vector<std::pair<std::string, std::string>> variants = {
      {"dcgan",
       "[gan]\nlatent = 16\nsamples = 16\nema_decay = 0.9\n"
       "[generator]\nname = \"dcgan\"\nwidth = 16\nclip_grad_norm = 0.5\n"
       "[discriminator]\nname = \"dcgan\"\nwidth = 16\n[distributed]\nsync_batchnorm = false\n"},
      {"cgan-gp",
       "[gan]\nlatent = 16\nsamples = 20\nconditional = true\nloss = \"wasserstein-gp\"\nd_steps = 2\n"
       "[generator]\nname = \"dcgan\"\nwidth = 16\n"
       "[discriminator]\nname = \"wgan-critic\"\nwidth = 16\nnorm = \"layer\"\n"},
      {"wgan",
       "[gan]\nlatent = 16\nsamples = 16\nloss = \"wasserstein\"\n"
       "[generator]\nname = \"dcgan\"\nwidth = 16\n[discriminator]\nname = \"wgan-critic\"\nwidth = 16\n"},
  };
  for (const auto& [variant, sections] : variants) {
    SCOPED_TRACE(variant);
    TempDir dir;
    const auto config = [&](const std::string& name, int every) {
      return write_config(dir / (name + ".toml"), "gan", dir / name, "seed = 3\nmax_steps = 8\n",
                          "batch_size = 8\npad_to = 32\nnormalize = \"tanh\"\n",
                          str_cat(sections, "[checkpoint]\nevery_steps = ", every, "\nkeep_last = 10\n"));
    };
    const fs::path deferred = config("deferred", 0), at_once = config("at_once", 1);
    const CommandResult a = run_job(mpirun_train(2, deferred));
    ASSERT_EQ(a.status, 0) << a.output;
    const CommandResult b = run_job(mpirun_train(2, at_once));
    ASSERT_EQ(b.status, 0) << b.output;
    EXPECT_EQ(committed_steps(dir / "deferred"), std::vector<std::int64_t>{8});
    EXPECT_EQ(committed_steps(dir / "at_once").size(), 8u);
    expect_same_checkpoint_contents(
        checkpoint_dir(dir / "deferred", 8), checkpoint_dir(dir / "at_once", 8),
        variant == "dcgan" ? "generator discriminator generator_ema" : "generator discriminator");
  }
}

TEST(MpiResume, CycleGanKilledOnEveryRankResumesBitForBitPoolsIncluded) {
  expect_killed_and_resumed_equals_straight(
      cyclegan_config, "generator_a2b generator_b2a discriminator_a discriminator_b", "image_pools");
}

// ||a - b|| / ||b|| over every floating tensor of group `group` of the two HDF5 files together (tiny tensors,
// e.g. the biases instance norm cancels, move by f32 rounding alone; the whole group is what must agree).
double overall_relative_difference(const fs::path& a, const fs::path& b, const std::string& group) {
  const nn::StateDict da = read_group(a, group), db = read_group(b, group);
  double diff = 0.0, norm = 0.0;
  for (const auto& [name, ta] : da) {
    const Tensor* tb = db.find(name);
    if (tb == nullptr || !is_floating(ta.dtype())) continue;
    const std::vector<double> va = ta.to(DType::f64).to_vector<double>(),
                              vb = tb->to(DType::f64).to_vector<double>();
    for (std::size_t i = 0; i < va.size() && i < vb.size(); ++i) {
      diff += (va[i] - vb[i]) * (va[i] - vb[i]);
      norm += vb[i] * vb[i];
    }
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

// A tiny CycleGAN (width 4, one residual block; PatchGANs of width 4) with SGD, pools of 2 images, `batch`
// images per rank, one thread per rank, one step, saved.
fs::path small_cyclegan_config(const fs::path& path, const fs::path& output, std::int64_t batch) {
  return write_config(path, "cyclegan", output, "seed = 6\nmax_steps = 1\nthreads = 1\n",
                      str_cat("batch_size = ", batch, "\npad_to = 32\nnormalize = \"tanh\"\n"),
                      "[cyclegan]\npool_size = 2\nsamples = 2\neval_images = 0\n"
                      "[generator]\nname = \"cyclegan-resnet\"\nwidth = 4\nresidual_blocks = 1\n"
                      "[discriminator]\nname = \"patchgan\"\nwidth = 4\n"
                      "[optimizer]\nname = \"sgd\"\nlr = 0.05\n[checkpoint]\nevery_steps = 1\n");
}

TEST(MpiCycleGan, TwoRanksOfTwoImagesStepAsOneProcessOfFourPoolsIncluded) {
  // The pools take every rank's translations in the order of the global batch, so 2 x 2 images fill and
  // draw the pools of one process with 4 (2 slots filled, then 2 draws per pool): the same images stored.
  // One step: the generators' instance norms after N(0, 0.02) weights make later steps amplify f32 rounding
  // (a single process with 1 or 2 threads differs by 1e-3 after two steps), with SGD or Adam alike.
  TempDir dir;
  const fs::path one_out = dir / "one", two_out = dir / "two";
  const CommandResult one = run_job(train(small_cyclegan_config(dir / "one.toml", one_out, 4)));
  ASSERT_EQ(one.status, 0) << one.output;
  const CommandResult two = run_job(mpirun_train(2, small_cyclegan_config(dir / "two.toml", two_out, 2)));
  ASSERT_EQ(two.status, 0) << two.output;
  const fs::path a = checkpoint_dir(two_out, 1), b = checkpoint_dir(one_out, 1);
  for (const char* group : {"generator_a2b", "generator_b2a", "discriminator_a", "discriminator_b"}) {
    const double d = overall_relative_difference(a / "model.h5", b / "model.h5", group);
    std::printf("[   INFO   ] %s: 2 ranks vs 1 process, relative L2 difference %.3g\n", group, d);
    EXPECT_LT(d, 1e-5) << group;
  }
  const nn::StateDict pools_two = read_group(a / "trainer.h5", "image_pools"),
                      pools_one = read_group(b / "trainer.h5", "image_pools");
  for (const char* name : {"stream", "a.count", "b.count"})
    EXPECT_EQ(pools_two.at(name).to_vector<std::int64_t>(), pools_one.at(name).to_vector<std::int64_t>())
        << name;
  EXPECT_EQ(pools_one.at("stream").to_vector<std::int64_t>()[1], 2 * 2);  // 2 draws per pool once full
  // Stored in rank order instead, the pools differ by about half their norm.
  const double pools = overall_relative_difference(a / "trainer.h5", b / "trainer.h5", "image_pools");
  std::printf("[   INFO   ] image pools: relative L2 difference %.3g\n", pools);
  EXPECT_LT(pools, 1e-5);
}

TEST(MpiResume, MlpGanKilledOnEveryRankResumesBitForBit) {
  expect_killed_and_resumed_equals_straight(mlp_gan_config, "generator discriminator");
}

TEST(MpiResume, ConditionalGanKilledOnEveryRankResumesBitForBit) {
  expect_killed_and_resumed_equals_straight(cgan_config, "generator discriminator");
}

TEST(MpiResume, VaeKilledOnEveryRankResumesBitForBit) {
  expect_killed_and_resumed_equals_straight(
      [](const fs::path& path, const fs::path& output) {
        return autoencoder_config(path, output, "variational = true\n");
      },
      "model");
}

TEST(MpiResume, DenoisingContractiveAutoencoderKilledOnEveryRankResumesBitForBit) {
  expect_killed_and_resumed_equals_straight(
      [](const fs::path& path, const fs::path& output) {
        return autoencoder_config(path, output, "noise = \"gaussian\"\ncontractive_weight = 0.1\n");
      },
      "model");
}

TEST(MpiResume, PixelCnnKilledOnEveryRankResumesBitForBit) {
  expect_killed_and_resumed_equals_straight(
      [](const fs::path& path, const fs::path& output) {
        return resume_config(path, "pixelcnn", output, 9, "batch_size = 16\n",
                             "[pixelcnn]\nwidth = 16\nblocks = 2\nsamples = 4\n");
      },
      "model");
}

// --- The character model: truncated BPTT with the LSTM state carried across steps -------------------------

// A character LSTM on the test corpus (tests/support/text_corpus.h): `batch_keys` in [data], chunks of 32
// characters, `run_keys` in [run], `rest` after [charlm].
fs::path charlm_config(const fs::path& path, const fs::path& output, const std::string& run_keys,
                       const std::string& batch_keys, std::int64_t hidden, const std::string& rest = "") {
  std::ofstream(path) << "task = \"charlm\"\n[run]\nepochs = 1\noutput = \"" << output.string() << "\"\n"
                      << run_keys << "[data]\npath = \"" << small_text_h5().string() << "\"\n"
                      << batch_keys << "eval_batch_size = 8\n[charlm]\nembedding = 16\nhidden = " << hidden
                      << "\nsamples = 20\n[train]\nbptt_steps = 32\nclip_grad_norm = 1.0\n"
                      << rest;
  return path;
}

TEST(MpiCharLm, TwoRanksOfFourStreamsTrainAsOneProcessOfEight) {
  // The streams of the global batch are the same rows whatever the world size, each rank carrying the state
  // of its own: 6 steps (chunks 1..6 of every stream) end with the same weights and the same gathered state,
  // and the test split's cross-entropy, shared out over the ranks, is the same figure.
  TempDir dir;
  const fs::path one_out = dir / "one", two_out = dir / "two";
  const std::string run = "seed = 3\nmax_steps = 6\n";
  const CommandResult one =
      run_job(train(charlm_config(dir / "one.toml", one_out, run, "global_batch_size = 8\n", 24)));
  ASSERT_EQ(one.status, 0) << one.output;
  const CommandResult two =
      run_job(mpirun_train(2, charlm_config(dir / "two.toml", two_out, run, "batch_size = 4\n", 24)));
  ASSERT_EQ(two.status, 0) << two.output;
  const fs::path a = checkpoint_dir(two_out, 6), b = checkpoint_dir(one_out, 6);
  const double model = overall_relative_difference(a / "model.h5", b / "model.h5", "model");
  const double state = overall_relative_difference(a / "trainer.h5", b / "trainer.h5", "bptt_state");
  std::printf("[   INFO   ] 2 ranks vs 1 process: weights %.3g, carried state %.3g (relative L2)\n", model,
              state);
  EXPECT_LT(model, 1e-5);
  EXPECT_LT(state, 1e-5);
  // The state compared is the streams' (h and c of every stream), not zeros.
  const nn::StateDict carried = read_group(b / "trainer.h5", "bptt_state");
  ASSERT_EQ(carried.size(), 4U);  // h and c of 2 layers
  for (const auto& [name, t] : carried) {
    EXPECT_EQ(t.shape(), (Shape{8, 24})) << name;
    double norm = 0.0;
    for (const double v : t.to(DType::f64).to_vector<double>()) norm += v * v;
    EXPECT_GT(norm, 1e-3) << name;
  }
  const double test_one = last_metric(one_out, "test_bits_per_char"),
               test_two = last_metric(two_out, "test_bits_per_char");
  EXPECT_NEAR(test_two, test_one, 1e-4 * test_one);
  EXPECT_EQ(last_metric(one_out, "bigram_test_bits_per_char"),
            last_metric(two_out, "bigram_test_bits_per_char"));
}

TEST(MpiResume, CharLmSavedByOneProcessContinuesOnTwoRanksWithItsStreams) {
  // The checkpoint holds every stream's state ([G, hidden], gathered): 2 ranks resuming a 1-process run take
  // their halves of it and of the global batch of 8 streams, and end as the straight 1-process run does.
  TempDir dir;
  const fs::path straight_out = dir / "straight", switched_out = dir / "switched";
  const std::string every = "[checkpoint]\nevery_steps = 4\n";
  const CommandResult straight =
      run_job(train(charlm_config(dir / "straight.toml", straight_out, "seed = 4\nmax_steps = 8\n",
                                  "global_batch_size = 8\n", 32, every)));
  ASSERT_EQ(straight.status, 0) << straight.output;
  const fs::path config = charlm_config(dir / "switched.toml", switched_out, "seed = 4\nmax_steps = 8\n",
                                        "global_batch_size = 8\n", 32, every);
  const CommandResult first = run_job(train(config, "run.max_steps=4"));
  ASSERT_EQ(first.status, 0) << first.output;
  const CommandResult second = run_job(mpirun_train(2, config));
  ASSERT_EQ(second.status, 0) << second.output;
  EXPECT_NE(second.output.find("global batch 8 kept"), std::string::npos) << second.output;
  const fs::path a = checkpoint_dir(switched_out, 8), b = checkpoint_dir(straight_out, 8);
  const double model = overall_relative_difference(a / "model.h5", b / "model.h5", "model");
  const double state = overall_relative_difference(a / "trainer.h5", b / "trainer.h5", "bptt_state");
  std::printf("[   INFO   ] 1 process then 2 ranks vs 1 process: weights %.3g, carried state %.3g\n", model,
              state);
  EXPECT_LT(model, 1e-5);
  EXPECT_LT(state, 1e-5);
}

TEST(MpiResume, CharLmKilledOnEveryRankResumesBitForBitStateIncluded) {
  // Killed in the middle of the streams (checkpoint 4 of 12 steps, 23 chunks per epoch): the resumed run must
  // continue every stream from the LSTM state in trainer.h5, or its weights part from the straight run's.
  expect_killed_and_resumed_equals_straight(
      [](const fs::path& path, const fs::path& output) {
        return charlm_config(path, output, str_cat("seed = 9\nmax_steps = ", 3 * kEvery, "\n"),
                             "batch_size = 16\n", 256, str_cat("[checkpoint]\nevery_steps = ", kEvery, "\n"));
      },
      "model", "bptt_state");
}

TEST(MpiResume, WganGpKilledOnEveryRankResumesBitForBit) {
  expect_killed_and_resumed_equals_straight(wgan_gp_config, "generator discriminator");
}

// --- Another world size --------------------------------------------------------------------------------

// Each step's sample indices per rank from <output>/samples/rank_<r>.txt: the last line of a step counts
// (a resumed run appends again from its checkpoint's step).
std::map<std::int64_t, std::map<int, std::vector<std::int64_t>>> sample_log(const fs::path& output) {
  std::map<std::int64_t, std::map<int, std::vector<std::int64_t>>> steps;
  for (const fs::directory_entry& entry : fs::directory_iterator(output / "samples")) {
    const std::string name = entry.path().stem().string();  // rank_<r>
    EXPECT_EQ(name.rfind("rank_", 0), 0u) << entry.path();
    const int rank = std::stoi(name.substr(5));
    for (const std::string& line : lines_of(read_text(entry.path()))) {
      std::istringstream words(line);
      std::int64_t step = 0;
      words >> step;
      std::vector<std::int64_t> indices;
      for (std::int64_t i = 0; words >> i;) indices.push_back(i);
      steps[step][rank] = std::move(indices);
    }
  }
  return steps;
}

TEST(MpiResume, AtAnotherWorldSizeKeepsTheGlobalBatchAndTheSampleOrder) {
  constexpr std::int64_t kN = 5, kGlobal = 24;
  TempDir dir;
  const fs::path straight_out = dir / "straight", chain_out = dir / "chain";
  const fs::path straight_config = mlp_config(dir / "straight.toml", straight_out, 3 * kN, kN);
  const fs::path chain_config = mlp_config(dir / "chain.toml", chain_out, kN, kN);

  const CommandResult straight = run_job(mpirun_train(2, straight_config));
  ASSERT_EQ(straight.status, 0) << straight.output;
  // Steps 1..N on 2 ranks (12 images each), N+1..2N on 3 (8 each), 2N+1..3N on one process (24).
  const CommandResult first = run_job(mpirun_train(2, chain_config));
  ASSERT_EQ(first.status, 0) << first.output;
  ASSERT_EQ(committed_steps(chain_out), std::vector<std::int64_t>{kN}) << first.output;
  const CommandResult second = run_job(mpirun_train(3, chain_config, str_cat("run.max_steps=", 2 * kN)));
  ASSERT_EQ(second.status, 0) << second.output;
  EXPECT_NE(second.output.find(str_cat("resumed from ", checkpoint_dir(chain_out, kN).string(), ": step ", kN,
                                       ", epoch 1 at step ", kN, "/")),
            std::string::npos)
      << second.output;
  EXPECT_NE(second.output.find("(saved by 2 ranks; global batch 24 kept)"), std::string::npos)
      << second.output;
  EXPECT_NE(second.output.find("batch 8 per rank = 24 global"), std::string::npos) << second.output;
  const CommandResult third = run_job(train(chain_config, str_cat("run.max_steps=", 3 * kN)));
  ASSERT_EQ(third.status, 0) << third.output;
  EXPECT_NE(third.output.find(
                str_cat("resumed from ", checkpoint_dir(chain_out, 2 * kN).string(), ": step ", 2 * kN, ",")),
            std::string::npos)
      << third.output;
  EXPECT_NE(third.output.find("(saved by 3 ranks; global batch 24 kept)"), std::string::npos) << third.output;

  // (a) Every step saw the straight run's samples: none skipped, none repeated.
  const auto straight_steps = sample_log(straight_out), chain_steps = sample_log(chain_out);
  ASSERT_EQ(straight_steps.size(), static_cast<std::size_t>(3 * kN));
  ASSERT_EQ(chain_steps.size(), static_cast<std::size_t>(3 * kN));
  std::set<std::int64_t> epoch;
  for (std::int64_t step = 1; step <= 3 * kN; ++step) {
    const std::size_t world = step <= kN ? 2 : step <= 2 * kN ? 3 : 1;
    const auto union_of = [&](const std::map<int, std::vector<std::int64_t>>& ranks, std::size_t per_rank,
                              const char* run) {
      std::vector<std::int64_t> all;
      for (const auto& [rank, indices] : ranks) {
        EXPECT_EQ(indices.size(), per_rank) << run << " run, step " << step << ", rank " << rank;
        all.insert(all.end(), indices.begin(), indices.end());
      }
      const std::set<std::int64_t> distinct(all.begin(), all.end());
      EXPECT_EQ(distinct.size(), all.size()) << run << " run, step " << step << ": an index repeats";
      return distinct;
    };
    ASSERT_EQ(chain_steps.count(step), 1u) << "step " << step;
    ASSERT_EQ(straight_steps.count(step), 1u) << "step " << step;
    EXPECT_EQ(chain_steps.at(step).size(), world) << "ranks that logged step " << step;
    const std::set<std::int64_t> resumed = union_of(chain_steps.at(step), kGlobal / world, "resumed");
    const std::set<std::int64_t> expected = union_of(straight_steps.at(step), kGlobal / 2, "straight");
    EXPECT_EQ(resumed.size(), static_cast<std::size_t>(kGlobal)) << "step " << step;
    EXPECT_EQ(resumed, expected) << "step " << step << " saw other samples than the straight run";
    epoch.insert(resumed.begin(), resumed.end());
  }
  EXPECT_EQ(epoch.size(), static_cast<std::size_t>(3 * kN * kGlobal))
      << "a sample was seen twice in the epoch";

  // (b) The loss and the parameters continue where they were: only the sums' order differs.
  const double loss = last_metric(chain_out, "train_loss"),
               expected_loss = last_metric(straight_out, "train_loss");
  ASSERT_TRUE(std::isfinite(loss) && std::isfinite(expected_loss)) << loss << " " << expected_loss;
  std::printf("[   INFO   ] final train loss %.9g after the resumes, %.9g straight\n", loss, expected_loss);
  EXPECT_LT(std::abs(loss - expected_loss), 0.02 * std::abs(expected_loss))
      << "final train loss " << loss << " after the resumes, " << expected_loss << " straight";
  for (const std::int64_t step : {2 * kN, 3 * kN}) {
    const fs::path a = checkpoint_dir(straight_out, step) / "model.h5",
                   b = checkpoint_dir(chain_out, step) / "model.h5";
    const auto [relative, name] = max_relative_difference(b, a, "model");
    std::printf("[   INFO   ] step %lld: parameters differ by at most %.3g (relative, '%s')\n",
                static_cast<long long>(step), relative, name.c_str());
    EXPECT_LT(relative, 1e-4) << "step " << step << ": '" << name << "' differs by " << relative
                              << " (max |a - b| / max |a|) between " << a << " and " << b;
  }
}

// --- Errors --------------------------------------------------------------------------------------------

TEST(MpiResume, NoneRefusesAFolderHoldingCheckpoints) {
  TempDir dir;
  const fs::path out = dir / "run";
  const fs::path config = mlp_config(dir / "run.toml", out, 2, 1);
  const CommandResult first = run_job(train(config));
  ASSERT_EQ(first.status, 0) << first.output;
  ASSERT_EQ(committed_steps(out).size(), 2u) << first.output;
  const CommandResult again = run_job(train(config, "--resume none"));
  EXPECT_NE(again.status, 0) << again.output;
  EXPECT_NE(again.output.find((out / "checkpoints").string()), std::string::npos) << again.output;
  EXPECT_NE(again.output.find("--resume auto"), std::string::npos) << again.output;
  EXPECT_EQ(committed_steps(out).size(), 2u) << "the refused run touched the checkpoints";
}

TEST(MpiResume, MissingCheckpointDirectoryIsNamed) {
  TempDir dir;
  const fs::path config = mlp_config(dir / "run.toml", dir / "run", 2, 1);
  const fs::path missing = dir / "no_such_checkpoint";
  const CommandResult job = run_job(train(config, "--resume " + quote(missing.string())));
  EXPECT_NE(job.status, 0) << job.output;
  EXPECT_NE(job.output.find(missing.string()), std::string::npos) << job.output;
}

TEST(MpiResume, WorldSizeThatCannotShareTheGlobalBatchIsRefused) {
  TempDir dir;
  const fs::path out = dir / "run";
  const fs::path config = mlp_config(dir / "run.toml", out, 1, 1);
  const CommandResult first = run_job(train(config));
  ASSERT_EQ(first.status, 0) << first.output;
  // The config's global batch 24 over 5 ranks.
  const CommandResult five = run_job(mpirun_train(5, config, "run.max_steps=2"));
  EXPECT_NE(five.status, 0) << five.output;
  EXPECT_NE(five.output.find("'data.global_batch_size'"), std::string::npos) << five.output;
  EXPECT_NE(five.output.find("a multiple of the world size 5"), std::string::npos) << five.output;
  // A config that 5 ranks can share (25) does not override the checkpoint's 24.
  const CommandResult shared = run_job(mpirun_train(5, config, "run.max_steps=2 data.global_batch_size=25"));
  EXPECT_NE(shared.status, 0) << shared.output;
  EXPECT_NE(shared.output.find("'data.global_batch_size'"), std::string::npos) << shared.output;
  EXPECT_NE(shared.output.find("with global batch 24, which 5 ranks cannot share evenly"), std::string::npos)
      << shared.output;
  EXPECT_EQ(committed_steps(out), std::vector<std::int64_t>{1});
}

// --- The LSTM classifier (rows of the image as steps) ------------------------------------------------------

// An LSTM classifier (hidden 32) with Adam and gradient clipping, `batch` images per rank, one thread per
// rank, `steps` steps, a checkpoint every `every` steps.
fs::path lstm_config(const fs::path& path, const fs::path& output, std::int64_t batch, std::int64_t steps,
                     std::int64_t every) {
  return write_config(path, "classifier", output,
                      str_cat("seed = 10\nmax_steps = ", steps, "\nthreads = 1\n"),
                      str_cat("batch_size = ", batch, "\n"),
                      str_cat("[model]\nname = \"lstm\"\nhidden = [32]\n[optimizer]\nname = \"sgd\"\nlr = 0.1\n"
                              "momentum = 0.9\n[train]\nclip_grad_norm = 1.0\n[checkpoint]\nevery_steps = ",
                              every, "\n"));
}

TEST(MpiLstm, TwoRanksOfEightImagesStepAsOneProcessOfSixteen) {
  TempDir dir;
  const fs::path one_out = dir / "one", two_out = dir / "two";
  const CommandResult one = run_job(train(lstm_config(dir / "one.toml", one_out, 16, 3, 3)));
  ASSERT_EQ(one.status, 0) << one.output;
  const CommandResult two = run_job(mpirun_train(2, lstm_config(dir / "two.toml", two_out, 8, 3, 3)));
  ASSERT_EQ(two.status, 0) << two.output;
  const double d = overall_relative_difference(checkpoint_dir(two_out, 3) / "model.h5",
                                               checkpoint_dir(one_out, 3) / "model.h5", "model");
  std::printf("[   INFO   ] LSTM: 2 ranks x 8 vs 1 process x 16 after 3 steps, relative L2 difference %.3g\n",
              d);
  EXPECT_LT(d, 1e-5);
  // A different global batch (2 x 16) must not agree: the comparison can tell.
  const fs::path wide_out = dir / "wide";
  const CommandResult wide = run_job(mpirun_train(2, lstm_config(dir / "wide.toml", wide_out, 16, 3, 3)));
  ASSERT_EQ(wide.status, 0) << wide.output;
  EXPECT_GT(overall_relative_difference(checkpoint_dir(wide_out, 3) / "model.h5",
                                        checkpoint_dir(one_out, 3) / "model.h5", "model"),
            1e-4);
}

// Hidden 256, 256 rows per rank: steps long enough for the kill to land mid-run (with hidden 64 and 64 rows
// the whole job took 0.56 s and once ended before the kill).
TEST(MpiResume, LstmClassifierKilledOnEveryRankResumesBitForBit) {
  expect_killed_and_resumed_equals_straight(
      [](const fs::path& path, const fs::path& output) {
        return resume_config(
            path, "classifier", output, 11, "batch_size = 256\n",
            "[model]\nname = \"lstm\"\nhidden = [256]\n[optimizer]\nname = \"adam\"\nlr = 2e-3\n"
            "[train]\nclip_grad_norm = 1.0\n");
      },
      "model");
}

}  // namespace
}  // namespace lockstep::test
