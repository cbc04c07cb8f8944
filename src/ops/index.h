// Index ops: index_select / index_add along one dimension with a 1-D index, gather / scatter_add like
// torch.gather / torch.scatter_add, and embedding lookup. Indices are i64; out-of-range ones raise
// IndexError.
#pragma once

#include <cstdint>

#include "src/tensor/tensor.h"

namespace lockstep {

// out = x with dimension `dim` replaced by x's entries at `index` (i64 [n]): out.size(dim) == n.
Tensor index_select(const Tensor& x, std::int64_t dim, const Tensor& index);
// A copy of x with src's slices added at `index` along `dim` (i64 [n]; src is x's shape with n along dim).
// Repeated indices accumulate.
Tensor index_add(const Tensor& x, std::int64_t dim, const Tensor& index, const Tensor& src);

// out[..i..] = x[..index[..i..]..] along `dim`; index (i64) has x's rank, index.size(d) <= x.size(d) for d !=
// dim, and out has index's shape.
Tensor gather(const Tensor& x, std::int64_t dim, const Tensor& index);
// A copy of x with src[..i..] added at x[..index[..i..]..] along `dim` (repeated indices accumulate). src has
// index's shape; index has x's rank and index.size(d) <= x.size(d) for d != dim.
Tensor scatter_add(const Tensor& x, std::int64_t dim, const Tensor& index, const Tensor& src);

// Rows of weight [V, D] at indices (i64, any shape) -> [..indices.shape, D]. weight's gradient accumulates
// over repeated indices.
Tensor embedding(const Tensor& weight, const Tensor& indices);

}  // namespace lockstep
