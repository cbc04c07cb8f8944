// Tests of training checkpoints in one process, through the real trainers on a small slice of the real
// Fashion-MNIST: a run stopped and resumed (mid-epoch, at and across epoch ends, from a stop signal) ends
// bit for bit where a straight run ends, for the classifier, the GAN and CycleGAN (image pools included);
// the keep policy during training; `--resume none|auto|PATH` with damaged, stale and foreign checkpoints;
// mismatches reported by name; the contents of trainer.h5; the batch of a resumed run (resumed_batch_size).
#include "launch/train/checkpointing.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "io/checkpoint/checkpoint_state.h"
#include "io/data/convert.h"
#include "io/checkpoint/checkpoint_store.h"
#include "io/h5/h5.h"
#include "io/state/state_file.h"
#include "launch/config/config.h"
#include "io/model/model_file.h"
#include "launch/config/settings.h"
#include "launch/train/factory.h"
#include "launch/train/loop.h"
#include "launch/train/progress.h"
#include "launch/train/run.h"
#include "src/core/rng.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"
#include "tests/support/fashion_mnist.h"
#include "tests/support/temp_dir.h"

namespace lockstep::launch {
namespace {

namespace fs = std::filesystem;
using test::expect_error;

constexpr std::int64_t kBatch = 32;  // 10 steps per epoch on the small Fashion-MNIST

// The first 320 training and 200 test images of the real Fashion-MNIST.
const fs::path& small_fashion_mnist() {
  static const fs::path path = test::small_fashion_mnist_h5();
  return path;
}

// A classifier run in `output`: an MLP with dropout (so the default random stream matters), Adam and a
// cosine schedule over 3 epochs of 10 steps, a checkpoint every `every` steps (all kept), no test split.
std::string classifier_text(const fs::path& output, std::int64_t every) {
  return str_cat(
      "[run]\nseed = 21\nepochs = 3\nthreads = 1\noutput = \"", output.string(), "\"\n[data]\npath = \"",
      small_fashion_mnist().string(), "\"\nbatch_size = ", kBatch,
      "\ntest_split = \"\"\ncrop_padding = 2\nflip = true\n[model]\nname = \"mlp\"\nhidden = [32]\n"
      "dropout = 0.25\n[optimizer]\nname = \"adam\"\nlr = 0.002\n[schedule]\nname = \"cosine\"\n"
      "[checkpoint]\nevery_steps = ",
      every, "\nkeep_last = 100\n");
}

// A tiny DCGAN run in `output` (width 8, latent 16, 32x32 tanh images), 2 epochs of 10 steps, a checkpoint
// every `every` steps (all kept).
std::string gan_text(const fs::path& output, std::int64_t every) {
  return str_cat("task = \"gan\"\n[run]\nseed = 5\nepochs = 2\nthreads = 1\noutput = \"", output.string(),
                 "\"\n[data]\npath = \"", small_fashion_mnist().string(), "\"\nbatch_size = ", kBatch,
                 "\npad_to = 32\nnormalize = \"tanh\"\n[gan]\nlatent = 16\nsamples = 4\n[generator]\nname = "
                 "\"dcgan\"\nwidth = 8\n[discriminator]\nname = \"dcgan\"\nwidth = 8\n[optimizer]\nname = "
                 "\"adam\"\nlr = 2e-4\nbeta1 = 0.5\n[checkpoint]\nevery_steps = ",
                 every, "\nkeep_last = 100\n");
}

launch::Config parse(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return launch::Config::parse(text, "run.toml", overrides);
}

// What a Progress wrote, through a temporary file.
class Printed {
 public:
  Printed() : file_(std::tmpfile()) {
    if (file_ == nullptr) throw std::runtime_error("tmpfile() failed");
  }
  ~Printed() { std::fclose(file_); }
  Printed(const Printed&) = delete;
  Printed& operator=(const Printed&) = delete;

  std::FILE* file() const { return file_; }
  std::string text() const {
    std::fflush(file_);
    std::fseek(file_, 0, SEEK_SET);
    std::string out;
    char buffer[4096];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, file_)) > 0) out.append(buffer, n);
    std::fseek(file_, 0, SEEK_END);
    return out;
  }

 private:
  std::FILE* file_;
};

using ClassifierResult = TrainResult;
using GanResult = TrainResult;

// Trains `cfg` for at most `max_steps` steps (0: no limit) with `--resume resume`; what it printed lands in
// *printed, also when it throws. The step limit is set on the run settings, so that the checkpoints of runs
// with other limits hold the same config text.
TrainResult run_training(const launch::Config& cfg, std::int64_t max_steps, const std::string& resume,
                         std::string* printed) {
  Printed out;
  try {
    const launch::Settings settings = launch::read_settings(cfg);
    RunSettings run = setup_run(settings);
    run.max_steps = max_steps;
    run.resume = ResumeRequest::parse(resume);
    Progress progress(out.file(), Style::kLines);
    TrainResult result = train(settings, run, progress);
    if (printed != nullptr) *printed = out.text();
    return result;
  } catch (...) {
    if (printed != nullptr) *printed = out.text();
    throw;
  }
}

TrainResult classify(const launch::Config& cfg, std::int64_t max_steps, const std::string& resume = "auto",
                     std::string* printed = nullptr) {
  return run_training(cfg, max_steps, resume, printed);
}
TrainResult gan(const launch::Config& cfg, std::int64_t max_steps, const std::string& resume = "auto",
                std::string* printed = nullptr) {
  return run_training(cfg, max_steps, resume, printed);
}

fs::path checkpoint_dir(const fs::path& output, std::int64_t step) {
  return output / "checkpoints" / io::CheckpointStore::directory_name(step);
}

std::vector<std::int64_t> steps_of(const std::vector<io::CheckpointInfo>& infos) {
  std::vector<std::int64_t> steps;
  for (const io::CheckpointInfo& info : infos) steps.push_back(info.step);
  return steps;
}

bool contains(const std::string& text, const std::string& fragment) {
  return text.find(fragment) != std::string::npos;
}
#define EXPECT_CONTAINS(text, fragment) EXPECT_TRUE(contains(text, fragment)) << (text)

std::string raw(const Tensor& t) {
  const Tensor c = t.contiguous();
  const std::size_t bytes = static_cast<std::size_t>(c.numel()) * element_size(c.dtype());
  if (bytes == 0) return {};
  return std::string(static_cast<const char*>(c.data()), bytes);
}

// Every state dict of the HDF5 file `a` equals the one of `b` bit for bit (names, dtypes, shapes, bytes).
void expect_same_state_groups(const fs::path& a, const fs::path& b) {
  const io::StateGroups x = io::read_state_groups(a), y = io::read_state_groups(b);
  std::vector<std::string> x_names, y_names;
  for (const auto& entry : x) x_names.push_back(entry.first);
  for (const auto& entry : y) y_names.push_back(entry.first);
  ASSERT_EQ(x_names, y_names) << a << " vs " << b;
  for (const auto& [group, dict] : x) {
    const nn::StateDict& other = y.at(group);
    ASSERT_EQ(dict.size(), other.size()) << a << " /" << group;
    for (const auto& [name, tensor] : dict) {
      const Tensor* t = other.find(name);
      ASSERT_NE(t, nullptr) << b << " lacks " << group << "/" << name;
      EXPECT_EQ(t->dtype(), tensor.dtype()) << group << "/" << name;
      EXPECT_EQ(t->shape(), tensor.shape()) << group << "/" << name;
      EXPECT_TRUE(raw(*t) == raw(tensor)) << group << "/" << name << " differs between " << a << " and " << b;
    }
  }
}

