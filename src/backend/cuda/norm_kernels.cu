// CUDA batch-norm kernels over x [N, C, L] and layer-norm kernels over x [rows, cols], with the CPU kernels'
// arithmetic: sums in f64 (batch norm's statistics shifted by the channel's first sample), one block per
// channel or row combined in a shared-memory tree; the element-wise passes round each product on its own, as
// the CPU does, so only the sums' order differs. Layer norm's weight and bias gradients are column sums over
// rows, one thread per column in row order (no atomics: the same bits every run).
#include <cuda_runtime.h>

#include <algorithm>

#include "src/backend/cuda/check.h"
#include "src/backend/cuda/grid.cuh"
#include "src/backend/cuda/norm_launch.h"
#include "src/core/host_device.h"

namespace lockstep::cuda {
namespace {

// Sums a and b over the block into a[0] and b[0] (every thread must call it).
__device__ void block_sums(double* a, double* b) {
  __syncthreads();
  for (int width = kThreads / 2; width > 0; width /= 2) {
    if (static_cast<int>(threadIdx.x) < width) {
      a[threadIdx.x] += a[threadIdx.x + width];
      b[threadIdx.x] += b[threadIdx.x + width];
    }
    __syncthreads();
  }
}

// Element e of channel ch: sample e / l, position e % l.
__device__ inline std::int64_t channel_offset(std::int64_t e, std::int64_t ch, std::int64_t c,
                                              std::int64_t l) {
  return ((e / l) * c + ch) * l + e % l;
}

// mean, var (biased) of each channel, written as S (the input's dtype, or f64 for SyncBatchNorm).
template <class T, class S>
__global__ void stats_kernel(const T* x, S* mean, S* var, std::int64_t n, std::int64_t c, std::int64_t l) {
  __shared__ double s1[kThreads], s2[kThreads];
  const std::int64_t count = n * l;
  for (std::int64_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
    const double shift = count > 0 ? static_cast<double>(x[ch * l]) : 0.0;
    double a = 0.0, b = 0.0;
    for (std::int64_t e = threadIdx.x; e < count; e += blockDim.x) {
      const double d = static_cast<double>(x[channel_offset(e, ch, c, l)]) - shift;
      a += d;
      b += mul_rounded(d, d);
    }
    s1[threadIdx.x] = a;
    s2[threadIdx.x] = b;
    block_sums(s1, s2);
    if (threadIdx.x == 0) {
      const double cnt = static_cast<double>(count);
      const double d = count > 0 ? s1[0] / cnt : 0.0;
      const double v = count > 0 ? s2[0] / cnt - mul_rounded(d, d) : 0.0;
      mean[ch] = static_cast<S>(shift + d);
      var[ch] = static_cast<S>(v > 0.0 ? v : 0.0);
    }
    __syncthreads();
  }
}

// y = (x - mean) * (weight * invstd) + bias; weight, bias may be null (1, 0).
template <class T>
__global__ void apply_kernel(const T* x, const T* mean, const T* invstd, const T* weight, const T* bias, T* y,
                             std::int64_t total, std::int64_t c, std::int64_t l) {
  for (std::int64_t k = first_index(); k < total; k += grid_stride()) {
    const std::int64_t ch = (k / l) % c;
    const T scale = (weight != nullptr ? weight[ch] : T(1)) * invstd[ch];
    y[k] = mul_rounded(x[k] - mean[ch], scale) + (bias != nullptr ? bias[ch] : T(0));
  }
}

// sum_dy = sum(dy), sum_dy_xmu = sum(dy * (x - mean)) per channel.
template <class T>
__global__ void backward_reduce_kernel(const T* dy, const T* x, const T* mean, T* sum_dy, T* sum_dy_xmu,
                                       std::int64_t n, std::int64_t c, std::int64_t l) {
  __shared__ double s1[kThreads], s2[kThreads];
  const std::int64_t count = n * l;
  for (std::int64_t ch = blockIdx.x; ch < c; ch += gridDim.x) {
    const double m = static_cast<double>(mean[ch]);
    double a = 0.0, b = 0.0;
    for (std::int64_t e = threadIdx.x; e < count; e += blockDim.x) {
      const std::int64_t k = channel_offset(e, ch, c, l);
      const double g = static_cast<double>(dy[k]);
      a += g;
      b += mul_rounded(g, static_cast<double>(x[k]) - m);
    }
    s1[threadIdx.x] = a;
    s2[threadIdx.x] = b;
    block_sums(s1, s2);
    if (threadIdx.x == 0) {
      sum_dy[ch] = static_cast<T>(s1[0]);
      sum_dy_xmu[ch] = static_cast<T>(s2[0]);
    }
    __syncthreads();
  }
}

// dx = k * (dy - a - (x - mean) * b), k = weight * invstd, a = sum_dy / count, b = invstd^2 * sum_dy_xmu /
// count.
template <class T>
__global__ void backward_apply_kernel(const T* dy, const T* x, const T* mean, const T* invstd,
                                      const T* weight, const T* sum_dy, const T* sum_dy_xmu, double count,
                                      T* dx, std::int64_t total, std::int64_t c, std::int64_t l) {
  for (std::int64_t k = first_index(); k < total; k += grid_stride()) {
    const std::int64_t ch = (k / l) % c;
    const double is = static_cast<double>(invstd[ch]);
    const T kc = static_cast<T>(static_cast<double>(weight != nullptr ? weight[ch] : T(1)) * is);
    const T ac = static_cast<T>(static_cast<double>(sum_dy[ch]) / count);
    const T bc = static_cast<T>(is * is * static_cast<double>(sum_dy_xmu[ch]) / count);
    dx[k] = mul_rounded(kc, static_cast<T>(dy[k] - ac - mul_rounded(x[k] - mean[ch], bc)));
  }
}

// Layer norm of each row: mean and rstd = 1 / sqrt(var + eps) (biased variance, f64 sums), y = (x - mean) *
// rstd * weight + bias.
template <class T>
__global__ void layer_norm_kernel(const T* x, const T* weight, const T* bias, double eps, T* y, T* mean,
                                  T* rstd, std::int64_t rows, std::int64_t cols) {
  __shared__ double s1[kThreads], s2[kThreads];
  const double inv_cols = cols > 0 ? 1.0 / static_cast<double>(cols) : 0.0;  // the CPU's, for empty rows
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    double a = 0.0;
    for (std::int64_t j = threadIdx.x; j < cols; j += blockDim.x) a += static_cast<double>(xr[j]);
    s1[threadIdx.x] = a;
    s2[threadIdx.x] = 0.0;
    block_sums(s1, s2);
    const double m = mul_rounded(s1[0], inv_cols);
    __syncthreads();  // every thread has read s1[0] before it is overwritten
    double q = 0.0;
    for (std::int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const double d = static_cast<double>(xr[j]) - m;
      q += mul_rounded(d, d);
    }
    s1[threadIdx.x] = q;
    s2[threadIdx.x] = 0.0;
    block_sums(s1, s2);
    const double rs = 1.0 / sqrt(mul_rounded(s1[0], inv_cols) + eps);
    const T mt = static_cast<T>(m), rt = static_cast<T>(rs);
    T* yr = y + r * cols;
    for (std::int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const T w = weight != nullptr ? weight[j] : T(1), b = bias != nullptr ? bias[j] : T(0);
      yr[j] = mul_rounded(mul_rounded(xr[j] - mt, rt), w) + b;
    }
    if (threadIdx.x == 0) {
      mean[r] = mt;
      rstd[r] = rt;
    }
    __syncthreads();
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) of each row, g = dy * weight, xhat = (x - mean) * rstd.
template <class T>
__global__ void layer_norm_backward_input_kernel(const T* dy, const T* x, const T* mean, const T* rstd,
                                                 const T* weight, T* dx, std::int64_t rows,
                                                 std::int64_t cols) {
  __shared__ double s1[kThreads], s2[kThreads];
  const double inv_cols = 1.0 / static_cast<double>(cols);
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    const T* gr = dy + r * cols;
    const T m = mean[r], rs = rstd[r];
    double a = 0.0, b = 0.0;
    for (std::int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const double g = static_cast<double>(mul_rounded(gr[j], weight != nullptr ? weight[j] : T(1)));
      a += g;
      b += mul_rounded(g, static_cast<double>(mul_rounded(xr[j] - m, rs)));
    }
    s1[threadIdx.x] = a;
    s2[threadIdx.x] = b;
    block_sums(s1, s2);
    const T ac = static_cast<T>(mul_rounded(s1[0], inv_cols)),
            cc = static_cast<T>(mul_rounded(s2[0], inv_cols));
    T* dr = dx + r * cols;
    for (std::int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const T g = mul_rounded(gr[j], weight != nullptr ? weight[j] : T(1));
      dr[j] = mul_rounded(rs, static_cast<T>(g - ac - mul_rounded(mul_rounded(xr[j] - m, rs), cc)));
    }
    __syncthreads();
  }
}

// dweight = sum over rows of dy * xhat, dbias = sum of dy: one thread per column, rows in order.
template <class T>
__global__ void layer_norm_backward_params_kernel(const T* dy, const T* x, const T* mean, const T* rstd,
                                                  T* dweight, T* dbias, std::int64_t rows,
                                                  std::int64_t cols) {
  for (std::int64_t j = first_index(); j < cols; j += grid_stride()) {
    double a = 0.0, b = 0.0;
    for (std::int64_t r = 0; r < rows; ++r) {
      const double g = static_cast<double>(dy[r * cols + j]);
      a += mul_rounded(g, static_cast<double>(mul_rounded(x[r * cols + j] - mean[r], rstd[r])));
      b += g;
    }
    if (dweight != nullptr) dweight[j] = static_cast<T>(a);
    if (dbias != nullptr) dbias[j] = static_cast<T>(b);
  }
}

}  // namespace

