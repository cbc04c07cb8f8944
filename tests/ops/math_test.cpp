// Math ops beyond the op table: typed errors for bad shapes and dtypes, tie and NaN behaviour of max/min,
// thread-count independence of reductions, and the gradients of linear.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "src/autograd/engine.h"
#include "src/core/threading.h"
#include "src/ops/activation.h"
#include "src/ops/elementwise.h"
#include "src/ops/linalg.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"

namespace lockstep {
namespace {

using test::expect_error;

TEST(MathErrors, MatmulInnerDimensionMismatchNamesBothShapes) {
  expect_error<ValueError>([] { matmul(zeros({2, 3}), zeros({4, 5})); }, {"[2, 3]", "[4, 5]"});
  expect_error<ValueError>([] { matmul(zeros({3}), zeros({4})); }, {"[3]", "[4]"});
  expect_error<ValueError>([] { matmul(zeros({2, 2, 3}), zeros({2, 4, 5})); }, {"[2, 2, 3]", "[2, 4, 5]"});
}

TEST(MathErrors, MatmulBatchMismatchNamesBothShapes) {
  expect_error<ValueError>([] { matmul(zeros({2, 3, 4}), zeros({3, 4, 5})); }, {"[2, 3, 4]", "[3, 4, 5]"});
}

TEST(MathErrors, MatmulMixedDtypesRaiseTypeError) {
  expect_error<TypeError>([] { matmul(zeros({2, 3}), zeros({3, 4}, DType::f64)); }, {"f32", "f64", "[2, 3]"});
  expect_error<TypeError>([] { matmul(zeros({2, 3}, DType::i64), zeros({3, 4}, DType::i64)); }, {});
  expect_error<ValueError>([] { matmul(zeros({}), zeros({3})); }, {});
}

TEST(MathErrors, LinearBadShapes) {
  expect_error<ValueError>([] { linear(zeros({5, 4}), zeros({3, 6})); }, {"[5, 4]", "[3, 6]"});
  expect_error<ValueError>([] { linear(zeros({5, 4}), zeros({3, 4}), zeros({4})); }, {"[4]", "[3, 4]"});
  expect_error<TypeError>([] { linear(zeros({5, 4}), zeros({3, 4}, DType::f64)); }, {});
}

TEST(MathErrors, ReductionDimOutOfRangeRaisesIndexError) {
  const Tensor x = zeros({2, 3});
  expect_error<IndexError>([&] { sum(x, {2}); }, {});
  expect_error<IndexError>([&] { mean(x, {-3}); }, {});
  expect_error<IndexError>([&] { max(x, 2); }, {});
  expect_error<IndexError>([&] { min(x, -3); }, {});
  expect_error<IndexError>([&] { argmax(x, 5); }, {});
  expect_error<IndexError>([&] { argmin(x, -4); }, {});
  expect_error<IndexError>([&] { var(x, {2}); }, {});
}

TEST(MathErrors, MaxOfEmptyRaisesValueError) {
  expect_error<ValueError>([] { max(zeros({3, 0}), 1); }, {"[3, 0]"});
  expect_error<ValueError>([] { min(zeros({0})); }, {});
}

TEST(MathErrors, PreluWrongWeightSizeNamesShapes) {
  expect_error<ValueError>([] { prelu(zeros({2, 3, 4, 4}), zeros({4})); }, {"[2, 3, 4, 4]", "[4]"});
  expect_error<ValueError>([] { prelu(zeros({2, 3}), zeros({3, 1})); }, {});
  expect_error<ValueError>([] { prelu(zeros({6}), zeros({6})); }, {});
}

TEST(MathErrors, BadActivationParameters) {
  expect_error<ValueError>([] { hardtanh(zeros({2}), 1.0, -1.0); }, {});
  expect_error<ValueError>([] { clamp(zeros({2}), 1.0, -1.0); }, {});
  expect_error<TypeError>([] { relu(zeros({2}, DType::i64)); }, {});
}

TEST(MathReduce, MaxAlongDimGradientGoesToFirstTiedPosition) {
  Tensor x = from_vector<double>({1, 3, 3, 2, 5, 5}, {2, 3});
  x.requires_grad_();
  sum(max(x, 1)).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 1, 0, 0, 1, 0}));
  EXPECT_EQ(argmax(x.detach(), 1).to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, 1}));
}

