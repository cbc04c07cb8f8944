// CUDA softmax and log-softmax over the middle axis of [outer, size, inner], forward and backward, with the
// CPU kernel's formulas: max-subtracted, sums carried in f64; softmax y = exp(x - m) / s, log-softmax
// y = (x - m) - log(s); backward softmax dx = y * (dy - sum(dy * y)), log-softmax dx = dy - exp(y) * sum(dy).
// inner == 1: one block per row (shared-memory trees for the max and the sum); inner > 1: one thread per
// column. exp is CUDA's (the CPU's f32 exp is its own polynomial), so values agree to rounding.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "src/backend/cuda/check.h"
#include "src/backend/cuda/grid.cuh"
#include "src/backend/cuda/softmax_launch.h"

namespace lockstep::cuda {
namespace {

// The block-wide max (NaN ignored, as the CPU's x > m scan does) and sum of the calling block's values.
template <class T>
__device__ T block_max(T v, T* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (static_cast<int>(threadIdx.x) < width) {
      const T other = shared[threadIdx.x + width];
      shared[threadIdx.x] = other > shared[threadIdx.x] ? other : shared[threadIdx.x];
    }
    __syncthreads();
  }
  const T result = shared[0];
  __syncthreads();
  return result;
}

__device__ double block_sum(double v, double* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (static_cast<int>(threadIdx.x) < width) shared[threadIdx.x] += shared[threadIdx.x + width];
    __syncthreads();
  }
  const double result = shared[0];
  __syncthreads();
  return result;
}

template <SoftmaxKind K, class T>
__global__ void softmax_rows_kernel(const T* x, T* y, std::int64_t outer, std::int64_t size) {
  __shared__ T max_part[kThreads];
  __shared__ double sum_part[kThreads];
  for (std::int64_t row = blockIdx.x; row < outer; row += gridDim.x) {
    const T* xr = x + row * size;
    T* yr = y + row * size;
    T m = -INFINITY;
    for (std::int64_t i = threadIdx.x; i < size; i += blockDim.x) m = xr[i] > m ? xr[i] : m;
    m = block_max(m, max_part);
    double s = 0.0;
    for (std::int64_t i = threadIdx.x; i < size; i += blockDim.x) s += static_cast<double>(exp(xr[i] - m));
    s = block_sum(s, sum_part);
    if constexpr (K == SoftmaxKind::kSoftmax) {
      const T inv = static_cast<T>(1.0 / s);
      for (std::int64_t i = threadIdx.x; i < size; i += blockDim.x) yr[i] = exp(xr[i] - m) * inv;
    } else {
      const T log_s = static_cast<T>(log(s));
      for (std::int64_t i = threadIdx.x; i < size; i += blockDim.x) yr[i] = (xr[i] - m) - log_s;
    }
  }
}

template <SoftmaxKind K, class T>
__global__ void softmax_columns_kernel(const T* x, T* y, std::int64_t outer, std::int64_t size,
                                       std::int64_t inner) {
  const std::int64_t n = outer * inner;
  for (std::int64_t k = first_index(); k < n; k += grid_stride()) {
    const std::int64_t base = (k / inner) * size * inner + k % inner;
    T m = -INFINITY;
    for (std::int64_t i = 0; i < size; ++i) m = x[base + i * inner] > m ? x[base + i * inner] : m;
    double s = 0.0;
    for (std::int64_t i = 0; i < size; ++i) s += static_cast<double>(exp(x[base + i * inner] - m));
    if constexpr (K == SoftmaxKind::kSoftmax) {
      const T inv = static_cast<T>(1.0 / s);
      for (std::int64_t i = 0; i < size; ++i) y[base + i * inner] = exp(x[base + i * inner] - m) * inv;
    } else {
      const T log_s = static_cast<T>(log(s));
      for (std::int64_t i = 0; i < size; ++i) y[base + i * inner] = (x[base + i * inner] - m) - log_s;
    }
  }
}

// dy * y (softmax) or dy (log-softmax): the terms the backward sums.
template <SoftmaxKind K, class T>
__device__ inline double backward_term(T dy, T y) {
  if constexpr (K == SoftmaxKind::kSoftmax) return static_cast<double>(dy) * static_cast<double>(y);
  return static_cast<double>(dy);
}

