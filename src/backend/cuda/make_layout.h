// Builds the Layout of CUDA element-wise kernels from tensors of one shape (host side).
#pragma once

#include <array>
#include <string>

#include "src/backend/cuda/layout.h"
#include "src/tensor/tensor.h"

namespace lockstep::cuda {

// Merges the dimensions of `tensors` (all of one shape) that are contiguous in every operand and drops
// dimensions of size 1; raises NotImplementedError when more than kMaxDims dimensions remain.
template <int N> Layout<N> make_layout(const char* where, const std::array<const Tensor*, N>& tensors) {
  Layout<N> layout;
  layout.ndim = 0;
  const Shape& shape = tensors[0]->shape();
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool mergeable = layout.ndim > 0;
    for (int k = 0; k < N && mergeable; ++k) {
      mergeable = layout.strides[k][layout.ndim - 1] == tensors[k]->strides()[d] * shape[d];
    }
    if (mergeable) {
      layout.sizes[layout.ndim - 1] *= shape[d];
      for (int k = 0; k < N; ++k) layout.strides[k][layout.ndim - 1] = tensors[k]->strides()[d];
      continue;
    }
    if (layout.ndim == kMaxDims) {
      std::string strides;
      for (const Tensor* t : tensors) strides += (strides.empty() ? "" : ", ") + shape_str(t->strides());
      throw NotImplementedError(str_cat(where, ": expected at most ", kMaxDims,
                                    " dimensions after merging contiguous ones on CUDA, but got shape ",
                                    shape_str(shape), " with strides ", strides,
                                    ". Make the operands contiguous first"));
    }
    layout.sizes[layout.ndim] = shape[d];
    for (int k = 0; k < N; ++k) layout.strides[k][layout.ndim] = tensors[k]->strides()[d];
    ++layout.ndim;
  }
  if (layout.ndim == 0) {
    layout.ndim = 1;
    layout.sizes[0] = 1;
    for (int k = 0; k < N; ++k) layout.strides[k][0] = 1;
  }
  return layout;
}

}  // namespace lockstep::cuda
