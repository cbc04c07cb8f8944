// Initialisers: sample statistics against PyTorch's formulas on large tensors, bounds, fans, and seeding.
#include "src/nn/init.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "src/core/rng.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"

namespace lockstep::nn {
namespace {

using test::expect_error;

struct Moments {
  double mean = 0;
  double std = 0;
  double max_abs = 0;
};

Moments moments(const Tensor& t) {
  const std::vector<double> v = t.to_vector<double>();
  Moments m;
  for (double x : v) m.mean += x;
  m.mean /= static_cast<double>(v.size());
  for (double x : v) {
    m.std += (x - m.mean) * (x - m.mean);
    m.max_abs = std::max(m.max_abs, std::abs(x));
  }
  m.std = std::sqrt(m.std / static_cast<double>(v.size() - 1));
  return m;
}

TEST(Init, FansFollowTheWeightLayout) {
  EXPECT_EQ(fan_in(zeros({16, 3, 5, 5})), 75);
  EXPECT_EQ(fan_out(zeros({16, 3, 5, 5})), 400);
  EXPECT_EQ(fan_in(zeros({10, 784})), 784);
  EXPECT_EQ(fan_out(zeros({10, 784})), 10);
  expect_error<ValueError>([] { fan_in(zeros({7})); }, {"nn::fan_in", "at least 2 dimensions", "[7]"});
}

TEST(Init, KaimingNormalStdIsSqrtTwoOverFanIn) {
  Generator gen(11);
  const Tensor w = empty({256, 128, 3, 3});  // fan_in 1152, fan_out 2304, 294,912 samples
  kaiming_normal_(w, 0.0, FanMode::kFanIn, &gen);
  const Moments m = moments(w);
  EXPECT_NEAR(m.mean, 0.0, 1e-3 * std::sqrt(2.0 / 1152));
  EXPECT_NEAR(m.std / std::sqrt(2.0 / 1152), 1.0, 0.01);
  kaiming_normal_(w, 0.0, FanMode::kFanOut, &gen);
  EXPECT_NEAR(moments(w).std / std::sqrt(2.0 / 2304), 1.0, 0.01);
  // Leaky ReLU gain sqrt(2 / (1 + a^2)), uniform bound sqrt(3) * std.
  kaiming_uniform_(w, std::sqrt(5.0), FanMode::kFanIn, &gen);
  const Moments u = moments(w);
  const double bound = 1.0 / std::sqrt(1152.0);
  EXPECT_LE(u.max_abs, bound);
  EXPECT_GT(u.max_abs, 0.999 * bound);
  EXPECT_NEAR(u.std / (bound / std::sqrt(3.0)), 1.0, 0.01);
}

TEST(Init, XavierUniformStaysWithinItsBoundAndFillsIt) {
  Generator gen(5);
  const Tensor w = empty({300, 500});
  xavier_uniform_(w, 2.0, &gen);
  const double bound = 2.0 * std::sqrt(6.0 / 800.0);
  const Moments m = moments(w);
  EXPECT_LE(m.max_abs, bound);
  EXPECT_GT(m.max_abs, 0.999 * bound);
  EXPECT_NEAR(m.std / (bound / std::sqrt(3.0)), 1.0, 0.01);
  xavier_normal_(w, 1.0, &gen);
  EXPECT_NEAR(moments(w).std / std::sqrt(2.0 / 800.0), 1.0, 0.01);
}

TEST(Init, SameSeedReproducesAndAnotherSeedDiffers) {
  const Tensor a = empty({64, 32}), b = empty({64, 32}), c = empty({64, 32});
  Generator g1(42), g2(42), g3(43);
  kaiming_uniform_(a, 0.0, FanMode::kFanIn, &g1);
  kaiming_uniform_(b, 0.0, FanMode::kFanIn, &g2);
  kaiming_uniform_(c, 0.0, FanMode::kFanIn, &g3);
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
  EXPECT_NE(a.to_vector<float>(), c.to_vector<float>());
  // The default generator follows manual_seed.
  manual_seed(7);
  normal_(a, 0.0, 1.0);
  manual_seed(7);
  normal_(b, 0.0, 1.0);
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
}

TEST(Init, WorksOnParametersThatRequireGradWithoutRecordingHistory) {
  Tensor p = zeros({4, 4});
  p.requires_grad_(true);
  uniform_(p, -1.0, 1.0);
  constant_(p, 2.5);
  EXPECT_EQ(p.to_vector<float>(), std::vector<float>(16, 2.5f));
  ones_(p);
  EXPECT_EQ(p.to_vector<float>(), std::vector<float>(16, 1.0f));
  zeros_(p);
  EXPECT_EQ(p.to_vector<float>(), std::vector<float>(16, 0.0f));
  EXPECT_TRUE(p.is_leaf());
  EXPECT_TRUE(p.requires_grad());
}

}  // namespace
}  // namespace lockstep::nn
