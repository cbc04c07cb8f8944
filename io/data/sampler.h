// The order in which an epoch visits a data set: a permutation derived only from (seed, epoch) by an
// in-project Fisher-Yates shuffle over Philox numbers (identical on every platform and standard library),
// sharded over the ranks of a data-parallel job.
#pragma once

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

namespace lockstep::io {

enum class Shuffle : std::uint8_t { kNo, kYes };
// How the permutation is split over ranks when the world size does not divide the data set size:
//   kYes (training): the permutation is extended by wrapping around to its start until its length is a
//        multiple of the world size, so every rank gets the same count (ceil(size / world)) and no rank
//        waits forever in a collective; at most world - 1 samples are seen twice per epoch.
//   kNo (evaluation): no sample is repeated; rank r gets ceil((size - r) / world) samples, so the shards
//        differ by at most one and every sample counts exactly once across ranks.
// In both cases rank r takes positions r, r + world, r + 2 * world, ... of the (padded) permutation; with a
// block of b > 1 (training only) it takes whole runs of b positions instead: runs r, r + world, ...
// (deterministic mode: rank r's batch of b samples is rows [r b, (r + 1) b) of the global batch at every
// step).
enum class Pad : std::uint8_t { kNo, kYes };

// Streams of Philox-4x32 words at (key, counter_hi, counter_lo++); the counter-based generator of
// src/core/rng.h read sequentially. Holds its position; not thread-safe (make one per thread, they are
// cheap).
class PhiloxStream {
 public:
  PhiloxStream(std::uint64_t key, std::uint64_t counter_hi, std::uint64_t counter_lo = 0)
      : key_(key), counter_hi_(counter_hi), counter_lo_(counter_lo) {}
  std::uint32_t next32();
  std::uint64_t next64();
  // A uniform integer in [0, bound), bound >= 1, without modulo bias (values below 2^64 mod bound are
  // rejected and redrawn).
  std::uint64_t below(std::uint64_t bound);

 private:
  std::uint64_t key_;
  std::uint64_t counter_hi_;
  std::uint64_t counter_lo_;
  std::array<std::uint32_t, 4> block_{};
  int used_ = 4;
};

// Top byte of the Philox counter_hi word separating the random streams of the data pipeline; the low
// 56 bits hold the epoch.
enum class DataStream : std::uint8_t {
  kPermutation = 1,
  kAugmentation = 2,
  kInputNoise = 3,
  kLabelNoise = 4
};
std::uint64_t data_stream_counter(DataStream stream, std::int64_t epoch);

// One rank's view of the epoch order over [0, size). Immutable after construction; thread-safe.
class Sampler {
 public:
  Sampler(std::int64_t size, std::uint64_t seed, Shuffle shuffle, std::int64_t rank = 0,
          std::int64_t world = 1, Pad pad = Pad::kYes, std::int64_t block = 1);

  // The permutation of [0, size) for `epoch` (the identity for Shuffle::kNo), the same on every rank.
  std::vector<std::int64_t> permutation(std::int64_t epoch) const;
  // This rank's shard of the permutation (see Pad), in visiting order.
  std::vector<std::int64_t> indices(std::int64_t epoch) const;
  // The number of indices this rank gets each epoch.
  std::int64_t shard_size() const;
  std::int64_t size() const { return size_; }

 private:
  std::int64_t size_;
  std::uint64_t seed_;
  Shuffle shuffle_;
  std::int64_t rank_;
  std::int64_t world_;
  Pad pad_;
  std::int64_t block_;
};

// A seeded hold-out of round(fraction x size) samples out of [0, size): {held out, the rest}, each sorted.
// Depends only on (size, fraction, seed), so it is the same at any world size; disjoint, and together they
// cover [0, size). ValueError unless 0 <= fraction < 1.
std::pair<std::vector<std::int64_t>, std::vector<std::int64_t>> holdout_split(std::int64_t size, double fraction,
                                                                              std::uint64_t seed);

}  // namespace lockstep::io
