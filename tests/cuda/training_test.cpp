// Whole training steps on the GPU against the CPU: the same networks (weights copied), the same batches and
// the same optimizer, 10 steps each, must end with parameters that agree within 1e-4 of their scale in f32:
// CIFAR ResNet-8 (batch norm in training mode, cross-entropy, SGD with momentum and weight decay) and DCGAN
// (transposed convolutions, batch norm, BCE-with-logits, both networks under Adam(2e-4, 0.5), the
// discriminator frozen for the generator's step). Every op and the optimizer run on the device; nothing is
// copied back until the end.
#include <gtest/gtest.h>

#include <tuple>

#include "src/core/strings.h"
#include "src/models/conditional.h"
#include "src/models/dcgan.h"
#include "src/models/gan_loss.h"
#include "src/models/resnet.h"
#include "src/ops/loss.h"
#include "src/optim/adam.h"
#include "src/optim/sgd.h"
#include "src/tensor/factories.h"
#include "tests/cuda/cuda_test_util.h"

namespace lockstep::test {
namespace {

constexpr int kSteps = 10;
constexpr double kTolerance = 1e-4;

// `gpu` gets `cpu`'s parameters and buffers, then moves to the GPU.
void copy_to_gpu(const nn::Module& cpu, nn::Module& gpu) {
  gpu.load_state_dict(cpu.state_dict());
  gpu.to(kGpu);
}

void expect_same_parameters(const nn::Module& gpu, const nn::Module& cpu, const std::string& what) {
  const auto want = cpu.named_parameters(), got = gpu.named_parameters();
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t k = 0; k < want.size(); ++k) {
    EXPECT_EQ(got[k].second.device(), kGpu) << what;
    expect_close(got[k].second, want[k].second, kTolerance, str_cat(what, " ", want[k].first));
  }
}

Tensor labels(std::int64_t n, std::int64_t classes, std::uint64_t seed) {
  std::vector<std::int64_t> values;
  for (std::int64_t i = 0; i < n; ++i)
    values.push_back(static_cast<std::int64_t>((seed * 31 + i * 7) % classes));
  return from_vector(values, {n});
}

TEST(CudaTraining, ResNet8StepsMatchTheCpu) {
  LOCKSTEP_REQUIRE_CUDA();
  models::CifarResNet cpu(8, 3, 10), gpu(8, 3, 10);
  copy_to_gpu(cpu, gpu);
  const optim::SGDOptions sgd{.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4};
  optim::SGD cpu_opt(cpu.named_parameters(), sgd), gpu_opt(gpu.named_parameters(), sgd);
  for (int step = 0; step < kSteps; ++step) {
    const Tensor x = cpu_rand({16, 3, 32, 32}, DType::f32, 100 + step), y = labels(16, 10, step);
    for (auto [model, opt, device] : {std::tuple{&cpu, &cpu_opt, kCPU}, std::tuple{&gpu, &gpu_opt, kGpu}}) {
      opt->zero_grad();
      cross_entropy(model->forward(x.to(device)), y.to(device)).backward();
      opt->step();
    }
  }
  expect_same_parameters(gpu, cpu, "ResNet-8");
}

TEST(CudaTraining, DcganStepsMatchTheCpu) {
  LOCKSTEP_REQUIRE_CUDA();
  Generator gen(5);
  models::DCGANGenerator cpu_g(100, 1, 32, 64), gpu_g(100, 1, 32, 64);
  models::DCGANDiscriminator cpu_d(1, 32, 64), gpu_d(1, 32, 64);
  models::dcgan_init_(cpu_g, &gen);
  models::dcgan_init_(cpu_d, &gen);
  copy_to_gpu(cpu_g, gpu_g);
  copy_to_gpu(cpu_d, gpu_d);
  const optim::AdamOptions adam{.lr = 2e-4, .beta1 = 0.5, .beta2 = 0.999};
  optim::Adam cpu_og(cpu_g.named_parameters(), adam), gpu_og(gpu_g.named_parameters(), adam);
  optim::Adam cpu_od(cpu_d.named_parameters(), adam), gpu_od(gpu_d.named_parameters(), adam);
  struct Side {
    nn::Module* g;
    nn::Module* d;
    optim::Adam* og;
    optim::Adam* od;
    Device device;
  };
  for (int step = 0; step < kSteps; ++step) {
    const Tensor z = cpu_rand({16, 100}, DType::f32, 200 + step),
                 real = cpu_rand({16, 1, 32, 32}, DType::f32, 300 + step);
    for (const Side& s :
         {Side{&cpu_g, &cpu_d, &cpu_og, &cpu_od, kCPU}, Side{&gpu_g, &gpu_d, &gpu_og, &gpu_od, kGpu}}) {
      const Tensor fake = models::generate(*s.g, z.to(s.device));
      s.od->zero_grad();
      models::discriminator_loss(models::GanLoss::kNonSaturating,
                                 models::discriminate(*s.d, real.to(s.device)),
                                 models::discriminate(*s.d, fake.detach()))
          .backward();
      s.od->step();
      s.og->zero_grad();
      s.d->requires_grad_(false);
      models::generator_loss(models::GanLoss::kNonSaturating, models::discriminate(*s.d, fake)).backward();
      s.d->requires_grad_(true);
      s.og->step();
    }
  }
  expect_same_parameters(gpu_g, cpu_g, "DCGAN generator");
  expect_same_parameters(gpu_d, cpu_d, "DCGAN discriminator");
}

}  // namespace
}  // namespace lockstep::test
