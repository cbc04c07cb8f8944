// Smoke tests on the real Fashion-MNIST (Debian's dataset-fashion-mnist): a few hundred steps of classifier
// training must lower the loss and beat chance by a wide margin, and a GAN's saved generator must reproduce
// its sample grid after a reload.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include "io/image/png.h"
#include "io/metrics/tensorboard.h"
#include "io/model/model_file.h"
#include "launch/config/settings.h"
#include "launch/train/evaluate.h"
#include "launch/train/factory.h"
#include "launch/train/gan.h"
#include "launch/train/loop.h"
#include "launch/train/run.h"
#include "src/core/precision.h"
#include "tests/support/fashion_mnist.h"

namespace lockstep {
namespace {

namespace fs = std::filesystem;

// Runs write under one folder per binary; the data set is converted once (tests/support/fashion_mnist.h).
class TrainSmoke : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / str_cat("lockstep_smoke_", ::getpid());
    fs::create_directories(dir_);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  // `body` plus a [data] section on the converted file with `data_keys` added.
  static launch::Config config(const std::string& body, const std::string& data_keys = "") {
    return launch::Config::parse(str_cat(body, "\n[data]\npath = \"", test::fashion_mnist_h5().string(),
                                         "\"\nbatch_size = 64\n", data_keys),
                                 "smoke.toml");
  }

  // Runs the config's training with plain progress lines.
  static launch::TrainResult classify(const launch::Config& cfg) {
    launch::Progress progress(stdout, launch::Style::kLines);
    const launch::Settings settings = launch::read_settings(cfg);
    return launch::train(settings, launch::setup_run(settings), progress);
  }
  static launch::TrainResult train_gan(const launch::Config& cfg) { return classify(cfg); }

