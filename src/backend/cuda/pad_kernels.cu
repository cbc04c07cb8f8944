// CUDA 2-D padding over [B, H, W] planes, constant and reflection, and the adjoints: forward one thread per
// output element; backward one thread per input row running the CPU kernel's row loop, so reflection's
// mirrored contributions add up in the CPU's order (same bits, no atomics).
#include <cuda_runtime.h>

#include <algorithm>

#include "src/backend/cuda/check.h"
#include "src/backend/cuda/grid.cuh"
#include "src/backend/cuda/resample_launch.h"

namespace lockstep::cuda {
namespace {

// The input index that padded index i (in [-before, n + after)) reads under reflection.
__device__ inline std::int64_t reflect_index(std::int64_t i, std::int64_t n) {
  if (i < 0) return -i;
  if (i >= n) return 2 * (n - 1) - i;
  return i;
}

template <class T>
__global__ void pad_kernel(bool reflect, const T* x, T* y, std::int64_t total, std::int64_t h, std::int64_t w,
                           std::int64_t ho, std::int64_t wo, std::int64_t left, std::int64_t top, T fill) {
  for (std::int64_t o = first_index(); o < total; o += grid_stride()) {
    const std::int64_t j = o % wo, oh = (o / wo) % ho, plane = o / (wo * ho);
    std::int64_t ih = oh - top, iw = j - left;
    if (reflect) {
      ih = reflect_index(ih, h);
      iw = reflect_index(iw, w);
    } else if (ih < 0 || ih >= h || iw < 0 || iw >= w) {
      y[o] = fill;
      continue;
    }
    y[o] = x[(plane * h + ih) * w + iw];
  }
}

template <class T>
__global__ void pad_backward_kernel(bool reflect, const T* g, T* out, std::int64_t rows, std::int64_t h,
                                    std::int64_t w, std::int64_t ho, std::int64_t wo, std::int64_t left,
                                    std::int64_t top, std::int64_t bottom) {
  for (std::int64_t row = first_index(); row < rows; row += grid_stride()) {
    const std::int64_t plane = row / h, ih = row % h;
    T* dst = out + row * w;
    const T* src = g + (plane * ho + ih + top) * wo;
    for (std::int64_t j = 0; j < w; ++j) dst[j] = src[left + j];
    if (!reflect) continue;
    for (std::int64_t j = 0; j < left; ++j) dst[left - j] += src[j];
    for (std::int64_t j = left + w; j < wo; ++j) dst[2 * (w - 1) - (j - left)] += src[j];
    const std::int64_t mirrors[2] = {ih >= 1 && ih <= top ? top - ih : -1,
                                     ih < h - 1 && ih >= h - 1 - bottom ? top + 2 * (h - 1) - ih : -1};
    for (const std::int64_t oh : mirrors) {
      if (oh < 0) continue;
      const T* m = g + (plane * ho + oh) * wo;
      for (std::int64_t j = 0; j < wo; ++j) dst[reflect_index(j - left, w)] += m[j];
    }
  }
}

}  // namespace

void launch_pad2d(bool reflect, DType dtype, const void* x, void* y, std::int64_t planes, std::int64_t h,
                  std::int64_t w, std::int64_t ho, std::int64_t wo, std::int64_t left, std::int64_t top,
                  double value) {
  const std::int64_t total = planes * ho * wo;
  if (total == 0) return;
  dispatch_floating("pad2d (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    pad_kernel<T><<<blocks_for(total), kThreads>>>(reflect, static_cast<const T*>(x), static_cast<T*>(y),
                                                   total, h, w, ho, wo, left, top, static_cast<T>(value));
  });
  check_cuda(cudaGetLastError(), "pad_kernel<<<...>>>");
}

void launch_pad2d_backward(bool reflect, DType dtype, const void* dy, void* dx, std::int64_t planes,
                           std::int64_t h, std::int64_t w, std::int64_t ho, std::int64_t wo,
                           std::int64_t left, std::int64_t top, std::int64_t bottom) {
  const std::int64_t rows = planes * h;
  if (rows * w == 0) return;
  dispatch_floating("pad2d_backward (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    pad_backward_kernel<T><<<blocks_for(rows), kThreads>>>(
        reflect, static_cast<const T*>(dy), static_cast<T*>(dx), rows, h, w, ho, wo, left, top, bottom);
  });
  check_cuda(cudaGetLastError(), "pad_backward_kernel<<<...>>>");
}

}  // namespace lockstep::cuda
