// The CUDA fused optimizer kernels against the CPU's: both run the per-element formulas of
// src/optim/update_formulas.h, so after a few steps over many parameters (more than one launch holds, of
// mixed sizes and dtypes, one of them empty, one skipped in a step) parameters and optimizer state must be
// the same bits on both devices.
#include <gtest/gtest.h>

#include <functional>
#include <memory>

#include "src/core/strings.h"
#include "src/optim/adagrad.h"
#include "src/optim/adam.h"
#include "src/optim/sgd.h"
#include "tests/cuda/cuda_test_util.h"

namespace lockstep::test {
namespace {

using MakeOptimizer = std::function<std::unique_ptr<optim::Optimizer>(std::vector<nn::NamedTensor>)>;

// 60 parameters (40 f32: two launches of at most 24 for that dtype): weights (decayed by default) and biases,
// f32 and f64, from empty to several blocks long.
std::vector<nn::NamedTensor> make_params(Device device) {
  std::vector<nn::NamedTensor> out;
  for (int k = 0; k < 60; ++k) {
    const DType dtype = k % 3 == 2 ? DType::f64 : DType::f32;
    const Shape shape = k == 7 ? Shape{0} : k % 2 == 0 ? Shape{k + 1, 97} : Shape{37 * k + 1};
    out.emplace_back(str_cat("p", k), cpu_rand(shape, dtype, 100 + k).to(device));
  }
  return out;
}

// Three steps with the same gradients on both devices (parameter 4 has none in the second step); then every
// parameter and every state tensor must be identical.
void expect_same_steps(const MakeOptimizer& make, double l1, const std::string& what) {
  std::vector<nn::NamedTensor> cpu = make_params(kCPU), gpu = make_params(kGpu);
  auto cpu_opt = make(cpu), gpu_opt = make(gpu);
  cpu_opt->set_l1(l1);
  gpu_opt->set_l1(l1);
  for (int step = 0; step < 3; ++step) {
    for (std::size_t k = 0; k < cpu.size(); ++k) {
      const bool skipped = step == 1 && k == 4;
      const Tensor g = cpu_rand(cpu[k].second.shape(), cpu[k].second.dtype(), 1000 * step + k);
      cpu[k].second.set_grad(skipped ? Tensor() : g);
      gpu[k].second.set_grad(skipped ? Tensor() : g.to(kGpu));
    }
    cpu_opt->step();
    gpu_opt->step();
  }
  for (std::size_t k = 0; k < cpu.size(); ++k) {
    EXPECT_EQ(gpu[k].second.device(), kGpu);
    expect_identical(gpu[k].second, cpu[k].second, str_cat(what, " ", cpu[k].first));
  }
  const nn::StateDict want = cpu_opt->state_dict(), got = gpu_opt->state_dict();
  ASSERT_EQ(got.size(), want.size()) << what;
  for (const auto& [key, tensor] : want) {
    ASSERT_NE(got.find(key), nullptr) << what << " " << key;
    expect_identical(*got.find(key), tensor, str_cat(what, " state ", key));
  }
}

TEST(CudaOptimizer, SgdIsTheCpuBits) {
  LOCKSTEP_REQUIRE_CUDA();
  const std::vector<optim::SGDOptions> cases{
      {.lr = 0.1},
      {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 5e-4},
      {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3, .nesterov = optim::Nesterov::kYes},
  };
  for (const auto& o : cases) {
    expect_same_steps([&](auto params) { return std::make_unique<optim::SGD>(params, o); }, 0.0,
                      str_cat("SGD momentum ", o.momentum));
  }
  expect_same_steps(
      [](auto params) { return std::make_unique<optim::SGD>(params, optim::SGDOptions{.lr = 0.1}); }, 1e-3,
      "SGD with l1");
}

TEST(CudaOptimizer, AdamAndAdamWAreTheCpuBits) {
  LOCKSTEP_REQUIRE_CUDA();
  expect_same_steps(
      [](auto params) {
        return std::make_unique<optim::Adam>(params, optim::AdamOptions{.lr = 1e-3, .weight_decay = 1e-2});
      },
      0.0, "Adam");
  expect_same_steps(
      [](auto params) {
        return std::make_unique<optim::Adam>(
            params,
            optim::AdamOptions{.lr = 1e-4, .beta1 = 0.0, .beta2 = 0.9, .amsgrad = optim::AmsGrad::kYes});
      },
      0.0, "Adam AMSGrad");
  expect_same_steps(
      [](auto params) {
        return std::make_unique<optim::AdamW>(params, optim::AdamWOptions{.lr = 1e-3, .weight_decay = 0.1});
      },
      0.0, "AdamW");
}

TEST(CudaOptimizer, OptimizersWithoutCudaKernelsSaySo) {
  LOCKSTEP_REQUIRE_CUDA();
  std::vector<nn::NamedTensor> params{{"w", cpu_rand({3}, DType::f32, 1).to(kGpu)}};
  params[0].second.set_grad(cpu_rand({3}, DType::f32, 2).to(kGpu));
  optim::AdaGrad adagrad(params, {});
  EXPECT_THROW(adagrad.step(), NotImplementedError);
}

}  // namespace
}  // namespace lockstep::test
