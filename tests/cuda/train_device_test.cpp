// `lockstep train` with run.device = "cuda" against the same run on the CPU: a small MLP classifier (SGD with
// momentum, 2 epochs of 10 steps with evaluation) and a tiny DCGAN (Adam, 10 steps, a sample grid) on the
// first images of Fashion-MNIST (tests/support/fashion_mnist.h; on a machine without the Debian package, the
// small file made elsewhere, named by $LOCKSTEP_SMALL_FASHION_MNIST). The saved models must agree: the
// classifier within 1e-4 of the weights' scale, the GAN within 1e-3 (its noise is drawn on the device, whose
// normal values are within 1-2 ulp of the CPU's). Covers the loop on the device: batches moved there,
// evaluation, checkpoints and model files written from device tensors, sample grids copied back.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>

#include "io/model/model_file.h"
#include "launch/config/settings.h"
#include "launch/train/loop.h"
#include "launch/train/progress.h"
#include "launch/train/run.h"
#include "src/core/strings.h"
#include "src/models/dcgan.h"
#include "src/models/mlp.h"
#include "src/models/pixelcnn.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/support/fashion_mnist.h"
#include "tests/support/temp_dir.h"

namespace lockstep::test {
namespace {

namespace fs = std::filesystem;

fs::path small_data() {
  if (const char* path = std::getenv("LOCKSTEP_SMALL_FASHION_MNIST")) return path;
  return small_fashion_mnist_h5();
}

// Trains `text` with run.device = `device` into `output`, for at most `max_steps` (0: the config's), resuming
// from the last checkpoint there when `resume`.
launch::TrainResult train_on(const std::string& text, const fs::path& output, const std::string& device,
                             std::int64_t max_steps = 0, bool resume = false) {
  const launch::Settings settings = launch::read_settings(launch::Config::parse(
      text, "run.toml",
      {str_cat("run.output=\"", output.string(), "\""), str_cat("run.device=\"", device, "\"")}));
  launch::RunSettings run = launch::setup_run(settings);
  if (max_steps > 0) run.max_steps = max_steps;
  run.resume = launch::ResumeRequest::parse(resume ? "auto" : "none");
  launch::Progress progress(stderr, launch::Style::kLines);
  return launch::train(settings, run, progress);
}

std::string gpu_device() { return kGpu.is_cpu() ? "cpu" : "cuda"; }

// Group `group` of <dir>/<other>/model.h5 against <dir>/cpu/model.h5.
void expect_same_group(nn::Module& cpu, nn::Module& other_model, const fs::path& dir,
                       const std::string& group, double tolerance, const std::string& other = "gpu") {
  io::load_model_group(dir / "cpu" / "model.h5", group, cpu);
  io::load_model_group(dir / other / "model.h5", group, other_model);
  const auto want = cpu.named_parameters(), got = other_model.named_parameters();
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t k = 0; k < want.size(); ++k)
    expect_close(got[k].second, want[k].second, tolerance, str_cat(other, " ", group, ".", want[k].first));
}

// A small MLP classifier, 2 epochs of 10 steps, SGD with momentum, a checkpoint every 10 steps.
std::string classifier_text() {
  return str_cat("[run]\nseed = 3\nepochs = 2\nthreads = 1\n[data]\npath = \"", small_data().string(),
                 "\"\nbatch_size = 32\n[model]\nname = \"mlp\"\nhidden = [32]\n[optimizer]\nname = \"sgd\"\n"
                 "lr = 0.05\nmomentum = 0.9\n[checkpoint]\nevery_steps = 10\n");
}

class CudaTrain : public TempDirTest {};

TEST_F(CudaTrain, AClassifierRunOnTheGpuMatchesTheCpu) {
  LOCKSTEP_REQUIRE_CUDA();
  train_on(classifier_text(), dir_ / "cpu", "cpu");
  train_on(classifier_text(), dir_ / "gpu", gpu_device());
  models::MLP cpu(784, {32}, 10), gpu(784, {32}, 10);
  expect_same_group(cpu, gpu, dir_.path(), "model", 1e-4);
}

// Checkpoints are device-neutral: 10 steps on one device, resumed for 10 more on the other, end where 20
// steps on the CPU do (within the devices' rounding).
TEST_F(CudaTrain, CheckpointsResumeOnTheOtherDevice) {
  LOCKSTEP_REQUIRE_CUDA();
  train_on(classifier_text(), dir_ / "cpu", "cpu");
  train_on(classifier_text(), dir_ / "gpu_then_cpu", gpu_device(), 10);
  train_on(classifier_text(), dir_ / "gpu_then_cpu", "cpu", 0, true);
  train_on(classifier_text(), dir_ / "cpu_then_gpu", "cpu", 10);
  train_on(classifier_text(), dir_ / "cpu_then_gpu", gpu_device(), 0, true);
  for (const std::string other : {"gpu_then_cpu", "cpu_then_gpu"}) {
    models::MLP cpu(784, {32}, 10), mixed(784, {32}, 10);
    expect_same_group(cpu, mixed, dir_.path(), "model", 1e-4, other);
  }
}

TEST_F(CudaTrain, ADcganRunOnTheGpuMatchesTheCpu) {
  LOCKSTEP_REQUIRE_CUDA();
  const std::string text = str_cat(
      "task = \"gan\"\n[run]\nseed = 5\nepochs = 1\nmax_steps = 10\nthreads = 1\n[data]\npath = \"",
      small_data().string(),
      "\"\nbatch_size = 32\npad_to = 32\nnormalize = \"tanh\"\n[gan]\nlatent = 16\nsamples = 4\n[generator]\n"
      "name = \"dcgan\"\nwidth = 8\n[discriminator]\nname = \"dcgan\"\nwidth = 8\n[optimizer]\nname = "
      "\"adam\"\n"
      "lr = 2e-4\nbeta1 = 0.5\n");
  train_on(text, dir_ / "cpu", "cpu");
  train_on(text, dir_ / "gpu", gpu_device());
  EXPECT_TRUE(fs::exists(dir_ / "gpu" / "samples_epoch_1.png"));
  models::DCGANGenerator cpu_g(16, 1, 32, 8), gpu_g(16, 1, 32, 8);
  expect_same_group(cpu_g, gpu_g, dir_.path(), "generator", 1e-3);
  models::DCGANDiscriminator cpu_d(1, 32, 8), gpu_d(1, 32, 8);
  expect_same_group(cpu_d, gpu_d, dir_.path(), "discriminator", 1e-3);
}

TEST_F(CudaTrain, APixelCnnRunOnTheGpuMatchesTheCpu) {
  LOCKSTEP_REQUIRE_CUDA();
  const std::string text = str_cat(
      "task = \"pixelcnn\"\n[run]\nseed = 7\nepochs = 1\nmax_steps = 10\nthreads = 1\n[data]\npath = \"",
      small_data().string(),
      "\"\nbatch_size = 32\nnormalize = \"none\"\n[pixelcnn]\nwidth = 8\nblocks = 1\nsamples = 4\n"
      "[optimizer]\nname = \"adam\"\nlr = 1e-3\n");
  train_on(text, dir_ / "cpu", "cpu");
  train_on(text, dir_ / "gpu", gpu_device());
  EXPECT_TRUE(fs::exists(dir_ / "gpu" / "samples_epoch_1.png"));
  models::PixelCNN cpu(8, 1), gpu(8, 1);
  expect_same_group(cpu, gpu, dir_.path(), "model", 1e-4);
}

TEST_F(CudaTrain, Bf16LossFallsLikeF32OnTheGpu) {
  // LeNet-5 (cuDNN convolutions, cuBLAS GEMMs) from the same seed in f32 and in bf16 on the GPU (300 images,
  // 60 steps): the bf16 run's loss falls as the f32 one does, and it is not the f32 run.
  LOCKSTEP_REQUIRE_CUDA();
  std::map<std::string, launch::TrainResult> results;
  for (const std::string precision : {"f32", "bf16"}) {
    const std::string text = str_cat("[run]\nseed = 4\nepochs = 6\nthreads = 1\nprecision = \"", precision,
                                     "\"\n[data]\npath = \"", small_data().string(),
                                     "\"\nbatch_size = 32\n[model]\nname = \"lenet5\"\n[optimizer]\nname = "
                                     "\"adam\"\nlr = 2e-3\n");
    results[precision] = train_on(text, dir_ / precision, gpu_device());
  }
  const launch::TrainResult &f32 = results["f32"], &bf16 = results["bf16"];
  EXPECT_LT(bf16.figure("train_loss"), 0.8 * bf16.figure("first_loss"));
  EXPECT_NEAR(bf16.figure("train_loss"), f32.figure("train_loss"), 0.15 * f32.figure("train_loss"));
  EXPECT_NE(bf16.figure("train_loss"), f32.figure("train_loss")) << "the bf16 run computed in f32";
}

}  // namespace
}  // namespace lockstep::test
