// The character-level language model: the model (LSTM layers of src/nn/recurrent.h), its loss and sampling.
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
        std::make_shared<nn::RecurrentLayer>(nn::RecurrentKind::kLstm, l == 0 ? options.embedding : options.hidden,
                                             options.hidden)));
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
  for (std::size_t l = 0; l < layers; ++l) {
    nn::RecurrentState layer_state{state[2 * l], state[2 * l + 1]};
    xs = layers_[l]->forward_steps(xs, layer_state);
    state[2 * l] = layer_state.h;
    state[2 * l + 1] = layer_state.c;
  }
  return output_->forward(stack(xs, 1));  // [B, T, V]
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