  static inline fs::path dir_;
};

TEST_F(TrainSmoke, MlpLossFallsAndAccuracyFarAboveChance) {
  const launch::Config cfg = config(str_cat(R"(
[run]
seed = 3
max_steps = 300
output = ")",
                                            (dir_ / "mlp").string(), R"("
[model]
name = "mlp"
hidden = [128]
[optimizer]
name = "sgd"
lr = 0.05
momentum = 0.9
)"));
  const launch::TrainResult r = classify(cfg);
  EXPECT_EQ(r.steps, 300);
  EXPECT_LT(r.figure("train_loss"), 0.7 * r.figure("first_loss")) << "first " << r.figure("first_loss") << ", last " << r.figure("train_loss");
  EXPECT_GT(r.figure("test_accuracy"), 0.70);  // chance is 0.10; 300 steps are a part of the first epoch
  EXPECT_TRUE(fs::exists(dir_ / "mlp" / "model.h5"));
  EXPECT_TRUE(fs::exists(dir_ / "mlp" / "metrics.jsonl"));
}

TEST_F(TrainSmoke, LeNetLossFallsAndAccuracyFarAboveChance) {
  const launch::Config cfg = config(str_cat(R"(
[run]
seed = 4
max_steps = 200
output = ")",
                                            (dir_ / "lenet").string(), R"("
[model]
name = "lenet5"
[optimizer]
name = "adam"
lr = 2e-3
)"));
  const launch::TrainResult r = classify(cfg);
  EXPECT_LT(r.figure("train_loss"), 0.7 * r.figure("first_loss")) << "first " << r.figure("first_loss") << ", last " << r.figure("train_loss");
  EXPECT_GT(r.figure("test_accuracy"), 0.65);
}

TEST_F(TrainSmoke, Bf16LossFallsLikeF32) {
  // The same LeNet-5 run from the same seed in f32 and with bf16 convolutions and matrix products
  // (run.precision): the bf16 run's loss falls as the f32 one does, and it is not the f32 run.
  std::map<std::string, launch::TrainResult> results;
  for (const std::string precision : {"f32", "bf16"}) {
    results[precision] = classify(config(str_cat(R"(
[run]
seed = 4
max_steps = 200
precision = ")",
                                                 precision, R"("
output = ")",
                                                 (dir_ / str_cat("lenet_", precision)).string(), R"("
[model]
name = "lenet5"
[optimizer]
name = "adam"
lr = 2e-3
)")));
  }
  const launch::TrainResult &f32 = results["f32"], &bf16 = results["bf16"];
  EXPECT_LT(bf16.figure("train_loss"), 0.7 * bf16.figure("first_loss"));
  EXPECT_NEAR(bf16.figure("train_loss"), f32.figure("train_loss"), 0.15 * f32.figure("train_loss"));
  EXPECT_NEAR(bf16.figure("test_accuracy"), f32.figure("test_accuracy"), 0.05);
  EXPECT_NE(bf16.figure("train_loss"), f32.figure("train_loss")) << "the bf16 run computed in f32";
  EXPECT_EQ(matmul_precision(), MatmulPrecision::kF32) << "the run left bf16 in force";
}

TEST_F(TrainSmoke, EarlyStoppingEndsAfterPatienceEpochsWithoutGain) {
  // With lr = 0 the test accuracy never improves after the first epoch: two more epochs, then a stop.
  const launch::Config cfg = config(str_cat(R"(
[run]
seed = 6
epochs = 6
output = ")",
                                            (dir_ / "early").string(), R"("
[model]
name = "mlp"
hidden = [32]
[optimizer]
name = "sgd"
lr = 0.0
[train]
early_stopping_patience = 2
)"));
  const launch::TrainResult r = classify(cfg);
  EXPECT_EQ(r.best_epoch, 1);
  EXPECT_EQ(r.steps, 3 * (60000 / 64));  // 3 epochs of full batches
}

TEST_F(TrainSmoke, WassersteinCriticWeightsStayClipped) {
  const launch::Config cfg = config(str_cat(R"(
task = "gan"
[run]
seed = 7
max_steps = 20
output = ")",
                                            (dir_ / "wgan").string(), R"("
[gan]
latent = 16
samples = 4
loss = "wasserstein"
d_steps = 5
weight_clip = 0.01
[generator]
name = "dcgan"
width = 8
[discriminator]
name = "wgan-critic"
width = 8
[optimizer]
name = "rmsprop"
lr = 5e-5
)"),
                                    "pad_to = 32\nnormalize = \"tanh\"\n");
  const launch::TrainResult r = train_gan(cfg);
  EXPECT_EQ(r.figure("generator_steps"), 4);  // one per 5 critic steps

  const fs::path model_file = dir_ / "wgan" / "model.h5";
  const launch::Settings stored = launch::read_settings(launch::Config::parse(io::read_model_file_info(model_file).config, "model.h5"));
  const launch::DataSplits data = launch::make_data(stored.data, 0);
  std::shared_ptr<nn::Module> critic = launch::make_discriminator(stored, data.geometry);
  io::load_model_group(model_file, "discriminator", *critic);
  for (const auto& [name, p] : critic->named_parameters()) {
    for (float w : p.to_vector<float>()) ASSERT_LE(std::abs(w), 0.01f) << name;
  }
}

std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST_F(TrainSmoke, GanSavedGeneratorReproducesItsSamples) {
  const launch::Config cfg = config(str_cat(R"(
task = "gan"
[run]
seed = 5
max_steps = 30
output = ")",
                                            (dir_ / "gan").string(), R"("
[gan]
latent = 16
samples = 16
[generator]
name = "dcgan"
width = 8
[discriminator]
name = "dcgan"
width = 8
[optimizer]
name = "adam"
lr = 2e-4
beta1 = 0.5
)"),
                                    "pad_to = 32\nnormalize = \"tanh\"\n");
  const launch::TrainResult r = train_gan(cfg);
  EXPECT_EQ(r.figure("generator_steps"), 30);
  EXPECT_TRUE(std::isfinite(r.figure("d_loss")) && std::isfinite(r.figure("g_loss")));

  // A generator rebuilt from the model file draws the same grid from the same fixed noise.
  const fs::path model_file = dir_ / "gan" / "model.h5";
  const launch::Settings stored = launch::read_settings(launch::Config::parse(io::read_model_file_info(model_file).config, "model.h5"));
  const launch::DataSplits data = launch::make_data(stored.data, 0);
  std::shared_ptr<nn::Module> g = launch::make_generator(stored, data.geometry);
  io::load_model_group(model_file, "generator", *g);
  launch::write_samples(*g, launch::fixed_noise(5, 16, 16), dir_ / "again.png");
  EXPECT_EQ(file_bytes(dir_ / "again.png"), file_bytes(dir_ / "gan" / "samples_epoch_1.png"));

  // The TensorBoard file decodes (lengths and masked CRC-32C verified): the epoch's losses as scalars, equal
  // (as floats) to the result, and the same grid as an image at the last step.
  std::vector<fs::path> event_files;
  for (const auto& entry : fs::directory_iterator(dir_ / "gan" / "tensorboard")) event_files.push_back(entry.path());
  ASSERT_EQ(event_files.size(), 1u);
  std::map<std::string, io::SummaryValue> last;
  std::int64_t last_step = -1;
  for (const io::TensorBoardEvent& event : io::read_events(event_files[0])) {
    for (const io::SummaryValue& value : event.values) last[value.tag] = value;
    if (!event.values.empty()) last_step = event.step;
  }
  EXPECT_EQ(last_step, 30);
  ASSERT_TRUE(last.count("d_loss") && last.at("d_loss").scalar);
  EXPECT_EQ(*last.at("d_loss").scalar, static_cast<float>(r.figure("d_loss")));
  ASSERT_TRUE(last.count("g_loss") && last.at("g_loss").scalar);
  EXPECT_EQ(*last.at("g_loss").scalar, static_cast<float>(r.figure("g_loss")));
  ASSERT_TRUE(last.count("samples") && last.at("samples").image);
  const io::SummaryImage& image = *last.at("samples").image;
  const Tensor grid = io::read_png(dir_ / "gan" / "samples_epoch_1.png");
  EXPECT_EQ(image.height, grid.size(1));
  EXPECT_EQ(image.width, grid.size(2));
  EXPECT_EQ(image.channels, grid.size(0));
  const fs::path logged = dir_ / "logged.png";
  std::ofstream(logged, std::ios::binary)
      .write(reinterpret_cast<const char*>(image.encoded.data()), static_cast<std::streamsize>(image.encoded.size()));
  EXPECT_EQ(io::read_png(logged).to_vector<std::uint8_t>(), grid.to_vector<std::uint8_t>());
}

}  // namespace
}  // namespace lockstep
