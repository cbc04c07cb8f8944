// Tests of `lockstep sample`: grids from a tiny DCGAN trained on the real Fashion-MNIST (once per test
// process), checked against the generator loaded independently; checkpoints built with CheckpointStore,
// damaged ones and the fallback of a directory of checkpoints; the errors for other models and paths.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "io/checkpoint/checkpoint_store.h"
#include "io/image/png.h"
#include "io/model/model_file.h"
#include "launch/cli/commands.h"
#include "launch/cli/common.h"
#include "launch/cli/dispatch.h"
#include "launch/config/config.h"
#include "launch/config/settings.h"
#include "launch/train/factory.h"
#include "launch/train/gan.h"
#include "launch/train/loop.h"
#include "launch/train/run.h"
#include "src/core/rng.h"
#include "src/nn/linear.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"
#include "tests/support/fashion_mnist.h"
#include "tests/support/temp_dir.h"

namespace lockstep::launch {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kLatent = 16;
constexpr std::int64_t kTile = 32 + 2;  // a 32x32 image and its padding in the grid

struct Output {
  int code = 0;
  std::string out;
  std::string err;
};

// Runs `lockstep sample args...` and captures what it prints on both streams.
Output sample(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  std::streambuf* saved_out = std::cout.rdbuf(out.rdbuf());
  std::streambuf* saved_err = std::cerr.rdbuf(err.rdbuf());
  Output result;
  try {
    result.code = run_sample(args);
  } catch (...) {
    std::cout.rdbuf(saved_out);
    std::cerr.rdbuf(saved_err);
    throw;
  }
  std::cout.rdbuf(saved_out);
  std::cerr.rdbuf(saved_err);
  result.out = out.str();
  result.err = err.str();
  return result;
}

std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::vector<std::uint8_t> pixels(const fs::path& png) { return io::read_png(png).to_vector<std::uint8_t>(); }

bool contains(const std::string& text, const std::string& fragment) {
  return text.find(fragment) != std::string::npos;
}

#define EXPECT_CONTAINS(text, fragment) EXPECT_TRUE(contains(text, fragment)) << (text)

// One tiny DCGAN (width 8, 20 steps: enough for its images to depend on the noise) per test process, trained
// by the library on the converted data set.
class Sample : public test::TempDirTest {
 protected:
  static void SetUpTestSuite() {
    run_dir_ = fs::temp_directory_path() / str_cat("lockstep_sample_test_", ::getpid());
    const launch::Config cfg = launch::Config::parse(
        str_cat("task = \"gan\"\n[run]\nseed = 7\nmax_steps = 20\noutput = \"", run_dir_.string(),
                "\"\n[data]\npath = \"", test::fashion_mnist_h5().string(),
                "\"\nbatch_size = 16\npad_to = 32\nnormalize = \"tanh\"\n[gan]\nlatent = ", kLatent,
                "\nsamples = 4\n[generator]\nname = \"dcgan\"\nwidth = 8\n[discriminator]\nname = \"dcgan\"\n"
                "width = 8\n[optimizer]\nname = \"adam\"\nlr = 2e-4\nbeta1 = 0.5\n"),
        "gan.toml");
    launch::Progress progress(nullptr);
    const launch::Settings settings = launch::read_settings(cfg);
    launch::train(settings, launch::setup_run(settings), progress);
  }
  static void TearDownTestSuite() { fs::remove_all(run_dir_); }

  static fs::path model_file() { return run_dir_ / "model.h5"; }

  // A committed checkpoint of `step` under `root` holding a copy of the model file and another file.
  static fs::path checkpoint(const fs::path& root, std::int64_t step) {
    const io::CheckpointStore store(root);
    const fs::path dir = store.begin(step);
    fs::copy_file(model_file(), dir / "model.h5");
    std::ofstream(dir / "notes.txt") << "step " << step << '\n';
    return store.commit(step).committed.path;
  }

