// CUDA nearest upsampling over contiguous NCHW planes (source floor(dst * in / out), as the CPU): forward one
// thread per output element; the adjoint one thread per plane running the CPU kernel's loop, so repeated
// sources add up in the CPU's order (same bits, no atomics).
// CUDA bilinear upsampling (taps, weights and arithmetic from src/ops/resample_formulas.h, as the CPU):
// forward one thread per output element; the adjoint one thread per input element, gathering from the
// output elements that read it in the CPU scatter's order (same bits, no atomics).
#include <cuda_runtime.h>

#include <algorithm>

#include "src/backend/cuda/check.h"
#include "src/backend/cuda/grid.cuh"
#include "src/backend/cuda/resample_launch.h"
#include "src/ops/resample_formulas.h"

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

template <class T>
__global__ void bilinear_kernel(const T* x, T* y, std::int64_t total, std::int64_t h, std::int64_t w,
                                std::int64_t ph, std::int64_t pw, double scale_h, double scale_w,
                                bool corners) {
  for (std::int64_t o = first_index(); o < total; o += grid_stride()) {
    const std::int64_t j = o % pw, i = (o / pw) % ph, plane = o / (pw * ph);
    const BilinearTaps r = bilinear_taps(i, h, scale_h, corners), t = bilinear_taps(j, w, scale_w, corners);
    const T* top = x + (plane * h + r.i0) * w;
    const T* bottom = x + (plane * h + r.i1) * w;
    const T r0 = static_cast<T>(r.w0), r1 = static_cast<T>(r.w1);
    const T c0 = static_cast<T>(t.w0), c1 = static_cast<T>(t.w1);
    y[o] = bilinear_mix(r0, bilinear_mix(c0, top[t.i0], c1, top[t.i1]), r1,
                        bilinear_mix(c0, bottom[t.i0], c1, bottom[t.i1]));
  }
}

// The first destination position i in [0, out) whose first tap i0 is at least `target` (out if none), by
// bisection: i0 is non-decreasing in i.
__device__ inline std::int64_t first_tap_at_least(std::int64_t target, std::int64_t in, std::int64_t out,
                                                  double scale, bool corners) {
  std::int64_t lo = 0, hi = out;
  while (lo < hi) {
    const std::int64_t mid = lo + (hi - lo) / 2;
    if (bilinear_taps(mid, in, scale, corners).i0 < target) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// dx[plane, a, b] gathers from the destination elements (i, j) with a tap on it: i0 or i1 of row i is a
// (so i0 is a - 1 or a: a range of i) and i0 or i1 of column j is b. The CPU scatters in the order
// (i, j, row tap, column tap); each element's terms are added here in that same order, from 0.
template <class T>
__global__ void bilinear_backward_kernel(const T* g, T* dx, std::int64_t total, std::int64_t h,
                                         std::int64_t w, std::int64_t ph, std::int64_t pw, double scale_h,
                                         double scale_w, bool corners) {
  for (std::int64_t e = first_index(); e < total; e += grid_stride()) {
    const std::int64_t b = e % w, a = (e / w) % h, plane = e / (w * h);
    const std::int64_t i_begin = first_tap_at_least(a - 1, h, ph, scale_h, corners);
    const std::int64_t i_end = first_tap_at_least(a + 1, h, ph, scale_h, corners);
    const std::int64_t j_begin = first_tap_at_least(b - 1, w, pw, scale_w, corners);
    const std::int64_t j_end = first_tap_at_least(b + 1, w, pw, scale_w, corners);
    T acc = T(0);
    for (std::int64_t i = i_begin; i < i_end; ++i) {
      const BilinearTaps r = bilinear_taps(i, h, scale_h, corners);
      const T r0 = static_cast<T>(r.w0), r1 = static_cast<T>(r.w1);
      const T* src = g + (plane * ph + i) * pw;
      for (std::int64_t j = j_begin; j < j_end; ++j) {
        const BilinearTaps t = bilinear_taps(j, w, scale_w, corners);
        const T c0 = static_cast<T>(t.w0), c1 = static_cast<T>(t.w1);
        if (r.i0 == a) {
          if (t.i0 == b) acc += bilinear_grad_term(r0, c0, src[j]);
          if (t.i1 == b) acc += bilinear_grad_term(r0, c1, src[j]);
        }
        if (r.i1 == a) {
          if (t.i0 == b) acc += bilinear_grad_term(r1, c0, src[j]);
          if (t.i1 == b) acc += bilinear_grad_term(r1, c1, src[j]);
        }
      }
    }
    dx[e] = acc;
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

void launch_upsample_bilinear2d(bool align_corners, DType dtype, const void* x, void* y, std::int64_t planes,
                                std::int64_t h, std::int64_t w, std::int64_t ph, std::int64_t pw) {
  const std::int64_t total = planes * ph * pw;
  if (total == 0) return;
  const double scale_h = bilinear_scale(h, ph, align_corners), scale_w = bilinear_scale(w, pw, align_corners);
  dispatch_floating("upsample_bilinear2d (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    bilinear_kernel<T><<<blocks_for(total), kThreads>>>(static_cast<const T*>(x), static_cast<T*>(y), total,
                                                        h, w, ph, pw, scale_h, scale_w, align_corners);
  });
  check_cuda(cudaGetLastError(), "bilinear_kernel<<<...>>>");
}

void launch_upsample_bilinear2d_backward(bool align_corners, DType dtype, const void* dy, void* dx,
                                         std::int64_t planes, std::int64_t h, std::int64_t w, std::int64_t ph,
                                         std::int64_t pw) {
  const std::int64_t total = planes * h * w;
  if (total == 0) return;
  const double scale_h = bilinear_scale(h, ph, align_corners), scale_w = bilinear_scale(w, pw, align_corners);
  dispatch_floating("upsample_bilinear2d_backward (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    bilinear_backward_kernel<T><<<blocks_for(total), kThreads>>>(
        static_cast<const T*>(dy), static_cast<T*>(dx), total, h, w, ph, pw, scale_h, scale_w, align_corners);
  });
  check_cuda(cudaGetLastError(), "bilinear_backward_kernel<<<...>>>");
}

}  // namespace lockstep::cuda
