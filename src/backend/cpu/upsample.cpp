// CPU resampling kernels over contiguous NCHW planes: nearest (source floor(dst * in / out)) and bilinear
// (PyTorch's source-coordinate formula, with or without align_corners; resample_formulas.h, shared with
// the CUDA kernels), forward and adjoint.
// Source indices and weights are computed once per call; parallel over the N*C planes.
#include <algorithm>
#include <vector>

#include "src/backend/cpu/register.h"
#include "src/core/threading.h"
#include "src/ops/kernels.h"
#include "src/ops/resample_formulas.h"

namespace lockstep::cpu {
namespace {

// Nearest source index of each of the `out` destination positions along an axis of size `in`.
std::vector<std::int64_t> nearest_sources(std::int64_t in, std::int64_t out) {
  std::vector<std::int64_t> src(static_cast<std::size_t>(out));
  for (std::int64_t i = 0; i < out; ++i) src[static_cast<std::size_t>(i)] = std::min(i * in / out, in - 1);
  return src;
}

// Bilinear taps of every one of the `out` destination positions along an axis of size `in`
// (resample_formulas.h, shared with the CUDA kernels).
std::vector<BilinearTaps> bilinear_table(std::int64_t in, std::int64_t out, AlignCorners align) {
  const bool corners = align == AlignCorners::kYes;
  const double scale = bilinear_scale(in, out, corners);
  std::vector<BilinearTaps> taps(static_cast<std::size_t>(out));
  for (std::int64_t i = 0; i < out; ++i)
    taps[static_cast<std::size_t>(i)] = bilinear_taps(i, in, scale, corners);
  return taps;
}

template <class T>
void nearest_typed(const Tensor& x, const Tensor& y) {
  const std::int64_t planes = x.size(0) * x.size(1), h = x.size(2), w = x.size(3), ph = y.size(2),
                     pw = y.size(3);
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

template <class T>
void nearest_backward_typed(const Tensor& dy, const Tensor& dx) {
  const std::int64_t planes = dx.size(0) * dx.size(1), h = dx.size(2), w = dx.size(3), ph = dy.size(2),
                     pw = dy.size(3);
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

template <class T>
void bilinear_typed(const Tensor& x, const Tensor& y, AlignCorners align) {
  const std::int64_t planes = x.size(0) * x.size(1), h = x.size(2), w = x.size(3), ph = y.size(2),
                     pw = y.size(3);
  const auto rows = bilinear_table(h, ph, align), cols = bilinear_table(w, pw, align);
  const T* in = x.data<T>();
  T* out = y.data<T>();
#pragma omp parallel for if (planes * ph * pw >= kParallelGrain)
  for (std::int64_t c = 0; c < planes; ++c) {
    for (std::int64_t i = 0; i < ph; ++i) {
      const BilinearTaps& r = rows[static_cast<std::size_t>(i)];
      const T* top = in + (c * h + r.i0) * w;
      const T* bottom = in + (c * h + r.i1) * w;
      const T r0 = static_cast<T>(r.w0), r1 = static_cast<T>(r.w1);
      T* dst = out + (c * ph + i) * pw;
      for (std::int64_t j = 0; j < pw; ++j) {
        const BilinearTaps& t = cols[static_cast<std::size_t>(j)];
        const T c0 = static_cast<T>(t.w0), c1 = static_cast<T>(t.w1);
        dst[j] = bilinear_mix(r0, bilinear_mix(c0, top[t.i0], c1, top[t.i1]), r1,
                              bilinear_mix(c0, bottom[t.i0], c1, bottom[t.i1]));
      }
    }
  }
}

template <class T>
void bilinear_backward_typed(const Tensor& dy, const Tensor& dx, AlignCorners align) {
  const std::int64_t planes = dx.size(0) * dx.size(1), h = dx.size(2), w = dx.size(3), ph = dy.size(2),
                     pw = dy.size(3);
  const auto rows = bilinear_table(h, ph, align), cols = bilinear_table(w, pw, align);
  const T* g = dy.data<T>();
  T* out = dx.data<T>();
#pragma omp parallel for if (planes * ph * pw >= kParallelGrain)
  for (std::int64_t c = 0; c < planes; ++c) {
    std::fill(out + c * h * w, out + (c + 1) * h * w, T(0));
    for (std::int64_t i = 0; i < ph; ++i) {
      const BilinearTaps& r = rows[static_cast<std::size_t>(i)];
      T* top = out + (c * h + r.i0) * w;
      T* bottom = out + (c * h + r.i1) * w;
      const T r0 = static_cast<T>(r.w0), r1 = static_cast<T>(r.w1);
      const T* src = g + (c * ph + i) * pw;
      for (std::int64_t j = 0; j < pw; ++j) {
        const BilinearTaps& t = cols[static_cast<std::size_t>(j)];
        const T c0 = static_cast<T>(t.w0), c1 = static_cast<T>(t.w1);
        top[t.i0] += bilinear_grad_term(r0, c0, src[j]);
        top[t.i1] += bilinear_grad_term(r0, c1, src[j]);
        bottom[t.i0] += bilinear_grad_term(r1, c0, src[j]);
        bottom[t.i1] += bilinear_grad_term(r1, c1, src[j]);
      }
    }
  }
}

void nearest_kernel(const Tensor& x, const Tensor& y) {
  dispatch_floating("upsample_nearest2d", x.dtype(), [&](auto tag) { nearest_typed<decltype(tag)>(x, y); });
}
void nearest_backward_kernel(const Tensor& dy, const Tensor& dx) {
  dispatch_floating("upsample_nearest2d_backward", dy.dtype(),
                    [&](auto tag) { nearest_backward_typed<decltype(tag)>(dy, dx); });
}
void bilinear_kernel(const Tensor& x, const Tensor& y, AlignCorners align) {
  dispatch_floating("upsample_bilinear2d", x.dtype(),
                    [&](auto tag) { bilinear_typed<decltype(tag)>(x, y, align); });
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