  static inline fs::path run_dir_;
};

TEST_F(Sample, ModelFileGivesAGridOfTheRequestedShape) {
  const fs::path png = file("ten.png");
  const Output r =
      sample({model_file().string(), "--count", "10", "--columns", "4", "--output", png.string()});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            str_cat("wrote 10 samples from model file ", model_file().string(), " to ", png.string(), "\n"));
  const Tensor grid = io::read_png(png);
  EXPECT_EQ(grid.shape(), (Shape{1, 3 * kTile + 2, 4 * kTile + 2}));  // 3 rows of 4 columns, gray

  // Defaults: 64 samples in 8 columns, to samples.png in the current directory.
  const fs::path cwd = fs::current_path();
  fs::current_path(dir_.path());
  const Output d = sample({model_file().string()});
  fs::current_path(cwd);
  EXPECT_EQ(d.out, str_cat("wrote 64 samples from model file ", model_file().string(), " to samples.png\n"));
  EXPECT_EQ(io::read_png(file("samples.png")).shape(), (Shape{1, 8 * kTile + 2, 8 * kTile + 2}));
}

TEST_F(Sample, SameSeedSameBytesAnotherSeedOtherImages) {
  for (const auto& [name, seed] : {std::pair{"a.png", "3"}, {"b.png", "3"}, {"c.png", "4"}})
    sample({model_file().string(), "--count", "9", "--seed", seed, "--output", file(name).string()});
  EXPECT_EQ(file_bytes(file("a.png")), file_bytes(file("b.png")));
  EXPECT_FALSE(file_bytes(file("a.png")).empty());
  const std::vector<std::uint8_t> a = pixels(file("a.png")), c = pixels(file("c.png"));
  ASSERT_EQ(a.size(), c.size());
  std::int64_t differing = 0;
  for (std::size_t i = 0; i < a.size(); ++i) differing += a[i] != c[i];
  EXPECT_GT(differing, static_cast<std::int64_t>(a.size() / 10)) << "of " << a.size() << " pixels";
}

TEST_F(Sample, GridEqualsWriteSamplesOfTheGeneratorLoadedIndependently) {
  // 300 images take two generator calls in `sample`; write_samples makes them in one.
  for (const std::int64_t count : {std::int64_t{16}, std::int64_t{300}}) {
    const fs::path got = file(str_cat("sample_", count, ".png"));
    const fs::path want = file(str_cat("want_", count, ".png"));
    sample(
        {model_file().string(), "--count", std::to_string(count), "--seed", "11", "--output", got.string()});

    const launch::Settings cfg = launch::read_settings(launch::Config::parse(io::read_model_file_info(model_file()).config, "model.h5"));
    const launch::DataSplits data = launch::make_data(cfg.data, 0);
    manual_seed(99);  // other initial weights than any before: everything must come from the file
    std::shared_ptr<nn::Module> g = launch::make_generator(cfg, data.geometry);
    io::load_model_group(model_file(), "generator", *g);
    Generator stream(11);
    const std::int64_t columns = static_cast<std::int64_t>(std::ceil(std::sqrt(static_cast<double>(count))));
    launch::write_samples(*g, {randn({count, kLatent}, 0.0, 1.0, DType::f32, kCPU, &stream), {}, columns}, want);

    const std::vector<std::uint8_t> a = pixels(got), b = pixels(want);
    EXPECT_EQ(io::read_png(got).shape(), io::read_png(want).shape()) << count;
    EXPECT_EQ(a, b) << count;
    // The images are not blank: the generator's output spans many gray levels (the padding is only 0).
    const std::set<std::uint8_t> levels(a.begin(), a.end());
    EXPECT_GE(levels.size(), 8u) << count;
  }
}

