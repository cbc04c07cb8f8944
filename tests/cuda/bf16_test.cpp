// bf16 (run.precision) on the GPU against the CPU's bf16: cuBLAS multiplies bf16 copies rounded as the CPU
// rounds them and sums in f32 (so the two agree to f32 summation differences), and cuDNN's bf16 convolutions
// agree within the rounding of their bf16 results. Both must be far from the f32 results (the precision took
// effect).
#include <gtest/gtest.h>

#include <cmath>

#include "src/autograd/grad_mode.h"
#include "src/core/precision.h"
#include "tests/cuda/cuda_test_util.h"

namespace lockstep::test {
namespace {

// max |a - b| / max(1, max |b|).
double relative_difference(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double scale = 1.0, worst = 0.0;
  for (double v : y) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
  return worst / scale;
}

TEST(CudaBf16, GemmMultipliesTheCpusRoundedOperands) {
  LOCKSTEP_REQUIRE_CUDA();
  NoGradGuard no_grad;
  const Tensor a = cpu_rand({2, 64, 96}, DType::f32, 41), b = cpu_rand({2, 48, 96}, DType::f32, 42);
  const auto product = [&](Device device) {
    Tensor c = zeros({2, 64, 48}, DType::f32, device);
    kernels::gemm.get(device)(a.to(device), b.to(device), c, Transpose::kNo, Transpose::kYes, 0.5, 0.0);
    return c;
  };
  const Tensor f32 = product(kCPU);
  MatmulPrecisionScope bf16(MatmulPrecision::kBf16);
  const Tensor want = product(kCPU), got = product(kGpu);
  expect_close(got, want, 1e-4, "bf16 GEMM");
  EXPECT_GT(relative_difference(got, f32), 5e-4) << "the GPU's bf16 GEMM computed in f32";
}

TEST(CudaBf16, ConvolutionPassesAgreeWithTheCpusWithinBf16Rounding) {
  LOCKSTEP_REQUIRE_CUDA();
  NoGradGuard no_grad;
  Conv2dParams p;
  p.stride = {2, 2};
  p.padding = {1, 1};
  const Tensor x = cpu_rand({4, 16, 12, 12}, DType::f32, 43), w = cpu_rand({32, 16, 3, 3}, DType::f32, 44);
  const Tensor dy = cpu_rand({4, 32, 6, 6}, DType::f32, 45);
  // forward, input gradient, weight gradient (with the bias gradient) on `device`.
  const auto passes = [&](Device device) {
    Tensor y = empty({4, 32, 6, 6}, DType::f32, device), dx = empty(x.shape(), DType::f32, device);
    Tensor dw = empty(w.shape(), DType::f32, device), db = empty({32}, DType::f32, device);
    kernels::conv2d.get(device)(x.to(device), w.to(device), Tensor(), y, p);
    kernels::conv2d_backward_input.get(device)(dy.to(device), w.to(device), dx, p);
    kernels::conv2d_backward_weight.get(device)(dy.to(device), x.to(device), dw, db, p);
    return std::vector<Tensor>{y, dx, dw, db};
  };
  const std::vector<Tensor> f32 = passes(kCPU);
  MatmulPrecisionScope bf16(MatmulPrecision::kBf16);
  const std::vector<Tensor> want = passes(kCPU), got = passes(kGpu);
  const char* const names[] = {"forward", "input gradient", "weight gradient", "bias gradient"};
  for (std::size_t i = 0; i < 4; ++i) {
    expect_close(got[i], want[i], 1e-2, std::string("bf16 convolution ") + names[i]);
    // The bias gradient is a plain f32 sum of dy on both devices.
    if (i < 3) {
      EXPECT_GT(relative_difference(got[i], f32[i]), 1e-4) << names[i] << " computed in f32 on the GPU";
    }
  }
}

}  // namespace
}  // namespace lockstep::test
