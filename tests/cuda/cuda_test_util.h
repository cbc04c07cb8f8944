// Helpers of the CUDA tests: the skip-without-GPU guard and comparisons of CUDA results with CPU results.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "src/backend/cuda/device.h"
#include "src/ops/kernels.h"
#include "src/tensor/factories.h"

// Skips the current test, with the runtime's reason, when no CUDA device is usable.
#define LOCKSTEP_REQUIRE_CUDA()                                                                    \
  do {                                                                                             \
    ::lockstep::ensure_backends_registered();                                                      \
    if (!::lockstep::cuda::cuda_is_available()) {                                                  \
      GTEST_SKIP() << "no CUDA device: " << ::lockstep::cuda::cuda_unavailable_reason();          \
    }                                                                                              \
  } while (false)

namespace lockstep::test {

inline constexpr Device kGpu{DeviceType::CUDA, 0};

// Uniform values in [lo, hi) drawn on the CPU (deterministic seed), as a CPU tensor.
inline Tensor cpu_rand(const Shape& shape, DType dtype, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Generator gen(seed);
  return rand(shape, lo, hi, dtype, kCPU, &gen);
}

// Expects `got` (any device) to equal `want` (CPU) within max|got - want| <= rtol * max(1, max|want|).
inline void expect_close(const Tensor& got, const Tensor& want, double rtol, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double scale = 1.0, worst = 0.0;
  std::size_t worst_at = 0;
  for (double v : w) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < g.size(); ++i) {
    const double d = std::abs(g[i] - w[i]);
    if (!(d <= worst)) {
      worst = d;
      worst_at = i;
    }
  }
  EXPECT_LE(worst, rtol * scale) << what << ": element " << worst_at << " is " << g[worst_at] << ", CPU says "
                                 << w[worst_at];
}

// Expects bit-identical values (same dtype, same shape).
inline void expect_identical(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  std::size_t differ = 0;
  for (std::size_t i = 0; i < g.size(); ++i) {
    if (g[i] != w[i] && differ++ < 3) ADD_FAILURE() << what << ": element " << i << " is " << g[i] << ", expected " << w[i];
  }
  EXPECT_EQ(differ, 0u) << what;
}

}  // namespace lockstep::test
