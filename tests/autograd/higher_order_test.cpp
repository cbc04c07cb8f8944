// Higher-order gradients as the training losses that need them use them: the WGAN-GP gradient penalty
// (grad of the critic with create_graph, then backward through the penalty into the critic's parameters) and
// the contractive autoencoder's Jacobian penalty, each checked against central differences of the penalty in
// f64 (and the Jacobian penalty's value against its closed form).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "src/autograd/engine.h"
#include "src/ops/activation.h"
#include "src/ops/elementwise.h"
#include "src/ops/linalg.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/ops/softmax.h"
#include "src/tensor/factories.h"

namespace lockstep {
namespace {

using F64 = std::vector<double>;

struct Param {
  Shape shape;
  F64 values;
};

F64 random_values(std::int64_t n, unsigned seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-scale, scale);
  F64 out(static_cast<std::size_t>(n));
  for (auto& v : out) v = u(rng);
  return out;
}

// Builds the parameters as fresh f64 leaves, evaluates `penalty` on them and backpropagates it; returns the
// penalty and, when `grads` is given, fills it with the parameters' .grad.
using Penalty = std::function<Tensor(const std::vector<Tensor>&)>;
double value_and_grads(const Penalty& penalty, const std::vector<Param>& params, std::vector<F64>* grads) {
  std::vector<Tensor> leaves;
  for (const auto& p : params) leaves.push_back(from_vector(p.values, p.shape).requires_grad_());
  const Tensor value = penalty(leaves);
  if (grads != nullptr) {
    value.backward();
    grads->clear();
    // A parameter the penalty does not depend on (the critic's last bias) gets no gradient: 0.
    for (const auto& l : leaves) {
      grads->push_back(l.grad().defined() ? l.grad().to_vector<double>()
                                          : F64(static_cast<std::size_t>(l.numel()), 0.0));
    }
  }
  return value.item();
}

// Checks d penalty / d params from backward against central differences.
void expect_matches_finite_differences(const Penalty& penalty, const std::vector<Param>& params) {
  std::vector<F64> analytic;
  value_and_grads(penalty, params, &analytic);
  const double eps = 1e-6;
  int checked = 0;
  for (std::size_t k = 0; k < params.size(); ++k) {
    for (std::size_t e = 0; e < params[k].values.size(); ++e) {
      std::vector<Param> up = params, down = params;
      up[k].values[e] += eps;
      down[k].values[e] -= eps;
      const double numeric =
          (value_and_grads(penalty, up, nullptr) - value_and_grads(penalty, down, nullptr)) / (2 * eps);
      EXPECT_NEAR(analytic[k][e], numeric, 1e-6 + 1e-5 * std::abs(numeric))
          << "parameter " << k << " element " << e;
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

// The WGAN-GP penalty of a two-layer critic D(x) = W2 act(W1 x + b1) + b2 at points x_hat [N, 3]:
// mean over samples of (|| dD/dx_hat ||_2 - 1)^2.
Penalty gradient_penalty(std::function<Tensor(const Tensor&)> act) {
  return [act](const std::vector<Tensor>& p) {
    const Tensor x_hat = from_vector(random_values(4 * 3, 7, 2.0), {4, 3}).requires_grad_();
    const Tensor critic = linear(act(linear(x_hat, p[0], p[1])), p[2], p[3]);
    const Tensor g = grad({sum(critic)}, {x_hat}, {}, RetainGraph::kNo, CreateGraph::kYes)[0];
    const Tensor norm = sqrt(sum(g * g, {1}));
    return mean(square(norm - 1.0));
  };
}

std::vector<Param> critic_params() {
  return {{{5, 3}, random_values(15, 1)},
          {{5}, random_values(5, 2)},
          {{1, 5}, random_values(5, 3)},
          {{1}, random_values(1, 4)}};
}

TEST(HigherOrder, WganGpPenaltyThroughLeakyRelu) {
  expect_matches_finite_differences(gradient_penalty([](const Tensor& h) { return leaky_relu(h, 0.2); }),
                                    critic_params());
}

TEST(HigherOrder, WganGpPenaltyThroughSmoothActivations) {
  expect_matches_finite_differences(gradient_penalty([](const Tensor& h) { return tanh(h); }),
                                    critic_params());
  expect_matches_finite_differences(gradient_penalty([](const Tensor& h) { return elu(h, 0.7); }),
                                    critic_params());
  expect_matches_finite_differences(gradient_penalty([](const Tensor& h) { return softplus(h, 1.5); }),
                                    critic_params());
  expect_matches_finite_differences(gradient_penalty([](const Tensor& h) { return log_softmax(h, 1); }),
                                    critic_params());
}

// The contractive penalty ||dh/dx||_F^2 of the encoder h = sigmoid(W x + b), x [N, 3], h [N, 4], one grad per
// hidden unit, plus a reconstruction-style loss, so the total mixes first- and second-order terms.
Tensor contractive_loss(const std::vector<Tensor>& p) {
  const Tensor x = from_vector(random_values(3 * 3, 11), {3, 3}).requires_grad_();
  const Tensor h = sigmoid(linear(x, p[0], p[1]));
  Tensor penalty = zeros({}, DType::f64);
  for (std::int64_t j = 0; j < h.size(1); ++j) {
    const Tensor g = grad({sum(h.select(1, j))}, {x}, {}, RetainGraph::kYes, CreateGraph::kYes)[0];
    penalty = penalty + sum(g * g);
  }
  return penalty;
}

TEST(HigherOrder, ContractivePenaltyMatchesItsClosedFormAndFiniteDifferences) {
  const std::vector<Param> params = {{{4, 3}, random_values(12, 5)}, {{4}, random_values(4, 6)}};
  // ||J||_F^2 = sum_n sum_j (h_nj (1 - h_nj))^2 sum_k W_jk^2
  const F64 x = random_values(9, 11);
  double want = 0.0;
  for (int n = 0; n < 3; ++n) {
    for (int j = 0; j < 4; ++j) {
      double pre = params[1].values[static_cast<std::size_t>(j)], w2 = 0.0;
      for (int k = 0; k < 3; ++k) {
        const double w = params[0].values[static_cast<std::size_t>(j * 3 + k)];
        pre += w * x[static_cast<std::size_t>(n * 3 + k)];
        w2 += w * w;
      }
      const double h = 1.0 / (1.0 + std::exp(-pre));
      want += h * (1 - h) * h * (1 - h) * w2;
    }
  }
  EXPECT_NEAR(value_and_grads(contractive_loss, params, nullptr), want, 1e-12 * std::max(1.0, want));
  expect_matches_finite_differences(contractive_loss, params);
}

// Losses take part too: the gradient of cross-entropy (label smoothing) and BCE-with-logits with respect to
// the logits, penalised, differentiated again.
TEST(HigherOrder, PenaltyOnLossGradients) {
  const Tensor target = from_vector(F64{0, 2, 1}, {3}).to(DType::i64);
  const Tensor bits = from_vector(F64{1, 0, 0, 1, 1, 0}, {3, 2});
  const Penalty penalty = [&](const std::vector<Tensor>& p) {
    const Tensor x = from_vector(random_values(3 * 2, 13), {3, 2}).requires_grad_();
    const Tensor logits = linear(tanh(linear(x, p[0], p[1])), p[2]);  // [3, 3]
    const Tensor loss = cross_entropy(logits, target, Reduction::kMean, 0.1) +
                        binary_cross_entropy_with_logits(logits.slice(1, 0, 2), bits);
    const Tensor g = grad({loss}, {x}, {}, RetainGraph::kNo, CreateGraph::kYes)[0];
    return sum(g * g) + loss;
  };
  expect_matches_finite_differences(
      penalty,
      {{{4, 2}, random_values(8, 21)}, {{4}, random_values(4, 22)}, {{3, 4}, random_values(12, 23)}});
}

}  // namespace
}  // namespace lockstep
