// CPU batch-norm and layer-norm kernels. Sums accumulate in f64 over blocks of rows fixed by the shapes
// alone, then combine in block order, so results never depend on the thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "src/backend/cpu/register.h"
#include "src/core/threading.h"
#include "src/ops/kernels.h"
#include "src/ops/unary_formulas.h"

namespace lockstep::cpu {
namespace {

struct Sums {
  double a, b;
};

// `count` blocks of `rows` rows (the last may be shorter) covering n rows of `per_row` elements each: about
// kParallelGrain elements a block, at most kMaxBlocks blocks (this bounds the partial-sum buffers).
struct RowBlocks {
  std::int64_t count = 0;
  std::int64_t rows = 0;
  std::int64_t begin(std::int64_t b) const { return b * rows; }
  std::int64_t end(std::int64_t b, std::int64_t n) const { return std::min(n, (b + 1) * rows); }
};

constexpr std::int64_t kMaxBlocks = 64;

RowBlocks row_blocks(std::int64_t n, std::int64_t per_row) {
  if (n == 0) return {};
  const std::int64_t wanted =
      std::clamp<std::int64_t>(n * per_row / kParallelGrain, 1, std::min(n, kMaxBlocks));
  RowBlocks blocks;
  blocks.rows = (n + wanted - 1) / wanted;
  blocks.count = (n + blocks.rows - 1) / blocks.rows;
  return blocks;
}

// Per-channel sums over x, dy [N, C, L]: s1[c] = sum f(x, dy, center[c]).a, s2[c] = sum f(...).b.
template <class T, class F>
void channel_sums(const T* x, const T* dy, const double* center, std::int64_t n, std::int64_t c,
                  std::int64_t l, F f, double* s1, double* s2) {
  const RowBlocks blocks = row_blocks(n, c * l);
  std::vector<double> part(static_cast<std::size_t>(2 * blocks.count * c), 0.0);  // [block, 2, C]
  const bool parallel = n * c * l >= kParallelGrain;
  if (l == 1) {
    // [N, C]: each block walks its rows, all channels of a row at once (contiguous).
#pragma omp parallel for if (parallel)
    for (std::int64_t b = 0; b < blocks.count; ++b) {
      double* p1 = part.data() + 2 * b * c;
      double* p2 = p1 + c;
      for (std::int64_t i = blocks.begin(b); i < blocks.end(b, n); ++i) {
        const T* xr = x + i * c;
        const T* dr = dy + i * c;
#pragma omp simd
        for (std::int64_t ch = 0; ch < c; ++ch) {
          const Sums v = f(xr[ch], dr[ch], center[ch]);
          p1[ch] += v.a;
          p2[ch] += v.b;
        }
      }
    }
  } else {
#pragma omp parallel for collapse(2) if (parallel)
    for (std::int64_t b = 0; b < blocks.count; ++b) {
      for (std::int64_t ch = 0; ch < c; ++ch) {
        const double center_c = center[ch];
        double a1 = 0.0, a2 = 0.0;
        for (std::int64_t i = blocks.begin(b); i < blocks.end(b, n); ++i) {
          const T* xr = x + (i * c + ch) * l;
          const T* dr = dy + (i * c + ch) * l;
#pragma omp simd reduction(+ : a1, a2)
          for (std::int64_t j = 0; j < l; ++j) {
            const Sums v = f(xr[j], dr[j], center_c);
            a1 += v.a;
            a2 += v.b;
          }
        }
        part[static_cast<std::size_t>(2 * b * c + ch)] = a1;
        part[static_cast<std::size_t>((2 * b + 1) * c + ch)] = a2;
      }
    }
  }
  for (std::int64_t ch = 0; ch < c; ++ch) {
    double a1 = 0.0, a2 = 0.0;
    for (std::int64_t b = 0; b < blocks.count; ++b) {
      a1 += part[static_cast<std::size_t>(2 * b * c + ch)];
      a2 += part[static_cast<std::size_t>((2 * b + 1) * c + ch)];
    }
    s1[ch] = a1;
    s2[ch] = a2;
  }
}

// Calls row(ch, offset) with the element offset of x[i, ch, 0], for every (i, ch) of [N, C, L] in parallel.
template <class RowFn>
void for_each_channel_row(std::int64_t n, std::int64_t c, std::int64_t l, RowFn row) {
  const bool parallel = n * c * l >= kParallelGrain;
#pragma omp parallel for collapse(2) if (parallel)
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t ch = 0; ch < c; ++ch) row(ch, (i * c + ch) * l);
  }
}