// A config text without its folders (run.output, checkpoint.dir): the lines that differ between runs.
std::string without_folders(const std::string& config) {
  std::string out;
  std::size_t at = 0;
  while (at < config.size()) {
    std::size_t end = config.find('\n', at);
    end = end == std::string::npos ? config.size() : end + 1;
    const std::string line = config.substr(at, end - at);
    if (line.rfind("output = ", 0) != 0 && line.rfind("dir = ", 0) != 0) out += line;
    at = end;
  }
  return out;
}

// Checkpoints `a` and `b` hold the same models, optimizers, schedules and trainer state, bit for bit (the
// config text up to the run's folders).
void expect_same_checkpoint(const fs::path& a, const fs::path& b) {
  SCOPED_TRACE(str_cat("checkpoints ", a.string(), " and ", b.string()));
  ASSERT_TRUE(io::CheckpointStore::verify(a)) << a;
  ASSERT_TRUE(io::CheckpointStore::verify(b)) << b;
  expect_same_state_groups(a / "model.h5", b / "model.h5");
  expect_same_state_groups(a / "optimizer.h5", b / "optimizer.h5");
  const io::TrainerState x = io::read_trainer_state(a / "trainer.h5");
  const io::TrainerState y = io::read_trainer_state(b / "trainer.h5");
  EXPECT_EQ(x.step, y.step);
  EXPECT_EQ(x.epoch, y.epoch);
  EXPECT_EQ(x.epoch_step, y.epoch_step);
  EXPECT_EQ(x.samples_seen, y.samples_seen);
  EXPECT_EQ(x.global_batch, y.global_batch);
  EXPECT_EQ(x.seed, y.seed);
  EXPECT_EQ(x.world_size, y.world_size);
  EXPECT_EQ(without_folders(x.config), without_folders(y.config));
  EXPECT_EQ(x.rng, y.rng);
  EXPECT_EQ(x.values.size(), y.values.size());
  for (const auto& [name, value] : x.values) {
    ASSERT_EQ(y.values.count(name), 1u) << name;
    EXPECT_EQ(std::bit_cast<std::uint64_t>(value), std::bit_cast<std::uint64_t>(y.values.at(name)))
        << "value " << name << ": " << value << " vs " << y.values.at(name);
  }
  // The extra state dicts saved with the trainer state (e.g. best_model) and the RNG datasets.
  expect_same_state_groups(a / "trainer.h5", b / "trainer.h5");
}

// Trains `text` straight to the last of `stops` in `straight`, and in `resumed` to each of `stops` in turn
// (every run after the first resuming from the one before); the checkpoints of every step saved by both
// runs, the last one included, are equal bit for bit. Returns the trainer states of the resumed run's last
// checkpoint of each stop.
template <class Train>
std::vector<io::TrainerState> expect_exact_resume(Train train, const std::string& straight_text,
                                                  const std::string& resumed_text, const fs::path& straight,
                                                  const fs::path& resumed,
                                                  const std::vector<std::int64_t>& stops) {
  std::vector<io::TrainerState> states;
  const auto a = train(parse(straight_text), stops.back(), "auto", nullptr);
  EXPECT_EQ(a.resumed_step, -1);
  for (std::size_t i = 0; i < stops.size(); ++i) {
    std::string printed;
    const auto b = train(parse(resumed_text), stops[i], "auto", &printed);
    EXPECT_EQ(b.resumed_step, i == 0 ? -1 : stops[i - 1]) << printed;
    EXPECT_EQ(b.checkpoint, checkpoint_dir(resumed, stops[i])) << printed;
    if (i > 0) {
      EXPECT_CONTAINS(printed, str_cat("resumed from ", checkpoint_dir(resumed, stops[i - 1]).string()));
    }
    states.push_back(io::read_trainer_state(checkpoint_dir(resumed, stops[i]) / "trainer.h5"));
  }
  const std::vector<std::int64_t> a_steps = steps_of(io::CheckpointStore(straight / "checkpoints").list());
  const std::vector<std::int64_t> b_steps = steps_of(io::CheckpointStore(resumed / "checkpoints").list());
  std::vector<std::int64_t> common;
  for (const std::int64_t s : b_steps)
    if (std::find(a_steps.begin(), a_steps.end(), s) != a_steps.end()) common.push_back(s);
  EXPECT_FALSE(common.empty());
  EXPECT_EQ(common.back(), stops.back());
  for (const std::int64_t s : common)
    expect_same_checkpoint(checkpoint_dir(straight, s), checkpoint_dir(resumed, s));
  return states;
}

using CheckpointingTest = test::TempDirTest;

TEST_F(CheckpointingTest, ClassifierResumedMidEpochEndsBitwiseWhereTheStraightRunEnds) {
  // N = 4, 2N = 8: both inside the first epoch of 10 steps.
  const fs::path a = file("straight"), b = file("resumed");
  const auto states =
      expect_exact_resume(classify, classifier_text(a, 4), classifier_text(b, 4), a, b, {4, 8});
  ASSERT_EQ(states.size(), 2u);
  EXPECT_EQ(states[0].epoch, 0);
  EXPECT_EQ(states[0].epoch_step, 4);
  EXPECT_EQ(states[1].epoch_step, 8);
  // Dropout draws from the default stream, so the saved stream moved between the two checkpoints.
  EXPECT_NE(states[0].rng.at("rank0.default"), states[1].rng.at("rank0.default"));
  // A fresh folder resuming from the straight run's step 4 by path continues to the same step 8.
  const fs::path c = file("by_path");
  std::string printed;
  const ClassifierResult r =
      classify(parse(classifier_text(c, 4)), 8, checkpoint_dir(a, 4).string(), &printed);
  EXPECT_EQ(r.resumed_step, 4);
  EXPECT_CONTAINS(printed,
                  str_cat("resumed from ", checkpoint_dir(a, 4).string(), ": step 4, epoch 1 at step 4/10"));
  EXPECT_EQ(steps_of(io::CheckpointStore(c / "checkpoints").list()), (std::vector<std::int64_t>{8}));
  expect_same_checkpoint(checkpoint_dir(a, 8), checkpoint_dir(c, 8));
}

TEST_F(CheckpointingTest, RecurrentClassifierResumesBitwise) {
  // An LSTM over the 28 rows (nothing is carried between batches: the state starts at zero per image).
  const auto text = [](const fs::path& out) {
    std::string t = classifier_text(out, 4);
    const std::string mlp = "name = \"mlp\"\nhidden = [32]\ndropout = 0.25\n";
    t.replace(t.find(mlp), mlp.size(), "name = \"lstm\"\nhidden = [16]\n");
    return t;
  };
  const fs::path a = file("straight"), b = file("resumed");
  expect_exact_resume(classify, text(a), text(b), a, b, {4, 8});
}

