// CUDA pooling kernels over contiguous NCHW planes, with the CPU kernels' arithmetic and order: max pooling
// with plane indices (the first maximum of a window in row-major order, the first NaN if any), average
// pooling and its adjoint (each input gathers its windows' shares in the CPU's order, so no atomics and the
// same bits), and the per-plane scatter-add / gather of max pooling's gradient and max unpooling (one thread
// per plane for the scatter, in index order). Indices outside a plane are skipped here; the CPU kernels
// raise IndexError for them.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "src/backend/cuda/check.h"
#include "src/backend/cuda/grid.cuh"
#include "src/backend/cuda/pool_launch.h"

namespace lockstep::cuda {
namespace {

// One pooling window along one axis: [start, end) clipped to the input, and the divisor's extent.
struct Window {
  std::int64_t start, end, padded_extent;
};
__device__ inline Window window(std::int64_t out, std::int64_t kernel, std::int64_t stride, std::int64_t pad,
                                std::int64_t in) {
  const std::int64_t start = out * stride - pad;
  const std::int64_t end = min(start + kernel, in + pad);
  return {max(start, std::int64_t{0}), min(end, in), end - start};
}

__device__ inline std::int64_t divisor(const Window& wh, const Window& ww, bool include_pad) {
  return include_pad ? wh.padded_extent * ww.padded_extent : (wh.end - wh.start) * (ww.end - ww.start);
}

template <class T>
__global__ void max_pool_kernel(const T* x, T* y, std::int64_t* indices, std::int64_t total, std::int64_t h,
                                std::int64_t w, std::int64_t ph, std::int64_t pw, PoolGeometry g) {
  for (std::int64_t o = first_index(); o < total; o += grid_stride()) {
    const std::int64_t j = o % pw, i = (o / pw) % ph, plane = o / (pw * ph);
    const T* src = x + plane * h * w;
    const Window wh = window(i, g.kernel[0], g.stride[0], g.padding[0], h);
    const Window ww = window(j, g.kernel[1], g.stride[1], g.padding[1], w);
    T best = -INFINITY;
    std::int64_t best_at = wh.start * w + ww.start;
    bool nan = false;
    for (std::int64_t a = wh.start; a < wh.end && !nan; ++a) {
      for (std::int64_t b = ww.start; b < ww.end; ++b) {
        const T v = src[a * w + b];
        if (v != v) {  // the first NaN wins
          best = v;
          best_at = a * w + b;
          nan = true;
          break;
        }
        if (v > best) {
          best = v;
          best_at = a * w + b;
        }
      }
    }
    y[o] = best;
    indices[o] = best_at;
  }
}

template <class T>
__global__ void avg_pool_kernel(const T* x, T* y, std::int64_t total, std::int64_t h, std::int64_t w,
                                std::int64_t ph, std::int64_t pw, PoolGeometry g) {
  for (std::int64_t o = first_index(); o < total; o += grid_stride()) {
    const std::int64_t j = o % pw, i = (o / pw) % ph, plane = o / (pw * ph);
    const T* src = x + plane * h * w;
    const Window wh = window(i, g.kernel[0], g.stride[0], g.padding[0], h);
    const Window ww = window(j, g.kernel[1], g.stride[1], g.padding[1], w);
    T sum = 0;
    for (std::int64_t a = wh.start; a < wh.end; ++a) {
      for (std::int64_t b = ww.start; b < ww.end; ++b) sum += src[a * w + b];
    }
    const std::int64_t count = divisor(wh, ww, g.include_pad);
    y[o] = count > 0 ? sum / static_cast<T>(count) : T(0);
  }
}

// The outputs whose windows (along one axis) start at or before `a` and end after it: [lo, hi].
__device__ inline void covering(std::int64_t a, std::int64_t kernel, std::int64_t stride, std::int64_t pad,
                                std::int64_t outputs, std::int64_t& lo, std::int64_t& hi) {
  // Output i covers a when i * stride - pad <= a < i * stride - pad + kernel.
  const std::int64_t num = a + pad - kernel + 1;
  lo = num <= 0 ? 0 : (num + stride - 1) / stride;
  hi = min((a + pad) / stride, outputs - 1);
}

template <class T>
__global__ void avg_pool_backward_kernel(const T* dy, T* dx, std::int64_t total, std::int64_t h,
                                         std::int64_t w, std::int64_t ph, std::int64_t pw, PoolGeometry g) {
  for (std::int64_t e = first_index(); e < total; e += grid_stride()) {
    const std::int64_t b = e % w, a = (e / w) % h, plane = e / (w * h);
    const T* grad = dy + plane * ph * pw;
    std::int64_t i0, i1, j0, j1;
    covering(a, g.kernel[0], g.stride[0], g.padding[0], ph, i0, i1);
    covering(b, g.kernel[1], g.stride[1], g.padding[1], pw, j0, j1);
    T sum = 0;
    for (std::int64_t i = i0; i <= i1; ++i) {
      const Window wh = window(i, g.kernel[0], g.stride[0], g.padding[0], h);
      if (a < wh.start || a >= wh.end) continue;
      for (std::int64_t j = j0; j <= j1; ++j) {
        const Window ww = window(j, g.kernel[1], g.stride[1], g.padding[1], w);
        if (b < ww.start || b >= ww.end) continue;
        const std::int64_t count = divisor(wh, ww, g.include_pad);
        if (count == 0) continue;
        sum += grad[i * pw + j] / static_cast<T>(count);
      }
    }
    dx[e] = sum;
  }
}

template <class T>
__global__ void plane_scatter_add_kernel(const T* src, const std::int64_t* indices, T* out, std::int64_t rows,
                                         std::int64_t l, std::int64_t m) {
  for (std::int64_t r = first_index(); r < rows; r += grid_stride()) {
    for (std::int64_t i = 0; i < l; ++i) {
      const std::int64_t k = indices[r * l + i];
      if (k >= 0 && k < m) out[r * m + k] += src[r * l + i];
    }
  }
}

template <class T>
__global__ void plane_gather_kernel(const T* src, const std::int64_t* indices, T* out, std::int64_t total,
                                    std::int64_t l, std::int64_t m) {
  for (std::int64_t o = first_index(); o < total; o += grid_stride()) {
    const std::int64_t k = indices[o];
    out[o] = k >= 0 && k < m ? src[(o / l) * m + k] : T(0);
  }
}

}  // namespace

void launch_max_pool2d(DType dtype, const void* x, void* y, std::int64_t* indices, std::int64_t planes,
                       std::int64_t h, std::int64_t w, std::int64_t ph, std::int64_t pw,
                       const PoolGeometry& g) {
  const std::int64_t total = planes * ph * pw;
  if (total == 0) return;
  dispatch_floating("max_pool2d (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    max_pool_kernel<T><<<blocks_for(total), kThreads>>>(static_cast<const T*>(x), static_cast<T*>(y), indices,
                                                        total, h, w, ph, pw, g);
  });
  check_cuda(cudaGetLastError(), "max_pool_kernel<<<...>>>");
}