// The values of an optional per-channel tensor, or `fallback` everywhere when it is undefined.
template <class T>
std::vector<T> values_or(const Tensor& t, std::int64_t n, T fallback) {
  if (!t.defined()) return std::vector<T>(static_cast<std::size_t>(n), fallback);
  const T* p = t.data<T>();
  return std::vector<T>(p, p + n);
}

template <class T>
void batch_norm_stats_typed(const Tensor& x, const Tensor& mean, const Tensor& var) {
  const std::int64_t n = x.size(0), c = x.size(1), l = x.size(2);
  const T* px = x.data<T>();
  // Shifting by one sample of the channel keeps the one-pass variance accurate when |mean| >> std.
  std::vector<double> shift(static_cast<std::size_t>(c), 0.0), s1(shift), s2(shift);
  if (n * l > 0) {
    for (std::int64_t ch = 0; ch < c; ++ch)
      shift[static_cast<std::size_t>(ch)] = static_cast<double>(px[ch * l]);
  }
  channel_sums<T>(
      px, px, shift.data(), n, c, l,
      [](T v, T, double s) {
        const double d = static_cast<double>(v) - s;
        return Sums{d, d * d};
      },
      s1.data(), s2.data());
  const double count = static_cast<double>(n * l);
  // Written in the statistics' dtype: T, or f64 (for SyncBatchNorm).
  const auto store = [](const Tensor& t, std::int64_t ch, double v) {
    if (t.dtype() == DType::f64) {
      t.data<double>()[ch] = v;
    } else {
      t.data<T>()[ch] = static_cast<T>(v);
    }
  };
  for (std::int64_t ch = 0; ch < c; ++ch) {
    const auto k = static_cast<std::size_t>(ch);
    const double d = count > 0 ? s1[k] / count : 0.0;
    store(mean, ch, shift[k] + d);
    store(var, ch, count > 0 ? std::max(0.0, s2[k] / count - d * d) : 0.0);
  }
}

void batch_norm_stats_kernel(const Tensor& x, const Tensor& mean, const Tensor& var) {
  dispatch_floating("batch_norm_stats", x.dtype(),
                    [&](auto tag) { batch_norm_stats_typed<decltype(tag)>(x, mean, var); });
}

// z = relu(y + residual), y = (x - mean) * scale + bias with scale = invstd * weight; the residual and the
// relu only where Residual and Relu say. Each step rounds as the separate batch_norm_apply, binary add and
// relu kernels round it, so the fused result is theirs bit for bit.
template <class T, bool Residual, bool Relu>
void batch_norm_apply_typed(const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& weight,
                            const Tensor& bias, const Tensor& residual, const Tensor& y) {
  const std::int64_t n = x.size(0), c = x.size(1), l = x.size(2);
  const T* px = x.data<T>();
  const T* pr = Residual ? residual.data<T>() : nullptr;
  T* py = y.data<T>();
  const T* pm = mean.data<T>();
  std::vector<T> scale = values_or<T>(weight, c, T(1));
  const std::vector<T> shift = values_or<T>(bias, c, T(0));
  const T* pi = invstd.data<T>();
  for (std::int64_t ch = 0; ch < c; ++ch) scale[static_cast<std::size_t>(ch)] *= pi[ch];
  const T* ps = scale.data();
  const T* pb = shift.data();
  const auto epilogue = [](T v, const T* r, std::int64_t k) {
    if constexpr (Residual) v = v + r[k];
    if constexpr (Relu) v = unary_forward_formula<UnaryOp::kRelu>(v, T(0), T(0));
    return v;
  };
  if (l == 1) {
#pragma omp parallel for if (n * c >= kParallelGrain)
    for (std::int64_t i = 0; i < n; ++i) {
      const T* xr = px + i * c;
      const T* rr = Residual ? pr + i * c : nullptr;
      T* yr = py + i * c;
#pragma omp simd
      for (std::int64_t ch = 0; ch < c; ++ch) yr[ch] = epilogue((xr[ch] - pm[ch]) * ps[ch] + pb[ch], rr, ch);
    }
    return;
  }
  for_each_channel_row(n, c, l, [&](std::int64_t ch, std::int64_t off) {
    const T m = pm[ch], s = ps[ch], b = pb[ch];
    const T* xr = px + off;
    const T* rr = Residual ? pr + off : nullptr;
    T* yr = py + off;
#pragma omp simd
    for (std::int64_t j = 0; j < l; ++j) yr[j] = epilogue((xr[j] - m) * s + b, rr, j);
  });
}

