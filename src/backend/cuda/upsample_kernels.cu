// CUDA nearest upsampling over contiguous NCHW planes (source floor(dst * in / out), as the CPU): forward one
// thread per output element; the adjoint one thread per plane running the CPU kernel's loop, so repeated
// sources add up in the CPU's order (same bits, no atomics).
#include <cuda_runtime.h>

#include <algorithm>

#include "src/backend/cuda/check.h"
#include "src/backend/cuda/grid.cuh"
#include "src/backend/cuda/resample_launch.h"

namespace lockstep::cuda {
namespace {

__device__ inline std::int64_t nearest_source(std::int64_t i, std::int64_t in, std::int64_t out) {
  return min(i * in / out, in - 1);
}

template <class T>
__global__ void nearest_kernel(const T* x, T* y, std::int64_t total, std::int64_t h, std::int64_t w,
                               std::int64_t ph, std::int64_t pw) {
  for (std::int64_t o = first_index(); o < total; o += grid_stride()) {
    const std::int64_t j = o % pw, i = (o / pw) % ph, plane = o / (pw * ph);
    y[o] = x[(plane * h + nearest_source(i, h, ph)) * w + nearest_source(j, w, pw)];
  }
}

template <class T>
__global__ void nearest_backward_kernel(const T* g, T* out, std::int64_t planes, std::int64_t h,
                                        std::int64_t w, std::int64_t ph, std::int64_t pw) {
  for (std::int64_t c = first_index(); c < planes; c += grid_stride()) {
    T* plane = out + c * h * w;
    for (std::int64_t k = 0; k < h * w; ++k) plane[k] = T(0);
    for (std::int64_t i = 0; i < ph; ++i) {
      T* dst = plane + nearest_source(i, h, ph) * w;
      const T* src = g + (c * ph + i) * pw;
      for (std::int64_t j = 0; j < pw; ++j) dst[nearest_source(j, w, pw)] += src[j];
    }
  }
}

}  // namespace

void launch_upsample_nearest2d(DType dtype, const void* x, void* y, std::int64_t planes, std::int64_t h,
                               std::int64_t w, std::int64_t ph, std::int64_t pw) {
  const std::int64_t total = planes * ph * pw;
  if (total == 0) return;
  dispatch_floating("upsample_nearest2d (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    nearest_kernel<T>
        <<<blocks_for(total), kThreads>>>(static_cast<const T*>(x), static_cast<T*>(y), total, h, w, ph, pw);
  });
  check_cuda(cudaGetLastError(), "nearest_kernel<<<...>>>");
}

void launch_upsample_nearest2d_backward(DType dtype, const void* dy, void* dx, std::int64_t planes,
                                        std::int64_t h, std::int64_t w, std::int64_t ph, std::int64_t pw) {
  if (planes * h * w == 0) return;
  dispatch_floating("upsample_nearest2d_backward (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    nearest_backward_kernel<T><<<blocks_for(planes), kThreads>>>(static_cast<const T*>(dy),
                                                                 static_cast<T*>(dx), planes, h, w, ph, pw);
  });
  check_cuda(cudaGetLastError(), "nearest_backward_kernel<<<...>>>");
}

}  // namespace lockstep::cuda
