// Truncated-BPTT batches over a text split: the token array is cut into as many contiguous streams as the
// global batch has rows, and step k of an epoch hands every stream its chunk k, so that consecutive steps
// continue each stream where the previous one stopped (the model carries its recurrent state across them).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "io/data/loader.h"
#include "io/data/text.h"

namespace lockstep::io {

struct StreamOptions {
  std::int64_t batch_size = 1;  // streams per rank
  std::int64_t steps = 64;      // tokens per chunk (train.bptt_steps)
  std::uint64_t seed = 0;       // drives each epoch's offset
  std::int64_t rank = 0, world = 1;
};

// The layout over T tokens, G = batch_size x world streams and chunks of `steps`: every stream is
// L = (T - steps) / G tokens long; epoch e starts the streams o_e = offset(seed, e) in [0, steps) tokens in,
// so that epochs cut the text at different places; stream g's chunk k holds the tokens
// [o_e + g L + k steps, o_e + g L + (k + 1) steps] (steps + 1 tokens: inputs and next tokens), for
// k < L / steps. Rank r holds streams [r B, (r + 1) B), so N ranks of B streams see exactly the rows of one
// process of N B streams. Owns nothing but the shared data set; not thread-safe.
class TokenStreams final : public BatchSource {
 public:
  // ValueError when options are out of range; an epoch of no step is allowed (batches_per_epoch() == 0)
  // for the caller to report against its settings.
  TokenStreams(std::shared_ptr<const TextDataset> data, StreamOptions options);

  void start_epoch(std::int64_t epoch, std::int64_t first_batch) override;
  // Batch::tokens i64 [B, steps + 1]; Batch::indices each row's first token's position.
  std::optional<Batch> next() override;
  std::int64_t batches_per_epoch() const override { return chunks_; }
  std::int64_t stream_length() const { return length_; }
  // The epoch's offset o_e.
  std::int64_t offset(std::int64_t epoch) const;

 private:
  std::shared_ptr<const TextDataset> data_;
  StreamOptions options_;
  std::int64_t length_ = 0;  // L
  std::int64_t chunks_ = 0;  // L / steps
  std::int64_t epoch_ = -1, next_ = 0;
};

}  // namespace lockstep::io
