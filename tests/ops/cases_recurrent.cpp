// Op cases: the fused recurrent cells (rnn_cell tanh and relu, lstm_cell, gru_cell) against their equations
// in plain double. H = 11 covers one 8-lane group and a scalar tail of the f32 kernels.
#include <cmath>

#include "src/ops/recurrent.h"
#include "src/ops/shape.h"
#include "tests/support/op_case.h"

namespace lockstep::test {
namespace {
using Ts = std::vector<Tensor>;
using Rs = std::vector<RefArray>;

constexpr std::int64_t kB = 2, kH = 11;

double sigm(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// Gate k's pre-activation gi + gh of unit (b, j), for gi, gh [B, G H].
double pre(const Rs& x, std::int64_t b, std::int64_t k, std::int64_t j) {
  return x[0].at({b, k * kH + j}) + x[1].at({b, k * kH + j});
}

RefArray ref_rnn(const Rs& x, bool relu) {
  RefArray h({kB, kH});
  for (std::int64_t b = 0; b < kB; ++b)
    for (std::int64_t j = 0; j < kH; ++j) {
      const double v = pre(x, b, 0, j);
      h.at({b, j}) = relu ? std::max(0.0, v) : std::tanh(v);
    }
  return h;
}

// [h', c'] side by side: [B, 2 H].
RefArray ref_lstm(const Rs& x, bool with_c) {
  RefArray out({kB, with_c ? 2 * kH : kH});
  for (std::int64_t b = 0; b < kB; ++b)
    for (std::int64_t j = 0; j < kH; ++j) {
      const double i = sigm(pre(x, b, 0, j)), f = sigm(pre(x, b, 1, j));
      const double g = std::tanh(pre(x, b, 2, j)), o = sigm(pre(x, b, 3, j));
      const double c = f * x[2].at({b, j}) + i * g;
      out.at({b, j}) = o * std::tanh(c);
      if (with_c) out.at({b, kH + j}) = c;
    }
  return out;
}

RefArray ref_gru(const Rs& x) {
  RefArray out({kB, kH});
  for (std::int64_t b = 0; b < kB; ++b)
    for (std::int64_t j = 0; j < kH; ++j) {
      const double r = sigm(pre(x, b, 0, j)), z = sigm(pre(x, b, 1, j));
      const double n = std::tanh(x[0].at({b, 2 * kH + j}) + r * x[1].at({b, 2 * kH + j}));
      out.at({b, j}) = (1.0 - z) * n + z * x[2].at({b, j});
    }
  return out;
}

}  // namespace

LOCKSTEP_OP_CASES(recurrent) {
  std::vector<OpCase> cases;
  cases.push_back({"recurrent.rnn_cell/tanh",
                   {uniform({kB, kH}, -1.5, 1.5), uniform({kB, kH}, -1.5, 1.5)},
                   [](const Ts& x) { return rnn_cell(x[0], x[1], RnnActivation::kTanh); },
                   [](const Rs& x) { return ref_rnn(x, false); }});
  // gh small against |gi| >= 0.2: no sum near relu's kink.
  cases.push_back({"recurrent.rnn_cell/relu",
                   {away_from_zero({kB, kH}, 0.2, 1.5), uniform({kB, kH}, -0.1, 0.1)},
                   [](const Ts& x) { return rnn_cell(x[0], x[1], RnnActivation::kRelu); },
                   [](const Rs& x) { return ref_rnn(x, true); }});
  // Both outputs, so that the gradient reaches the op through h' and c'.
  cases.push_back(
      {"recurrent.lstm_cell",
       {uniform({kB, 4 * kH}, -2.0, 2.0), uniform({kB, 4 * kH}, -1.0, 1.0), uniform({kB, kH}, -1.0, 1.0)},
       [](const Ts& x) {
         const LstmCellOutput y = lstm_cell(x[0], x[1], x[2]);
         return cat({y.h, y.c}, 1);
       },
       [](const Rs& x) { return ref_lstm(x, true); }});
  // Only h' used: c' receives the engine's zeros.
  cases.push_back(
      {"recurrent.lstm_cell/h_only",
       {uniform({kB, 4 * kH}, -2.0, 2.0), uniform({kB, 4 * kH}, -1.0, 1.0), uniform({kB, kH}, -1.0, 1.0)},
       [](const Ts& x) { return lstm_cell(x[0], x[1], x[2]).h; },
       [](const Rs& x) { return ref_lstm(x, false); }});
  // Saturating gates, where the f32 approximations of exp and tanh meet their clamps.
  cases.push_back(
      {"recurrent.lstm_cell/saturated",
       {uniform({kB, 4 * kH}, -12.0, 12.0), uniform({kB, 4 * kH}, -4.0, 4.0), uniform({kB, kH}, -3.0, 3.0)},
       [](const Ts& x) {
         const LstmCellOutput y = lstm_cell(x[0], x[1], x[2]);
         return cat({y.h, y.c}, 1);
       },
       [](const Rs& x) { return ref_lstm(x, true); }});
  cases.push_back(
      {"recurrent.gru_cell",
       {uniform({kB, 3 * kH}, -2.0, 2.0), uniform({kB, 3 * kH}, -1.5, 1.5), uniform({kB, kH}, -1.0, 1.0)},
       [](const Ts& x) { return gru_cell(x[0], x[1], x[2]); },
       [](const Rs& x) { return ref_gru(x); }});
  return cases;
}

}  // namespace lockstep::test
