// Reductions along dimensions (sum, mean, max, min, argmax, var) and the broadcasting inverse sum_to.
#pragma once

#include <vector>

#include "src/tensor/tensor.h"

namespace lockstep {

enum class KeepDim : bool { kNo = false, kYes = true };

// Sum over `dims` (every dimension when empty).
Tensor sum(const Tensor& x, const std::vector<std::int64_t>& dims = {}, KeepDim keepdim = KeepDim::kNo);
Tensor mean(const Tensor& x, const std::vector<std::int64_t>& dims = {}, KeepDim keepdim = KeepDim::kNo);

// Sums `x` down to `shape`, the inverse of broadcasting `shape` up to x's shape (gradients of broadcasts).
Tensor sum_to(const Tensor& x, const Shape& shape);

}  // namespace lockstep
