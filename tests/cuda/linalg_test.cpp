// CUDA GEMM (cuBLAS) against the CPU GEMM: through the kernel slot (2-D, batched, broadcast batches,
// transposes, alpha and beta) and through matmul and linear; f32 within 1e-5 relative, f64 within 1e-12.
#include <gtest/gtest.h>

#include "src/autograd/grad_mode.h"
#include "src/ops/linalg.h"
#include "tests/cuda/cuda_test_util.h"

namespace lockstep::test {
namespace {

struct GemmCase {
  std::int64_t batch_a, batch_b, m, n, k;
  Transpose ta, tb;
  double alpha, beta;
};

std::string describe(const GemmCase& c) {
  return str_cat("a batch ", c.batch_a, ", b batch ", c.batch_b, ", m ", c.m, ", n ", c.n, ", k ", c.k, ", ta ",
             c.ta == Transpose::kYes, ", tb ", c.tb == Transpose::kYes, ", alpha ", c.alpha, ", beta ", c.beta);
}

TEST(CudaGemm, MatchesCpu) {
  LOCKSTEP_REQUIRE_CUDA();
  NoGradGuard no_grad;
  constexpr auto kN = Transpose::kNo;
  constexpr auto kT = Transpose::kYes;
  const std::vector<GemmCase> cases = {
      {1, 1, 5, 7, 3, kN, kN, 1.0, 0.0},      // 2-D
      {1, 1, 64, 48, 130, kN, kN, 1.0, 0.0},  // 2-D, larger k
      {4, 4, 6, 5, 9, kN, kN, 1.0, 0.0},      // batched
      {4, 1, 6, 5, 9, kN, kN, 1.0, 0.0},      // b broadcast over the batch
      {1, 3, 6, 5, 9, kN, kN, 1.0, 0.0},      // a broadcast over the batch
      {2, 2, 6, 5, 9, kT, kN, 1.0, 0.0},
      {2, 2, 6, 5, 9, kN, kT, 1.0, 0.0},
      {3, 1, 6, 5, 9, kT, kT, 0.5, 0.0},
      {2, 2, 4, 3, 8, kN, kN, 2.0, 0.5},      // accumulate into c
      {2, 2, 4, 3, 0, kN, kN, 1.0, 0.25},     // k = 0: c = beta * c
  };
  std::uint64_t seed = 100;
  for (DType dtype : {DType::f32, DType::f64}) {
    for (const auto& c : cases) {
      const std::int64_t batch = std::max(c.batch_a, c.batch_b);
      const Shape sa = c.ta == kN ? Shape{c.batch_a, c.m, c.k} : Shape{c.batch_a, c.k, c.m};
      const Shape sb = c.tb == kN ? Shape{c.batch_b, c.k, c.n} : Shape{c.batch_b, c.n, c.k};
      const Tensor a = cpu_rand(sa, dtype, seed++), b = cpu_rand(sb, dtype, seed++);
      const Tensor c0 = cpu_rand({batch, c.m, c.n}, dtype, seed++);
      const Tensor want = c0.clone();
      kernels::gemm.get(kCPU)(a, b, want, c.ta, c.tb, c.alpha, c.beta);
      const Tensor got = c0.to(kGpu);
      kernels::gemm.get(kGpu)(a.to(kGpu), b.to(kGpu), got, c.ta, c.tb, c.alpha, c.beta);
      expect_close(got, want, dtype == DType::f32 ? 1e-5 : 1e-12, std::string(dtype_name(dtype)) + " " + describe(c));
    }
  }
}

TEST(CudaGemm, BetaZeroIgnoresGarbageInOutput) {
  LOCKSTEP_REQUIRE_CUDA();
  NoGradGuard no_grad;
  const Tensor a = cpu_rand({1, 3, 4}, DType::f32, 7), b = cpu_rand({1, 4, 2}, DType::f32, 8);
  const Tensor want = zeros({1, 3, 2});
  kernels::gemm.get(kCPU)(a, b, want, Transpose::kNo, Transpose::kNo, 1.0, 0.0);
  const Tensor got = full({1, 3, 2}, std::nan(""), DType::f32, kGpu);
  kernels::gemm.get(kGpu)(a.to(kGpu), b.to(kGpu), got, Transpose::kNo, Transpose::kNo, 1.0, 0.0);
  expect_close(got, want, 1e-5, "beta 0 over NaN");
}

struct MatmulCase {
  Shape a, b;
  bool transpose_a;  // pass a.transpose(-1, -2) of a tensor drawn with the last two sizes swapped
};

TEST(CudaMatmul, MatchesCpu) {
  LOCKSTEP_REQUIRE_CUDA();
  NoGradGuard no_grad;
  const std::vector<MatmulCase> cases = {
      {{5, 3}, {3, 7}, false},           // 2-D
      {{6, 33}, {33, 17}, true},         // 2-D, transposed a
      {{4, 6, 5}, {5, 3}, false},        // batched a, shared b
      {{6, 5}, {4, 5, 3}, false},        // shared a, batched b
      {{2, 1, 4, 5}, {3, 5, 6}, false},  // broadcast batch dimensions on both sides
      {{3, 4, 5}, {3, 5, 2}, true},      // batched, transposed a
      {{5}, {5, 4}, false},              // vector-matrix
      {{4, 5}, {5}, false},              // matrix-vector
  };
  std::uint64_t seed = 200;
  for (DType dtype : {DType::f32, DType::f64}) {
    for (const auto& c : cases) {
      Shape drawn_a = c.a;
      if (c.transpose_a) std::swap(drawn_a[drawn_a.size() - 1], drawn_a[drawn_a.size() - 2]);
      const Tensor a0 = cpu_rand(drawn_a, dtype, seed++), b = cpu_rand(c.b, dtype, seed++);
      const Tensor a = c.transpose_a ? a0.transpose(-1, -2) : a0;
      const Tensor ga = c.transpose_a ? a0.to(kGpu).transpose(-1, -2) : a0.to(kGpu);
      const Tensor got = matmul(ga, b.to(kGpu));
      EXPECT_EQ(got.device(), kGpu);
      expect_close(got, matmul(a, b), dtype == DType::f32 ? 1e-5 : 1e-12,
                   str_cat(dtype_name(dtype), " ", shape_str(c.a), " @ ", shape_str(c.b), c.transpose_a ? " (a^T)" : ""));
    }
  }
}

TEST(CudaMatmul, LinearWithBiasMatchesCpu) {
  LOCKSTEP_REQUIRE_CUDA();
  NoGradGuard no_grad;
  for (DType dtype : {DType::f32, DType::f64}) {
    const Tensor x = cpu_rand({2, 3, 8}, dtype, 300), w = cpu_rand({5, 8}, dtype, 301), bias = cpu_rand({5}, dtype, 302);
    expect_close(linear(x.to(kGpu), w.to(kGpu), bias.to(kGpu)), linear(x, w, bias), dtype == DType::f32 ? 1e-5 : 1e-12,
                 std::string("linear ") + dtype_name(dtype));
  }
}

}  // namespace
}  // namespace lockstep::test
