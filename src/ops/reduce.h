// Reductions along dimensions (sum, mean, max, min, argmax, var) and the broadcasting inverse sum_to.
#pragma once

#include <vector>

#include "src/tensor/tensor.h"

namespace lockstep {

enum class KeepDim : bool { kNo = false, kYes = true };

// Sum over `dims` (every dimension when empty).
Tensor sum(const Tensor& x, const std::vector<std::int64_t>& dims = {}, KeepDim keepdim = KeepDim::kNo);
Tensor mean(const Tensor& x, const std::vector<std::int64_t>& dims = {}, KeepDim keepdim = KeepDim::kNo);

// Largest / smallest values along `dim`. The gradient goes to the position argmax / argmin picks (the first
// occurrence of the extreme value).
Tensor max(const Tensor& x, std::int64_t dim, KeepDim keepdim = KeepDim::kNo);
Tensor min(const Tensor& x, std::int64_t dim, KeepDim keepdim = KeepDim::kNo);
// Largest / smallest element (0-dim). The gradient is shared evenly between tied elements, as in PyTorch.
Tensor max(const Tensor& x);
Tensor min(const Tensor& x);
// Index (i64) of the first largest / smallest value along `dim`; NaN counts as the extreme. Not
// differentiable.
Tensor argmax(const Tensor& x, std::int64_t dim, KeepDim keepdim = KeepDim::kNo);
Tensor argmin(const Tensor& x, std::int64_t dim, KeepDim keepdim = KeepDim::kNo);

// Variance over `dims` (every dimension when empty) with divisor N - correction: 0 biased, 1 unbiased.
Tensor var(const Tensor& x, const std::vector<std::int64_t>& dims = {}, std::int64_t correction = 1,
           KeepDim keepdim = KeepDim::kNo);

// Sums `x` down to `shape`, the inverse of broadcasting `shape` up to x's shape (gradients of broadcasts).
Tensor sum_to(const Tensor& x, const Shape& shape);

}  // namespace lockstep
