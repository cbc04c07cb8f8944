// GPU training-speed benchmark (issue 16): one training step per iteration on one device, synthetic data
// (fixed seed), each step ending with the device synchronised, so the median step time is the GPU's:
// - resnet50: torchvision's ResNet-50 at 224x224x3, batch 128, 1000 classes, SGD(0.1, momentum 0.9);
// - resnet20: CIFAR ResNet-20 at 32x32x3, batch 128, SGD(0.1, 0.9, weight decay 5e-4 on weights);
// - dcgan64: DCGAN at 64x64x3 (width 64), batch 64, a discriminator and a generator step, Adam(2e-4, 0.5).
// Prints "model=<m> device=<d> precision=<p> batch=<b> images_per_s=<x>" per model, the line format of
// tests/perf/gpu_peer.py; tests/perf/bench_gpu.sh runs both on one GPU and prints ratios and ResNet-50's
// FLOP utilisation. Usage: lockstep_bench_gpu [--model resnet50|resnet20|dcgan64|all] [--steps N]
// [--warmup N] [--device cpu|cuda] [--precision f32|bf16 (run.precision)]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "src/core/cuda_available.h"
#include "src/core/error.h"
#include "src/core/precision.h"
#include "src/core/strings.h"
#include "src/models/conditional.h"
#include "src/models/dcgan.h"
#include "src/models/gan_loss.h"
#include "src/models/resnet.h"
#include "src/ops/loss.h"
#include "src/optim/adam.h"
#include "src/optim/sgd.h"
#include "src/tensor/factories.h"

