// Recurrent layers: the RNN, LSTM and GRU cells unrolled over time, each step two linear projections and one
// fused cell op.
#include "src/nn/recurrent.h"

#include <cmath>
#include <utility>
#include <vector>

#include "src/autograd/grad_mode.h"
#include "src/core/error.h"
#include "src/nn/init.h"
#include "src/ops/linalg.h"
#include "src/ops/recurrent.h"
#include "src/ops/shape.h"
#include "src/tensor/factories.h"

namespace lockstep::nn {
namespace {

std::int64_t gates(RecurrentKind kind) {
  switch (kind) {
    case RecurrentKind::kLstm:
      return 4;
    case RecurrentKind::kGru:
      return 3;
    case RecurrentKind::kRnnTanh:
    case RecurrentKind::kRnnRelu:
      break;
  }
  return 1;
}

}  // namespace

const char* recurrent_kind_name(RecurrentKind kind) {
  switch (kind) {
    case RecurrentKind::kRnnTanh:
      return "RNN (tanh)";
    case RecurrentKind::kRnnRelu:
      return "RNN (relu)";
    case RecurrentKind::kLstm:
      return "LSTM";
    case RecurrentKind::kGru:
      return "GRU";
  }
  return "?";
}

RecurrentLayer::RecurrentLayer(RecurrentKind kind, std::int64_t input, std::int64_t hidden)
    : Module(kind == RecurrentKind::kLstm  ? "LSTM"
             : kind == RecurrentKind::kGru ? "GRU"
                                           : "RNN"),
      kind_(kind),
      input_(input),
      hidden_(hidden) {
  LOCKSTEP_CHECK(input > 0 && hidden > 0, ValueError,
                 "RecurrentLayer: expected positive sizes, but got input ", input, " and hidden ", hidden);
  const std::int64_t g = gates(kind);
  weight_ih_ = register_parameter("weight_ih", empty({g * hidden, input}));
  weight_hh_ = register_parameter("weight_hh", empty({g * hidden, hidden}));
  bias_ = register_parameter("bias", empty({g * hidden}));
  NoGradGuard no_grad;
  const double bound = 1.0 / std::sqrt(static_cast<double>(hidden));
  uniform_(weight_ih_, -bound, bound);
  uniform_(bias_, -bound, bound);
  for (std::int64_t k = 0; k < g; ++k) orthogonal_(weight_hh_.slice(0, k * hidden, (k + 1) * hidden));
  if (kind == RecurrentKind::kLstm) constant_(bias_.slice(0, hidden, 2 * hidden), 1.0);
}

Tensor RecurrentLayer::forward(const Tensor& x, RecurrentState& state) {
  LOCKSTEP_CHECK(x.dim() == 3 && x.size(2) == input_, ValueError, type_name(), ": expected input [B, T, ",
                 input_, "], but got ", shape_str(x.shape()));
  std::vector<Tensor> xs;
  for (std::int64_t t = 0; t < x.size(1); ++t) xs.push_back(x.select(1, t));
  return stack(forward_steps(xs, state), 1);
}

std::vector<Tensor> RecurrentLayer::forward_steps(const std::vector<Tensor>& xs, RecurrentState& state) {
  LOCKSTEP_CHECK(!xs.empty() && xs[0].dim() == 2 && xs[0].size(1) == input_, ValueError, type_name(),
                 ": expected steps of [B, ", input_, "], but got ",
                 xs.empty() ? std::string("none") : shape_str(xs[0].shape()));
  const std::int64_t batch = xs[0].size(0), H = hidden_;
  Tensor& h = state.h;
  Tensor& c = state.c;
  if (!h.defined()) h = zeros({batch, H}, xs[0].dtype(), xs[0].device());
  if (kind_ == RecurrentKind::kLstm && !c.defined()) c = zeros({batch, H}, xs[0].dtype(), xs[0].device());
  std::vector<Tensor> outputs;
  outputs.reserve(xs.size());
  for (const Tensor& x : xs) {
    const Tensor in = linear(x, weight_ih_, bias_);  // [B, G H]
    const Tensor recurrent = linear(h, weight_hh_);
    // One fused op per step on the two projections (src/ops/recurrent.h).
    switch (kind_) {
      case RecurrentKind::kRnnTanh:
        h = rnn_cell(in, recurrent, RnnActivation::kTanh);
        break;
      case RecurrentKind::kRnnRelu:
        h = rnn_cell(in, recurrent, RnnActivation::kRelu);
        break;
      case RecurrentKind::kLstm: {
        LstmCellOutput next = lstm_cell(in, recurrent, c);
        h = std::move(next.h);
        c = std::move(next.c);
        break;
      }
      case RecurrentKind::kGru:
        h = gru_cell(in, recurrent, h);
        break;
    }
    outputs.push_back(h);
  }
  return outputs;
}

Tensor RecurrentLayer::forward(const Tensor& x) {
  RecurrentState state;
  return forward(x, state);
}

std::string RecurrentLayer::describe() const { return str_cat("input=", input_, ", hidden=", hidden_); }

}  // namespace lockstep::nn