void batch_norm_apply_kernel(const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& weight,
                             const Tensor& bias, const Tensor& y) {
  dispatch_floating("batch_norm_apply", x.dtype(), [&](auto tag) {
    batch_norm_apply_typed<decltype(tag), false, false>(x, mean, invstd, weight, bias, Tensor(), y);
  });
}

void batch_norm_apply_epilogue_kernel(const Tensor& x, const Tensor& mean, const Tensor& invstd,
                                      const Tensor& weight, const Tensor& bias, const Tensor& residual,
                                      bool relu, const Tensor& z) {
  dispatch_floating("batch_norm_apply_epilogue", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (residual.defined()) {
      if (relu) {
        batch_norm_apply_typed<T, true, true>(x, mean, invstd, weight, bias, residual, z);
      } else {
        batch_norm_apply_typed<T, true, false>(x, mean, invstd, weight, bias, residual, z);
      }
    } else if (relu) {
      batch_norm_apply_typed<T, false, true>(x, mean, invstd, weight, bias, residual, z);
    } else {
      batch_norm_apply_typed<T, false, false>(x, mean, invstd, weight, bias, residual, z);
    }
  });
}

template <class T>
void batch_norm_backward_reduce_typed(const Tensor& dy, const Tensor& x, const Tensor& mean,
                                      const Tensor& sum_dy, const Tensor& sum_dy_xmu) {
  const std::int64_t n = x.size(0), c = x.size(1), l = x.size(2);
  std::vector<double> center(static_cast<std::size_t>(c)), s1(center), s2(center);
  const T* pm = mean.data<T>();
  for (std::int64_t ch = 0; ch < c; ++ch) center[static_cast<std::size_t>(ch)] = static_cast<double>(pm[ch]);
  channel_sums<T>(
      x.data<T>(), dy.data<T>(), center.data(), n, c, l,
      [](T v, T g, double m) {
        const double gd = static_cast<double>(g);
        return Sums{gd, gd * (static_cast<double>(v) - m)};
      },
      s1.data(), s2.data());
  T* p1 = sum_dy.data<T>();
  T* p2 = sum_dy_xmu.data<T>();
  for (std::int64_t ch = 0; ch < c; ++ch) {
    p1[ch] = static_cast<T>(s1[static_cast<std::size_t>(ch)]);
    p2[ch] = static_cast<T>(s2[static_cast<std::size_t>(ch)]);
  }
}

void batch_norm_backward_reduce_kernel(const Tensor& dy, const Tensor& x, const Tensor& mean,
                                       const Tensor& sum_dy, const Tensor& sum_dy_xmu) {
  dispatch_floating("batch_norm_backward_reduce", x.dtype(), [&](auto tag) {
    batch_norm_backward_reduce_typed<decltype(tag)>(dy, x, mean, sum_dy, sum_dy_xmu);
  });
}