TEST_F(CheckpointingTest, ClassifierResumedAtAndAcrossEpochEndsEndsBitwiseWhereTheStraightRunEnds) {
  // Epochs of 10 steps: stops inside epoch 1, inside epoch 2 (the resume crosses the end of epoch 1), at
  // the end of epoch 2 exactly, and inside epoch 3.
  const fs::path a = file("straight"), b = file("resumed");
  const auto states =
      expect_exact_resume(classify, classifier_text(a, 7), classifier_text(b, 7), a, b, {7, 14, 20, 27});
  ASSERT_EQ(states.size(), 4u);
  EXPECT_EQ(std::pair(states[1].epoch, states[1].epoch_step), std::pair(std::int64_t{1}, std::int64_t{4}));
  // A complete epoch is saved as the start of the next one, with the epoch's sums cleared.
  EXPECT_EQ(std::pair(states[2].epoch, states[2].epoch_step), std::pair(std::int64_t{2}, std::int64_t{0}));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(states[2].values.at(str_cat("epoch_sum", i, ".rank0")), 0.0) << i;
  EXPECT_EQ(std::pair(states[3].epoch, states[3].epoch_step), std::pair(std::int64_t{2}, std::int64_t{7}));
  EXPECT_EQ(states[3].values.at("epoch_sum1.rank0"), 7.0);           // steps of the epoch in progress
  EXPECT_EQ(states[3].values.at("epoch_sum3.rank0"), 7.0 * kBatch);  // images
}

TEST_F(CheckpointingTest, ClassifierWithATestSplitResumesItsBestModelAndFiguresExactly) {
  // With a test split every epoch's end evaluates and keeps the best model: resuming mid-epoch and at an
  // epoch's end must not change what is kept.
  const fs::path a = file("straight"), b = file("resumed");
  const std::vector<std::string> with_test = {"data.test_split=\"test\""};
  const std::string a_text = classifier_text(a, 5), b_text = classifier_text(b, 5);
  const ClassifierResult straight = classify(parse(a_text, with_test), 25);
  ClassifierResult last;
  for (const std::int64_t stop : {5, 10, 25}) last = classify(parse(b_text, with_test), stop);
  EXPECT_EQ(last.resumed_step, 10);
  EXPECT_EQ(last.best_score, straight.best_score);
  EXPECT_EQ(last.best_epoch, straight.best_epoch);
  // The straight run saved steps 5, 10, 15, 20 and 25.
  for (const std::int64_t s : {5, 10, 25}) expect_same_checkpoint(checkpoint_dir(a, s), checkpoint_dir(b, s));
  // The final model files (the best model, restored) are the same too.
  expect_same_state_groups(a / "model.h5", b / "model.h5");
}

TEST_F(CheckpointingTest, EarlyStoppingCountsTheSameEpochsWhetherOrNotTheRunWasResumed) {
  // lr = 0: the test accuracy never changes, so with patience 1 a straight run stops after epoch 2 (step
  // 20). A run stopped at step 5 and resumed must stop there too: the stop at step 5 is no epoch's end.
  const std::vector<std::string> keys = {"data.test_split=\"test\"", "optimizer.lr=0.0",
                                         "train.early_stopping_patience=1"};
  const ClassifierResult straight = classify(parse(classifier_text(file("straight"), 5), keys), 0);
  EXPECT_EQ(straight.steps, 20);
  EXPECT_EQ(straight.best_epoch, 1);
  const fs::path b = file("resumed");
  classify(parse(classifier_text(b, 5), keys), 5);
  std::string printed;
  const ClassifierResult resumed = classify(parse(classifier_text(b, 5), keys), 0, "auto", &printed);
  EXPECT_EQ(resumed.resumed_step, 5);
  EXPECT_EQ(resumed.steps, straight.steps) << printed;
  EXPECT_EQ(resumed.best_epoch, straight.best_epoch) << printed;
}

TEST_F(CheckpointingTest, ARunThatStoppedEarlyDoesNotTrainAgainWhenRerun) {
  const std::vector<std::string> keys = {"data.test_split=\"test\"", "optimizer.lr=0.0",
                                         "train.early_stopping_patience=1"};
  const fs::path out = file("run");
  const ClassifierResult first = classify(parse(classifier_text(out, 5), keys), 0);
  ASSERT_EQ(first.steps, 20);
  std::string printed;
  const ClassifierResult again = classify(parse(classifier_text(out, 5), keys), 0, "auto", &printed);
  EXPECT_EQ(again.resumed_step, 20);
  EXPECT_EQ(again.steps, 20) << printed;
  EXPECT_TRUE(contains(printed, "nothing left to train: the run stopped early")) << printed;
  EXPECT_EQ(steps_of(io::CheckpointStore(out / "checkpoints").list()).back(), 20);
}

TEST_F(CheckpointingTest, AnExplicitOlderCheckpointNextToNewerOnesIsRefusedNamingThem) {
  const fs::path out = file("run");
  classify(parse(classifier_text(out, 2)), 6);
  const fs::path step2 = checkpoint_dir(out, 2);
  expect_error<IoError>([&] { classify(parse(classifier_text(out, 2)), 8, step2.string()); },
                        {"newer than step 2", "step_000000004", "step_000000006", "run.output"});
  EXPECT_EQ(steps_of(io::CheckpointStore(out / "checkpoints").list()), (std::vector<std::int64_t>{2, 4, 6}))
      << "nothing pruned or moved";
  // From another folder the same checkpoint is a fine starting point.
  const ClassifierResult branch = classify(parse(classifier_text(file("branch"), 2)), 4, step2.string());
  EXPECT_EQ(branch.resumed_step, 2);
  EXPECT_EQ(branch.steps, 4);
}

TEST_F(CheckpointingTest, ResumingWithAnotherSeedIsAConfigErrorNamingBoth) {
  const fs::path out = file("run");
  classify(parse(classifier_text(out, 2)), 2);
  const std::string text = classifier_text(out, 2);
  expect_error<ConfigError>([&] { classify(parse(text, {"run.seed=12345"}), 4); }, {"run.seed", "12345"});
}

TEST_F(CheckpointingTest, GanResumedMidEpochAndAcrossAnEpochEndEndsBitwiseWhereTheStraightRunEnds) {
  // Epochs of 10 discriminator steps: resume at step 6, then across the end of epoch 1 to step 13.
  const fs::path a = file("straight"), b = file("resumed");
  const auto states = expect_exact_resume(gan, gan_text(a, 6), gan_text(b, 6), a, b, {6, 13});
  ASSERT_EQ(states.size(), 2u);
  EXPECT_EQ(std::pair(states[1].epoch, states[1].epoch_step), std::pair(std::int64_t{1}, std::int64_t{3}));
  EXPECT_EQ(states[1].values.at("epoch_sum1.rank0"), 3.0);  // discriminator steps of the epoch in progress
  EXPECT_EQ(states[1].values.at("epoch_sum3.rank0"), 3.0);  // generator steps
}

