// Fisher-Yates over Philox numbers and the two sharding policies of the sampler.
#include "io/data/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "src/core/error.h"
#include "src/core/rng.h"

namespace lockstep::io {

std::uint32_t PhiloxStream::next32() {
  if (used_ == 4) {
    block_ = philox4x32(key_, counter_hi_, counter_lo_++);
    used_ = 0;
  }
  return block_[static_cast<std::size_t>(used_++)];
}

std::uint64_t PhiloxStream::next64() {
  const std::uint64_t hi = next32();
  return (hi << 32) | next32();
}

std::uint64_t PhiloxStream::below(std::uint64_t bound) {
  // 2^64 mod bound, computed without 128-bit arithmetic; draws below it would make small values likelier.
  const std::uint64_t threshold = (0 - bound) % bound;
  for (;;) {
    const std::uint64_t x = next64();
    if (x >= threshold) return x % bound;
  }
}

std::uint64_t data_stream_counter(DataStream stream, std::int64_t epoch) {
  return (static_cast<std::uint64_t>(stream) << 56) |
         (static_cast<std::uint64_t>(epoch) & ((1ull << 56) - 1));
}

Sampler::Sampler(std::int64_t size, std::uint64_t seed, Shuffle shuffle, std::int64_t rank,
                 std::int64_t world, Pad pad, std::int64_t block)
    : size_(size), seed_(seed), shuffle_(shuffle), rank_(rank), world_(world), pad_(pad), block_(block) {
  LOCKSTEP_CHECK(size >= 0, ValueError, "Sampler: expected a data set size >= 0, but got ", size);
  LOCKSTEP_CHECK(world >= 1 && rank >= 0 && rank < world, ValueError,
                 "Sampler: expected 0 <= rank < world, but got rank ", rank, " and world ", world);
  LOCKSTEP_CHECK(block >= 1 && (block == 1 || pad == Pad::kYes), ValueError,
                 "Sampler: expected a block >= 1 (above 1 only for padded training shards), but got ", block);
}

std::vector<std::int64_t> Sampler::permutation(std::int64_t epoch) const {
  LOCKSTEP_CHECK(epoch >= 0, ValueError, "Sampler::permutation: expected an epoch >= 0, but got ", epoch);
  std::vector<std::int64_t> order(static_cast<std::size_t>(size_));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  if (shuffle_ == Shuffle::kNo) return order;
  PhiloxStream stream(seed_, data_stream_counter(DataStream::kPermutation, epoch));
  for (std::int64_t i = size_ - 1; i > 0; --i) {
    const auto j = static_cast<std::int64_t>(stream.below(static_cast<std::uint64_t>(i + 1)));
    std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
  }
  return order;
}

std::int64_t Sampler::shard_size() const {
  if (pad_ == Pad::kYes) return (size_ + world_ * block_ - 1) / (world_ * block_) * block_;
  return size_ > rank_ ? (size_ - rank_ + world_ - 1) / world_ : 0;
}

std::vector<std::int64_t> Sampler::indices(std::int64_t epoch) const {
  const std::vector<std::int64_t> order = permutation(epoch);
  const std::int64_t count = shard_size();
  std::vector<std::int64_t> shard(static_cast<std::size_t>(count));
  for (std::int64_t k = 0; k < count; ++k) {
    // Position rank + k * world of the permutation (in runs of block_), wrapped around for the padded tail.
    const std::int64_t position = ((k / block_) * world_ + rank_) * block_ + k % block_;
    shard[static_cast<std::size_t>(k)] = order[static_cast<std::size_t>(position % size_)];
  }
  return shard;
}

std::pair<std::vector<std::int64_t>, std::vector<std::int64_t>> holdout_split(std::int64_t size, double fraction,
                                                                              std::uint64_t seed) {
  LOCKSTEP_CHECK(fraction >= 0.0 && fraction < 1.0, ValueError,
                 "holdout_split: expected a fraction in [0, 1), but got ", fraction);
  // A stream of its own: not the training order of any epoch.
  std::vector<std::int64_t> order = Sampler(size, seed ^ 0x686f6c646f7574ULL, Shuffle::kYes).permutation(0);
  const auto held = static_cast<std::ptrdiff_t>(std::llround(fraction * static_cast<double>(size)));
  std::vector<std::int64_t> out(order.begin(), order.begin() + held), rest(order.begin() + held, order.end());
  std::sort(out.begin(), out.end());
  std::sort(rest.begin(), rest.end());
  return {std::move(out), std::move(rest)};
}

}  // namespace lockstep::io
