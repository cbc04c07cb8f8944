// Counter-based random numbers (Philox-4x32-10): the value at (seed, counter) is a pure function, so any
// element of any random tensor can be recomputed, on any thread or device, without sequential state.
#pragma once

#include <array>
#include <cstdint>

#include "src/core/host_device.h"

namespace lockstep {

// Philox-4x32 with 10 rounds (Salmon et al., SC'11) into words[0..3]. Thread-safe: no state. Compiled for
// the CPU and CUDA alike (the random kernels of both draw from it).
LOCKSTEP_HOST_DEVICE inline void philox4x32(std::uint64_t seed, std::uint64_t counter_hi,
                                            std::uint64_t counter_lo, std::uint32_t (&words)[4]) {
  std::uint32_t k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
  std::uint32_t c0 = static_cast<std::uint32_t>(counter_lo),
                c1 = static_cast<std::uint32_t>(counter_lo >> 32);
  std::uint32_t c2 = static_cast<std::uint32_t>(counter_hi),
                c3 = static_cast<std::uint32_t>(counter_hi >> 32);
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = 0xD2511F53ull * c0, p1 = 0xCD9E8D57ull * c2;
    const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<std::uint32_t>(p1);
    c3 = static_cast<std::uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  words[0] = c0;
  words[1] = c1;
  words[2] = c2;
  words[3] = c3;
}

// The same, as an array (host code).
inline std::array<std::uint32_t, 4> philox4x32(std::uint64_t seed, std::uint64_t counter_hi,
                                               std::uint64_t counter_lo) {
  std::uint32_t words[4];
  philox4x32(seed, counter_hi, counter_lo, words);
  return {words[0], words[1], words[2], words[3]};
}

// A random stream: a seed and the next unused counter. Each fill of n elements takes a block of counters,
// so the stream's state is two integers and is checkpointed as such. Not thread-safe.
class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0) : seed_(seed) {}
  std::uint64_t seed() const { return seed_; }
  std::uint64_t offset() const { return offset_; }
  void set_state(std::uint64_t seed, std::uint64_t offset) {
    seed_ = seed;
    offset_ = offset;
  }
  // Reserves `n` counters and returns the first.
  std::uint64_t take(std::uint64_t n) {
    const std::uint64_t first = offset_;
    offset_ += n;
    return first;
  }

 private:
  std::uint64_t seed_;
  std::uint64_t offset_ = 0;
};

// SplitMix64's finaliser: a well-mixed 64-bit value from any input (seeds for neighbouring ranks or steps).
inline std::uint64_t mix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// The process-wide default generator used by random factories, initialisers and dropout.
Generator& default_generator();
void manual_seed(std::uint64_t seed);

}  // namespace lockstep