TEST_F(CheckpointingTest, GanInBf16ResumesBitwise) {
  // run.precision = "bf16": the convolutions (oneDNN's bf16 kernels where the CPU has them) and GEMMs give
  // the same bits in the resumed run, and the checkpoints hold f32 as in f32 runs.
  const auto text = [](const fs::path& out) {
    std::string t = gan_text(out, 4);
    t.replace(t.find("[run]\n"), 6, "[run]\nprecision = \"bf16\"\n");
    return t;
  };
  const fs::path a = file("straight"), b = file("resumed"), c = file("f32");
  expect_exact_resume(gan, text(a), text(b), a, b, {4, 8});
  gan(parse(gan_text(c, 4)), 8, "auto", nullptr);
  const io::StateGroups bf16 = io::read_state_groups(checkpoint_dir(a, 8) / "model.h5"),
                        f32 = io::read_state_groups(checkpoint_dir(c, 8) / "model.h5");
  int differing = 0;
  for (const auto& [group, dict] : bf16) {
    for (const auto& [name, tensor] : dict) {
      EXPECT_TRUE(tensor.dtype() == DType::f32 || tensor.dtype() == DType::i64) << group << "/" << name;
      const Tensor* other = f32.at(group).find(name);
      ASSERT_NE(other, nullptr) << group << "/" << name;
      if (!(raw(*other) == raw(tensor))) ++differing;
    }
  }
  EXPECT_GT(differing, 0) << "the bf16 run trained as the f32 one";
}

// The GAN vocabulary: two time-scale updates (per-network optimizers), a cosine schedule for the generator,
// gradient clipping for the discriminator, one-sided label smoothing and a moving average of the generator.
std::string gan_vocabulary_text(const fs::path& output, std::int64_t every) {
  std::string text = gan_text(output, every);
  text.replace(text.find("[gan]\n"), 6, "[gan]\nema_decay = 0.9\nreal_label = 0.9\n");
  text.replace(text.find("[discriminator]\n"), 16, "[discriminator]\nclip_grad_norm = 5.0\n");
  return text +
         "[generator.optimizer]\nlr = 1e-4\n[generator.schedule]\nname = \"cosine\"\n"
         "[discriminator.optimizer]\nlr = 4e-4\n";
}

TEST_F(CheckpointingTest, GanWithTheWholeTrainingVocabularyResumesBitwise) {
  const fs::path a = file("straight"), b = file("resumed");
  expect_exact_resume(gan, gan_vocabulary_text(a, 4), gan_vocabulary_text(b, 4), a, b, {4, 13});
  const io::ModelFileInfo info = io::read_model_file_info(checkpoint_dir(b, 13) / "model.h5");
  EXPECT_EQ(info.groups, (std::vector<std::string>{"discriminator", "generator", "generator_ema"}));
  const io::h5::File optimizer(checkpoint_dir(b, 13) / "optimizer.h5", io::h5::Access::kRead);
  EXPECT_EQ(optimizer.root().children(),
            (std::vector<std::string>{"discriminator_optimizer", "discriminator_schedule", "generator_optimizer",
                                      "generator_schedule"}));
}

// A tiny CycleGAN run in `output`: sneakers (32 of the small set's images: 8 steps per epoch at batch 4)
// <-> ankle boots (26: 6 batches, so domain B's loader wraps inside each epoch of A), generators of width 2
// with one residual block, PatchGANs of width 2, pools of 6 images (full after two steps, then drawing from
// their stream), 2 epochs, a checkpoint every `every` steps (all kept).
std::string cyclegan_text(const fs::path& output, std::int64_t every) {
  return str_cat("task = \"cyclegan\"\n[run]\nseed = 9\nepochs = 2\nthreads = 1\noutput = \"",
                 output.string(), "\"\n[data]\npath = \"", small_fashion_mnist().string(),
                 "\"\nbatch_size = 4\npad_to = 32\nnormalize = \"tanh\"\n[cyclegan]\npool_size = 6\n"
                 "samples = 2\n"
                 "eval_images = 8\n[generator]\nname = \"cyclegan-resnet\"\nwidth = 2\nresidual_blocks = 1\n"
                 "[discriminator]\nname = \"patchgan\"\nwidth = 2\n[checkpoint]\nevery_steps = ",
                 every, "\nkeep_last = 100\n");
}

TEST_F(CheckpointingTest, CycleGanResumedMidEpochAndAcrossAnEpochEndEndsBitwiseWhereTheStraightRunEnds) {
  // Resume at step 3 (A's epoch 1, B's epoch 1), then to step 11 (A's epoch 2, B's epoch 2 after its wrap at
  // step 7). expect_exact_resume compares trainer.h5's groups too: the image pools and their stream.
  const fs::path a = file("straight"), b = file("resumed");
  const auto states = expect_exact_resume(gan, cyclegan_text(a, 3), cyclegan_text(b, 3), a, b, {3, 11});
  ASSERT_EQ(states.size(), 2u);
  EXPECT_EQ(std::pair(states[1].epoch, states[1].epoch_step), std::pair(std::int64_t{1}, std::int64_t{3}));
  const fs::path last = checkpoint_dir(b, 11);
  const io::ModelFileInfo info = io::read_model_file_info(last / "model.h5");
  EXPECT_EQ(info.groups, (std::vector<std::string>{"discriminator_a", "discriminator_b", "generator_a2b",
                                                   "generator_b2a"}));
  const io::h5::File optimizer(last / "optimizer.h5", io::h5::Access::kRead);
  EXPECT_EQ(optimizer.root().children().size(), 8u);  // four optimizers, four schedules
  // The pools are full and their one stream has drawn a counter per image met by a full pool: step 2 fills
  // each pool's last 2 slots and draws for its other 2 images, steps 3 to 11 draw for all 4.
  const io::StateGroups trainer = io::read_state_groups(last / "trainer.h5");
  ASSERT_EQ(trainer.count("image_pools"), 1u);
  const nn::StateDict& pools = trainer.at("image_pools");
  EXPECT_EQ(pools.at("a.count").item(), 6.0);
  EXPECT_EQ(pools.at("b.count").item(), 6.0);
  EXPECT_EQ(pools.at("a.images").shape(), (Shape{6, 1, 32, 32}));
  EXPECT_EQ(pools.at("stream").to_vector<std::int64_t>()[1], 2 * (2 + 4 * 9));
  // The pools do move: the checkpoint of step 9 holds other images.
  const io::StateGroups earlier = io::read_state_groups(checkpoint_dir(b, 9) / "trainer.h5");
  EXPECT_FALSE(raw(earlier.at("image_pools").at("b.images")) == raw(pools.at("b.images")));
}

// The course's other GANs on gan_text's data and schedule: `variant` replaces its [gan] line and networks.
std::string course_gan_text(const fs::path& output, std::int64_t every, const std::string& variant) {
  std::string text = gan_text(output, every);
  const std::string dcgan_pair = "[generator]\nname = \"dcgan\"\nwidth = 8\n[discriminator]\nname = \"dcgan\"\nwidth = 8\n";
  const std::size_t at = text.find(dcgan_pair);
  if (variant == "mlp") {
    text.replace(at, dcgan_pair.size(),
                 "[generator]\nname = \"mlp\"\nhidden = [32]\n[discriminator]\nname = \"mlp\"\nhidden = [16]\n");
  } else if (variant == "cgan") {
    text.replace(text.find("[gan]\n"), 6, "[gan]\nconditional = true\n");
  } else {  // wgan-gp, and conditional wgan-gp
    text.replace(at, dcgan_pair.size(),
                 "[generator]\nname = \"dcgan\"\nwidth = 8\n[discriminator]\nname = \"wgan-critic\"\nwidth = 8\n"
                 "norm = \"layer\"\n");
    text.replace(text.find("[gan]\n"), 6,
                 str_cat("[gan]\nloss = \"wasserstein-gp\"\nd_steps = 2\n",
                         variant == "cgan-gp" ? "conditional = true\n" : ""));
  }
  return text;
}

