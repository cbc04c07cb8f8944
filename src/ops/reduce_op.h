// The reductions the reduce kernels compute (plain data, shared by the CPU and CUDA kernels).
#pragma once

#include <cstdint>

namespace lockstep {

enum class ReduceOp : std::uint8_t { kSum, kMean, kMax, kMin, kArgmax, kArgmin };

}  // namespace lockstep