template <SoftmaxKind K, class T>
__device__ inline T backward_value(T dy, T y, T st) {
  if constexpr (K == SoftmaxKind::kSoftmax) return y * (dy - st);
  return dy - exp(y) * st;
}

template <SoftmaxKind K, class T>
__global__ void softmax_backward_rows_kernel(const T* dy, const T* y, T* dx, std::int64_t outer,
                                             std::int64_t size) {
  __shared__ double sum_part[kThreads];
  for (std::int64_t row = blockIdx.x; row < outer; row += gridDim.x) {
    const std::int64_t base = row * size;
    double s = 0.0;
    for (std::int64_t i = threadIdx.x; i < size; i += blockDim.x)
      s += backward_term<K>(dy[base + i], y[base + i]);
    const T st = static_cast<T>(block_sum(s, sum_part));
    for (std::int64_t i = threadIdx.x; i < size; i += blockDim.x)
      dx[base + i] = backward_value<K>(dy[base + i], y[base + i], st);
  }
}

template <SoftmaxKind K, class T>
__global__ void softmax_backward_columns_kernel(const T* dy, const T* y, T* dx, std::int64_t outer,
                                                std::int64_t size, std::int64_t inner) {
  const std::int64_t n = outer * inner;
  for (std::int64_t k = first_index(); k < n; k += grid_stride()) {
    const std::int64_t base = (k / inner) * size * inner + k % inner;
    double s = 0.0;
    for (std::int64_t i = 0; i < size; ++i) s += backward_term<K>(dy[base + i * inner], y[base + i * inner]);
    const T st = static_cast<T>(s);
    for (std::int64_t i = 0; i < size; ++i) {
      const std::int64_t j = base + i * inner;
      dx[j] = backward_value<K>(dy[j], y[j], st);
    }
  }
}

}  // namespace

void launch_softmax(SoftmaxKind kind, DType dtype, const void* x, void* y, std::int64_t outer,
                    std::int64_t size, std::int64_t inner) {
  if (outer * size * inner == 0) return;
  dispatch_floating("softmax (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* in = static_cast<const T*>(x);
    T* out = static_cast<T*>(y);
    const auto run = [&](auto kind_tag) {
      constexpr SoftmaxKind K = decltype(kind_tag)::value;
      if (inner == 1) {
        softmax_rows_kernel<K, T><<<blocks_per_row(outer), kThreads>>>(in, out, outer, size);
      } else {
        softmax_columns_kernel<K, T><<<blocks_for(outer * inner), kThreads>>>(in, out, outer, size, inner);
      }
    };
    if (kind == SoftmaxKind::kSoftmax) {
      run(std::integral_constant<SoftmaxKind, SoftmaxKind::kSoftmax>{});
    } else {
      run(std::integral_constant<SoftmaxKind, SoftmaxKind::kLogSoftmax>{});
    }
  });
  check_cuda(cudaGetLastError(), "softmax kernel <<<...>>>");
}

void launch_softmax_backward(SoftmaxKind kind, DType dtype, const void* dy, const void* y, void* dx,
                             std::int64_t outer, std::int64_t size, std::int64_t inner) {
  if (outer * size * inner == 0) return;
  dispatch_floating("softmax_backward (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* g = static_cast<const T*>(dy);
    const T* yp = static_cast<const T*>(y);
    T* d = static_cast<T*>(dx);
    const auto run = [&](auto kind_tag) {
      constexpr SoftmaxKind K = decltype(kind_tag)::value;
      if (inner == 1) {
        softmax_backward_rows_kernel<K, T><<<blocks_per_row(outer), kThreads>>>(g, yp, d, outer, size);
      } else {
        softmax_backward_columns_kernel<K, T>
            <<<blocks_for(outer * inner), kThreads>>>(g, yp, d, outer, size, inner);
      }
    };
    if (kind == SoftmaxKind::kSoftmax) {
      run(std::integral_constant<SoftmaxKind, SoftmaxKind::kSoftmax>{});
    } else {
      run(std::integral_constant<SoftmaxKind, SoftmaxKind::kLogSoftmax>{});
    }
  });
  check_cuda(cudaGetLastError(), "softmax_backward kernel <<<...>>>");
}

}  // namespace lockstep::cuda