TEST_F(CheckpointingTest, TheCoursesOtherGansResumeBitwise) {
  for (const std::string variant : {"mlp", "cgan", "wgan-gp", "cgan-gp"}) {
    SCOPED_TRACE(variant);
    const fs::path a = file(variant + "_straight"), b = file(variant + "_resumed");
    expect_exact_resume(gan, course_gan_text(a, 6, variant), course_gan_text(b, 6, variant), a, b, {6, 13});
    if (variant.ends_with("gp")) {  // the critic's gradient norm on interpolates is a logged figure
      std::ifstream metrics(b / "metrics.jsonl");
      const std::string log{std::istreambuf_iterator<char>(metrics), {}};
      EXPECT_NE(log.find("\"grad_norm\""), std::string::npos) << log;
    }
  }
}

// The autoencoder task on gan_text's data and schedule (10 steps per epoch): `keys` select the kind.
std::string autoencoder_text(const fs::path& output, std::int64_t every, const std::string& keys) {
  return str_cat("task = \"autoencoder\"\n[run]\nseed = 5\nepochs = 2\nthreads = 1\noutput = \"", output.string(),
                 "\"\n[data]\npath = \"", small_fashion_mnist().string(), "\"\nbatch_size = ", kBatch,
                 "\n[autoencoder]\ncode = 4\nhidden = [32]\n", keys,
                 "[checkpoint]\nevery_steps = ", every,
                 "\nkeep_last = 100\n");
}

TEST_F(CheckpointingTest, AutoencodersAndTheVaeResumeBitwise) {
  for (const std::string& keys : {std::string("variational = true\n"),
                                 std::string("noise = \"masking\"\ncontractive_weight = 0.1\n"),
                                 std::string("architecture = \"conv\"\nsparsity = \"kl\"\nnoise = \"gaussian\"\n")}) {
    SCOPED_TRACE(keys);
    const fs::path a = file("ae_straight"), b = file("ae_resumed");
    fs::remove_all(a);
    fs::remove_all(b);
    expect_exact_resume(run_training, autoencoder_text(a, 6, keys), autoencoder_text(b, 6, keys), a, b, {6, 13});
  }
}

TEST_F(CheckpointingTest, PixelCnnResumesBitwise) {
  const auto text = [](const fs::path& output) {
    return str_cat("task = \"pixelcnn\"\n[run]\nseed = 5\nepochs = 2\nthreads = 1\noutput = \"", output.string(),
                   "\"\n[data]\npath = \"", small_fashion_mnist().string(), "\"\nbatch_size = ", kBatch,
                   "\n[pixelcnn]\nwidth = 4\nblocks = 1\nsamples = 2\n[checkpoint]\nevery_steps = 6\nkeep_last = 100\n");
  };
  const fs::path a = file("straight"), b = file("resumed");
  expect_exact_resume(run_training, text(a), text(b), a, b, {6, 13});
}

TEST_F(CheckpointingTest, TheGenerativeTasksScoreOnAValidationSplitAndReportTheTestSplit) {
  const std::string pixelcnn =
      str_cat("task = \"pixelcnn\"\n[run]\nseed = 5\nepochs = 2\nthreads = 1\noutput = \"", file("pixelcnn").string(),
              "\"\n[data]\npath = \"", small_fashion_mnist().string(), "\"\nbatch_size = ", kBatch,
              "\n[pixelcnn]\nwidth = 4\nblocks = 1\nsamples = 0\n");
  for (const auto& [keys, figure] :
       {std::pair{autoencoder_text(file("vae"), 100, "variational = true\n"), std::string("neg_elbo")},
        std::pair{autoencoder_text(file("ae"), 100, ""), std::string("reconstruction")},
        std::pair{pixelcnn, std::string("bits_per_dim")}}) {
    SCOPED_TRACE(keys);
    const launch::Config cfg = parse(keys, {"data.validation_fraction=0.25", "data.test_split=\"test\""});
    const TrainResult r = run_training(cfg, 0, "auto", nullptr);
    ASSERT_TRUE(r.best_score.has_value());
    std::ifstream metrics(launch::read_settings(cfg).run.output / "metrics.jsonl");
    std::string line;
    double best = -1e300;
    int records = 0;
    while (std::getline(metrics, line)) {
      if (line.find("\"validation_" + figure + "\"") == std::string::npos) continue;
      ++records;
      EXPECT_NE(line.find("\"test_" + figure + "\""), std::string::npos) << line;
      const std::string key = "\"validation_" + figure + "\":";
      best = std::max(best, -std::stod(line.substr(line.find(key) + key.size())));
    }
    EXPECT_EQ(records, 2);
    EXPECT_DOUBLE_EQ(*r.best_score, best);  // lower is better: the best model watched validation
  }
}

TEST_F(CheckpointingTest, ImagesAModelCannotTakeAreAConfigErrorAtItsKey) {
  // 3-channel 30x30 images: the PixelCNN models one channel; the conv autoencoder halves the size twice.
  const fs::path data = file("rgb30.h5");
  io::ImageSet set;
  set.images = zeros({40, 3, 30, 30}, DType::u8);
  set.labels = zeros({40}, DType::i64);
  io::write_image_set(data, "train", set, {"a"}, io::h5::Access::kTruncate, "test");
  const std::string base = str_cat("[run]\nthreads = 1\noutput = \"", file("bad").string(), "\"\n[data]\npath = \"",
                                   data.string(), "\"\ntest_split = \"\"\nbatch_size = 8\n");
  expect_error<ConfigError>([&] { run_training(parse("task = \"pixelcnn\"\n" + base), 1, "auto", nullptr); },
                            {"'task'", "one-channel", "3 channels"});
  expect_error<ConfigError>(
      [&] {
        run_training(parse("task = \"autoencoder\"\n" + base + "[autoencoder]\narchitecture = \"conv\"\n"), 1, "auto",
                     nullptr);
      },
      {"'autoencoder.architecture'", "multiples of 4", "30x30"});
}

TEST_F(CheckpointingTest, TheGeneratorAverageIsDecayTimesTheOldPlusTheRestTimesTheNewWeights) {
  const fs::path out = file("ema");
  const launch::Config cfg = parse(gan_text(out, 1), {"gan.ema_decay=0.25"});
  gan(cfg, 1);  // one discriminator and one generator step
  const fs::path model = checkpoint_dir(out, 1) / "model.h5";
  // The initial generator, built independently: the run seeds with run.seed and builds the generator first.
  const launch::Settings settings = launch::read_settings(parse(gan_text(out, 1)));
  manual_seed(settings.run.seed);
  const DataSplits data = make_data(settings.data, settings.run.seed);
  const std::shared_ptr<nn::Module> initial = make_generator(settings, data.geometry);
  const std::shared_ptr<nn::Module> trained = make_generator(settings, data.geometry);
  const std::shared_ptr<nn::Module> average = make_generator(settings, data.geometry);
  io::load_model_group(model, "generator", *trained);
  io::load_model_group(model, "generator_ema", *average);
  const std::vector<nn::NamedTensor> g0 = initial->named_parameters(), g1 = trained->named_parameters(),
                                     e1 = average->named_parameters();
  ASSERT_EQ(g0.size(), e1.size());
  double moved = 0.0;
  for (std::size_t i = 0; i < g0.size(); ++i) {
    const std::vector<float> x0 = g0[i].second.to_vector<float>(), x1 = g1[i].second.to_vector<float>(),
                             e = e1[i].second.to_vector<float>();
    for (std::size_t j = 0; j < e.size(); ++j) {
      const double want = 0.25 * x0[j] + 0.75 * x1[j];
      ASSERT_NEAR(e[j], want, 1e-6 * (1.0 + std::abs(want))) << g0[i].first << "[" << j << "]";
      moved += std::abs(x1[j] - x0[j]);
    }
  }
  EXPECT_GT(moved, 0.0);  // the generator did step
  for (const auto& [name, buffer] : average->named_buffers())  // batch-norm statistics are copied
    EXPECT_EQ(raw(buffer), raw(*trained->state_dict().find(name))) << name;
}

