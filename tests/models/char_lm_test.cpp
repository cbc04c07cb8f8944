// The character model: reading a sequence in chunks with the state carried equals reading it whole (the LSTM
// layer's gradients are tested in tests/nn/recurrent_test.cpp), sampling repeats itself for a seed, and the split-wise
// cross-entropy covers every position once however the streams are shared out over ranks.
#include "src/models/char_lm.h"

#include <gtest/gtest.h>

#include <cmath>

#include "launch/train/charlm.h"
#include "src/autograd/grad_mode.h"
#include "src/ops/elementwise.h"
#include "src/ops/reduce.h"
#include "src/ops/shape.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"
#include "tests/support/gradcheck.h"

namespace lockstep::test {
namespace {

const std::u32string kVocabulary = U" .Tabcdehinorst";

Tensor random_tokens(std::int64_t rows, std::int64_t steps, std::uint64_t seed) {
  Generator gen(seed);
  const std::vector<double> u = rand({rows * steps}, 0.0, 1.0, DType::f64, kCPU, &gen).to_vector<double>();
  std::vector<std::int64_t> ids;
  for (const double x : u)
    ids.push_back(static_cast<std::int64_t>(x * static_cast<double>(kVocabulary.size())));
  return from_vector(ids, {rows, steps});
}

double max_abs_difference(const Tensor& a, const Tensor& b) {
  const std::vector<double> va = a.to(DType::f64).to_vector<double>(),
                            vb = b.to(DType::f64).to_vector<double>();
  double d = 0.0;
  for (std::size_t i = 0; i < va.size(); ++i) d = std::max(d, std::abs(va[i] - vb[i]));
  return d;
}

TEST(CharLm, ChunksWithTheStateCarriedEqualTheWholeSequence) {
  manual_seed(3);
  models::CharLM model(kVocabulary, {.embedding = 8, .hidden = 12, .layers = 2});
  NoGradGuard no_grad;
  const Tensor tokens = random_tokens(3, 10, 1);
  models::LstmState whole_state, chunk_state;
  const Tensor whole = model.forward(tokens, whole_state);
  ASSERT_EQ(whole.shape(), (Shape{3, 10, static_cast<std::int64_t>(kVocabulary.size())}));
  const Tensor first = model.forward(tokens.slice(1, 0, 4), chunk_state);
  const Tensor second = model.forward(tokens.slice(1, 4, 10), chunk_state);
  EXPECT_LT(max_abs_difference(cat({first, second}, 1), whole), 1e-6);
  ASSERT_EQ(chunk_state.size(), 4U);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_LT(max_abs_difference(chunk_state[i], whole_state[i]), 1e-6);
  // A fresh state for the second chunk gives other logits: the state carries information.
  models::LstmState fresh;
  EXPECT_GT(max_abs_difference(model.forward(tokens.slice(1, 4, 10), fresh), second), 1e-4);
}

TEST(CharLm, SamplingRepeatsItselfForASeed) {
  manual_seed(7);
  models::CharLM model(kVocabulary, {.embedding = 8, .hidden = 16, .layers = 1});
  const std::string a = launch::sample_text(model, "The ", 60, 0.8, 42, "--prompt");
  const std::string b = launch::sample_text(model, "The ", 60, 0.8, 42, "--prompt");
  const std::string c = launch::sample_text(model, "The ", 60, 0.8, 43, "--prompt");
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(a.size(), 60U);  // ASCII vocabulary: one byte per character
  for (const char ch : a) EXPECT_NE(kVocabulary.find(static_cast<char32_t>(ch)), std::u32string::npos);
  EXPECT_TRUE(model.is_training());  // restored after sampling in eval mode
  // A low temperature concentrates on the most likely character: a cold sample repeats less variety.
  expect_error<ValueError>([&] { launch::sample_text(model, "The z", 5, 0.8, 1, "--prompt"); },
                           {"--prompt", "character 4 ('z', U+7a)"});
  expect_error<ValueError>([&] { launch::sample_text(model, "caf\xe9", 5, 0.8, 1, "--prompt"); },
                           {"--prompt", "UTF-8"});
}

TEST(CharLm, SplitLossCoversEveryPositionOnceOverAnyWorld) {
  manual_seed(9);
  models::CharLM model(kVocabulary, {.embedding = 8, .hidden = 12, .layers = 1});
  const std::vector<std::int64_t> ids = random_tokens(1, 103, 2).to_vector<std::int64_t>();
  const std::vector<std::uint8_t> tokens(ids.begin(), ids.end());
  // One stream read whole: the loss of every prediction from its full past.
  const launch::TextLoss whole = launch::text_loss(model, tokens, 1, 1000);
  EXPECT_EQ(whole.tokens, 102.0);
  {
    NoGradGuard no_grad;
    const Tensor all = from_vector(ids, {1, 103});
    const double nats =
        models::next_token_loss(model.forward(all.slice(1, 0, 102)), all.slice(1, 1, 103), Reduction::kSum)
            .item();
    EXPECT_NEAR(whole.nats, nats, 1e-3);
  }
  // 5 streams in chunks of 4 (one more stream for the remainder), shared out over 1, 2 or 3 ranks.
  const launch::TextLoss one = launch::text_loss(model, tokens, 5, 4);
  EXPECT_EQ(one.tokens, 102.0);
  for (int world : {2, 3}) {
    launch::TextLoss sum;
    for (int r = 0; r < world; ++r) {
      const launch::TextLoss part = launch::text_loss(model, tokens, 5, 4, r, world);
      sum.nats += part.nats;
      sum.tokens += part.tokens;
    }
    EXPECT_EQ(sum.tokens, 102.0) << world;
    EXPECT_NEAR(sum.nats, one.nats, 1e-4) << world;
  }
}

}  // namespace
}  // namespace lockstep::test
