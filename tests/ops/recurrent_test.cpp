// The fused recurrent cells beyond the op table: forward and gradients against the same step composed of
// primitive ops (slices, sigmoid, tanh, relu, mul, add) in f32 and f64 at sizes that run the 8-lane kernels,
// their tails and the parallel row split; thread-count independence; NaN propagation; typed errors.
#include "src/ops/recurrent.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "src/autograd/engine.h"
#include "src/autograd/grad_mode.h"
#include "src/core/threading.h"
#include "src/ops/activation.h"
#include "src/ops/elementwise.h"
#include "src/ops/reduce.h"
#include "src/ops/shape.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"

namespace lockstep::test {
namespace {

Tensor block(const Tensor& t, std::int64_t k, std::int64_t H) { return t.slice(1, k * H, (k + 1) * H); }

// The steps as the layers composed them before the fused ops: the naive references of primitive ops.
std::vector<Tensor> composed_lstm(const Tensor& gi, const Tensor& gh, const Tensor& c) {
  const std::int64_t H = c.size(1);
  const Tensor gate = gi + gh;
  const Tensor i = sigmoid(block(gate, 0, H)), f = sigmoid(block(gate, 1, H));
  const Tensor g = tanh(block(gate, 2, H)), o = sigmoid(block(gate, 3, H));
  const Tensor c_new = f * c + i * g;
  return {o * tanh(c_new), c_new};
}

Tensor composed_gru(const Tensor& gi, const Tensor& gh, const Tensor& h) {
  const std::int64_t H = h.size(1);
  const Tensor r = sigmoid(block(gi, 0, H) + block(gh, 0, H));
  const Tensor z = sigmoid(block(gi, 1, H) + block(gh, 1, H));
  const Tensor n = tanh(block(gi, 2, H) + r * block(gh, 2, H));
  return n + z * (h - n);
}

struct CellCase {
  std::string name;
  std::int64_t gates;
  bool has_state;
  // inputs {gi, gh, state} -> outputs
  std::function<std::vector<Tensor>(const std::vector<Tensor>&)> fused, composed;
};

std::vector<CellCase> cell_cases() {
  return {
      {"rnn_tanh", 1, false,
       [](const auto& x) { return std::vector<Tensor>{rnn_cell(x[0], x[1], RnnActivation::kTanh)}; },
       [](const auto& x) { return std::vector<Tensor>{tanh(x[0] + x[1])}; }},
      {"rnn_relu", 1, false,
       [](const auto& x) { return std::vector<Tensor>{rnn_cell(x[0], x[1], RnnActivation::kRelu)}; },
       [](const auto& x) { return std::vector<Tensor>{relu(x[0] + x[1])}; }},
      {"lstm", 4, true,
       [](const auto& x) {
         const LstmCellOutput y = lstm_cell(x[0], x[1], x[2]);
         return std::vector<Tensor>{y.h, y.c};
       },
       [](const auto& x) { return composed_lstm(x[0], x[1], x[2]); }},
      {"gru", 3, true, [](const auto& x) { return std::vector<Tensor>{gru_cell(x[0], x[1], x[2])}; },
       [](const auto& x) { return std::vector<Tensor>{composed_gru(x[0], x[1], x[2])}; }},
  };
}

void expect_near(const Tensor& got, const Tensor& want, double rtol, double atol, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  int bad = 0;
  for (std::size_t i = 0; i < g.size(); ++i) {
    if (std::abs(g[i] - w[i]) > atol + rtol * std::abs(w[i]) && bad++ < 5)
      ADD_FAILURE() << what << " element " << i << ": fused " << g[i] << ", composed " << w[i];
  }
  EXPECT_EQ(bad, 0) << what;
}

// Forward outputs and the gradients of every input under random output gradients, fused against composed.
void compare_with_composed(const CellCase& c, DType dtype, std::int64_t B, std::int64_t H, double rtol,
                           double atol) {
  SCOPED_TRACE(c.name + (dtype == DType::f64 ? " f64" : " f32") + " B=" + std::to_string(B) +
               " H=" + std::to_string(H));
  manual_seed(7);
  std::vector<Tensor> inputs = {randn({B, c.gates * H}, 0.0, 1.5, dtype),
                                randn({B, c.gates * H}, 0.0, 1.0, dtype)};
  if (c.has_state) inputs.push_back(randn({B, H}, 0.0, 1.0, dtype));
  for (Tensor& t : inputs) t.requires_grad_();
  const std::vector<Tensor> fused = c.fused(inputs), composed = c.composed(inputs);
  ASSERT_EQ(fused.size(), composed.size());
  std::vector<Tensor> seeds;
  for (const Tensor& y : fused) seeds.push_back(randn(y.shape(), 0.0, 1.0, dtype));
  for (std::size_t k = 0; k < fused.size(); ++k)
    expect_near(fused[k], composed[k], rtol, atol, "output " + std::to_string(k));
  const std::vector<Tensor> df = grad(fused, inputs, seeds), dc = grad(composed, inputs, seeds);
  for (std::size_t k = 0; k < inputs.size(); ++k)
    expect_near(df[k], dc[k], rtol, atol, "gradient of input " + std::to_string(k));
}

TEST(RecurrentCell, MatchesTheStepComposedOfPrimitiveOps) {
  // H = 130: sixteen 8-lane groups and a tail of 2; B = 64 puts the LSTM above the parallel grain.
  for (const CellCase& c : cell_cases()) {
    compare_with_composed(c, DType::f64, 3, 13, 1e-12, 1e-13);
    compare_with_composed(c, DType::f32, 3, 13, 2e-5, 2e-6);
    compare_with_composed(c, DType::f32, 64, 130, 2e-5, 2e-6);
  }
}

TEST(RecurrentCell, ResultsDoNotDependOnThreadCount) {
  const int before = num_threads();
  for (const CellCase& c : cell_cases()) {
    SCOPED_TRACE(c.name);
    manual_seed(3);
    std::vector<Tensor> inputs = {randn({96, c.gates * 130}), randn({96, c.gates * 130})};
    if (c.has_state) inputs.push_back(randn({96, 130}));
    for (Tensor& t : inputs) t.requires_grad_();
    std::vector<std::vector<double>> runs[2];
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      const std::vector<Tensor> y = c.fused(inputs);
      std::vector<Tensor> seeds;
      for (const Tensor& t : y) seeds.push_back(ones(t.shape()));
      std::vector<Tensor> all = y;
      for (const Tensor& g : grad(y, inputs, seeds)) all.push_back(g);
      for (const Tensor& t : all) runs[threads - 1].push_back(t.to_vector<double>());
    }
    EXPECT_EQ(runs[0], runs[1]);
  }
  set_num_threads(before);
}

TEST(RecurrentCell, NanPropagatesThroughEveryLane) {
  for (const CellCase& c : cell_cases()) {
    SCOPED_TRACE(c.name);
    Tensor gi = zeros({2, c.gates * 11}), gh = zeros({2, c.gates * 11});
    // A NaN in the first gate block of unit 3 (a vector lane) and unit 9 (the tail).
    gi.select(1, 3).fill_(std::numeric_limits<double>::quiet_NaN());
    gi.select(1, 9).fill_(std::numeric_limits<double>::quiet_NaN());
    const std::vector<Tensor> inputs = {gi, gh, zeros({2, 11})};
    NoGradGuard no_grad;
    const std::vector<double> h = c.fused(inputs)[0].to_vector<double>();
    for (std::size_t b = 0; b < 2; ++b) {
      EXPECT_TRUE(std::isnan(h[b * 11 + 3]));
      EXPECT_TRUE(std::isnan(h[b * 11 + 9]));
      EXPECT_FALSE(std::isnan(h[b * 11 + 4]));
    }
  }
}

TEST(RecurrentCell, SaturatedGatesStayInRange) {
  // Far beyond the f32 approximations' clamps: exact 0, 1 and -1 limits, no overflow to inf or NaN.
  Tensor gi = zeros({1, 4 * 8}), gh = zeros({1, 4 * 8});
  for (std::int64_t j = 0; j < 32; ++j) gi.select(1, j).fill_(j % 2 == 0 ? 1e4 : -1e4);
  NoGradGuard no_grad;
  const LstmCellOutput y = lstm_cell(gi, gh, ones({1, 8}));
  for (const double v : y.h.to_vector<double>()) EXPECT_TRUE(std::isfinite(v) && std::abs(v) <= 1.0) << v;
  for (const double v : y.c.to_vector<double>()) EXPECT_TRUE(std::isfinite(v)) << v;
}

TEST(RecurrentCell, ErrorsNameTheCellAndTheShapes) {
  expect_thrown<ValueError>(
      [] {
        lstm_cell(zeros({2, 10}), zeros({2, 10}), zeros({2, 2}));
      },
      {"lstm_cell", "gi", "[2, 10]", "4 gate blocks"});
  expect_thrown<ValueError>(
      [] {
        gru_cell(zeros({2, 6}), zeros({2, 9}), zeros({2, 2}));
      },
      {"gru_cell", "gh", "[2, 6]", "[2, 9]"});
  expect_thrown<ValueError>(
      [] {
        gru_cell(zeros({2, 6}), zeros({2, 6}), zeros({3, 2}));
      },
      {"gru_cell", "h of shape [2, 2]", "[3, 2]"});
  expect_thrown<TypeError>(
      [] {
        rnn_cell(zeros({2, 3}), zeros({2, 3}, DType::f64), RnnActivation::kTanh);
      },
      {"rnn_cell", "f32", "f64"});
  expect_thrown<TypeError>(
      [] {
        lstm_cell(zeros({2, 8}), zeros({2, 8}), zeros({2, 2}, DType::f64));
      },
      {"lstm_cell", "c of dtype f32", "f64"});
}

}  // namespace
}  // namespace lockstep::test
