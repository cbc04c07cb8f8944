// Truncated-BPTT batches over a text split (see token_streams.h for the layout).
#include "io/data/token_streams.h"

#include <utility>
#include <vector>

#include "src/core/error.h"
#include "src/core/rng.h"
#include "src/tensor/factories.h"

namespace lockstep::io {

TokenStreams::TokenStreams(std::shared_ptr<const TextDataset> data, StreamOptions options)
    : data_(std::move(data)), options_(options) {
  LOCKSTEP_CHECK(data_ != nullptr, ValueError, "TokenStreams: expected a text data set, but got none");
  LOCKSTEP_CHECK(options_.batch_size >= 1 && options_.steps >= 1 && options_.world >= 1 &&
                     options_.rank >= 0 && options_.rank < options_.world,
                 ValueError,
                 "TokenStreams: expected batch_size >= 1, steps >= 1 and 0 <= rank < world, but got ",
                 options_.batch_size, ", ", options_.steps, ", rank ", options_.rank, " of ", options_.world);
  const std::int64_t streams = options_.batch_size * options_.world;
  length_ = std::max<std::int64_t>(data_->size() - options_.steps, 0) / streams;
  chunks_ = length_ / options_.steps;
}

std::int64_t TokenStreams::offset(std::int64_t epoch) const {
  return static_cast<std::int64_t>(
      mix64(options_.seed ^ mix64(static_cast<std::uint64_t>(epoch) + 0x7465787455ULL)) %
      static_cast<std::uint64_t>(options_.steps));
}

void TokenStreams::start_epoch(std::int64_t epoch, std::int64_t first_batch) {
  LOCKSTEP_CHECK(epoch >= 0 && first_batch >= 0 && first_batch <= chunks_, ValueError,
                 "TokenStreams::start_epoch: expected epoch >= 0 and a first batch in [0, ", chunks_,
                 "], but got ", epoch, " and ", first_batch);
  epoch_ = epoch;
  next_ = first_batch;
}

std::optional<Batch> TokenStreams::next() {
  LOCKSTEP_CHECK(epoch_ >= 0, ValueError, "TokenStreams::next: expected start_epoch first");
  if (next_ >= chunks_) return std::nullopt;
  const std::int64_t rows = options_.batch_size, width = options_.steps + 1;
  const std::int64_t start = offset(epoch_) + next_ * options_.steps;
  const std::vector<std::uint8_t>& tokens = data_->tokens();
  std::vector<std::int64_t> values(static_cast<std::size_t>(rows * width));
  Batch batch;
  for (std::int64_t b = 0; b < rows; ++b) {
    const std::int64_t first = start + (options_.rank * rows + b) * length_;
    batch.indices.push_back(first);
    for (std::int64_t t = 0; t < width; ++t) values[b * width + t] = tokens[first + t];
  }
  batch.tokens = from_vector(values, {rows, width});
  ++next_;
  return batch;
}

}  // namespace lockstep::io
