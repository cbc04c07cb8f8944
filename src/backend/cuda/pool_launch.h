// Launchers of the CUDA pooling kernels (defined in pool_kernels.cu): they run on the current device and the
// default stream, return without waiting, and raise DeviceError when a launch fails. f32 and f64, contiguous
// planes: x [planes, h, w], y and indices [planes, ph, pw]; the plane kernels over [rows, l] and [rows, m].
#pragma once

#include <cstdint>

#include "src/core/dtype.h"

namespace lockstep::cuda {

// Pool2dParams as plain data for the kernels.
struct PoolGeometry {
  std::int64_t kernel[2], stride[2], padding[2];
  bool include_pad;
};

void launch_max_pool2d(DType dtype, const void* x, void* y, std::int64_t* indices, std::int64_t planes,
                       std::int64_t h, std::int64_t w, std::int64_t ph, std::int64_t pw,
                       const PoolGeometry& g);
void launch_avg_pool2d(DType dtype, const void* x, void* y, std::int64_t planes, std::int64_t h,
                       std::int64_t w, std::int64_t ph, std::int64_t pw, const PoolGeometry& g);
// dx [planes, h, w] overwritten from dy [planes, ph, pw].
void launch_avg_pool2d_backward(DType dtype, const void* dy, void* dx, std::int64_t planes, std::int64_t h,
                                std::int64_t w, std::int64_t ph, std::int64_t pw, const PoolGeometry& g);
// out [rows, m] += src [rows, l] at indices [rows, l].
void launch_plane_scatter_add(DType dtype, const void* src, const std::int64_t* indices, void* out,
                              std::int64_t rows, std::int64_t l, std::int64_t m);
// out [rows, l] = src [rows, m] at indices [rows, l].
void launch_plane_gather(DType dtype, const void* src, const std::int64_t* indices, void* out,
                         std::int64_t rows, std::int64_t l, std::int64_t m);

}  // namespace lockstep::cuda