void launch_batch_norm_stats(DType dtype, DType stats_dtype, const void* x, void* mean, void* var,
                             std::int64_t n, std::int64_t c, std::int64_t l) {
  if (c == 0) return;
  dispatch_floating("batch_norm_stats (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    dispatch_floating("batch_norm_stats (CUDA)", stats_dtype, [&](auto stats_tag) {
      using S = decltype(stats_tag);
      stats_kernel<T, S><<<blocks_per_row(c), kThreads>>>(static_cast<const T*>(x), static_cast<S*>(mean),
                                                          static_cast<S*>(var), n, c, l);
    });
  });
  check_cuda(cudaGetLastError(), "batch_norm stats_kernel<<<...>>>");
}

void launch_batch_norm_apply(DType dtype, const void* x, const void* mean, const void* invstd,
                             const void* weight, const void* bias, void* y, std::int64_t n, std::int64_t c,
                             std::int64_t l) {
  const std::int64_t total = n * c * l;
  if (total == 0) return;
  dispatch_floating("batch_norm_apply (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    apply_kernel<T><<<blocks_for(total), kThreads>>>(
        static_cast<const T*>(x), static_cast<const T*>(mean), static_cast<const T*>(invstd),
        static_cast<const T*>(weight), static_cast<const T*>(bias), static_cast<T*>(y), total, c, l);
  });
  check_cuda(cudaGetLastError(), "batch_norm apply_kernel<<<...>>>");
}