TEST_F(CheckpointingTest, AValidationSplitIsTheScoreAndTheTestSplitIsOnlyReported) {
  const fs::path out = file("validated");
  const std::string text = classifier_text(out, 5);
  const std::vector<std::string> keys = {"data.test_split=\"test\"", "data.validation_fraction=0.25",
                                         "run.epochs=2"};
  std::string printed;
  const TrainResult r = classify(parse(text, keys), 0, "auto", &printed);
  // 320 training images: 80 held out, 240 trained on (7 steps of 32 per epoch, the last batch dropped).
  EXPECT_CONTAINS(printed, "240 training samples (80 held out for validation), 7 steps per epoch");
  EXPECT_EQ(r.steps, 14);
  ASSERT_TRUE(r.best_score.has_value());
  std::ifstream metrics(out / "metrics.jsonl");
  std::string line;
  double best_validation = -1.0;
  int records = 0;
  while (std::getline(metrics, line)) {
    ++records;
    ASSERT_NE(line.find("\"validation_accuracy\""), std::string::npos) << line;
    ASSERT_NE(line.find("\"test_accuracy\""), std::string::npos) << line;
    const std::size_t at = line.find("\"validation_accuracy\":") + 22;
    best_validation = std::max(best_validation, std::stod(line.substr(at)));
  }
  EXPECT_EQ(records, 2);
  EXPECT_EQ(*r.best_score, best_validation);  // the best model watched validation
  EXPECT_TRUE(std::isfinite(r.figure("test_accuracy")));
}

TEST_F(CheckpointingTest, ABatchLargerThanTheTrainingSplitIsAConfigErrorNamingKeyBatchAndSplit) {
  expect_error<ConfigError>([&] { classify(parse(classifier_text(file("big"), 2), {"data.batch_size=1000"}), 0); },
                            {"data.batch_size", "command-line override", "320 training samples", "1000"});
  expect_error<ConfigError>(
      [&] {
        classify(parse(classifier_text(file("held"), 2), {"data.validation_fraction=0.5", "data.batch_size=200"}), 0);
      },
      {"data.batch_size", "160 training samples", "200"});
}

TEST_F(CheckpointingTest, ADivergedRunNeverCommitsACheckpointAndNamesTheLastHealthyOne) {
  // SGD at lr 1e30 (the weights explode at the first update, the loss is not finite soon after) and at 300
  // (the loss grows for some steps first); a checkpoint every step.
  for (const char* lr : {"1e30", "300.0"}) {
    const fs::path out = file(str_cat("diverged_", lr));
    const launch::Config cfg =
        parse(classifier_text(out, 1), {"optimizer.name=\"sgd\"", str_cat("optimizer.lr=", lr), "model.dropout=0.0"});
    const std::string message = expect_error<ValueError>([&] { classify(cfg, 0); }, {"diverged", "optimizer.lr"});
    const std::vector<io::CheckpointInfo> saved = io::CheckpointStore(out / "checkpoints").list();
    if (!saved.empty()) {
      EXPECT_CONTAINS(message, saved.back().path.string());
    }
    for (const io::CheckpointInfo& info : saved)
      for (const auto& [group, dict] : io::read_state_groups(info.path / "model.h5"))
        for (const auto& [name, tensor] : dict)
          for (const float v : tensor.to_vector<float>())
            ASSERT_TRUE(std::isfinite(v) && std::abs(v) < 1e12) << info.path << " " << group << "/" << name;
  }
}

// The steps a run saved, from its "checkpoint <dir> (<size> in <time>)" lines.
std::vector<std::int64_t> saved_steps(const std::string& printed) {
  std::vector<std::int64_t> steps;
  std::size_t at = 0;
  while ((at = printed.find("checkpoint ", at)) != std::string::npos) {
    const std::size_t end = printed.find('\n', at);
    const std::size_t size = printed.find(" (", at);
    const fs::path dir = printed.substr(at + 11, std::min(end, size) - at - 11);
    const std::string name = dir.filename().string();
    if (name.rfind("step_", 0) == 0) steps.push_back(std::stoll(name.substr(5)));
    at = end;
  }
  return steps;
}

TEST_F(CheckpointingTest, TrainingKeepsTheNewestAndTheMultiplesOfKeepEvery) {
  const fs::path out = file("run");
  std::string printed;
  classify(parse(classifier_text(out, 2), {"checkpoint.keep_last=2", "checkpoint.keep_every=4"}), 10, "auto",
           &printed);
  const std::vector<std::int64_t> saved = saved_steps(printed);
  ASSERT_EQ(saved, (std::vector<std::int64_t>{2, 4, 6, 8, 10})) << printed;
  // The documented policy: the keep_last newest, plus every multiple of keep_every.
  const std::size_t keep_last = 2;
  const std::int64_t keep_every = 4;
  std::vector<std::int64_t> expected;
  for (std::size_t i = 0; i < saved.size(); ++i)
    if (i + keep_last >= saved.size() || saved[i] % keep_every == 0) expected.push_back(saved[i]);
  EXPECT_EQ(expected, (std::vector<std::int64_t>{4, 8, 10}));
  const std::vector<io::CheckpointInfo> kept = io::CheckpointStore(out / "checkpoints").list();
  EXPECT_EQ(steps_of(kept), expected);
  for (const io::CheckpointInfo& info : kept) {
    std::string why;
    EXPECT_TRUE(io::CheckpointStore::verify(info.path, &why)) << why;
  }
}

TEST_F(CheckpointingTest, ResumeNoneRefusesAFolderWithCheckpointsAndStartsFreshInAnEmptyOne) {
  const fs::path out = file("run");
  const ClassifierResult fresh = classify(parse(classifier_text(out, 2)), 4, "none");
  EXPECT_EQ(fresh.resumed_step, -1);
  EXPECT_EQ(fresh.steps, 4);
  const fs::path root = out / "checkpoints";
  expect_error<IoError>(
      [&] { classify(parse(classifier_text(out, 2)), 6, "none"); },
      {"--resume none", root.string(), "2 checkpoint(s)", "step_000000004", "--resume auto"});
  EXPECT_EQ(steps_of(io::CheckpointStore(root).list()), (std::vector<std::int64_t>{2, 4}))
      << "nothing pruned";
}

// Flips one byte in the middle of `path` (its size stays).
void damage(const fs::path& path) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  const auto size = static_cast<std::streamoff>(fs::file_size(path));
  f.seekg(size / 2);
  char c = 0;
  f.read(&c, 1);
  f.seekp(size / 2);
  c = static_cast<char>(c ^ 0x5a);
  f.write(&c, 1);
  ASSERT_TRUE(f.good()) << path;
}

