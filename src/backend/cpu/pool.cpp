// CPU pooling kernels over contiguous NCHW planes: max pooling with plane indices, average pooling and its
// adjoint, and the per-plane scatter-add / gather that max pooling's gradient and max unpooling use.
// Parallel over the N*C planes (each plane is written by one thread).
#include <algorithm>
#include <cmath>
#include <limits>

#include "src/backend/cpu/register.h"
#include "src/core/threading.h"
#include "src/ops/kernels.h"

namespace lockstep::cpu {
namespace {

// One pooling window along one axis: [start, end) clipped to the input, and the divisor's extent.
struct Window {
  std::int64_t start, end, padded_extent;
};

inline Window window(std::int64_t out, std::int64_t kernel, std::int64_t stride, std::int64_t pad, std::int64_t in) {
  const std::int64_t start = out * stride - pad;
  const std::int64_t end = std::min(start + kernel, in + pad);
  return {std::max<std::int64_t>(start, 0), std::min(end, in), end - start};
}

// The first NaN of a window (row-major), which max pooling returns.
template <class T>
void first_nan(const T* src, std::int64_t w, const Window& wh, const Window& ww, T& best, std::int64_t& best_at) {
  for (std::int64_t a = wh.start; a < wh.end; ++a) {
    for (std::int64_t b = ww.start; b < ww.end; ++b) {
      if (std::isnan(src[a * w + b])) {
        best = src[a * w + b];
        best_at = a * w + b;
        return;
      }
    }
  }
}

template <class T> void max_pool2d_typed(const Tensor& x, const Tensor& y, const Tensor& indices, const Pool2dParams& p) {
  const std::int64_t planes = x.size(0) * x.size(1), h = x.size(2), w = x.size(3);
  const std::int64_t ph = y.size(2), pw = y.size(3);
  const T* in = x.data<T>();
  T* out = y.data<T>();
  std::int64_t* idx = indices.data<std::int64_t>();
#pragma omp parallel for if (planes * ph * pw * p.kernel[0] * p.kernel[1] >= kParallelGrain)
  for (std::int64_t c = 0; c < planes; ++c) {
    const T* src = in + c * h * w;
    for (std::int64_t i = 0; i < ph; ++i) {
      const Window wh = window(i, p.kernel[0], p.stride[0], p.padding[0], h);
      for (std::int64_t j = 0; j < pw; ++j) {
        const Window ww = window(j, p.kernel[1], p.stride[1], p.padding[1], w);
        // Branch-free max and argmax; a window holding NaN is redone so that NaN propagates (its first one wins).
        T best = -std::numeric_limits<T>::infinity();
        std::int64_t best_at = wh.start * w + ww.start;
        bool nan = false;
        for (std::int64_t a = wh.start; a < wh.end; ++a) {
          const T* row = src + a * w;
          for (std::int64_t b = ww.start; b < ww.end; ++b) {
            const T v = row[b];
            const bool take = v > best;
            best = take ? v : best;
            best_at = take ? a * w + b : best_at;
            nan = nan || v != v;
          }
        }
        if (nan) first_nan(src, w, wh, ww, best, best_at);
        const std::int64_t o = (c * ph + i) * pw + j;
        out[o] = best;
        idx[o] = best_at;
      }
    }
  }
}

template <class T> void avg_pool2d_typed(const Tensor& x, const Tensor& y, const Pool2dParams& p) {
  const std::int64_t planes = x.size(0) * x.size(1), h = x.size(2), w = x.size(3);
  const std::int64_t ph = y.size(2), pw = y.size(3);
  const bool include_pad = p.count_include_pad == CountIncludePad::kYes;
  const T* in = x.data<T>();
  T* out = y.data<T>();
#pragma omp parallel for if (planes * ph * pw * p.kernel[0] * p.kernel[1] >= kParallelGrain)
  for (std::int64_t c = 0; c < planes; ++c) {
    const T* src = in + c * h * w;
    for (std::int64_t i = 0; i < ph; ++i) {
      const Window wh = window(i, p.kernel[0], p.stride[0], p.padding[0], h);
      for (std::int64_t j = 0; j < pw; ++j) {
        const Window ww = window(j, p.kernel[1], p.stride[1], p.padding[1], w);
        T sum = 0;
        for (std::int64_t a = wh.start; a < wh.end; ++a) {
          for (std::int64_t b = ww.start; b < ww.end; ++b) sum += src[a * w + b];
        }
        const std::int64_t count = include_pad ? wh.padded_extent * ww.padded_extent : (wh.end - wh.start) * (ww.end - ww.start);
        out[(c * ph + i) * pw + j] = count > 0 ? sum / static_cast<T>(count) : T(0);
      }
    }
  }
}

template <class T> void avg_pool2d_backward_typed(const Tensor& dy, const Tensor& dx, const Pool2dParams& p) {
  const std::int64_t planes = dx.size(0) * dx.size(1), h = dx.size(2), w = dx.size(3);
  const std::int64_t ph = dy.size(2), pw = dy.size(3);
  const bool include_pad = p.count_include_pad == CountIncludePad::kYes;
  const T* g = dy.data<T>();
  T* out = dx.data<T>();
#pragma omp parallel for if (planes * ph * pw * p.kernel[0] * p.kernel[1] >= kParallelGrain)
  for (std::int64_t c = 0; c < planes; ++c) {
    T* dst = out + c * h * w;
    std::fill(dst, dst + h * w, T(0));
    for (std::int64_t i = 0; i < ph; ++i) {
      const Window wh = window(i, p.kernel[0], p.stride[0], p.padding[0], h);
      for (std::int64_t j = 0; j < pw; ++j) {
        const Window ww = window(j, p.kernel[1], p.stride[1], p.padding[1], w);
        const std::int64_t count = include_pad ? wh.padded_extent * ww.padded_extent : (wh.end - wh.start) * (ww.end - ww.start);
        if (count == 0) continue;
        const T share = g[(c * ph + i) * pw + j] / static_cast<T>(count);
        for (std::int64_t a = wh.start; a < wh.end; ++a) {
          for (std::int64_t b = ww.start; b < ww.end; ++b) dst[a * w + b] += share;
        }
      }
    }
  }
}

// Raises IndexError (before any parallel work) unless every index lies in [0, m).
void check_plane_indices(const char* kernel, const Tensor& indices, std::int64_t m) {
  const std::int64_t* idx = indices.data<std::int64_t>();
  const std::int64_t n = indices.numel();
  std::int64_t bad = -1;
  for (std::int64_t i = 0; i < n && bad < 0; ++i) {
    if (idx[i] < 0 || idx[i] >= m) bad = i;
  }
  LOCKSTEP_CHECK(bad < 0, IndexError, kernel, ": expected indices in [0, ", m, ") of a plane, but got ",
                 bad >= 0 ? idx[bad] : 0, " at flat position ", bad, " of indices ", shape_str(indices.shape()));
}

template <class T> void plane_scatter_add_typed(const Tensor& src, const Tensor& indices, const Tensor& out) {
  const std::int64_t b = src.size(0), l = src.size(1), m = out.size(1);
  const T* s = src.data<T>();
  const std::int64_t* idx = indices.data<std::int64_t>();
  T* o = out.data<T>();
#pragma omp parallel for if (b * l >= kParallelGrain)
  for (std::int64_t r = 0; r < b; ++r) {
    for (std::int64_t i = 0; i < l; ++i) o[r * m + idx[r * l + i]] += s[r * l + i];
  }
}

template <class T> void plane_gather_typed(const Tensor& src, const Tensor& indices, const Tensor& out) {
  const std::int64_t b = out.size(0), l = out.size(1), m = src.size(1);
  const T* s = src.data<T>();
  const std::int64_t* idx = indices.data<std::int64_t>();
  T* o = out.data<T>();
#pragma omp parallel for if (b * l >= kParallelGrain)
  for (std::int64_t r = 0; r < b; ++r) {
    for (std::int64_t i = 0; i < l; ++i) o[r * l + i] = s[r * m + idx[r * l + i]];
  }
}

void max_pool2d_kernel(const Tensor& x, const Tensor& y, const Tensor& indices, const Pool2dParams& p) {
  dispatch_floating("max_pool2d", x.dtype(), [&](auto tag) { max_pool2d_typed<decltype(tag)>(x, y, indices, p); });
}

void avg_pool2d_kernel(const Tensor& x, const Tensor& y, const Pool2dParams& p) {
  dispatch_floating("avg_pool2d", x.dtype(), [&](auto tag) { avg_pool2d_typed<decltype(tag)>(x, y, p); });
}

void avg_pool2d_backward_kernel(const Tensor& dy, const Tensor& dx, const Pool2dParams& p) {
  dispatch_floating("avg_pool2d_backward", dy.dtype(), [&](auto tag) { avg_pool2d_backward_typed<decltype(tag)>(dy, dx, p); });
}

void plane_scatter_add_kernel(const Tensor& src, const Tensor& indices, const Tensor& out) {
  check_plane_indices("plane_scatter_add", indices, out.size(1));
  dispatch_floating("plane_scatter_add", src.dtype(), [&](auto tag) { plane_scatter_add_typed<decltype(tag)>(src, indices, out); });
}

void plane_gather_kernel(const Tensor& src, const Tensor& indices, const Tensor& out) {
  check_plane_indices("plane_gather", indices, src.size(1));
  dispatch_floating("plane_gather", src.dtype(), [&](auto tag) { plane_gather_typed<decltype(tag)>(src, indices, out); });
}

}  // namespace

void register_pool_kernels() {
  kernels::max_pool2d.set(DeviceType::CPU, max_pool2d_kernel);
  kernels::avg_pool2d.set(DeviceType::CPU, avg_pool2d_kernel);
  kernels::avg_pool2d_backward.set(DeviceType::CPU, avg_pool2d_backward_kernel);
  kernels::plane_scatter_add.set(DeviceType::CPU, plane_scatter_add_kernel);
  kernels::plane_gather.set(DeviceType::CPU, plane_gather_kernel);
}

}  // namespace lockstep::cpu