void launch_batch_norm_backward_reduce(DType dtype, const void* dy, const void* x, const void* mean,
                                       void* sum_dy, void* sum_dy_xmu, std::int64_t n, std::int64_t c,
                                       std::int64_t l) {
  if (c == 0) return;
  dispatch_floating("batch_norm_backward_reduce (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    backward_reduce_kernel<T><<<blocks_per_row(c), kThreads>>>(
        static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<const T*>(mean),
        static_cast<T*>(sum_dy), static_cast<T*>(sum_dy_xmu), n, c, l);
  });
  check_cuda(cudaGetLastError(), "batch_norm backward_reduce_kernel<<<...>>>");
}

void launch_batch_norm_backward_apply(DType dtype, const void* dy, const void* x, const void* mean,
                                      const void* invstd, const void* weight, const void* sum_dy,
                                      const void* sum_dy_xmu, double count, void* dx, std::int64_t n,
                                      std::int64_t c, std::int64_t l) {
  const std::int64_t total = n * c * l;
  if (total == 0) return;
  dispatch_floating("batch_norm_backward_apply (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    backward_apply_kernel<T><<<blocks_for(total), kThreads>>>(
        static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<const T*>(mean),
        static_cast<const T*>(invstd), static_cast<const T*>(weight), static_cast<const T*>(sum_dy),
        static_cast<const T*>(sum_dy_xmu), count, static_cast<T*>(dx), total, c, l);
  });
  check_cuda(cudaGetLastError(), "batch_norm backward_apply_kernel<<<...>>>");
}

void launch_layer_norm(DType dtype, const void* x, const void* weight, const void* bias, double eps, void* y,
                       void* mean, void* rstd, std::int64_t rows, std::int64_t cols) {
  if (rows == 0) return;  // empty rows (cols == 0) still get their mean 0 and rstd 1 / sqrt(eps)
  dispatch_floating("layer_norm (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    layer_norm_kernel<T><<<blocks_per_row(rows), kThreads>>>(
        static_cast<const T*>(x), static_cast<const T*>(weight), static_cast<const T*>(bias), eps,
        static_cast<T*>(y), static_cast<T*>(mean), static_cast<T*>(rstd), rows, cols);
  });
  check_cuda(cudaGetLastError(), "layer_norm_kernel<<<...>>>");
}

void launch_layer_norm_backward(DType dtype, const void* dy, const void* x, const void* mean,
                                const void* rstd, const void* weight, void* dx, void* dweight, void* dbias,
                                std::int64_t rows, std::int64_t cols) {
  if (cols == 0) return;  // no rows (rows == 0) still zero dweight and dbias
  dispatch_floating("layer_norm_backward (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    const auto* pdy = static_cast<const T*>(dy);
    const auto* px = static_cast<const T*>(x);
    const auto* pm = static_cast<const T*>(mean);
    const auto* pr = static_cast<const T*>(rstd);
    if (dx != nullptr && rows > 0) {
      layer_norm_backward_input_kernel<T><<<blocks_per_row(rows), kThreads>>>(
          pdy, px, pm, pr, static_cast<const T*>(weight), static_cast<T*>(dx), rows, cols);
      check_cuda(cudaGetLastError(), "layer_norm_backward_input_kernel<<<...>>>");
    }
    if (dweight != nullptr || dbias != nullptr) {
      layer_norm_backward_params_kernel<T><<<blocks_for(cols), kThreads>>>(
          pdy, px, pm, pr, static_cast<T*>(dweight), static_cast<T*>(dbias), rows, cols);
      check_cuda(cudaGetLastError(), "layer_norm_backward_params_kernel<<<...>>>");
    }
  });
}

}  // namespace lockstep::cuda