namespace {

using lockstep::Device;
using lockstep::Tensor;
namespace models = lockstep::models;
namespace optim = lockstep::optim;

struct Options {
  std::string model = "all";
  int steps = 20;
  int warmup = 5;
  Device device{lockstep::DeviceType::CUDA, 0};
  lockstep::MatmulPrecision precision = lockstep::MatmulPrecision::kF32;
};

struct Workload {
  std::int64_t batch = 0;
  std::function<void()> step;
};

// Class labels (i * 7 + 3) mod classes, on `device`.
Tensor labels(std::int64_t n, std::int64_t classes, Device device) {
  std::vector<std::int64_t> values;
  for (std::int64_t i = 0; i < n; ++i) values.push_back((i * 7 + 3) % classes);
  return lockstep::from_vector(values, {n}).to(device);
}

Workload classifier(std::shared_ptr<models::Classifier> model, std::int64_t batch, std::int64_t channels,
                    std::int64_t size, std::int64_t classes, optim::SGDOptions sgd, Device device,
                    lockstep::Generator& gen) {
  model->to(device);
  auto optimizer = std::make_shared<optim::SGD>(model->named_parameters(), sgd);
  const Tensor x =
      lockstep::rand({batch, channels, size, size}, -1.0, 1.0, lockstep::DType::f32, device, &gen);
  const Tensor y = labels(batch, classes, device);
  return {batch, [=] {
            optimizer->zero_grad();
            lockstep::cross_entropy(model->forward(x), y).backward();
            optimizer->step();
          }};
}

Workload dcgan64(Device device, lockstep::Generator& gen) {
  constexpr std::int64_t kBatch = 64, kLatent = 100;
  auto g = std::make_shared<models::DCGANGenerator>(kLatent, 3, 64, 64);
  auto d = std::make_shared<models::DCGANDiscriminator>(3, 64, 64);
  models::dcgan_init_(*g, &gen);
  models::dcgan_init_(*d, &gen);
  g->to(device);
  d->to(device);
  const optim::AdamOptions adam{.lr = 2e-4, .beta1 = 0.5, .beta2 = 0.999};
  auto opt_g = std::make_shared<optim::Adam>(g->named_parameters(), adam);
  auto opt_d = std::make_shared<optim::Adam>(d->named_parameters(), adam);
  const Tensor real = lockstep::rand({kBatch, 3, 64, 64}, -1.0, 1.0, lockstep::DType::f32, device, &gen);
  auto noise = std::make_shared<lockstep::Generator>(7);
  return {
      kBatch, [=] {
        const Tensor z =
            lockstep::randn({kBatch, kLatent}, 0.0, 1.0, lockstep::DType::f32, device, noise.get());
        const Tensor fake = models::generate(*g, z);
        opt_d->zero_grad();
        models::discriminator_loss(models::GanLoss::kNonSaturating, models::discriminate(*d, real),
                                   models::discriminate(*d, fake.detach()))
            .backward();
        opt_d->step();
        opt_g->zero_grad();
        d->requires_grad_(false);
        models::generator_loss(models::GanLoss::kNonSaturating, models::discriminate(*d, fake)).backward();
        d->requires_grad_(true);
        opt_g->step();
      }};
}

Workload make_workload(const std::string& model, Device device, lockstep::Generator& gen) {
  if (model == "resnet50") {
    return classifier(std::make_shared<models::ResNet>(50, 3, 1000), 128, 3, 224, 1000,
                      {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4}, device, gen);
  }
  if (model == "resnet20") {
    return classifier(std::make_shared<models::CifarResNet>(20, 3, 10), 128, 3, 32, 10,
                      {.lr = 0.1, .momentum = 0.9, .weight_decay = 5e-4}, device, gen);
  }
  return dcgan64(device, gen);
}

void run_model(const std::string& model, const Options& options) {
  lockstep::Generator gen(1234);
  const Workload work = make_workload(model, options.device, gen);
  for (int i = 0; i < options.warmup; ++i) work.step();
  lockstep::cuda_synchronize();
  std::vector<double> seconds;
  for (int i = 0; i < options.steps; ++i) {
    const auto start = std::chrono::steady_clock::now();
    work.step();
    lockstep::cuda_synchronize();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::nth_element(seconds.begin(), seconds.begin() + static_cast<std::ptrdiff_t>(seconds.size() / 2),
                   seconds.end());
  std::printf("model=%s device=%s precision=%s batch=%lld images_per_s=%.1f\n", model.c_str(),
              options.device.str().c_str(), lockstep::precision_name(options.precision),
              static_cast<long long>(work.batch),
              static_cast<double>(work.batch) / seconds[seconds.size() / 2]);
  std::fflush(stdout);
}

Options parse(int argc, char** argv) {
  Options o;
  const char* usage =
      "lockstep_bench_gpu: expected --model resnet50|resnet20|dcgan64|all, --steps N, --warmup N, --device "
      "cpu|cuda or --precision f32|bf16";
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    LOCKSTEP_CHECK(i + 1 < argc, lockstep::ValueError, usage, ", but got '", flag, "' without a value");
    const std::string value = argv[i + 1];
    if (flag == "--model") {
      LOCKSTEP_CHECK(value == "resnet50" || value == "resnet20" || value == "dcgan64" || value == "all",
                     lockstep::ValueError, usage, ", but got --model ", value);
      o.model = value;
    } else if (flag == "--steps") {
      o.steps = std::stoi(value);
    } else if (flag == "--warmup") {
      o.warmup = std::stoi(value);
    } else if (flag == "--device") {
      LOCKSTEP_CHECK(value == "cpu" || value == "cuda", lockstep::ValueError, usage, ", but got --device ",
                     value);
      o.device = value == "cpu" ? lockstep::kCPU : Device{lockstep::DeviceType::CUDA, 0};
    } else if (flag == "--precision") {
      LOCKSTEP_CHECK(value == "f32" || value == "bf16", lockstep::ValueError, usage, ", but got --precision ",
                     value);
      o.precision = value == "bf16" ? lockstep::MatmulPrecision::kBf16 : lockstep::MatmulPrecision::kF32;
    } else {
      throw lockstep::ValueError(lockstep::str_cat(usage, ", but got '", flag, "'"));
    }
  }
  LOCKSTEP_CHECK(o.steps > 0 && o.warmup >= 0, lockstep::ValueError,
                 "lockstep_bench_gpu: expected --steps > 0 and --warmup >= 0, but got steps=", o.steps,
                 ", warmup=", o.warmup);
  LOCKSTEP_CHECK(o.device.is_cpu() || lockstep::cuda_available(), lockstep::DeviceError,
                 "lockstep_bench_gpu: no CUDA device: ", lockstep::cuda_unavailable_why(),
                 ". Run it on a GPU machine, or with --device cpu");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options options = parse(argc, argv);
    const lockstep::MatmulPrecisionScope precision(options.precision);
    for (const std::string model : {"resnet50", "resnet20", "dcgan64"}) {
      if (options.model == "all" || options.model == model) run_model(model, options);
    }
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s\n", error.what());
    return 1;
  }
}