TEST_F(CheckpointingTest, AnExplicitPathMustBeACheckpointThatVerifies) {
  const fs::path out = file("run");
  classify(parse(classifier_text(out, 2)), 4);
  const fs::path step2 = checkpoint_dir(out, 2);
  damage(step2 / "model.h5");
  std::string why;
  ASSERT_FALSE(io::CheckpointStore::verify(step2, &why));
  expect_error<IoError>([&] { classify(parse(classifier_text(file("other"), 2)), 6, step2.string()); },
                        {"--resume", step2.string(), "does not verify", why});
  expect_error<IoError>(
      [&] { classify(parse(classifier_text(file("other"), 2)), 6, (out / "nowhere").string()); },
      {"--resume", (out / "nowhere").string(), "not a directory"});
}

TEST_F(CheckpointingTest, ADamagedNewestIsSetAsideWithAWarningAndTheOlderOneResumed) {
  const fs::path out = file("run");
  classify(parse(classifier_text(out, 2)), 4);
  const fs::path root = out / "checkpoints", step4 = checkpoint_dir(out, 4);
  damage(step4 / "optimizer.h5");
  std::string printed;
  const ClassifierResult r = classify(parse(classifier_text(out, 2)), 6, "auto", &printed);
  EXPECT_EQ(r.resumed_step, 2);
  EXPECT_EQ(r.steps, 6);
  EXPECT_CONTAINS(printed, "warning: ");
  EXPECT_CONTAINS(printed, step4.string());
  EXPECT_CONTAINS(printed, "optimizer.h5");
  EXPECT_CONTAINS(printed, str_cat("set the damaged checkpoint aside as ", step4.string(), ".damaged"));
  EXPECT_CONTAINS(printed, str_cat("resumed from ", checkpoint_dir(out, 2).string(), ": step 2"));
  EXPECT_TRUE(fs::is_directory(root / "step_000000004.damaged"));
  // The run saved steps 4 and 6 afresh; the damaged one is neither listed nor pruned.
  EXPECT_EQ(steps_of(io::CheckpointStore(root).list()), (std::vector<std::int64_t>{2, 4, 6}));
  EXPECT_TRUE(io::CheckpointStore::verify(step4));

  // The re-run from step 2 ends where a straight run ends.
  const fs::path straight = file("straight");
  classify(parse(classifier_text(straight, 2)), 6);
  expect_same_checkpoint(checkpoint_dir(straight, 6), checkpoint_dir(out, 6));
}

TEST_F(CheckpointingTest, WhenEveryCheckpointIsDamagedTheRunFailsNamingTheFolder) {
  const fs::path out = file("run");
  classify(parse(classifier_text(out, 2)), 4);
  const fs::path root = out / "checkpoints";
  damage(checkpoint_dir(out, 2) / "trainer.h5");
  damage(checkpoint_dir(out, 4) / "model.h5");
  std::string printed;
  expect_error<IoError>([&] { classify(parse(classifier_text(out, 2)), 6, "auto", &printed); },
                        {"--resume auto", root.string(), "verifies", ".damaged"});
  EXPECT_CONTAINS(printed, checkpoint_dir(out, 2).string());
  EXPECT_CONTAINS(printed, checkpoint_dir(out, 4).string());
  EXPECT_TRUE(fs::is_directory(root / "step_000000002.damaged"));
  EXPECT_TRUE(fs::is_directory(root / "step_000000004.damaged"));
  EXPECT_TRUE(io::CheckpointStore(root).list().empty());
}

TEST_F(CheckpointingTest, AStaleTemporaryIsRemovedAtStartWithALine) {
  const fs::path out = file("run");
  classify(parse(classifier_text(out, 2)), 4);
  const fs::path stale = out / "checkpoints" / "step_000000006.tmp";
  fs::create_directories(stale);
  std::ofstream(stale / "model.h5") << "half written";
  std::string printed;
  const ClassifierResult r = classify(parse(classifier_text(out, 2)), 6, "auto", &printed);
  EXPECT_EQ(r.resumed_step, 4);
  EXPECT_CONTAINS(printed, str_cat("removed ", stale.string()));
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(io::CheckpointStore::verify(checkpoint_dir(out, 6)));
}

// Replaces checkpoint `dir` (of `step` under `root`) by one whose model group is `edit`ed.
template <class Edit>
void rewrite_model(const fs::path& root, std::int64_t step, Edit edit) {
  const fs::path dir = root / io::CheckpointStore::directory_name(step);
  const io::CheckpointStore store(root, {.keep_last = 100});
  const fs::path tmp = store.begin(step);
  {
    const io::h5::File in(dir / "model.h5", io::h5::Access::kRead);
    const io::h5::File out(tmp / "model.h5", io::h5::Access::kTruncate);
    const io::h5::Group src = in.root(), dst = out.root();
    dst.set_attribute("format_version", src.attribute_int("format_version"));
    dst.set_attribute("kind", src.attribute_string("kind"));
    dst.set_attribute("config", src.attribute_string("config"));
    io::write_state_dict(dst.create_group("model"), edit(io::read_state_dict(src.group("model"))));
    out.flush();
  }
  fs::copy_file(dir / "optimizer.h5", tmp / "optimizer.h5");
  fs::copy_file(dir / "trainer.h5", tmp / "trainer.h5");
  store.commit(step);
}

TEST_F(CheckpointingTest, LoadingACheckpointOfAnotherModelNamesEveryMismatch) {
  const fs::path out = file("run");
  classify(parse(classifier_text(out, 2)), 2);
  rewrite_model(out / "checkpoints", 2, [](const nn::StateDict& saved) {
    nn::StateDict edited;
    for (const auto& [name, tensor] : saved) {
      if (name == "fc2.bias") continue;  // missing
      if (name == "fc1.bias") {
        edited.insert("fc1.offset", tensor);  // renamed: missing and unexpected
      } else if (name == "fc2.weight") {
        edited.insert(name, zeros({10, 31}));  // another shape
      } else {
        edited.insert(name, tensor);
      }
    }
    return edited;
  });
  ASSERT_TRUE(io::CheckpointStore::verify(checkpoint_dir(out, 2)));
  expect_error<ValueError>([&] { classify(parse(classifier_text(out, 2)), 4); },
                           {"missing key 'fc1.bias'", "missing key 'fc2.bias'", "unexpected key 'fc1.offset'",
                            "'fc2.weight' has shape"});

  // A config with another hidden size: every parameter whose shape changed is named.
  const fs::path other = file("other");
  classify(parse(classifier_text(other, 2)), 2);
  expect_error<ValueError>([&] { classify(parse(classifier_text(other, 2), {"model.hidden=[48]"}), 4); },
                           {"'fc1.weight' has shape", "'fc1.bias' has shape", "'fc2.weight' has shape"});
}

