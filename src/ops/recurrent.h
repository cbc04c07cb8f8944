// Fused recurrent cells: the pointwise part of one RNN, LSTM or GRU step as one op (one kernel pass forward,
// one backward), given the step's two gate projections, which stay GEMMs (linear) outside the op.
#pragma once

#include <cstdint>

#include "src/tensor/tensor.h"

namespace lockstep {

enum class RnnActivation : std::uint8_t { kTanh, kRelu };

// gi = x W_ih^T + b_ih, gh = h W_hh^T (+ b_hh): [B, H] -> h' = act(gi + gh) [B, H].
Tensor rnn_cell(const Tensor& gi, const Tensor& gh, RnnActivation activation);

struct LstmCellOutput {
  Tensor h, c;
};

// gi, gh [B, 4 H] in gate blocks [i, f, g, o], c [B, H] ->
//   c' = sigmoid(f) c + sigmoid(i) tanh(g),  h' = sigmoid(o) tanh(c')   (each gate = gi + gh).
// Saves gi, gh, c and c' (the gates are recomputed in backward, and recorded from gi + gh under
// create_graph).
LstmCellOutput lstm_cell(const Tensor& gi, const Tensor& gh, const Tensor& c);

// gi, gh [B, 3 H] in gate blocks [r, z, n], h [B, H] -> h' [B, H] in cuDNN's and PyTorch's convention:
//   r = sigmoid(gi_r + gh_r),  z = sigmoid(gi_z + gh_z),  n = tanh(gi_n + r * gh_n),  h' = (1 - z) n + z h
// (r scales the recurrent projection, hidden bias included when gh has one; z keeps the old state).
Tensor gru_cell(const Tensor& gi, const Tensor& gh, const Tensor& h);

}  // namespace lockstep
