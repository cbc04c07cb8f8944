// A character-level language model: an embedding of the characters, a stack of LSTM layers and a linear map
// to the vocabulary's logits; its next-character loss, and sampling text from it. The vocabulary's code
// points are a buffer of the model, so that a model file alone can sample.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "src/core/rng.h"
#include "src/nn/embedding.h"
#include "src/nn/linear.h"
#include "src/nn/module.h"
#include "src/ops/loss.h"

namespace lockstep::models {

struct CharLmOptions {
  std::int64_t embedding = 64;
  std::int64_t hidden = 256;
  std::int64_t layers = 2;
};

// The recurrent state of the stack: {h_0, c_0, h_1, c_1, ...}, each [B, hidden]. Empty: zeros.
using LstmState = std::vector<Tensor>;

// One LSTM layer (Hochreiter & Schmidhuber, with a forget gate): gates [i, f, g, o] =
// x W_ih^T + h W_hh^T + b; c' = sigmoid(f) c + sigmoid(i) tanh(g); h' = sigmoid(o) tanh(c'). Owns
// weight_ih [4H, in], weight_hh [4H, H], bias [4H] (uniform +-1/sqrt(H), the forget gate's bias 1).
// Not thread-safe.
class LstmLayer : public nn::Module {
 public:
  LstmLayer(std::int64_t input, std::int64_t hidden);
  // x [B, T, in], h and c [B, H] (updated to the state after the last step) -> [B, T, H].
  Tensor forward(const Tensor& x, Tensor& h, Tensor& c);
  // The same over the steps' inputs xs[t] [B, in]: returns h after each step.
  std::vector<Tensor> forward_steps(const std::vector<Tensor>& xs, Tensor& h, Tensor& c);
  Tensor forward(const Tensor& x) override;

 protected:
  std::string describe() const override;

 private:
  std::int64_t input_, hidden_;
  Tensor weight_ih_, weight_hh_, bias_;
};

// Owns the embedding, the LSTM layers, the output layer and the vocabulary buffer (i64 code points,
// ascending). Not thread-safe.
class CharLM : public nn::Module {
 public:
  // ValueError for an empty vocabulary or sizes below 1.
  CharLM(const std::u32string& vocabulary, CharLmOptions options);

  // tokens i64 [B, T] -> logits [B, T, V]; `state` (empty: zeros) becomes the state after the last step.
  Tensor forward(const Tensor& tokens, LstmState& state);
  // From a zero state.
  Tensor forward(const Tensor& tokens) override;

  std::u32string vocabulary() const;
  std::int64_t vocabulary_size() const { return vocabulary_size_; }
  const CharLmOptions& options() const { return options_; }

 protected:
  std::string describe() const override;

 private:
  std::int64_t vocabulary_size_;
  CharLmOptions options_;
  Tensor vocabulary_;
  std::shared_ptr<nn::Embedding> embedding_;
  std::vector<std::shared_ptr<LstmLayer>> layers_;
  std::shared_ptr<nn::Linear> output_;
};

// The state detached from the graph (truncated BPTT: gradients stop at the chunk's start).
LstmState detach(const LstmState& state);

// Cross-entropy of logits [B, T, V] against the next tokens i64 [B, T], in nats (kMean: per token).
Tensor next_token_loss(const Tensor& logits, const Tensor& targets, Reduction reduction = Reduction::kMean);

// Reads `prompt` (token ids, at least one) into the model, then draws `length` tokens one at a time from
// softmax(logits / temperature) by an f64 inverse CDF of one uniform from `generator` per token; returns
// the drawn ids. Runs without gradients in eval mode. ValueError for an empty prompt, an id outside the
// vocabulary or a temperature <= 0.
std::vector<std::int64_t> sample_char_lm(CharLM& model, const std::vector<std::int64_t>& prompt,
                                         std::int64_t length, double temperature, Generator* generator);

}  // namespace lockstep::models
