// Shape ops that make new tensors from several: cat and stack (differentiable; the view ops themselves are
// Tensor methods in src/tensor/tensor.h).
#pragma once

#include <cstdint>
#include <vector>

#include "src/tensor/tensor.h"

namespace lockstep {

// Concatenates `tensors` (same dtype, device and rank, equal sizes except along `dim`) along `dim`.
Tensor cat(const std::vector<Tensor>& tensors, std::int64_t dim = 0);

// Stacks equally shaped `tensors` along a new dimension `dim` (in [-rank - 1, rank]).
Tensor stack(const std::vector<Tensor>& tensors, std::int64_t dim = 0);

}  // namespace lockstep
