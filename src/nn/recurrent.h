// Recurrent layers over sequences [B, T, features]: the vanilla RNN (tanh or ReLU), LSTM and GRU, unrolled on
// the autograd ops, each step two linear projections and one fused cell op of src/ops/recurrent.h
// (backpropagation through time is the ordinary backward of the unrolled graph).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "src/nn/module.h"

namespace lockstep::nn {

enum class RecurrentKind : std::uint8_t {
  kRnnTanh,  // h' = tanh(x W_ih^T + b + h W_hh^T)
  kRnnRelu,  // h' = relu(x W_ih^T + b + h W_hh^T)
  // Gates [i, f, g, o] = x W_ih^T + b + h W_hh^T; c' = sigmoid(f) c + sigmoid(i) tanh(g);
  // h' = sigmoid(o) tanh(c') (Hochreiter & Schmidhuber with Gers' forget gate, the course's equations).
  kLstm,
  // Gates [r, z, n]: r = sigmoid(x W_ir^T + b_r + h W_hr^T), z = sigmoid(x W_iz^T + b_z + h W_hz^T),
  // n = tanh(x W_in^T + b_n + r * (h W_hn^T)), h' = (1 - z) n + z h: the convention of cuDNN and PyTorch
  // (r applied after the recurrent product; z keeps the old state), with the bias on the input side only.
  kGru,
};
const char* recurrent_kind_name(RecurrentKind kind);

// A layer's state: h [B, H] and, for the LSTM, c [B, H]. Undefined tensors mean zeros.
struct RecurrentState {
  Tensor h, c;
};

// One recurrent layer. Owns weight_ih [G H, in], weight_hh [G H, H] and bias [G H], G = 1 (RNN), 4 (LSTM)
// or 3 (GRU). Initialisation: weight_ih and bias uniform in +-1/sqrt(H); weight_hh orthogonal per gate
// block (Saxe et al.: the recurrent map neither grows nor shrinks the state at first); the LSTM's forget-gate
// bias 1 (Gers et al.: remember by default). Not thread-safe.
class RecurrentLayer : public Module {
 public:
  RecurrentLayer(RecurrentKind kind, std::int64_t input, std::int64_t hidden);
  // x [B, T, in]; `state` (undefined members: zeros) becomes the state after the last step -> [B, T, H].
  Tensor forward(const Tensor& x, RecurrentState& state);
  // The same over the steps' inputs [B, in] -> the steps' outputs [B, H]. Stacked layers pass these lists:
  // slicing one [B, T, ...] tensor per step would cost a gradient of its whole size per step.
  std::vector<Tensor> forward_steps(const std::vector<Tensor>& xs, RecurrentState& state);
  // From a zero state.
  Tensor forward(const Tensor& x) override;
  RecurrentKind kind() const { return kind_; }
  std::int64_t hidden() const { return hidden_; }

 protected:
  std::string describe() const override;

 private:
  RecurrentKind kind_;
  std::int64_t input_, hidden_;
  Tensor weight_ih_, weight_hh_, bias_;
};

}  // namespace lockstep::nn
