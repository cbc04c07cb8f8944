// The recurrent layers (src/nn/recurrent.h): each cell's step against a naive f64 reference of its equations,
// backpropagation through 6 unrolled steps against central differences (inputs, initial state and every
// weight; and second order) for one layer and a stack of two, the initialisation (orthogonal recurrent
// blocks, the LSTM's forget bias), and the row-sequence classifier reading images as rows.
#include "src/nn/recurrent.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "src/autograd/grad_mode.h"
#include "src/models/recurrent.h"
#include "src/ops/elementwise.h"
#include "src/ops/reduce.h"
#include "src/ops/shape.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"
#include "tests/support/gradcheck.h"

namespace lockstep::test {
namespace {

using nn::RecurrentKind;
constexpr RecurrentKind kKinds[] = {RecurrentKind::kRnnTanh, RecurrentKind::kRnnRelu, RecurrentKind::kLstm,
                                    RecurrentKind::kGru};

double sigm(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// One step of `kind` by its equations, in plain f64: x [in], h and c [H], W_ih [G H, in], W_hh [G H, H],
// b [G H] (row-major); updates h and c.
void reference_step(RecurrentKind kind, const std::vector<double>& x, std::vector<double>& h,
                    std::vector<double>& c, const std::vector<double>& w_ih, const std::vector<double>& w_hh,
                    const std::vector<double>& b) {
  const std::size_t in = x.size(), H = h.size(), G = b.size() / H;
  std::vector<double> xi(G * H), hh(G * H);
  for (std::size_t r = 0; r < G * H; ++r) {
    xi[r] = b[r];
    for (std::size_t k = 0; k < in; ++k) xi[r] += w_ih[r * in + k] * x[k];
    hh[r] = 0.0;
    for (std::size_t k = 0; k < H; ++k) hh[r] += w_hh[r * H + k] * h[k];
  }
  std::vector<double> next(H);
  for (std::size_t j = 0; j < H; ++j) {
    switch (kind) {
      case RecurrentKind::kRnnTanh:
        next[j] = std::tanh(xi[j] + hh[j]);
        break;
      case RecurrentKind::kRnnRelu:
        next[j] = std::max(0.0, xi[j] + hh[j]);
        break;
      case RecurrentKind::kLstm: {
        const double i = sigm(xi[j] + hh[j]), f = sigm(xi[H + j] + hh[H + j]);
        const double g = std::tanh(xi[2 * H + j] + hh[2 * H + j]), o = sigm(xi[3 * H + j] + hh[3 * H + j]);
        c[j] = f * c[j] + i * g;
        next[j] = o * std::tanh(c[j]);
        break;
      }
      case RecurrentKind::kGru: {
        const double r = sigm(xi[j] + hh[j]), z = sigm(xi[H + j] + hh[H + j]);
        const double n = std::tanh(xi[2 * H + j] + r * hh[2 * H + j]);
        next[j] = (1.0 - z) * n + z * h[j];
        break;
      }
    }
  }
  h = next;
}

TEST(Recurrent, EveryCellFollowsItsEquationsOverSteps) {
  for (const RecurrentKind kind : kKinds) {
    SCOPED_TRACE(nn::recurrent_kind_name(kind));
    manual_seed(11);
    nn::RecurrentLayer layer(kind, 3, 4);
    layer.to(DType::f64);
    const Tensor x = randn({2, 5, 3}, 0.0, 1.0, DType::f64);
    nn::RecurrentState state{randn({2, 4}, 0.0, 0.5, DType::f64), randn({2, 4}, 0.0, 0.5, DType::f64)};
    const std::vector<double> h0 = state.h.to_vector<double>(), c0 = state.c.to_vector<double>();
    NoGradGuard no_grad;
    const std::vector<double> y = layer.forward(x, state).to_vector<double>();  // [2, 5, 4]
    const auto params = layer.named_parameters();
    const std::vector<double> w_ih = params[0].second.to_vector<double>(),
                              w_hh = params[1].second.to_vector<double>(),
                              b = params[2].second.to_vector<double>();
    const std::vector<double> xs = x.to_vector<double>();
    for (std::size_t n = 0; n < 2; ++n) {
      std::vector<double> h(h0.begin() + static_cast<long>(4 * n), h0.begin() + static_cast<long>(4 * n + 4));
      std::vector<double> c(c0.begin() + static_cast<long>(4 * n), c0.begin() + static_cast<long>(4 * n + 4));
      for (std::size_t t = 0; t < 5; ++t) {
        const std::vector<double> xt(xs.begin() + static_cast<long>((n * 5 + t) * 3),
                                     xs.begin() + static_cast<long>((n * 5 + t) * 3 + 3));
        reference_step(kind, xt, h, c, w_ih, w_hh, b);
        for (std::size_t j = 0; j < 4; ++j) EXPECT_NEAR(y[(n * 5 + t) * 4 + j], h[j], 1e-12) << n << " " << t;
      }
      for (std::size_t j = 0; j < 4; ++j) {
        EXPECT_NEAR(state.h.to_vector<double>()[4 * n + j], h[j], 1e-12);
        if (kind == RecurrentKind::kLstm) {
          EXPECT_NEAR(state.c.to_vector<double>()[4 * n + j], c[j], 1e-12);
        }
      }
    }
  }
}

TEST(Recurrent, BackpropagationThroughSixStepsMatchesFiniteDifferences) {
  for (const RecurrentKind kind : kKinds) {
    SCOPED_TRACE(nn::recurrent_kind_name(kind));
    manual_seed(5);
    nn::RecurrentLayer layer(kind, 3, 4);
    layer.to(DType::f64);
    const bool lstm = kind == RecurrentKind::kLstm;
    // Away from ReLU's kink: positive pre-activations stay positive under the differences.
    const Tensor x = randn({2, 6, 3}, 0.0, 1.0, DType::f64).requires_grad_();
    const Tensor h0 = randn({2, 4}, 0.0, 0.5, DType::f64).requires_grad_();
    const Tensor c0 = randn({2, 4}, 0.0, 0.5, DType::f64).requires_grad_();
    const auto f = [&](const std::vector<Tensor>& in) {
      nn::RecurrentState s{in[1], lstm ? in[2] : Tensor()};
      const Tensor y = layer.forward(in[0], s);
      return lstm ? sum(y * y) + sum(s.c * s.c) : sum(y * y);  // through the outputs (and the cell state)
    };
    const std::vector<Tensor> inputs = {x, h0, c0};
    const GradcheckResult first = gradcheck(f, inputs);
    EXPECT_TRUE(first.ok) << first.message;
    if (kind !=
        RecurrentKind::kRnnRelu) {  // ReLU's second derivative is 0 almost everywhere: nothing to test
      const GradcheckResult second = gradgradcheck(f, inputs);
      EXPECT_TRUE(second.ok) << second.message;
    }
    // Every weight: central differences of the same loss against autograd.
    layer.zero_grad();
    f(inputs).backward();
    expect_weights_match_central_differences(layer, [&] { return f(inputs).item(); }, "");
  }
}

TEST(Recurrent, StackedLayersBackpropagateThroughSixSteps) {
  // Two layers (3 -> 4 -> 5) over 6 steps of [B, F] in f64, the second reading the first's outputs: every
  // step's fused cell op in the graph twice over. Inputs, both layers' initial states (first and second
  // order) and every weight of both layers against central differences.
  for (const RecurrentKind kind : kKinds) {
    SCOPED_TRACE(nn::recurrent_kind_name(kind));
    manual_seed(17);
    nn::RecurrentLayer first(kind, 3, 4), second(kind, 4, 5);
    first.to(DType::f64);
    second.to(DType::f64);
    const bool lstm = kind == RecurrentKind::kLstm;
    const std::vector<Tensor> inputs = {randn({6, 2, 3}, 0.0, 1.0, DType::f64).requires_grad_(),  // [T, N, F]
                                        randn({2, 4}, 0.0, 0.5, DType::f64).requires_grad_(),
                                        randn({2, 4}, 0.0, 0.5, DType::f64).requires_grad_(),
                                        randn({2, 5}, 0.0, 0.5, DType::f64).requires_grad_(),
                                        randn({2, 5}, 0.0, 0.5, DType::f64).requires_grad_()};
    const auto f = [&](const std::vector<Tensor>& in) {
      std::vector<Tensor> xs;
      for (std::int64_t t = 0; t < 6; ++t) xs.push_back(in[0].select(0, t));
      nn::RecurrentState s1{in[1], lstm ? in[2] : Tensor()}, s2{in[3], lstm ? in[4] : Tensor()};
      const std::vector<Tensor> ys = second.forward_steps(first.forward_steps(xs, s1), s2);
      Tensor loss = sum(s2.h * s2.h);
      for (std::size_t t = 0; t < ys.size(); t += 2) loss = loss + sum(ys[t] * ys[t]);  // some steps' outputs
      return lstm ? loss + sum(s1.c * s2.c.slice(1, 0, 4)) : loss;
    };
    const std::vector<Tensor> used = lstm ? inputs : std::vector<Tensor>{inputs[0], inputs[1], inputs[3]};
    const auto g = [&](const std::vector<Tensor>& in) {
      return lstm ? f(in) : f({in[0], in[1], Tensor(), in[2], Tensor()});
    };
    const GradcheckResult first_order = gradcheck(g, used);
    EXPECT_TRUE(first_order.ok) << first_order.message;
    if (kind != RecurrentKind::kRnnRelu) {  // ReLU's second derivative is 0 almost everywhere
      const GradcheckResult second_order = gradgradcheck(g, used);
      EXPECT_TRUE(second_order.ok) << second_order.message;
    }
    first.zero_grad();
    second.zero_grad();
    g(used).backward();
    for (nn::RecurrentLayer* layer : {&first, &second}) {
      expect_weights_match_central_differences(*layer, [&] { return g(used).item(); },
                                               layer == &first ? "layer 0 " : "layer 1 ");
    }
  }
}

TEST(Recurrent, RecurrentBlocksStartOrthogonalAndTheForgetBiasAtOne) {
  manual_seed(2);
  nn::RecurrentLayer lstm(RecurrentKind::kLstm, 5, 6);
  const auto params = lstm.named_parameters();
  const Tensor w_hh = params[1].second.to(DType::f64);
  for (std::int64_t g = 0; g < 4; ++g) {
    const std::vector<double> w = w_hh.slice(0, 6 * g, 6 * g + 6).contiguous().to_vector<double>();
    for (int i = 0; i < 6; ++i) {
      for (int j = 0; j < 6; ++j) {
        double dot = 0.0;
        for (int k = 0; k < 6; ++k)
          dot += w[static_cast<std::size_t>(i * 6 + k)] * w[static_cast<std::size_t>(j * 6 + k)];
        EXPECT_NEAR(dot, i == j ? 1.0 : 0.0, 1e-6) << g << " " << i << " " << j;
      }
    }
  }
  const std::vector<float> bias = params[2].second.to_vector<float>();
  for (int j = 6; j < 12; ++j) EXPECT_EQ(bias[static_cast<std::size_t>(j)], 1.0f);
}

TEST(Recurrent, RowClassifierReadsTheRowsInOrder) {
  manual_seed(8);
  models::RowSequenceClassifier model(RecurrentKind::kGru, 2, 5, 3, {4, 6}, 7);
  const Tensor images = randn({3, 2, 5, 3});
  NoGradGuard no_grad;
  const Tensor logits = model.forward(images);
  ASSERT_EQ(logits.shape(), (Shape{3, 7}));
  // Swapping two rows changes the prediction: the model sees an ordered sequence.
  const Tensor swapped = cat({images.slice(2, 1, 2), images.slice(2, 0, 1), images.slice(2, 2, 5)}, 2);
  const std::vector<float> a = logits.to_vector<float>(), b = model.forward(swapped).to_vector<float>();
  double diff = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff = std::max(diff, static_cast<double>(std::abs(a[i] - b[i])));
  EXPECT_GT(diff, 1e-5);
  expect_error<ValueError>(
      [&] {
        model.forward(randn({3, 1, 5, 3}));
      },
      {"expected images [N, 2, 5, 3]", "[3, 1, 5, 3]"});
}

}  // namespace
}  // namespace lockstep::test