TEST(MathReduce, MaxOfAllSharesGradientBetweenTies) {
  Tensor x = from_vector<double>({1, 4, 4, 2}, {4});
  x.requires_grad_();
  max(x).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 0.5, 0.5, 0}));
}

TEST(MathReduce, NanPropagatesThroughMaxMinAndRelu) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor x = from_vector<double>({1, nan, 3, 0.5, -2, 7}, {2, 3});
  const auto mx = max(x, 1).to_vector<double>();
  EXPECT_TRUE(std::isnan(mx[0]));
  EXPECT_EQ(mx[1], 7.0);
  EXPECT_TRUE(std::isnan(min(x).item()));
  EXPECT_EQ(argmax(x, 1).to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(argmin(x, 1).to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, 1}));
  EXPECT_TRUE(std::isnan(relu(x).to_vector<double>()[1]));
}

TEST(MathReduce, ResultsDoNotDependOnThreadCount) {
  const Tensor x = randn({1 << 20});
  const Tensor cols = randn({100000, 3});
  const int before = num_threads();
  set_num_threads(1);
  const double one = sum(x).item(), one_mean = mean(cols, {0}).to_vector<double>()[2];
  const auto one_max = argmax(cols, 0).to_vector<std::int64_t>();
  set_num_threads(2);
  const double two = sum(x).item(), two_mean = mean(cols, {0}).to_vector<double>()[2];
  const auto two_max = argmax(cols, 0).to_vector<std::int64_t>();
  set_num_threads(before);
  EXPECT_EQ(one, two);
  EXPECT_EQ(one_mean, two_mean);
  EXPECT_EQ(one_max, two_max);
}

TEST(MathReduce, EmptySumIsZeroAndVarOfOneElementIsNan) {
  EXPECT_EQ(sum(zeros({0, 3}), {0}).to_vector<float>(), (std::vector<float>{0, 0, 0}));
  EXPECT_TRUE(std::isnan(var(ones({1})).item()));
  EXPECT_EQ(var(ones({1}), {}, 0).item(), 0.0);
}

TEST(MathLinalg, EmptyInnerDimensionGivesZeros) {
  EXPECT_EQ(matmul(zeros({2, 0}), zeros({0, 3})).to_vector<float>(), std::vector<float>(6, 0.0f));
  EXPECT_EQ(linear(zeros({2, 0}), zeros({3, 0}), ones({3})).to_vector<float>(), std::vector<float>(6, 1.0f));
  EXPECT_EQ(matmul(zeros({0, 4}), zeros({4, 3})).shape(), (Shape{0, 3}));
}

TEST(MathLinalg, LinearMatchesMatmulAndItsGradients) {
  Tensor x = randn({6, 5}, 0.0, 1.0, DType::f64), w = randn({4, 5}, 0.0, 1.0, DType::f64);
  Tensor b = randn({4}, 0.0, 1.0, DType::f64);
  x.requires_grad_();
  w.requires_grad_();
  b.requires_grad_();
  const Tensor y = linear(x, w, b);
  const Tensor want = matmul(x.detach(), w.detach().transpose(0, 1)) + b.detach();
  const auto yv = y.to_vector<double>(), wv = want.to_vector<double>();
  for (std::size_t i = 0; i < yv.size(); ++i) EXPECT_NEAR(yv[i], wv[i], 1e-12);
  sum(y).backward();
  // d sum / dx = ones @ w, d sum / dw = ones^T @ x, d sum / db = rows.
  const auto dx = x.grad().to_vector<double>(), wd = w.detach().to_vector<double>();
  for (std::int64_t i = 0; i < 6; ++i) {
    for (std::int64_t j = 0; j < 5; ++j) {
      double s = 0;
      for (std::int64_t o = 0; o < 4; ++o) s += wd[static_cast<std::size_t>(o * 5 + j)];
      EXPECT_NEAR(dx[static_cast<std::size_t>(i * 5 + j)], s, 1e-12);
    }
  }
  EXPECT_EQ(b.grad().to_vector<double>(), std::vector<double>(4, 6.0));
}

