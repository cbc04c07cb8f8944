// Geometry of element-wise CUDA kernels, passed to kernels by value: a shape of at most kMaxDims dimensions
// (after merging dimensions that are contiguous in every operand) and per-operand element strides.
// Plain data, no CUDA or Tensor includes, so both host C++ files and .cu files use it.
#pragma once

#include <cstdint>

#include "src/core/host_device.h"

namespace lockstep::cuda {

inline constexpr int kMaxDims = 6;

template <int N> struct Layout {
  int ndim = 1;
  std::int64_t sizes[kMaxDims] = {};
  std::int64_t strides[N][kMaxDims] = {};  // in elements, may be 0 (broadcast)

  // One dimension with unit strides: every operand is contiguous in the same order.
  constexpr bool contiguous() const {
    if (ndim != 1) return false;
    for (int k = 0; k < N; ++k) {
      if (strides[k][0] != 1) return false;
    }
    return true;
  }
};

// Element offsets of linear index i (row-major over layout.sizes) in each operand. Used by the kernels and
// by host tests of the indexing.
template <int N>
LOCKSTEP_HOST_DEVICE inline void element_offsets(const Layout<N>& layout, std::int64_t i, std::int64_t (&offsets)[N]) {
  for (int k = 0; k < N; ++k) offsets[k] = 0;
  for (int d = layout.ndim - 1; d >= 0; --d) {
    const std::int64_t size = layout.sizes[d];
    const std::int64_t index = i % size;
    i /= size;
    for (int k = 0; k < N; ++k) offsets[k] += index * layout.strides[k][d];
  }
}

}  // namespace lockstep::cuda