template <class T>
void batch_norm_backward_apply_typed(const Tensor& dy, const Tensor& x, const Tensor& mean,
                                     const Tensor& invstd, const Tensor& weight, const Tensor& sum_dy,
                                     const Tensor& sum_dy_xmu, double count, const Tensor& dx) {
  const std::int64_t n = x.size(0), c = x.size(1), l = x.size(2);
  // dx = k * (dy - a - (x - mean) * b) with k = weight * invstd, a = sum_dy / count,
  // b = invstd^2 * sum_dy_xmu / count, per channel.
  std::vector<T> k = values_or<T>(weight, c, T(1)), a(static_cast<std::size_t>(c)), b(a);
  const T* pi = invstd.data<T>();
  const T* p1 = sum_dy.data<T>();
  const T* p2 = sum_dy_xmu.data<T>();
  for (std::int64_t ch = 0; ch < c; ++ch) {
    const auto q = static_cast<std::size_t>(ch);
    const double is = static_cast<double>(pi[ch]);
    k[q] = static_cast<T>(static_cast<double>(k[q]) * is);
    a[q] = static_cast<T>(static_cast<double>(p1[ch]) / count);
    b[q] = static_cast<T>(is * is * static_cast<double>(p2[ch]) / count);
  }
  const T* pk = k.data();
  const T* pa = a.data();
  const T* pb = b.data();
  const T* pm = mean.data<T>();
  const T* px = x.data<T>();
  const T* pg = dy.data<T>();
  T* pd = dx.data<T>();
  if (l == 1) {
#pragma omp parallel for if (n * c >= kParallelGrain)
    for (std::int64_t i = 0; i < n; ++i) {
      const T* xr = px + i * c;
      const T* gr = pg + i * c;
      T* dr = pd + i * c;
#pragma omp simd
      for (std::int64_t ch = 0; ch < c; ++ch)
        dr[ch] = pk[ch] * (gr[ch] - pa[ch] - (xr[ch] - pm[ch]) * pb[ch]);
    }
    return;
  }
  for_each_channel_row(n, c, l, [&](std::int64_t ch, std::int64_t off) {
    const T kc = pk[ch], ac = pa[ch], bc = pb[ch], m = pm[ch];
    const T* xr = px + off;
    const T* gr = pg + off;
    T* dr = pd + off;
#pragma omp simd
    for (std::int64_t j = 0; j < l; ++j) dr[j] = kc * (gr[j] - ac - (xr[j] - m) * bc);
  });
}

void batch_norm_backward_apply_kernel(const Tensor& dy, const Tensor& x, const Tensor& mean,
                                      const Tensor& invstd, const Tensor& weight, const Tensor& sum_dy,
                                      const Tensor& sum_dy_xmu, double count, const Tensor& dx) {
  dispatch_floating("batch_norm_backward_apply", x.dtype(), [&](auto tag) {
    batch_norm_backward_apply_typed<decltype(tag)>(dy, x, mean, invstd, weight, sum_dy, sum_dy_xmu, count,
                                                   dx);
  });
}

template <class T>
void layer_norm_typed(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& y,
                      const Tensor& mean, const Tensor& rstd) {
  const std::int64_t rows = x.size(0), cols = x.size(1);
  const std::vector<T> w = values_or<T>(weight, cols, T(1)), bv = values_or<T>(bias, cols, T(0));
  const T* pw = w.data();
  const T* pb = bv.data();
  const T* px = x.data<T>();
  T* py = y.data<T>();
  T* pm = mean.data<T>();
  T* pr = rstd.data<T>();
  const double inv_cols = cols > 0 ? 1.0 / static_cast<double>(cols) : 0.0;
#pragma omp parallel for if (rows * cols >= kParallelGrain)
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* xr = px + r * cols;
    T* yr = py + r * cols;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (std::int64_t j = 0; j < cols; ++j) s += static_cast<double>(xr[j]);
    const double m = s * inv_cols;
    double q = 0.0;
#pragma omp simd reduction(+ : q)
    for (std::int64_t j = 0; j < cols; ++j) {
      const double d = static_cast<double>(xr[j]) - m;
      q += d * d;
    }
    const double rs = 1.0 / std::sqrt(q * inv_cols + eps);
    const T mt = static_cast<T>(m), rt = static_cast<T>(rs);
#pragma omp simd
    for (std::int64_t j = 0; j < cols; ++j) yr[j] = (xr[j] - mt) * rt * pw[j] + pb[j];
    pm[r] = mt;
    pr[r] = rt;
  }
}

void layer_norm_kernel(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& y,
                       const Tensor& mean, const Tensor& rstd) {
  dispatch_floating("layer_norm", x.dtype(),
                    [&](auto tag) { layer_norm_typed<decltype(tag)>(x, weight, bias, eps, y, mean, rstd); });
}