TEST(MathDoubleBackward, SoftplusSecondDerivative) {
  Tensor x = from_vector<double>({-1.5, 0.3, 2.0}, {3});
  x.requires_grad_();
  const Tensor g = grad({sum(softplus(x))}, {x}, {}, RetainGraph::kNo, CreateGraph::kYes)[0];  // sigmoid(x)
  sum(g).backward();
  const auto xs = x.detach().to_vector<double>(), h = x.grad().to_vector<double>();
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const double s = 1.0 / (1.0 + std::exp(-xs[i]));
    EXPECT_NEAR(h[i], s * (1.0 - s), 1e-12);
  }
}

TEST(MathDoubleBackward, LeakyReluGradientIsDifferentiableInTheUpstreamGradient) {
  // d/dc sum(d/dx sum(leaky_relu(x) * c)) = where(x > 0, 1, slope): the gradient-penalty path of a critic.
  Tensor x = from_vector<double>({-1.0, 2.0, -0.5, 0.7}, {4}),
         c = from_vector<double>({1.0, 2.0, 3.0, 4.0}, {4});
  x.requires_grad_();
  c.requires_grad_();
  const Tensor gx = grad({sum(leaky_relu(x, 0.2) * c)}, {x}, {}, RetainGraph::kNo, CreateGraph::kYes)[0];
  sum(gx).backward();
  EXPECT_EQ(c.grad().to_vector<double>(), (std::vector<double>{0.2, 1.0, 0.2, 1.0}));
}

TEST(MathDoubleBackward, MatmulHessianSum) {
  // f = sum(x @ x) for x [n, n]: sum of df/dx over all elements is 2n * sum(x), so its gradient is 2n
  // everywhere.
  Tensor x = randn({3, 3}, 0.0, 1.0, DType::f64);
  x.requires_grad_();
  const Tensor gx = grad({sum(matmul(x, x))}, {x}, {}, RetainGraph::kNo, CreateGraph::kYes)[0];
  sum(gx).backward();
  for (double v : x.grad().to_vector<double>()) EXPECT_NEAR(v, 6.0, 1e-12);
}

TEST(MathDoubleBackward, OutputSavingOpsSecondDerivative) {
  // The saved output regains its history under create_graph: d2/dx2 sum(f(x)) for tanh, sigmoid, exp, elu.
  struct Case {
    const char* name;
    std::function<Tensor(const Tensor&)> f;
    std::function<double(double)> second;
  };
  const Case cases[] = {
      {"tanh", [](const Tensor& x) { return tanh(x); },
       [](double v) { return -2.0 * std::tanh(v) * (1.0 - std::tanh(v) * std::tanh(v)); }},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); },
       [](double v) {
         const double s = 1.0 / (1.0 + std::exp(-v));
         return s * (1.0 - s) * (1.0 - 2.0 * s);
       }},
      {"exp", [](const Tensor& x) { return exp(x); }, [](double v) { return std::exp(v); }},
      {"elu", [](const Tensor& x) { return elu(x, 0.5); },
       [](double v) { return v > 0 ? 0.0 : 0.5 * std::exp(v); }},
      {"sqrt", [](const Tensor& x) { return sqrt(x + 2.0); },
       [](double v) { return -0.25 * std::pow(v + 2.0, -1.5); }},
  };
  for (const Case& c : cases) {
    Tensor x = from_vector<double>({-1.2, -0.3, 0.4, 1.5}, {4});
    x.requires_grad_();
    const Tensor g = grad({sum(c.f(x))}, {x}, {}, RetainGraph::kNo, CreateGraph::kYes)[0];
    sum(g).backward();
    const auto xs = x.detach().to_vector<double>(), h = x.grad().to_vector<double>();
    for (std::size_t i = 0; i < xs.size(); ++i)
      EXPECT_NEAR(h[i], c.second(xs[i]), 1e-12) << c.name << " at " << xs[i];
  }
}

}  // namespace
}  // namespace lockstep
