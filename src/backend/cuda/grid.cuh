// The launch geometry every element-wise CUDA kernel here uses (CUDA code only): blocks of kThreads threads,
// at most kMaxBlocks blocks, and grid-stride loops over the elements.
#pragma once

#include <algorithm>
#include <cstdint>

namespace lockstep::cuda {

inline constexpr int kThreads = 256;
inline constexpr std::int64_t kMaxBlocks = 65536;

// Blocks for n independent items (at least 1, at most kMaxBlocks; the kernels loop with grid_stride()).
inline unsigned blocks_for(std::int64_t n) {
  return static_cast<unsigned>(std::clamp<std::int64_t>((n + kThreads - 1) / kThreads, 1, kMaxBlocks));
}

// Blocks for n rows handled by one block each.
inline unsigned blocks_per_row(std::int64_t rows) {
  return static_cast<unsigned>(std::clamp<std::int64_t>(rows, 1, kMaxBlocks));
}

__device__ inline std::int64_t first_index() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline std::int64_t grid_stride() { return static_cast<std::int64_t>(blockDim.x) * gridDim.x; }

}  // namespace lockstep::cuda
