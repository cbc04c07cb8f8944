// CPU resampling kernels over contiguous NCHW planes: nearest (source floor(dst * in / out)) and bilinear
// (PyTorch's source-coordinate formula, with or without align_corners), forward and adjoint.
// Source indices and weights are computed once per call; parallel over the N*C planes.
#include <algorithm>
#include <vector>

#include "src/backend/cpu/register.h"
#include "src/core/threading.h"
#include "src/ops/kernels.h"

namespace lockstep::cpu {
namespace {

// Nearest source index of each of the `out` destination positions along an axis of size `in`.
std::vector<std::int64_t> nearest_sources(std::int64_t in, std::int64_t out) {
  std::vector<std::int64_t> src(static_cast<std::size_t>(out));
  for (std::int64_t i = 0; i < out; ++i) src[static_cast<std::size_t>(i)] = std::min(i * in / out, in - 1);
  return src;
}

// Bilinear taps of one destination position: value = w0 * x[i0] + w1 * x[i1].
struct Taps {
  std::int64_t i0, i1;
  double w0, w1;
};

std::vector<Taps> bilinear_taps(std::int64_t in, std::int64_t out, AlignCorners align) {
  std::vector<Taps> taps(static_cast<std::size_t>(out));
  const double scale = align == AlignCorners::kYes ? (out > 1 ? static_cast<double>(in - 1) / static_cast<double>(out - 1) : 0.0)
                                                   : static_cast<double>(in) / static_cast<double>(out);
  for (std::int64_t i = 0; i < out; ++i) {
    const double d = static_cast<double>(i);
    const double src = align == AlignCorners::kYes ? d * scale : std::max((d + 0.5) * scale - 0.5, 0.0);
    const std::int64_t i0 = std::min(static_cast<std::int64_t>(src), in - 1);
    const std::int64_t i1 = i0 < in - 1 ? i0 + 1 : i0;
    const double l1 = src - static_cast<double>(i0);
    taps[static_cast<std::size_t>(i)] = {i0, i1, 1.0 - l1, l1};
  }
  return taps;
}

template <class T> void nearest_typed(const Tensor& x, const Tensor& y) {
  const std::int64_t planes = x.size(0) * x.size(1), h = x.size(2), w = x.size(3), ph = y.size(2), pw = y.size(3);
  const auto rows = nearest_sources(h, ph), cols = nearest_sources(w, pw);
  const T* in = x.data<T>();
  T* out = y.data<T>();
#pragma omp parallel for if (planes * ph * pw >= kParallelGrain)
  for (std::int64_t c = 0; c < planes; ++c) {
    for (std::int64_t i = 0; i < ph; ++i) {
      const T* src = in + (c * h + rows[static_cast<std::size_t>(i)]) * w;
      T* dst = out + (c * ph + i) * pw;
      for (std::int64_t j = 0; j < pw; ++j) dst[j] = src[cols[static_cast<std::size_t>(j)]];
    }
  }
}

template <class T> void nearest_backward_typed(const Tensor& dy, const Tensor& dx) {
  const std::int64_t planes = dx.size(0) * dx.size(1), h = dx.size(2), w = dx.size(3), ph = dy.size(2), pw = dy.size(3);
  const auto rows = nearest_sources(h, ph), cols = nearest_sources(w, pw);
  const T* g = dy.data<T>();
  T* out = dx.data<T>();
#pragma omp parallel for if (planes * ph * pw >= kParallelGrain)
  for (std::int64_t c = 0; c < planes; ++c) {
    std::fill(out + c * h * w, out + (c + 1) * h * w, T(0));
    for (std::int64_t i = 0; i < ph; ++i) {
      T* dst = out + (c * h + rows[static_cast<std::size_t>(i)]) * w;
      const T* src = g + (c * ph + i) * pw;
      for (std::int64_t j = 0; j < pw; ++j) dst[cols[static_cast<std::size_t>(j)]] += src[j];
    }
  }
}

template <class T> void bilinear_typed(const Tensor& x, const Tensor& y, AlignCorners align) {
  const std::int64_t planes = x.size(0) * x.size(1), h = x.size(2), w = x.size(3), ph = y.size(2), pw = y.size(3);
  const auto rows = bilinear_taps(h, ph, align), cols = bilinear_taps(w, pw, align);
  const T* in = x.data<T>();
  T* out = y.data<T>();
#pragma omp parallel for if (planes * ph * pw >= kParallelGrain)
  for (std::int64_t c = 0; c < planes; ++c) {
    for (std::int64_t i = 0; i < ph; ++i) {
      const Taps& r = rows[static_cast<std::size_t>(i)];
      const T* top = in + (c * h + r.i0) * w;
      const T* bottom = in + (c * h + r.i1) * w;
      const T r0 = static_cast<T>(r.w0), r1 = static_cast<T>(r.w1);
      T* dst = out + (c * ph + i) * pw;
      for (std::int64_t j = 0; j < pw; ++j) {
        const Taps& t = cols[static_cast<std::size_t>(j)];
        const T c0 = static_cast<T>(t.w0), c1 = static_cast<T>(t.w1);
        dst[j] = r0 * (c0 * top[t.i0] + c1 * top[t.i1]) + r1 * (c0 * bottom[t.i0] + c1 * bottom[t.i1]);
      }
    }
  }
}

template <class T> void bilinear_backward_typed(const Tensor& dy, const Tensor& dx, AlignCorners align) {
  const std::int64_t planes = dx.size(0) * dx.size(1), h = dx.size(2), w = dx.size(3), ph = dy.size(2), pw = dy.size(3);
  const auto rows = bilinear_taps(h, ph, align), cols = bilinear_taps(w, pw, align);
  const T* g = dy.data<T>();
  T* out = dx.data<T>();
#pragma omp parallel for if (planes * ph * pw >= kParallelGrain)
  for (std::int64_t c = 0; c < planes; ++c) {
    std::fill(out + c * h * w, out + (c + 1) * h * w, T(0));
    for (std::int64_t i = 0; i < ph; ++i) {
      const Taps& r = rows[static_cast<std::size_t>(i)];
      T* top = out + (c * h + r.i0) * w;
      T* bottom = out + (c * h + r.i1) * w;
      const T r0 = static_cast<T>(r.w0), r1 = static_cast<T>(r.w1);
      const T* src = g + (c * ph + i) * pw;
      for (std::int64_t j = 0; j < pw; ++j) {
        const Taps& t = cols[static_cast<std::size_t>(j)];
        const T c0 = static_cast<T>(t.w0) * src[j], c1 = static_cast<T>(t.w1) * src[j];
        top[t.i0] += r0 * c0;
        top[t.i1] += r0 * c1;
        bottom[t.i0] += r1 * c0;
        bottom[t.i1] += r1 * c1;
      }
    }
  }
}

void nearest_kernel(const Tensor& x, const Tensor& y) {
  dispatch_floating("upsample_nearest2d", x.dtype(), [&](auto tag) { nearest_typed<decltype(tag)>(x, y); });
}
void nearest_backward_kernel(const Tensor& dy, const Tensor& dx) {
  dispatch_floating("upsample_nearest2d_backward", dy.dtype(), [&](auto tag) { nearest_backward_typed<decltype(tag)>(dy, dx); });
}
void bilinear_kernel(const Tensor& x, const Tensor& y, AlignCorners align) {
  dispatch_floating("upsample_bilinear2d", x.dtype(), [&](auto tag) { bilinear_typed<decltype(tag)>(x, y, align); });
}
void bilinear_backward_kernel(const Tensor& dy, const Tensor& dx, AlignCorners align) {
  dispatch_floating("upsample_bilinear2d_backward", dy.dtype(),
                    [&](auto tag) { bilinear_backward_typed<decltype(tag)>(dy, dx, align); });
}

}  // namespace

void register_upsample_kernels() {
  kernels::upsample_nearest2d.set(DeviceType::CPU, nearest_kernel);
  kernels::upsample_nearest2d_backward.set(DeviceType::CPU, nearest_backward_kernel);
  kernels::upsample_bilinear2d.set(DeviceType::CPU, bilinear_kernel);
  kernels::upsample_bilinear2d_backward.set(DeviceType::CPU, bilinear_backward_kernel);
}

}  // namespace lockstep::cpu
