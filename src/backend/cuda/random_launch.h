// Launcher of the CUDA random fills (defined in random_kernels.cu): runs on the current device and the
// default stream, returns without waiting, and raises DeviceError when a launch fails.
#pragma once

#include <cstdint>

#include "src/core/dtype.h"
#include "src/ops/random_formulas.h"

namespace lockstep::cuda {

// out[0, n) (contiguous, f32 or f64) from Philox blocks offset, offset + 1, ... of `seed` (random_block).
void launch_random(DType dtype, void* out, std::int64_t n, std::uint64_t seed, std::uint64_t offset,
                   const RandomDraw& d);

}  // namespace lockstep::cuda
