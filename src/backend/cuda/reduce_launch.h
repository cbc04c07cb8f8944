// Launcher of the CUDA reductions (defined in reduce_kernels.cu): runs on the current device and the default
// stream, returns without waiting, and raises DeviceError when a launch fails.
#pragma once

#include <cstdint>

#include "src/core/dtype.h"
#include "src/ops/kernel_kinds.h"

namespace lockstep::cuda {

// x [outer, size, inner] of `dtype` (contiguous) -> out [outer, inner] (i64 for argmax/argmin, else dtype).
// size > 0 for max, min, argmax and argmin.
void launch_reduce(ReduceOp op, DType dtype, const void* x, void* out, std::int64_t outer, std::int64_t size,
                   std::int64_t inner);

}  // namespace lockstep::cuda