TEST_F(Sample, CheckpointAndDirectoryOfCheckpointsUseTheirModelFile) {
  const fs::path root = file("checkpoints");
  const fs::path older = checkpoint(root, 600);
  const fs::path newest = checkpoint(root, 1200);
  ASSERT_EQ(newest.filename(), "step_000001200");
  sample({model_file().string(), "--count", "6", "--output", file("model.png").string()});

  const Output c = sample({newest.string(), "--count", "6", "--output", file("ckpt.png").string()});
  EXPECT_EQ(c.out, str_cat("wrote 6 samples from checkpoint ", newest.string(), " (step 1200) to ",
                           file("ckpt.png").string(), "\n"));
  EXPECT_EQ(file_bytes(file("ckpt.png")), file_bytes(file("model.png")));
  EXPECT_EQ(c.err, "");

  const Output r = sample({root.string() + "/", "--count", "6", "--output", file("root.png").string()});
  EXPECT_CONTAINS(r.out, str_cat("from checkpoint ", newest.string(), " (step 1200, the newest valid one in ",
                                 root.string(), ")"));
  EXPECT_EQ(file_bytes(file("root.png")), file_bytes(file("model.png")));
  EXPECT_EQ(r.err, "");
  EXPECT_TRUE(fs::exists(older));
}

TEST_F(Sample, DamagedCheckpointFailsAndTheDirectoryFallsBackWithAWarning) {
  const fs::path root = file("checkpoints");
  checkpoint(root, 100);
  const fs::path damaged = checkpoint(root, 200);
  {  // one byte in the middle of the model file, size unchanged
    std::fstream f(damaged / "model.h5", std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(fs::file_size(damaged / "model.h5") / 2));
    const char byte = static_cast<char>(f.peek());
    f.seekp(f.tellg());
    f.put(static_cast<char>(byte ^ 0x5a));
  }
  const auto error = test::expect_thrown<IoError>(
      [&] { sample({damaged.string()}); }, {damaged.string(), "fails verification", "model.h5", "XXH64"});
  if (error) {
    EXPECT_EQ(error->file(), damaged.string());
  }

  const Output r = sample({root.string(), "--count", "4", "--output", file("fallback.png").string()});
  EXPECT_EQ(r.code, 0);
  EXPECT_CONTAINS(r.out, "(step 100, the newest valid one in ");
  EXPECT_EQ(r.err.rfind("warning: checkpoint '" + damaged.string() + "' is damaged", 0), 0u) << r.err;
  EXPECT_CONTAINS(r.err, "falling back to the previous one");
  EXPECT_EQ(io::read_png(file("fallback.png")).shape(), (Shape{1, 2 * kTile + 2, 2 * kTile + 2}));

  // Nothing to fall back to: every checkpoint is damaged.
  fs::remove_all(root / "step_000000100");
  test::expect_error<IoError>([&] { sample({root.string()}); },
                              {"none of the 1 checkpoints", root.string(), "passes verification"});
}

TEST_F(Sample, OtherModelsAndPathsAreClearErrors) {
  const fs::path classifier = file("classifier.h5");
  nn::Linear linear(4, 3);
  io::write_model_file(classifier, "classifier", launch::Config::parse("task = \"classifier\"\n", "run.toml").to_string(),
                     {{"model", &linear}});
  test::expect_error<ValueError>([&] { sample({classifier.string()}); },
                                 {classifier.string(), "GAN model file", "kind \"classifier\""});

  const fs::path text = file("notes.txt");
  std::ofstream(text) << "not a model\n";
  test::expect_error<IoError>([&] { sample({text.string()}); }, {text.string(), "cannot be read as one"});

  const fs::path missing = file("nowhere/model.h5");
  test::expect_error<IoError>([&] { sample({missing.string()}); }, {missing.string(), "does not exist"});
  fs::create_directories(file("empty"));
  test::expect_error<IoError>([&] { sample({file("empty").string()}); },
                              {file("empty").string(), "holds neither"});
  const fs::path other_data = file("elsewhere.h5");
  test::expect_error<IoError>(
      [&] {
        sample({model_file().string(), "--data", other_data.string()});
      },
      {other_data.string(), "does not exist"});

  // Through the command line: failures exit with 1, bad options with 2 and name the option.
  constexpr Command kCommands[] = {{"sample", "sample", run_sample}};
  const auto run = [&](const std::vector<std::string>& args, const std::string& fragment) {
    std::ostringstream out, err;
    std::vector<std::string> line = {"sample"};
    line.insert(line.end(), args.begin(), args.end());
    const int code = run_cli(kCommands, line, out, err);
    EXPECT_CONTAINS(err.str(), fragment);
    return code;
  };
  EXPECT_EQ(run({missing.string()}, "lockstep: error: sample: expected a GAN model file"), 1);
  EXPECT_EQ(run({model_file().string(), "--count", "0"}, "--count: expected 1 to 4096, but got 0"), 2);
  EXPECT_EQ(run({model_file().string(), "--count", "4097"}, "--count: expected 1 to 4096, but got 4097"), 2);
  EXPECT_EQ(run({model_file().string(), "--columns", "0"}, "--columns: expected at least 1, but got 0"), 2);
  EXPECT_EQ(run({model_file().string(), "--seed=-1"}, "--seed: expected an integer >= 0"), 2);
  EXPECT_EQ(run({}, "path"), 2);
  EXPECT_EQ(run({model_file().string(), "--class", "1"}, "--class: expected a conditional GAN"), 2);
}