// dx (when defined) = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * weight, xhat = (x - mean) *
// rstd; dweight = sum over rows of dy * xhat and dbias = sum of dy, from per-block partial sums.
template <class T>
void layer_norm_backward_typed(const Tensor& dy, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                               const Tensor& weight, const Tensor& dx, const Tensor& dweight,
                               const Tensor& dbias) {
  const std::int64_t rows = x.size(0), cols = x.size(1);
  const std::vector<T> w = values_or<T>(weight, cols, T(1));
  const T* pw = w.data();
  const T* px = x.data<T>();
  const T* pg = dy.data<T>();
  const T* pm = mean.data<T>();
  const T* pr = rstd.data<T>();
  T* pd = dx.defined() ? dx.data<T>() : nullptr;
  const bool params = dweight.defined() || dbias.defined();
  const RowBlocks blocks = row_blocks(rows, cols);
  std::vector<double> part(params ? static_cast<std::size_t>(2 * blocks.count * cols) : 0,
                           0.0);  // [block, 2, cols]
  double* pp = part.data();
  const double inv_cols = cols > 0 ? 1.0 / static_cast<double>(cols) : 0.0;
#pragma omp parallel for if (rows * cols >= kParallelGrain)
  for (std::int64_t b = 0; b < blocks.count; ++b) {
    for (std::int64_t r = blocks.begin(b); r < blocks.end(b, rows); ++r) {
      const T* xr = px + r * cols;
      const T* gr = pg + r * cols;
      const T m = pm[r], rs = pr[r];
      if (pd != nullptr) {
        double s1 = 0.0, s2 = 0.0;
#pragma omp simd reduction(+ : s1, s2)
        for (std::int64_t j = 0; j < cols; ++j) {
          const double g = static_cast<double>(gr[j] * pw[j]);
          s1 += g;
          s2 += g * static_cast<double>((xr[j] - m) * rs);
        }
        const T a = static_cast<T>(s1 * inv_cols), c = static_cast<T>(s2 * inv_cols);
        T* dr = pd + r * cols;
#pragma omp simd
        for (std::int64_t j = 0; j < cols; ++j) dr[j] = rs * (gr[j] * pw[j] - a - (xr[j] - m) * rs * c);
      }
      if (params) {
        double* p1 = pp + 2 * b * cols;
        double* p2 = p1 + cols;
#pragma omp simd
        for (std::int64_t j = 0; j < cols; ++j) {
          p1[j] += static_cast<double>(gr[j]) * static_cast<double>((xr[j] - m) * rs);
          p2[j] += static_cast<double>(gr[j]);
        }
      }
    }
  }
  if (!params) return;
  T* dw = dweight.defined() ? dweight.data<T>() : nullptr;
  T* db = dbias.defined() ? dbias.data<T>() : nullptr;
#pragma omp parallel for if (blocks.count * cols >= kParallelGrain)
  for (std::int64_t j = 0; j < cols; ++j) {
    double a1 = 0.0, a2 = 0.0;
    for (std::int64_t b = 0; b < blocks.count; ++b) {
      a1 += pp[2 * b * cols + j];
      a2 += pp[(2 * b + 1) * cols + j];
    }
    if (dw != nullptr) dw[j] = static_cast<T>(a1);
    if (db != nullptr) db[j] = static_cast<T>(a2);
  }
}

void layer_norm_backward_kernel(const Tensor& dy, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                                const Tensor& weight, const Tensor& dx, const Tensor& dweight,
                                const Tensor& dbias) {
  dispatch_floating("layer_norm_backward", x.dtype(), [&](auto tag) {
    layer_norm_backward_typed<decltype(tag)>(dy, x, mean, rstd, weight, dx, dweight, dbias);
  });
}

}  // namespace

void register_norm_kernels() {
  kernels::batch_norm_stats.set(DeviceType::CPU, batch_norm_stats_kernel);
  kernels::batch_norm_apply.set(DeviceType::CPU, batch_norm_apply_kernel);
  kernels::batch_norm_apply_epilogue.set(DeviceType::CPU, batch_norm_apply_epilogue_kernel);
  kernels::batch_norm_backward_reduce.set(DeviceType::CPU, batch_norm_backward_reduce_kernel);
  kernels::batch_norm_backward_apply.set(DeviceType::CPU, batch_norm_backward_apply_kernel);
  kernels::layer_norm.set(DeviceType::CPU, layer_norm_kernel);
  kernels::layer_norm_backward.set(DeviceType::CPU, layer_norm_backward_kernel);
}

}  // namespace lockstep::cpu
