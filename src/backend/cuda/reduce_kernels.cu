// CUDA reductions over the middle axis of [outer, size, inner], with the CPU kernel's semantics: sums of
// floating types accumulate in f64 (integers in i64), mean scales the sum by 1 / size, max/min propagate NaN,
// argmax/argmin give the first position of the extreme value (of the first NaN, if any). inner == 1: one
// block per row, combined in a shared-memory tree; inner > 1: one thread per output column (coalesced
// across columns), looping over the rows. Partial results are combined by an order-independent rule, so only
// sums may differ from the CPU's, in their last f64 bits.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "src/backend/cuda/check.h"
#include "src/backend/cuda/grid.cuh"
#include "src/backend/cuda/reduce_launch.h"

namespace lockstep::cuda {
namespace {

template <class T>
using Acc = std::conditional_t<std::is_floating_point_v<T>, double, std::int64_t>;

template <class T>
__device__ inline bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>) return v != v;
  return false;
}

// One candidate of argmax/argmin (or of max/min, index unused).
template <class T>
struct Best {
  T value;
  std::int64_t index;
};

// The winner of two candidates: NaN first, then the extreme value, then the lower index.
template <class T, bool kMax>
__device__ inline Best<T> pick(const Best<T>& p, const Best<T>& q) {
  const bool pn = is_nan(p.value), qn = is_nan(q.value);
  if (pn || qn) {
    if (pn && qn) return p.index <= q.index ? p : q;
    return pn ? p : q;
  }
  if (p.value == q.value) return p.index <= q.index ? p : q;
  return (kMax ? p.value > q.value : p.value < q.value) ? p : q;
}

// Sum (scaled) of one row per block (inner == 1).
template <class T>
__global__ void sum_rows_kernel(const T* in, T* out, std::int64_t outer, std::int64_t size, double scale) {
  __shared__ Acc<T> part[kThreads];
  for (std::int64_t row = blockIdx.x; row < outer; row += gridDim.x) {
    const T* q = in + row * size;
    Acc<T> s = 0;
    for (std::int64_t i = threadIdx.x; i < size; i += blockDim.x) s += static_cast<Acc<T>>(q[i]);
    part[threadIdx.x] = s;
    __syncthreads();
    for (int width = kThreads / 2; width > 0; width /= 2) {
      if (static_cast<int>(threadIdx.x) < width) part[threadIdx.x] += part[threadIdx.x + width];
      __syncthreads();
    }
    if (threadIdx.x == 0) out[row] = static_cast<T>(static_cast<double>(part[0]) * scale);
    __syncthreads();
  }
}

// Max/min or argmax/argmin of one row per block (inner == 1); out is T or std::int64_t.
template <class T, bool kMax, bool kArg, class Out>
__global__ void extreme_rows_kernel(const T* in, Out* out, std::int64_t outer, std::int64_t size) {
  __shared__ Best<T> part[kThreads];
  for (std::int64_t row = blockIdx.x; row < outer; row += gridDim.x) {
    const T* q = in + row * size;
    Best<T> best{q[0], 0};
    for (std::int64_t i = threadIdx.x; i < size; i += blockDim.x)
      best = pick<T, kMax>(best, Best<T>{q[i], i});
    part[threadIdx.x] = best;
    __syncthreads();
    for (int width = kThreads / 2; width > 0; width /= 2) {
      if (static_cast<int>(threadIdx.x) < width)
        part[threadIdx.x] = pick<T, kMax>(part[threadIdx.x], part[threadIdx.x + width]);
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      if constexpr (kArg) {
        out[row] = part[0].index;
      } else {
        out[row] = part[0].value;
        // NaN as the CPU's vectorised row scan gives it: the canonical quiet NaN.
        if constexpr (std::is_floating_point_v<T>) {
          if (is_nan(part[0].value)) out[row] = static_cast<T>(NAN);
        }
      }
    }
    __syncthreads();
  }
}

// Sum (scaled) down the rows of each column (inner > 1): one thread per output element.
template <class T>
__global__ void sum_columns_kernel(const T* in, T* out, std::int64_t outer, std::int64_t size,
                                   std::int64_t inner, double scale) {
  const std::int64_t n = outer * inner;
  for (std::int64_t k = first_index(); k < n; k += grid_stride()) {
    const std::int64_t a = k / inner, c = k % inner;
    const T* q = in + a * size * inner + c;
    Acc<T> s = 0;
    for (std::int64_t r = 0; r < size; ++r) s += static_cast<Acc<T>>(q[r * inner]);
    out[k] = static_cast<T>(static_cast<double>(s) * scale);
  }
}

template <class T, bool kMax, bool kArg, class Out>
__global__ void extreme_columns_kernel(const T* in, Out* out, std::int64_t outer, std::int64_t size,
                                       std::int64_t inner) {
  const std::int64_t n = outer * inner;
  for (std::int64_t k = first_index(); k < n; k += grid_stride()) {
    const std::int64_t a = k / inner, c = k % inner;
    const T* q = in + a * size * inner + c;
    Best<T> best{q[0], 0};
    for (std::int64_t r = 1; r < size; ++r) best = pick<T, kMax>(best, Best<T>{q[r * inner], r});
    if constexpr (kArg) {
      out[k] = best.index;
    } else {
      out[k] = best.value;
    }
  }
}

template <class T, bool kMax, bool kArg>
void launch_extreme(const T* in, void* out, std::int64_t outer, std::int64_t size, std::int64_t inner) {
  using Out = std::conditional_t<kArg, std::int64_t, T>;
  auto* o = static_cast<Out*>(out);
  if (inner == 1) {
    extreme_rows_kernel<T, kMax, kArg><<<blocks_per_row(outer), kThreads>>>(in, o, outer, size);
  } else {
    extreme_columns_kernel<T, kMax, kArg><<<blocks_for(outer * inner), kThreads>>>(in, o, outer, size, inner);
  }
}

}  // namespace

void launch_reduce(ReduceOp op, DType dtype, const void* x, void* out, std::int64_t outer, std::int64_t size,
                   std::int64_t inner) {
  if (outer * inner == 0) return;
  dispatch_all("reduce (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* in = static_cast<const T*>(x);
    switch (op) {
      case ReduceOp::kSum:
      case ReduceOp::kMean: {
        const double scale = op == ReduceOp::kMean ? 1.0 / static_cast<double>(size) : 1.0;
        T* o = static_cast<T*>(out);
        if (inner == 1) {
          sum_rows_kernel<T><<<blocks_per_row(outer), kThreads>>>(in, o, outer, size, scale);
        } else {
          sum_columns_kernel<T><<<blocks_for(outer * inner), kThreads>>>(in, o, outer, size, inner, scale);
        }
        break;
      }
      case ReduceOp::kMax:
        return launch_extreme<T, true, false>(in, out, outer, size, inner);
      case ReduceOp::kMin:
        return launch_extreme<T, false, false>(in, out, outer, size, inner);
      case ReduceOp::kArgmax:
        return launch_extreme<T, true, true>(in, out, outer, size, inner);
      case ReduceOp::kArgmin:
        return launch_extreme<T, false, true>(in, out, outer, size, inner);
    }
  });
  check_cuda(cudaGetLastError(), "reduce kernel <<<...>>>");
}

}  // namespace lockstep::cuda
