// CPU 2-D padding kernels over [B, H, W] planes: constant and reflection padding, and their adjoints
// (reflection accumulates mirrored positions). Parallel over rows; no two threads write one element.
#include <algorithm>
#include <cstring>

#include "src/backend/cpu/register.h"
#include "src/core/threading.h"
#include "src/ops/kernels.h"

namespace lockstep::cpu {
namespace {

// The input index that padded index i (in [-before, n + after)) reads under reflection.
inline std::int64_t reflect_index(std::int64_t i, std::int64_t n) {
  if (i < 0) return -i;
  if (i >= n) return 2 * (n - 1) - i;
  return i;
}

template <class T> void pad2d_typed(PadMode mode, const Tensor& x, const Tensor& y, Pads2d pads, double value) {
  const std::int64_t b = x.size(0), h = x.size(1), w = x.size(2);
  const std::int64_t ho = y.size(1), wo = y.size(2);
  const std::int64_t left = pads[0], right = pads[1], top = pads[2];
  const T* in = x.data<T>();
  T* out = y.data<T>();
  const T fill = static_cast<T>(value);
  const std::int64_t rows = b * ho;
#pragma omp parallel for if (rows * wo >= kParallelGrain)
  for (std::int64_t row = 0; row < rows; ++row) {
    const std::int64_t plane = row / ho, oh = row % ho;
    T* dst = out + row * wo;
    std::int64_t ih = oh - top;
    if (mode == PadMode::kReflect) {
      ih = reflect_index(ih, h);
    } else if (ih < 0 || ih >= h) {
      std::fill(dst, dst + wo, fill);
      continue;
    }
    const T* src = in + (plane * h + ih) * w;
    if (mode == PadMode::kReflect) {
      for (std::int64_t j = 0; j < left; ++j) dst[j] = src[left - j];
      for (std::int64_t j = 0; j < right; ++j) dst[left + w + j] = src[w - 2 - j];
    } else {
      std::fill(dst, dst + left, fill);
      std::fill(dst + left + w, dst + wo, fill);
    }
    if (w > 0) std::memcpy(dst + left, src, static_cast<std::size_t>(w) * sizeof(T));
  }
}

template <class T> void pad2d_backward_typed(PadMode mode, const Tensor& dy, const Tensor& dx, Pads2d pads) {
  const std::int64_t b = dx.size(0), h = dx.size(1), w = dx.size(2);
  const std::int64_t ho = dy.size(1), wo = dy.size(2);
  const std::int64_t left = pads[0], top = pads[2], bottom = pads[3];
  const T* g = dy.data<T>();
  T* out = dx.data<T>();
  const std::int64_t rows = b * h;
#pragma omp parallel for if (rows * wo >= kParallelGrain)
  for (std::int64_t row = 0; row < rows; ++row) {
    const std::int64_t plane = row / h, ih = row % h;
    T* dst = out + row * w;
    // Padded rows that read input row ih: itself, its mirror above (ih in [1, top]) and below.
    const T* src = g + (plane * ho + ih + top) * wo;
    std::memcpy(dst, src + left, static_cast<std::size_t>(w) * sizeof(T));
    if (mode == PadMode::kConstant) continue;
    for (std::int64_t j = 0; j < left; ++j) dst[left - j] += src[j];
    for (std::int64_t j = left + w; j < wo; ++j) dst[2 * (w - 1) - (j - left)] += src[j];
    const std::int64_t mirrors[2] = {ih >= 1 && ih <= top ? top - ih : -1,
                                     ih < h - 1 && ih >= h - 1 - bottom ? top + 2 * (h - 1) - ih : -1};
    for (std::int64_t oh : mirrors) {
      if (oh < 0) continue;
      const T* m = g + (plane * ho + oh) * wo;
      for (std::int64_t j = 0; j < wo; ++j) dst[reflect_index(j - left, w)] += m[j];
    }
  }
}

void pad2d_kernel(PadMode mode, const Tensor& x, const Tensor& y, Pads2d pads, double value) {
  dispatch_floating("pad2d", x.dtype(), [&](auto tag) { pad2d_typed<decltype(tag)>(mode, x, y, pads, value); });
}

void pad2d_backward_kernel(PadMode mode, const Tensor& dy, const Tensor& dx, Pads2d pads) {
  dispatch_floating("pad2d_backward", dy.dtype(), [&](auto tag) { pad2d_backward_typed<decltype(tag)>(mode, dy, dx, pads); });
}

}  // namespace

void register_pad_kernels() {
  kernels::pad2d.set(DeviceType::CPU, pad2d_kernel);
  kernels::pad2d_backward.set(DeviceType::CPU, pad2d_backward_kernel);
}

}  // namespace lockstep::cpu
