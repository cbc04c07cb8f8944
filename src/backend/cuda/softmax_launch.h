// Launchers of the CUDA softmax kernels (defined in softmax_kernels.cu): they run on the current device and
// the default stream, return without waiting, and raise DeviceError when a launch fails. f32 and f64,
// contiguous [outer, size, inner].
#pragma once

#include <cstdint>

#include "src/core/dtype.h"
#include "src/ops/kernel_kinds.h"

namespace lockstep::cuda {

// y = softmax or log-softmax of x over `size`.
void launch_softmax(SoftmaxKind kind, DType dtype, const void* x, void* y, std::int64_t outer,
                    std::int64_t size, std::int64_t inner);
// dx from dy and the forward's output y.
void launch_softmax_backward(SoftmaxKind kind, DType dtype, const void* dy, const void* y, void* dx,
                             std::int64_t outer, std::int64_t size, std::int64_t inner);

}  // namespace lockstep::cuda
