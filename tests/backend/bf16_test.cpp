// bf16 precision (src/core/precision.h): the rounding to bfloat16 against an independent nearest-value
// search, and the CPU GEMM kernel behind matmul and linear against f64 references on rounded operands.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "src/autograd/engine.h"
#include "src/core/precision.h"
#include "src/ops/linalg.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"

namespace lockstep {
namespace {

float from_bits(std::uint32_t u) {
  float x = 0.0f;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

std::uint32_t bits_of(float x) {
  std::uint32_t u = 0;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}

// The bf16 value nearest to finite x by search: of the two bf16 neighbours (x's upper 16 bits, and one more
// unit away from zero), the nearer in exact (double) arithmetic; a tie goes to the even one.
float nearest_bf16(float x) {
  const std::uint32_t lo_bits = bits_of(x) & 0xffff0000u;
  const float lo = from_bits(lo_bits), hi = from_bits(lo_bits + 0x10000u);
  const double dlo = std::abs(static_cast<double>(x) - lo), dhi = std::abs(static_cast<double>(hi) - x);
  if (dlo != dhi) return dlo < dhi ? lo : hi;
  return ((lo_bits >> 16) & 1u) == 0 ? lo : hi;
}

TEST(Bf16, RoundsToTheNearestValueTiesToEven) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<std::uint32_t> any;
  int checked = 0;
  for (int i = 0; i < 200000; ++i) {
    std::uint32_t u = any(rng);
    if (i % 4 == 0) u = (u & 0xffff0000u) | 0x8000u;  // exact ties
    const float x = from_bits(u);
    if (!std::isfinite(x) || std::abs(x) >= 3.3e38f) continue;
    ASSERT_EQ(bits_of(round_to_bf16(x)), bits_of(nearest_bf16(x))) << "x = " << x << " bits " << u;
    ++checked;
  }
  EXPECT_GT(checked, 150000);
  EXPECT_EQ(round_to_bf16(1.0f), 1.0f);
  EXPECT_EQ(round_to_bf16(1.0f + 1.0f / 256), 1.0f);               // tie between 1 and 1 + 2^-7: even (1)
  EXPECT_EQ(round_to_bf16(1.0f + 3.0f / 256), 1.0f + 4.0f / 256);  // tie: even is the upper one
  EXPECT_TRUE(std::isinf(round_to_bf16(std::numeric_limits<float>::max())));  // overflow rounds to inf
  EXPECT_TRUE(std::isinf(round_to_bf16(-std::numeric_limits<float>::infinity())));
  EXPECT_TRUE(std::isnan(round_to_bf16(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(std::isnan(round_to_bf16(from_bits(0x7f800001u))));  // a NaN whose payload is in the low bits
}

std::vector<double> random_values(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> v(n);
  for (double& e : v) e = static_cast<float>(u(rng));
  return v;
}

// a [m, k] @ b [k, n] (b given as [n, k] when b_transposed) in f64 on operands rounded to bf16, with the
// sums of absolute products.
void reference(const std::vector<double>& a, const std::vector<double>& b, std::int64_t m, std::int64_t k,
               std::int64_t n, bool b_transposed, std::vector<double>& c, std::vector<double>& c_abs) {
  c.assign(static_cast<std::size_t>(m * n), 0.0);
  c_abs = c;
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      for (std::int64_t p = 0; p < k; ++p) {
        const double x = round_to_bf16(static_cast<float>(a[static_cast<std::size_t>(i * k + p)]));
        const double y = round_to_bf16(
            static_cast<float>(b[static_cast<std::size_t>(b_transposed ? j * k + p : p * n + j)]));
        c[static_cast<std::size_t>(i * n + j)] += x * y;
        c_abs[static_cast<std::size_t>(i * n + j)] += std::abs(x * y);
      }
    }
  }
}

// got within f32 summation error of want, and (bf16 being in force) far from the unrounded product.
void expect_bf16_product(const Tensor& got, const std::vector<double>& want, const std::vector<double>& abs,
                         const std::vector<double>& exact, const char* what) {
  const std::vector<float> g = got.to_vector<float>();
  ASSERT_EQ(g.size(), want.size()) << what;
  double worst_vs_exact = 0.0;
  for (std::size_t i = 0; i < g.size(); ++i) {
    ASSERT_NEAR(g[i], want[i], 1e-5 * abs[i] + 1e-6) << what << "[" << i << "]";
    worst_vs_exact = std::max(worst_vs_exact, std::abs(g[i] - exact[i]) / (abs[i] + 1e-30));
  }
  EXPECT_GT(worst_vs_exact, 1e-4) << what << ": as close to the f32 product as f32 itself";
}

TEST(Bf16, MatmulAndLinearMultiplyRoundedOperandsInF32) {
  const std::int64_t m = 37, k = 130, n = 21;
  const std::vector<double> a = random_values(static_cast<std::size_t>(m * k), 1),
                            b = random_values(static_cast<std::size_t>(k * n), 2);
  std::vector<double> want, abs, exact, unused;
  reference(a, b, m, k, n, false, want, abs);
  {
    const MatmulPrecisionScope f32(MatmulPrecision::kF32);
    exact =
        matmul(from_vector(a, {m, k}, DType::f32), from_vector(b, {k, n}, DType::f32)).to_vector<double>();
  }
  const MatmulPrecisionScope bf16(MatmulPrecision::kBf16);
  expect_bf16_product(matmul(from_vector(a, {m, k}, DType::f32), from_vector(b, {k, n}, DType::f32)), want,
                      abs, exact, "matmul");
  // Batched, with a transposed operand: the same numbers per batch element.
  const Tensor a2 = from_vector(a, {m, k}, DType::f32).view({1, m, k}).expand({3, m, k}).contiguous();
  const Tensor bt = from_vector(b, {k, n}, DType::f32).transpose(0, 1).contiguous().transpose(0, 1);
  const Tensor batched = matmul(a2, bt.expand({3, k, n}));
  for (std::int64_t i = 0; i < 3; ++i) expect_bf16_product(batched.select(0, i), want, abs, exact, "batched");

  // linear: y = x w^T (w [n, k]), and its weight gradient dy^T x, both through the bf16 GEMM.
  const std::vector<double> w = random_values(static_cast<std::size_t>(n * k), 3);
  std::vector<double> y_want, y_abs, y_exact(static_cast<std::size_t>(m * n), 0.0);
  reference(a, w, m, k, n, true, y_want, y_abs);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      for (std::int64_t p = 0; p < k; ++p)
        y_exact[static_cast<std::size_t>(i * n + j)] +=
            a[static_cast<std::size_t>(i * k + p)] * w[static_cast<std::size_t>(j * k + p)];
  const Tensor x = from_vector(a, {m, k}, DType::f32);
  const Tensor weight = from_vector(w, {n, k}, DType::f32).requires_grad_();
  const Tensor y = linear(x, weight);
  expect_bf16_product(y, y_want, y_abs, y_exact, "linear");
  // d(sum y)/dw = ones [m, n]^T x: each column of x summed, ones rounding exactly, x rounded to bf16.
  sum(y).backward();
  const std::vector<float> dw = weight.grad().to_vector<float>();
  for (std::int64_t j = 0; j < n; ++j) {
    for (std::int64_t p = 0; p < k; ++p) {
      double s = 0.0, s_abs = 0.0;
      for (std::int64_t i = 0; i < m; ++i) {
        const double v = round_to_bf16(static_cast<float>(a[static_cast<std::size_t>(i * k + p)]));
        s += v;
        s_abs += std::abs(v);
      }
      ASSERT_NEAR(dw[static_cast<std::size_t>(j * k + p)], s, 1e-5 * s_abs + 1e-6)
          << "dw[" << j << ", " << p << "]";
    }
  }
}

TEST(Bf16, LeavesF64Alone) {
  const std::vector<double> a{1.0 + 1e-9, 2.0}, b{3.0, 1.0 / 3.0};
  const MatmulPrecisionScope bf16(MatmulPrecision::kBf16);
  const double got = matmul(from_vector(a, {1, 2}), from_vector(b, {2, 1})).item();
  EXPECT_EQ(got, (1.0 + 1e-9) * 3.0 + 2.0 * (1.0 / 3.0));
}

}  // namespace
}  // namespace lockstep
