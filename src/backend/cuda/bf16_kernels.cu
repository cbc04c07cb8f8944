// f32 <-> bf16 conversion kernels, one element per thread in a grid-stride loop, on the rounding functions
// the CPU kernels use (src/core/precision.h).
#include <cuda_runtime.h>

#include "src/backend/cuda/bf16_launch.h"
#include "src/backend/cuda/check.h"
#include "src/backend/cuda/grid.cuh"
#include "src/core/precision.h"

namespace lockstep::cuda {
namespace {

__global__ void to_bf16_kernel(const float* src, std::uint16_t* dst, std::int64_t n) {
  for (std::int64_t i = first_index(); i < n; i += grid_stride()) dst[i] = bf16_bits(src[i]);
}

__global__ void from_bf16_kernel(const std::uint16_t* src, float* dst, std::int64_t n) {
  for (std::int64_t i = first_index(); i < n; i += grid_stride()) dst[i] = bf16_to_float(src[i]);
}

}  // namespace

void launch_to_bf16(const float* src, std::uint16_t* dst, std::int64_t n) {
  if (n == 0) return;
  to_bf16_kernel<<<blocks_for(n), kThreads>>>(src, dst, n);
  check_cuda(cudaGetLastError(), "to_bf16_kernel<<<...>>>");
}

void launch_from_bf16(const std::uint16_t* src, float* dst, std::int64_t n) {
  if (n == 0) return;
  from_bf16_kernel<<<blocks_for(n), kThreads>>>(src, dst, n);
  check_cuda(cudaGetLastError(), "from_bf16_kernel<<<...>>>");
}

}  // namespace lockstep::cuda