TEST_F(Sample, AConditionalGanDrawsOneClassOrOneRowPerClass) {
  // A tiny conditional DCGAN, as the fixture's.
  const fs::path out = file("cgan");
  const std::string text = io::read_model_file_info(model_file()).config;
  const launch::Config cfg = launch::Config::parse(
      text, "cgan.toml",
      {str_cat("run.output=\"", out.string(), "\""), str_cat("checkpoint.dir=\"", (out / "checkpoints").string(), "\""),
       "gan.conditional=true"});
  launch::Progress progress(nullptr);
  const launch::Settings settings = launch::read_settings(cfg);
  launch::train(settings, launch::setup_run(settings), progress);
  const fs::path model = out / "model.h5";
  const launch::DataSplits data = launch::make_data(settings.data, 0);
  manual_seed(99);
  std::shared_ptr<nn::Module> g = launch::make_generator(settings, data.geometry);
  io::load_model_group(model, "generator", *g);

  // (count, --class or none, columns of the grid, the labels drawn)
  const auto expect_grid = [&](std::int64_t count, std::vector<std::string> extra, std::int64_t columns,
                               const std::vector<std::int64_t>& labels) {
    const fs::path got = file("got.png"), want = file("want.png");
    std::vector<std::string> args = {model.string(), "--count", std::to_string(count), "--seed", "3",
                                     "--output", got.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    const Output o = sample(args);
    Generator stream(3);
    launch::write_samples(
        *g, {randn({count, kLatent}, 0.0, 1.0, DType::f32, kCPU, &stream), from_vector(labels, {count}), columns},
        want);
    EXPECT_EQ(io::read_png(got).shape(), io::read_png(want).shape());
    EXPECT_EQ(pixels(got), pixels(want));
    return o.out;
  };
  // --class 7: every image a sneaker, a square-ish grid.
  EXPECT_CONTAINS(expect_grid(8, {"--class", "7"}, 3, std::vector<std::int64_t>(8, 7)), "8 samples of class 7 (Sneaker)");
  // No --class: one row per class (2 columns for 20 images).
  std::vector<std::int64_t> rows;
  for (std::int64_t i = 0; i < 20; ++i) rows.push_back(i / 2);
  expect_grid(20, {}, 2, rows);
  // The same noise with another class gives other images.
  sample({model.string(), "--count", "8", "--seed", "3", "--class", "1", "--output", file("trouser.png").string()});
  EXPECT_NE(pixels(file("trouser.png")), pixels(file("got.png")));

  test::expect_error<UsageError>([&] { sample({model.string(), "--class", "10"}); },
                                 {"--class: expected a class in [0, 10)", "Ankle boot", "but got 10"});
}

}  // namespace
}  // namespace lockstep::launch
