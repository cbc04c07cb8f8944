// Inverted dropout: in training, zeroes each element with probability p and scales the survivors by
// 1 / (1 - p), with a mask from the counter-based generator: one seed gives one mask on any thread count.
#pragma once

#include <cstdint>

#include "src/core/rng.h"
#include "src/tensor/tensor.h"

namespace lockstep {

enum class DropoutMode : std::uint8_t {
  kTrain,  // drop and rescale
  kEval,   // identity
};

// y = x * mask with mask = 1 / (1 - p) with probability 1 - p, else 0: element i keeps when
// (Philox(seed, offset + i / 4)[i % 4] + 1) / 2^32 <= 1 - p, for the seed of `gen` (default_generator() when
// null) and an offset reserved by taking (numel + 3) / 4 counters from it. Returns x itself for kEval or for
// p == 0, and zeros (x * 0, drawing nothing) for p == 1. p outside [0, 1] raises ValueError.
// Differentiable in x.
Tensor dropout(const Tensor& x, double p, DropoutMode mode, Generator* gen = nullptr);

}  // namespace lockstep
