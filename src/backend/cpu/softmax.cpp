// CPU softmax and log-softmax over the middle axis of [outer, size, inner], forward and backward:
// max-subtracted, sums carried in f64, vectorised rows (inner == 1) and column blocks otherwise.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "src/backend/cpu/register.h"
#include "src/core/threading.h"
#include "src/ops/kernels.h"

namespace lockstep::cpu {
namespace {

// Columns of [outer, size, inner] handled together when inner > 1 (their running max and sum live on the
// stack).
constexpr std::int64_t kColumnBlock = 128;
// Elements of a row summed in the input's precision before the partial sum is added in double.
constexpr std::int64_t kSumBlock = 512;

// exp(x) for x <= 0 (the only arguments softmax needs), in a form the compiler vectorises: Cephes' expf
// polynomial after a round-to-nearest range reduction, within about 1 ulp of std::exp, exactly 1 at 0,
// exactly 0 below log(FLT_MIN) (so -inf and huge negative logits give 0, never a denormal) and NaN for NaN.
// Branch-free on purpose: the final select is a bit mask, because GCC will not if-convert a conditional float
// multiply.
inline float exp_nonpositive(float x) {
  constexpr float kLogMin = -87.3365447504f;          // log(FLT_MIN)
  constexpr float kRound = 12582912.0f;               // 1.5 * 2^23: adding it rounds to an integer
  const float t = x * 1.44269504088896341f + kRound;  // below kLogMin garbage, which the mask discards
  const float n = t - kRound;
  float r = x - n * 0.693359375f;  // ln 2 in two parts: the first has few bits, so n * it is exact
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  // 2^n from the low bits of t; unsigned, so the garbage exponents of huge negative x wrap instead of
  // overflowing.
  const std::uint32_t e = std::bit_cast<std::uint32_t>(t) - std::bit_cast<std::uint32_t>(kRound);
  const float scale = std::bit_cast<float>((e + 127u) << 23);
  const std::uint32_t keep = 0u - static_cast<std::uint32_t>(!(x < kLogMin));
  return std::bit_cast<float>(std::bit_cast<std::uint32_t>(p * scale) & keep);
}

inline double exp_nonpositive(double x) { return std::exp(x); }

// Sum of term(i) over [0, n), vectorised: blocks of kSumBlock summed in T's SIMD lanes, block sums added in
// double. For f32 that keeps the error near 1e-7 relative at any row length without widening every element.
template <class T, class Term>
double blocked_sum(std::int64_t n, Term&& term) {
  double s = 0.0;
  for (std::int64_t b = 0; b < n; b += kSumBlock) {
    const std::int64_t end = std::min(n, b + kSumBlock);
    T part = 0;
#pragma omp simd reduction(+ : part)
    for (std::int64_t i = b; i < end; ++i) part += term(i);
    s += static_cast<double>(part);
  }
  return s;
}

// One contiguous row (inner == 1).
template <SoftmaxKind K, class T>
void softmax_row(const T* x, T* y, std::int64_t size) {
  T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
  for (std::int64_t i = 0; i < size; ++i) m = x[i] > m ? x[i] : m;  // this form vectorises; std::max does not
  if constexpr (K == SoftmaxKind::kSoftmax) {
    const double s = blocked_sum<T>(size, [&](std::int64_t i) {
      const T e = exp_nonpositive(static_cast<T>(x[i] - m));
      y[i] = e;
      return e;
    });
    const T inv = static_cast<T>(1.0 / s);
#pragma omp simd
    for (std::int64_t i = 0; i < size; ++i) y[i] *= inv;
  } else {
    const double s =
        blocked_sum<T>(size, [&](std::int64_t i) { return exp_nonpositive(static_cast<T>(x[i] - m)); });
    const T log_s = static_cast<T>(std::log(s));
#pragma omp simd
    for (std::int64_t i = 0; i < size; ++i) y[i] = (x[i] - m) - log_s;
  }
}

// Columns [0, w) of one outer slice, w <= kColumnBlock, rows `inner` apart.
template <SoftmaxKind K, class T>
void softmax_columns(const T* x, T* y, std::int64_t size, std::int64_t inner, std::int64_t w) {
  T m[kColumnBlock];
  double s[kColumnBlock];
  for (std::int64_t k = 0; k < w; ++k) {
    m[k] = -std::numeric_limits<T>::infinity();
    s[k] = 0.0;
  }
  for (std::int64_t i = 0; i < size; ++i) {
    const T* xr = x + i * inner;
#pragma omp simd
    for (std::int64_t k = 0; k < w; ++k) m[k] = xr[k] > m[k] ? xr[k] : m[k];
  }
  for (std::int64_t i = 0; i < size; ++i) {
    const T* xr = x + i * inner;
    T* yr = y + i * inner;
#pragma omp simd
    for (std::int64_t k = 0; k < w; ++k) {
      const T e = exp_nonpositive(static_cast<T>(xr[k] - m[k]));
      if constexpr (K == SoftmaxKind::kSoftmax) yr[k] = e;
      s[k] += static_cast<double>(e);
    }
  }
  T f[kColumnBlock];  // 1 / sum for softmax, log(sum) for log-softmax
  for (std::int64_t k = 0; k < w; ++k)
    f[k] = static_cast<T>(K == SoftmaxKind::kSoftmax ? 1.0 / s[k] : std::log(s[k]));
  for (std::int64_t i = 0; i < size; ++i) {
    const T* xr = x + i * inner;
    T* yr = y + i * inner;
    if constexpr (K == SoftmaxKind::kSoftmax) {
#pragma omp simd
      for (std::int64_t k = 0; k < w; ++k) yr[k] *= f[k];
    } else {
#pragma omp simd
      for (std::int64_t k = 0; k < w; ++k) yr[k] = (xr[k] - m[k]) - f[k];
    }
  }
}

// dx for one contiguous row: softmax y * (dy - sum(dy * y)); log-softmax dy - exp(y) * sum(dy).
template <SoftmaxKind K, class T>
void softmax_backward_row(const T* dy, const T* y, T* dx, std::int64_t size) {
  if constexpr (K == SoftmaxKind::kSoftmax) {
    const T st = static_cast<T>(blocked_sum<T>(size, [&](std::int64_t i) { return dy[i] * y[i]; }));
#pragma omp simd
    for (std::int64_t i = 0; i < size; ++i) dx[i] = y[i] * (dy[i] - st);
  } else {
    const T st = static_cast<T>(blocked_sum<T>(size, [&](std::int64_t i) { return dy[i]; }));
#pragma omp simd
    for (std::int64_t i = 0; i < size; ++i) dx[i] = dy[i] - exp_nonpositive(y[i]) * st;
  }
}

template <SoftmaxKind K, class T>
void softmax_backward_columns(const T* dy, const T* y, T* dx, std::int64_t size, std::int64_t inner,
                              std::int64_t w) {
  double s[kColumnBlock];
  for (std::int64_t k = 0; k < w; ++k) s[k] = 0.0;
  for (std::int64_t i = 0; i < size; ++i) {
    const T* g = dy + i * inner;
    const T* yr = y + i * inner;
#pragma omp simd
    for (std::int64_t k = 0; k < w; ++k) {
      if constexpr (K == SoftmaxKind::kSoftmax) {
        s[k] += static_cast<double>(g[k]) * static_cast<double>(yr[k]);
      } else {
        s[k] += static_cast<double>(g[k]);
      }
    }
  }
  T st[kColumnBlock];
  for (std::int64_t k = 0; k < w; ++k) st[k] = static_cast<T>(s[k]);
  for (std::int64_t i = 0; i < size; ++i) {
    const T* g = dy + i * inner;
    const T* yr = y + i * inner;
    T* d = dx + i * inner;
#pragma omp simd
    for (std::int64_t k = 0; k < w; ++k) {
      if constexpr (K == SoftmaxKind::kSoftmax) {
        d[k] = yr[k] * (g[k] - st[k]);
      } else {
        d[k] = g[k] - exp_nonpositive(yr[k]) * st[k];
      }
    }
  }
}

// Runs row(a) for each outer slice when inner == 1, else block(a, c0, w) for each column block, in parallel
// when the tensor is large.
template <class Row, class Block>
void for_each_slice(std::int64_t outer, std::int64_t size, std::int64_t inner, Row&& row, Block&& block) {
  const bool parallel = outer * size * inner >= kParallelGrain;
  if (inner == 1) {
#pragma omp parallel for if (parallel && outer > 1)
    for (std::int64_t a = 0; a < outer; ++a) row(a);
    return;
  }
  const std::int64_t blocks = (inner + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for collapse(2) if (parallel && outer * blocks > 1)
  for (std::int64_t a = 0; a < outer; ++a) {
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::int64_t c0 = b * kColumnBlock;
      block(a, c0, std::min(kColumnBlock, inner - c0));
    }
  }
}

template <SoftmaxKind K, class T>
void softmax_typed(const Tensor& x, const Tensor& y, std::int64_t outer, std::int64_t size,
                   std::int64_t inner) {
  const T* xp = x.data<T>();
  T* yp = y.data<T>();
  for_each_slice(
      outer, size, inner, [=](std::int64_t a) { softmax_row<K, T>(xp + a * size, yp + a * size, size); },
      [=](std::int64_t a, std::int64_t c0, std::int64_t w) {
        const std::int64_t base = a * size * inner + c0;
        softmax_columns<K, T>(xp + base, yp + base, size, inner, w);
      });
}

template <SoftmaxKind K, class T>
void softmax_backward_typed(const Tensor& dy, const Tensor& y, const Tensor& dx, std::int64_t outer,
                            std::int64_t size, std::int64_t inner) {
  const T* g = dy.data<T>();
  const T* yp = y.data<T>();
  T* d = dx.data<T>();
  for_each_slice(
      outer, size, inner,
      [=](std::int64_t a) { softmax_backward_row<K, T>(g + a * size, yp + a * size, d + a * size, size); },
      [=](std::int64_t a, std::int64_t c0, std::int64_t w) {
        const std::int64_t base = a * size * inner + c0;
        softmax_backward_columns<K, T>(g + base, yp + base, d + base, size, inner, w);
      });
}

void softmax_kernel(SoftmaxKind kind, const Tensor& x, const Tensor& y, std::int64_t outer, std::int64_t size,
                    std::int64_t inner) {
  dispatch_floating("softmax", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (kind == SoftmaxKind::kSoftmax) {
      softmax_typed<SoftmaxKind::kSoftmax, T>(x, y, outer, size, inner);
    } else {
      softmax_typed<SoftmaxKind::kLogSoftmax, T>(x, y, outer, size, inner);
    }
  });
}

void softmax_backward_kernel(SoftmaxKind kind, const Tensor& dy, const Tensor& y, const Tensor& dx,
                             std::int64_t outer, std::int64_t size, std::int64_t inner) {
  dispatch_floating("softmax_backward", dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (kind == SoftmaxKind::kSoftmax) {
      softmax_backward_typed<SoftmaxKind::kSoftmax, T>(dy, y, dx, outer, size, inner);
    } else {
      softmax_backward_typed<SoftmaxKind::kLogSoftmax, T>(dy, y, dx, outer, size, inner);
    }
  });
}

}  // namespace

void register_softmax_kernels() {
  kernels::softmax.set(DeviceType::CPU, softmax_kernel);
  kernels::softmax_backward.set(DeviceType::CPU, softmax_backward_kernel);
}

}  // namespace lockstep::cpu