void launch_avg_pool2d(DType dtype, const void* x, void* y, std::int64_t planes, std::int64_t h,
                       std::int64_t w, std::int64_t ph, std::int64_t pw, const PoolGeometry& g) {
  const std::int64_t total = planes * ph * pw;
  if (total == 0) return;
  dispatch_floating("avg_pool2d (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    avg_pool_kernel<T><<<blocks_for(total), kThreads>>>(static_cast<const T*>(x), static_cast<T*>(y), total,
                                                        h, w, ph, pw, g);
  });
  check_cuda(cudaGetLastError(), "avg_pool_kernel<<<...>>>");
}

void launch_avg_pool2d_backward(DType dtype, const void* dy, void* dx, std::int64_t planes, std::int64_t h,
                                std::int64_t w, std::int64_t ph, std::int64_t pw, const PoolGeometry& g) {
  const std::int64_t total = planes * h * w;
  if (total == 0) return;
  dispatch_floating("avg_pool2d_backward (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    avg_pool_backward_kernel<T><<<blocks_for(total), kThreads>>>(static_cast<const T*>(dy),
                                                                 static_cast<T*>(dx), total, h, w, ph, pw, g);
  });
  check_cuda(cudaGetLastError(), "avg_pool_backward_kernel<<<...>>>");
}

void launch_plane_scatter_add(DType dtype, const void* src, const std::int64_t* indices, void* out,
                              std::int64_t rows, std::int64_t l, std::int64_t m) {
  if (rows * l == 0) return;
  dispatch_floating("plane_scatter_add (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    plane_scatter_add_kernel<T><<<blocks_for(rows), kThreads>>>(static_cast<const T*>(src), indices,
                                                                static_cast<T*>(out), rows, l, m);
  });
  check_cuda(cudaGetLastError(), "plane_scatter_add_kernel<<<...>>>");
}

void launch_plane_gather(DType dtype, const void* src, const std::int64_t* indices, void* out,
                         std::int64_t rows, std::int64_t l, std::int64_t m) {
  const std::int64_t total = rows * l;
  if (total == 0) return;
  dispatch_floating("plane_gather (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    plane_gather_kernel<T><<<blocks_for(total), kThreads>>>(static_cast<const T*>(src), indices,
                                                            static_cast<T*>(out), total, l, m);
  });
  check_cuda(cudaGetLastError(), "plane_gather_kernel<<<...>>>");
}

}  // namespace lockstep::cuda
