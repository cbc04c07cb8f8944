// Launchers of the CUDA index kernels (defined in index_kernels.cu): they run on the current device and the
// default stream, return without waiting, and raise DeviceError when a launch fails. Every tensor is
// contiguous; indices are i64 and already bounds-checked; `dtype` is any of f32, f64, i64, u8. The
// accumulating kernels give each destination element to one thread, which adds its sources in index order
// (the CPU's order): no atomics, the same bits every run.
#pragma once

#include <cstdint>

#include "src/core/dtype.h"

namespace lockstep::cuda {

// out [outer, n, inner] = x [outer, size, inner] at index [n] along the middle dimension.
void launch_index_select(DType dtype, const void* x, const std::int64_t* index, void* out, std::int64_t outer,
                         std::int64_t size, std::int64_t inner, std::int64_t n);
// out [outer, size, inner] += src [outer, n, inner] at index [n].
void launch_index_add(DType dtype, const void* src, const std::int64_t* index, void* out, std::int64_t outer,
                      std::int64_t size, std::int64_t inner, std::int64_t n);

// The shapes of gather and scatter_add: the index's (which the dense operand shares position by position),
// and the row-major strides of the indexed operand and of the dense one.
inline constexpr int kMaxIndexDims = 8;
struct AlongDimShapes {
  int dims = 0;
  int dim = 0;
  // Plain arrays: the kernels read them on the device.
  std::int64_t index_shape[kMaxIndexDims] = {};
  std::int64_t indexed_strides[kMaxIndexDims] = {};  // x for gather, out for scatter_add
  std::int64_t dense_strides[kMaxIndexDims] = {};    // out for gather, src for scatter_add
};
// out[p] = x[p with its `dim` coordinate replaced by index[p]] for every index position p.
void launch_gather(DType dtype, const void* x, const std::int64_t* index, void* out, const AlongDimShapes& s);
// out[p with its `dim` coordinate replaced by index[p]] += src[p].
void launch_scatter_add(DType dtype, const void* src, const std::int64_t* index, void* out,
                        const AlongDimShapes& s);

}  // namespace lockstep::cuda
