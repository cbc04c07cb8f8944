// The character-level language model (task = "charlm"): what the training task, `lockstep eval --charlm` and
// `lockstep sample` share: the model built from [charlm], its cross-entropy on a text split and text sampled
// from a prompt.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>

#include "launch/config/settings.h"
#include "src/models/char_lm.h"

namespace lockstep::launch {

// The model of [charlm] over `vocabulary` (the data set's code points).
std::shared_ptr<models::CharLM> make_char_lm(const CharLmSection& c, const std::u32string& vocabulary);

// The trained model of a charlm model file (or a checkpoint's model.h5) and its settings: the vocabulary
// comes from the file itself (no data set needed). ValueError when the file holds another task's model.
struct LoadedCharLm {
  std::shared_ptr<models::CharLM> model;
  Settings settings;
};
LoadedCharLm load_char_lm(const std::filesystem::path& file, const std::vector<std::string>& overrides = {});

// The model's cross-entropy on `tokens`, predicting tokens[1 .. T-1] each from everything before it in its
// stream: the positions are cut into `streams` contiguous streams of L = (T - 1) / streams predictions
// (and one more stream for the remainder), each read from a zero state in chunks of `steps` with the state
// carried. This rank takes its share of the streams (rank r of w: streams [r S / w, (r + 1) S / w), the
// last rank also the remainder): the sums over every rank cover each position once. No gradients; eval mode.
struct TextLoss {
  double nats = 0.0;    // summed over the predicted tokens
  double tokens = 0.0;  // predicted tokens
};
TextLoss text_loss(models::CharLM& model, std::span<const std::uint8_t> tokens, std::int64_t streams,
                   std::int64_t steps, int rank = 0, int world = 1);

// `length` characters drawn after `prompt` (UTF-8) at `temperature` with a generator seeded by `seed`, as
// UTF-8 (the prompt not included). ValueError naming `what` ("--prompt", "charlm.prompt") and the character
// when the prompt holds one outside the model's vocabulary, or is not UTF-8.
std::string sample_text(models::CharLM& model, const std::string& prompt, std::int64_t length,
                        double temperature, std::uint64_t seed, const std::string& what);

}  // namespace lockstep::launch
