// The character-level language model: LSTM layers on the autograd ops, the model, its loss and sampling.
#include "src/models/char_lm.h"

#include <cmath>
#include <utility>

#include "src/autograd/grad_mode.h"
#include "src/core/error.h"
#include "src/nn/init.h"
#include "src/ops/activation.h"
#include "src/ops/elementwise.h"
#include "src/ops/linalg.h"
#include "src/ops/shape.h"
#include "src/tensor/factories.h"

namespace lockstep::models {

LstmLayer::LstmLayer(std::int64_t input, std::int64_t hidden)
    : Module("LSTM"), input_(input), hidden_(hidden) {
  LOCKSTEP_CHECK(input > 0 && hidden > 0, ValueError, "LstmLayer: expected positive sizes, but got input ",
                 input, " and hidden ", hidden);
  const double bound = 1.0 / std::sqrt(static_cast<double>(hidden));
  weight_ih_ = register_parameter("weight_ih", empty({4 * hidden, input}));
  weight_hh_ = register_parameter("weight_hh", empty({4 * hidden, hidden}));
  bias_ = register_parameter("bias", empty({4 * hidden}));
  NoGradGuard no_grad;
  for (const Tensor& t : {weight_ih_, weight_hh_, bias_}) nn::uniform_(t, -bound, bound);
  nn::constant_(bias_.slice(0, hidden, 2 * hidden), 1.0);  // remember by default
}

Tensor LstmLayer::forward(const Tensor& x, Tensor& h, Tensor& c) {
  LOCKSTEP_CHECK(x.dim() == 3 && x.size(2) == input_, ValueError, "LstmLayer: expected input [B, T, ", input_,
                 "], but got ", shape_str(x.shape()));
  std::vector<Tensor> steps;
  for (std::int64_t t = 0; t < x.size(1); ++t) steps.push_back(x.select(1, t));
  return stack(forward_steps(steps, h, c), 1);  // [B, T, H]
}

std::vector<Tensor> LstmLayer::forward_steps(const std::vector<Tensor>& xs, Tensor& h, Tensor& c) {
  LOCKSTEP_CHECK(!xs.empty() && xs[0].dim() == 2 && xs[0].size(1) == input_, ValueError,
                 "LstmLayer: expected steps of [B, ", input_, "], but got ",
                 xs.empty() ? std::string("none") : shape_str(xs[0].shape()));
  const std::int64_t batch = xs[0].size(0), H = hidden_;
  if (!h.defined()) h = zeros({batch, H}, xs[0].dtype(), xs[0].device());
  if (!c.defined()) c = zeros({batch, H}, xs[0].dtype(), xs[0].device());
  // Step by step, each step's own input: a slice of one [B, T, 4H] projection would cost a gradient of that
  // whole size per step.
  std::vector<Tensor> outputs;
  outputs.reserve(xs.size());
  for (const Tensor& x : xs) {
    // gates [B, 4H] = x_t W_ih^T + b + h W_hh^T
    const Tensor gates = linear(x, weight_ih_, bias_) + linear(h, weight_hh_);
    const Tensor i = sigmoid(gates.slice(1, 0, H)), f = sigmoid(gates.slice(1, H, 2 * H));
    const Tensor g = tanh(gates.slice(1, 2 * H, 3 * H)), o = sigmoid(gates.slice(1, 3 * H, 4 * H));
    c = f * c + i * g;
    h = o * tanh(c);
    outputs.push_back(h);
  }
  return outputs;
}

Tensor LstmLayer::forward(const Tensor& x) {
  Tensor h, c;
  return forward(x, h, c);
}

std::string LstmLayer::describe() const { return str_cat("input=", input_, ", hidden=", hidden_); }

CharLM::CharLM(const std::u32string& vocabulary, CharLmOptions options)
    : Module("CharLM"), vocabulary_size_(static_cast<std::int64_t>(vocabulary.size())), options_(options) {
  LOCKSTEP_CHECK(!vocabulary.empty() && options.embedding > 0 && options.hidden > 0 && options.layers > 0,
                 ValueError, "CharLM: expected a vocabulary and positive sizes, but got a vocabulary of ",
                 vocabulary.size(), ", embedding ", options.embedding, ", hidden ", options.hidden,
                 ", layers ", options.layers);
  vocabulary_ = register_buffer(
      "vocabulary",
      from_vector(std::vector<std::int64_t>(vocabulary.begin(), vocabulary.end()), {vocabulary_size_}));
  embedding_ =
      register_module("embedding", std::make_shared<nn::Embedding>(vocabulary_size_, options.embedding));
  for (std::int64_t l = 0; l < options.layers; ++l) {
    layers_.push_back(register_module(
        str_cat("lstm", l),
        std::make_shared<LstmLayer>(l == 0 ? options.embedding : options.hidden, options.hidden)));
  }
  output_ = register_module("output", std::make_shared<nn::Linear>(options.hidden, vocabulary_size_));
}

Tensor CharLM::forward(const Tensor& tokens, LstmState& state) {
  LOCKSTEP_CHECK(tokens.dim() == 2 && tokens.dtype() == DType::i64, ValueError,
                 "CharLM: expected i64 tokens [B, T], but got ", dtype_name(tokens.dtype()), " ",
                 shape_str(tokens.shape()));
  const auto layers = static_cast<std::size_t>(options_.layers);
  LOCKSTEP_CHECK(state.empty() || state.size() == 2 * layers, ValueError, "CharLM: expected a state of ",
                 2 * layers, " tensors (h and c per layer) or none, but got ", state.size());
  if (state.empty()) state.resize(2 * layers);
  // Per step [B, E] from the embedding of each step's tokens, through every layer, stacked for the output.
  std::vector<Tensor> xs;
  for (std::int64_t t = 0; t < tokens.size(1); ++t) xs.push_back(embedding_->forward(tokens.select(1, t)));
  for (std::size_t l = 0; l < layers; ++l) xs = layers_[l]->forward_steps(xs, state[2 * l], state[2 * l + 1]);
  const Tensor x = stack(xs, 1);  // [B, T, H]
  return output_->forward(x);     // [B, T, V]
}

Tensor CharLM::forward(const Tensor& tokens) {
  LstmState state;
  return forward(tokens, state);
}

std::u32string CharLM::vocabulary() const {
  std::u32string text;
  for (const std::int64_t c : vocabulary_.to_vector<std::int64_t>()) text.push_back(static_cast<char32_t>(c));
  return text;
}

std::string CharLM::describe() const {
  return str_cat("vocabulary=", vocabulary_size_, ", embedding=", options_.embedding,
                 ", hidden=", options_.hidden, ", layers=", options_.layers);
}

LstmState detach(const LstmState& state) {
  LstmState out;
  out.reserve(state.size());
  for (const Tensor& t : state) out.push_back(t.defined() ? t.detach() : t);
  return out;
}

Tensor next_token_loss(const Tensor& logits, const Tensor& targets, Reduction reduction) {
  LOCKSTEP_CHECK(logits.dim() == 3 && targets.dim() == 2 && targets.size(0) == logits.size(0) &&
                     targets.size(1) == logits.size(1),
                 ValueError, "next_token_loss: expected logits [B, T, V] and targets [B, T], but got ",
                 shape_str(logits.shape()), " and ", shape_str(targets.shape()));
  const std::int64_t n = logits.size(0) * logits.size(1);
  return cross_entropy(logits.reshape({n, logits.size(2)}), targets.reshape({n}), reduction);
}

std::vector<std::int64_t> sample_char_lm(CharLM& model, const std::vector<std::int64_t>& prompt,
                                         std::int64_t length, double temperature, Generator* generator) {
  LOCKSTEP_CHECK(!prompt.empty(), ValueError, "sample_char_lm: expected a prompt of at least one character");
  LOCKSTEP_CHECK(temperature > 0.0 && std::isfinite(temperature), ValueError,
                 "sample_char_lm: expected a positive temperature, but got ", temperature);
  const std::int64_t v = model.vocabulary_size();
  for (const std::int64_t id : prompt) {
    LOCKSTEP_CHECK(id >= 0 && id < v, ValueError, "sample_char_lm: expected token ids in [0, ", v,
                   "), but got ", id);
  }
  NoGradGuard no_grad;
  const bool training = model.is_training();
  model.eval();
  LstmState state;
  Tensor logits = model.forward(from_vector(prompt, {1, static_cast<std::int64_t>(prompt.size())}), state);
  std::vector<std::int64_t> drawn;
  for (std::int64_t k = 0; k < length; ++k) {
    const std::vector<double> z =
        logits.select(1, logits.size(1) - 1).reshape({v}).to(DType::f64).to_vector<double>();
    double top = z[0];
    for (const double x : z) top = std::max(top, x);
    std::vector<double> weights(z.size());
    double total = 0.0;
    for (std::size_t i = 0; i < z.size(); ++i) total += weights[i] = std::exp((z[i] - top) / temperature);
    const double u = rand({1}, 0.0, 1.0, DType::f64, kCPU, generator).to_vector<double>()[0] * total;
    // The first id whose cumulative weight passes u; rounding past the total falls to the last id of
    // positive weight, never to one of weight zero.
    std::int64_t id = 0;
    double cumulative = 0.0;
    for (std::int64_t i = 0; i < v; ++i) {
      if (weights[static_cast<std::size_t>(i)] <= 0.0) continue;
      id = i;
      cumulative += weights[static_cast<std::size_t>(i)];
      if (u < cumulative) break;
    }
    drawn.push_back(id);
    logits = model.forward(from_vector(std::vector<std::int64_t>{id}, {1, 1}), state);
  }
  if (training) model.train();
  return drawn;
}

}  // namespace lockstep::models
