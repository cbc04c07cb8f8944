// Op cases: activations (sigmoid, tanh, hardtanh, relu, leaky_relu, prelu, elu, softplus).
#include <cmath>

#include "src/ops/activation.h"
#include "tests/support/reference.h"

namespace lockstep::test {
namespace {
using Ts = std::vector<Tensor>;
using Rs = std::vector<RefArray>;

// x [N, C, ...] with slope w [1] or [C] on channel 1.
RefArray ref_prelu(const RefArray& x, const RefArray& w) {
  RefArray out(x.shape);
  const std::int64_t channels = x.shape.size() >= 2 ? x.size(1) : 1;
  std::int64_t inner = 1;
  for (std::size_t d = 2; d < x.shape.size(); ++d) inner *= x.shape[d];
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    const std::int64_t c = (i / inner) % channels;
    const double slope = w.numel() == 1 ? w[0] : w[c];
    out[i] = x[i] > 0 ? x[i] : slope * x[i];
  }
  return out;
}
}  // namespace

LOCKSTEP_OP_CASES(activation) {
  std::vector<OpCase> cases;
  auto act = [&](std::string name, InputSpec in, std::function<Tensor(const Tensor&)> f,
                 std::function<double(double)> r) {
    cases.push_back(
        {name, {in}, [f](const Ts& x) { return f(x[0]); }, [r](const Rs& x) { return ref_map(x[0], r); }});
  };
  auto sigmoid_ref = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  act(
      "activation.sigmoid", uniform({3, 5}, -4.0, 4.0), [](const Tensor& x) { return sigmoid(x); },
      sigmoid_ref);
  act(
      "activation.sigmoid/saturated", uniform({8}, -30.0, 30.0), [](const Tensor& x) { return sigmoid(x); },
      sigmoid_ref);
  act(
      "activation.tanh", uniform({2, 3, 4}, -3.0, 3.0), [](const Tensor& x) { return tanh(x); },
      [](double v) { return std::tanh(v); });
  cases.push_back({"activation.tanh/transposed",
                   {uniform({3, 4}, -2.0, 2.0)},
                   [](const Ts& x) { return tanh(x[0].transpose(0, 1)); },
                   [](const Rs& x) {
                     RefArray out({4, 3});
                     for (std::int64_t i = 0; i < 3; ++i)
                       for (std::int64_t j = 0; j < 4; ++j) out.at({j, i}) = std::tanh(x[0].at({i, j}));
                     return out;
                   }});
  // Bounds lie between the grid points of the distinct inputs, which fall on both sides of them.
  auto hardtanh_ref = [](double lo, double hi) {
    return [lo, hi](double v) { return std::min(hi, std::max(lo, v)); };
  };
  act(
      "activation.hardtanh", distinct({4, 6}, -2.0, 2.0), [](const Tensor& x) { return hardtanh(x); },
      hardtanh_ref(-1.0, 1.0));
  act(
      "activation.hardtanh/custom_bounds", distinct({3, 5}, -1.0, 3.0),
      [](const Tensor& x) { return hardtanh(x, 0.1, 2.05); }, hardtanh_ref(0.1, 2.05));
  auto relu_ref = [](double v) { return v > 0 ? v : 0.0; };
  act(
      "activation.relu", away_from_zero({4, 5}), [](const Tensor& x) { return relu(x); }, relu_ref);
  act(
      "activation.relu/odd_size", away_from_zero({37}), [](const Tensor& x) { return relu(x); }, relu_ref);
  cases.push_back({"activation.relu/strided",
                   {away_from_zero({4, 6})},
                   [](const Ts& x) { return relu(x[0].slice(1, 1, 6, 2)); },
                   [](const Rs& x) {
                     RefArray out({4, 3});
                     for (std::int64_t i = 0; i < 4; ++i)
                       for (std::int64_t j = 0; j < 3; ++j)
                         out.at({i, j}) = std::max(0.0, x[0].at({i, 1 + 2 * j}));
                     return out;
                   }});
  act(
      "activation.leaky_relu", away_from_zero({3, 4}), [](const Tensor& x) { return leaky_relu(x); },
      [](double v) { return v > 0 ? v : 0.01 * v; });
  act(
      "activation.leaky_relu/slope_0.2", away_from_zero({2, 3, 4}),
      [](const Tensor& x) { return leaky_relu(x, 0.2); }, [](double v) { return v > 0 ? v : 0.2 * v; });
  act(
      "activation.elu", away_from_zero({3, 5}, 0.1, 3.0), [](const Tensor& x) { return elu(x); },
      [](double v) { return v > 0 ? v : std::exp(v) - 1.0; });
  act(
      "activation.elu/alpha_0.5", away_from_zero({3, 4}, 0.1, 3.0),
      [](const Tensor& x) { return elu(x, 0.5); },
      [](double v) { return v > 0 ? v : 0.5 * (std::exp(v) - 1.0); });
  act(
      "activation.softplus", uniform({3, 5}, -5.0, 5.0), [](const Tensor& x) { return softplus(x); },
      [](double v) { return std::log(1.0 + std::exp(v)); });
  // beta 2, threshold 3: linear above x = 1.5 (no grid point there), so both branches are exercised.
  act(
      "activation.softplus/beta_threshold", distinct({12}, -3.0, 3.0),
      [](const Tensor& x) { return softplus(x, 2.0, 3.0); },
      [](double v) { return 2.0 * v > 3.0 ? v : std::log(1.0 + std::exp(2.0 * v)) / 2.0; });
  cases.push_back({"activation.prelu/shared",
                   {away_from_zero({3, 4}), uniform({1}, 0.05, 0.5)},
                   [](const Ts& x) { return prelu(x[0], x[1]); },
                   [](const Rs& x) { return ref_prelu(x[0], x[1]); }});
  cases.push_back({"activation.prelu/per_channel_nchw",
                   {away_from_zero({2, 3, 2, 2}), uniform({3}, 0.05, 0.5)},
                   [](const Ts& x) { return prelu(x[0], x[1]); },
                   [](const Rs& x) { return ref_prelu(x[0], x[1]); }});
  cases.push_back({"activation.prelu/per_channel_2d",
                   {away_from_zero({4, 3}), uniform({3}, 0.05, 0.5)},
                   [](const Ts& x) { return prelu(x[0], x[1]); },
                   [](const Rs& x) { return ref_prelu(x[0], x[1]); }});
  cases.push_back({"activation.prelu/shared_nchw",
                   {away_from_zero({2, 2, 3, 1}), uniform({1}, 0.05, 0.5)},
                   [](const Ts& x) { return prelu(x[0], x[1]); },
                   [](const Rs& x) { return ref_prelu(x[0], x[1]); }});
  return cases;
}

}  // namespace lockstep::test