TEST_F(CheckpointingTest, ACheckpointOfTheOtherTaskIsRefusedNamingItsKind) {
  const fs::path gan_out = file("gan");
  gan(parse(gan_text(gan_out, 2)), 2);
  const fs::path gan_model = checkpoint_dir(gan_out, 2) / "model.h5";
  expect_error<IoError>([&] { classify(parse(classifier_text(gan_out, 2)), 4); },
                        {"expected a classifier checkpoint", gan_model.string(), "holds a gan"});
  const fs::path classifier_out = file("classifier");
  classify(parse(classifier_text(classifier_out, 2)), 2);
  expect_error<IoError>(
      [&] { gan(parse(gan_text(file("g2"), 2)), 4, checkpoint_dir(classifier_out, 2).string()); },
      {"expected a gan checkpoint", (checkpoint_dir(classifier_out, 2) / "model.h5").string(),
       "holds a classifier"});
}

TEST_F(CheckpointingTest, TrainerFileHoldsTheRunsCountersConfigVersionAndRandomStream) {
  const fs::path out = file("run");
  const launch::Config cfg = parse(classifier_text(out, 4));
  const ClassifierResult r = classify(cfg, 6);
  ASSERT_EQ(r.checkpoint, checkpoint_dir(out, 6));
  const Generator& g = default_generator();  // nothing draws after the last save
  const std::uint64_t seed = g.seed(), offset = g.offset();
  const io::TrainerState s = io::read_trainer_state(r.checkpoint / "trainer.h5");
  EXPECT_EQ(s.step, 6);
  EXPECT_EQ(s.epoch, 0);
  EXPECT_EQ(s.epoch_step, 6);
  EXPECT_EQ(s.samples_seen, 6 * kBatch);
  EXPECT_EQ(s.global_batch, kBatch);
  EXPECT_EQ(s.seed, 21u);
  EXPECT_EQ(s.world_size, 1);
  EXPECT_EQ(s.config, cfg.to_string());
  EXPECT_EQ(s.library_version, io::library_version());
  EXPECT_FALSE(s.library_version.empty());
  ASSERT_EQ(s.rng.size(), 1u);
  ASSERT_EQ(s.rng.count("rank0.default"), 1u);
  EXPECT_EQ(s.rng.at("rank0.default"), (std::vector<std::uint64_t>{seed, offset}));
  EXPECT_EQ(s.values.at("epoch_sum1.rank0"), 6.0);  // steps this epoch
  EXPECT_EQ(s.values.at("epoch_sum3.rank0"), 6.0 * kBatch);
  EXPECT_GT(s.values.at("epoch_sum0.rank0"), 0.0);           // loss sum
  EXPECT_LE(s.values.at("epoch_sum2.rank0"), 6.0 * kBatch);  // correct
  for (const char* name : {"best_score", "best_epoch", "first_loss", "epochs_without_gain"})
    EXPECT_EQ(s.values.count(name), 1u) << name;
  EXPECT_EQ(io::read_trainer_state(checkpoint_dir(out, 4) / "trainer.h5").step, 4);
  // model.h5 reads like a model file.
  EXPECT_EQ(io::read_model_file_info(r.checkpoint / "model.h5").config, cfg.to_string());
  const io::h5::File model(r.checkpoint / "model.h5", io::h5::Access::kRead);
  EXPECT_EQ(model.root().attribute_string("kind"), "classifier");
  EXPECT_EQ(model.root().children(), (std::vector<std::string>{"model"}));
  const io::h5::File optimizer(r.checkpoint / "optimizer.h5", io::h5::Access::kRead);
  EXPECT_EQ(optimizer.root().children(), (std::vector<std::string>{"optimizer", "schedule"}));
}

// The data settings of a config holding only the batch key `key` = `value`.
launch::DataSection batch_of(const std::string& key, std::int64_t value) {
  const launch::Config cfg = parse(str_cat("[data]\n", key, " = ", value, "\n"));
  launch::DataSection data;
  data.batch_key = cfg.locate("data." + key);
  return data;
}

TEST(ResumedBatchSize, SameWorldKeepsTheBatchAnotherSharesTheGlobalBatch) {
  const launch::DataSection per_rank = batch_of("batch_size", 48);
  io::TrainerState state;
  state.world_size = 2;
  state.global_batch = 96;
  EXPECT_EQ(resumed_batch_size(state, 48, per_rank, 2), 48);
  EXPECT_EQ(resumed_batch_size(state, 48, per_rank, 1), 96);  // another world: the saved global batch
  EXPECT_EQ(resumed_batch_size(state, 48, per_rank, 3), 32);
  EXPECT_EQ(resumed_batch_size(state, 48, per_rank, 4), 24);
  EXPECT_EQ(resumed_batch_size(state, 7, per_rank, 6), 16);  // whatever the config says
  expect_error<ConfigError>([&] { resumed_batch_size(state, 40, per_rank, 2); },
                            {"data.batch_size", "96", "80"});
  expect_error<ConfigError>([&] { resumed_batch_size(state, 48, per_rank, 5); },
                            {"data.batch_size", "96", "5 ranks"});
  const launch::DataSection global = batch_of("global_batch_size", 64);
  expect_error<ConfigError>([&] { resumed_batch_size(state, 32, global, 2); },
                            {"data.global_batch_size", "96", "64"});
  expect_error<ConfigError>([&] { resumed_batch_size(state, 32, global, 7); },
                            {"data.global_batch_size", "96", "7 ranks"});
}

TEST_F(CheckpointingTest, ASignalStopsTheRunWithACheckpointThatResumesExactly) {
  const fs::path out = file("stopped"), straight = file("straight");
  const std::string text = classifier_text(out, 5);
  // Many epochs: the run goes on until the signal. A signal arriving after the trainer gave back its
  // handlers must not end the test binary: ignore SIGUSR1 meanwhile.
  const std::vector<std::string> long_run = {"run.epochs=1000"};
  struct sigaction ignore {
  }, previous{};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGUSR1, &ignore, &previous), 0);
  std::atomic<bool> sent{false};
  std::thread sender([&] {
    // Once the first checkpoint is committed the trainer's handlers are installed.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!fs::exists(checkpoint_dir(out, 5)) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ::kill(::getpid(), SIGUSR1);
    sent = true;
  });
  std::string printed;
  ClassifierResult r;
  try {
    r = classify(parse(text, long_run), 0, "auto", &printed);
  } catch (...) {
    sender.join();
    ::sigaction(SIGUSR1, &previous, nullptr);
    throw;
  }
  sender.join();
  ::sigaction(SIGUSR1, &previous, nullptr);
  ASSERT_TRUE(sent);
  EXPECT_EQ(r.stopped_by, "SIGUSR1") << printed;
  const std::int64_t stop = r.steps;
  ASSERT_GE(stop, 5);
  ASSERT_LT(stop, 10000) << "the run ended before the signal";
  EXPECT_EQ(r.checkpoint, checkpoint_dir(out, stop));
  std::string why;
  EXPECT_TRUE(io::CheckpointStore::verify(r.checkpoint, &why)) << why;
  EXPECT_EQ(io::read_trainer_state(r.checkpoint / "trainer.h5").step, stop);

  // Resumed to a later step, it ends bit for bit where a straight run to that step ends.
  const std::int64_t later = stop + 13;
  const ClassifierResult resumed = classify(parse(text, long_run), later);
  EXPECT_EQ(resumed.resumed_step, stop);
  EXPECT_EQ(resumed.stopped_by, "");
  classify(parse(classifier_text(straight, 5), long_run), later);
  expect_same_checkpoint(checkpoint_dir(straight, later), checkpoint_dir(out, later));
}

}  // namespace
}  // namespace lockstep::launch
