// Launchers of the CUDA padding (pad_kernels.cu) and nearest and bilinear upsampling (upsample_kernels.cu)
// kernels: they run on the current device and the default stream, return without waiting, and raise
// DeviceError when a launch fails. f32 and f64, contiguous planes.
#pragma once

#include <cstdint>

#include "src/core/dtype.h"

namespace lockstep::cuda {

// x [planes, h, w] -> y [planes, ho, wo], shifted by (top, left); reflect, or `value` outside.
void launch_pad2d(bool reflect, DType dtype, const void* x, void* y, std::int64_t planes, std::int64_t h,
                  std::int64_t w, std::int64_t ho, std::int64_t wo, std::int64_t left, std::int64_t top,
                  double value);
// dx [planes, h, w] overwritten from dy [planes, ho, wo].
void launch_pad2d_backward(bool reflect, DType dtype, const void* dy, void* dx, std::int64_t planes,
                           std::int64_t h, std::int64_t w, std::int64_t ho, std::int64_t wo,
                           std::int64_t left, std::int64_t top, std::int64_t bottom);
// x [planes, h, w] -> y [planes, ph, pw].
void launch_upsample_nearest2d(DType dtype, const void* x, void* y, std::int64_t planes, std::int64_t h,
                               std::int64_t w, std::int64_t ph, std::int64_t pw);
// dx [planes, h, w] overwritten from dy [planes, ph, pw].
void launch_upsample_nearest2d_backward(DType dtype, const void* dy, void* dx, std::int64_t planes,
                                        std::int64_t h, std::int64_t w, std::int64_t ph, std::int64_t pw);
// x [planes, h, w] -> y [planes, ph, pw], bilinear (resample_formulas.h).
void launch_upsample_bilinear2d(bool align_corners, DType dtype, const void* x, void* y, std::int64_t planes,
                                std::int64_t h, std::int64_t w, std::int64_t ph, std::int64_t pw);
// dx [planes, h, w] overwritten from dy [planes, ph, pw].
void launch_upsample_bilinear2d_backward(bool align_corners, DType dtype, const void* dy, void* dx,
                                         std::int64_t planes, std::int64_t h, std::int64_t w, std::int64_t ph,
                                         std::int64_t pw);

}  // namespace lockstep::cuda
