// CPU reductions over the middle axis of [outer, size, inner] (f32 accumulates in f64).
#include <limits>
#include <vector>

#include "src/backend/cpu/register.h"
#include "src/core/threading.h"
#include "src/ops/kernels.h"

namespace lockstep::cpu {
namespace {

template <class T> using Acc = std::conditional_t<std::is_floating_point_v<T>, double, std::int64_t>;

template <class T>
void reduce_typed(ReduceOp op, const Tensor& x, const Tensor& out, std::int64_t outer, std::int64_t size,
                  std::int64_t inner) {
  const T* in = x.data<T>();
  const bool parallel = outer * size * inner >= kParallelGrain;
  if (op == ReduceOp::kArgmax || op == ReduceOp::kArgmin) {
    std::int64_t* o = out.data<std::int64_t>();
    const bool is_max = op == ReduceOp::kArgmax;
#pragma omp parallel for collapse(2) if (parallel)
    for (std::int64_t a = 0; a < outer; ++a) {
      for (std::int64_t c = 0; c < inner; ++c) {
        const T* p = in + a * size * inner + c;
        std::int64_t best = 0;
        for (std::int64_t i = 1; i < size; ++i) {
          const T v = p[i * inner], b = p[best * inner];
          if (is_max ? v > b : v < b) best = i;
        }
        o[a * inner + c] = best;
      }
    }
    return;
  }
  T* o = out.data<T>();
  if (op == ReduceOp::kMax || op == ReduceOp::kMin) {
    const bool is_max = op == ReduceOp::kMax;
#pragma omp parallel for if (parallel)
    for (std::int64_t a = 0; a < outer; ++a) {
      T* row = o + a * inner;
      const T* p = in + a * size * inner;
      for (std::int64_t c = 0; c < inner; ++c) row[c] = p[c];
      for (std::int64_t i = 1; i < size; ++i) {
        const T* q = p + i * inner;
        for (std::int64_t c = 0; c < inner; ++c) row[c] = is_max ? (q[c] > row[c] ? q[c] : row[c]) : (q[c] < row[c] ? q[c] : row[c]);
      }
    }
    return;
  }
  const double scale = op == ReduceOp::kMean ? 1.0 / static_cast<double>(size) : 1.0;
  if (inner == 1) {
#pragma omp parallel for if (parallel)
    for (std::int64_t a = 0; a < outer; ++a) {
      const T* p = in + a * size;
      Acc<T> s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      std::int64_t i = 0;
      for (; i + 4 <= size; i += 4) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
      }
      for (; i < size; ++i) s0 += p[i];
      o[a] = static_cast<T>(static_cast<double>((s0 + s1) + (s2 + s3)) * scale);
    }
    return;
  }
#pragma omp parallel if (parallel)
  {
    std::vector<Acc<T>> acc(static_cast<std::size_t>(inner));
#pragma omp for
    for (std::int64_t a = 0; a < outer; ++a) {
      std::fill(acc.begin(), acc.end(), Acc<T>(0));
      const T* p = in + a * size * inner;
      for (std::int64_t i = 0; i < size; ++i) {
        const T* q = p + i * inner;
        for (std::int64_t c = 0; c < inner; ++c) acc[static_cast<std::size_t>(c)] += q[c];
      }
      for (std::int64_t c = 0; c < inner; ++c) {
        o[a * inner + c] = static_cast<T>(static_cast<double>(acc[static_cast<std::size_t>(c)]) * scale);
      }
    }
  }
}

void reduce_kernel(ReduceOp op, const Tensor& x, const Tensor& out, std::int64_t outer, std::int64_t size,
                   std::int64_t inner) {
  if ((op == ReduceOp::kMax || op == ReduceOp::kMin || op == ReduceOp::kArgmax || op == ReduceOp::kArgmin)) {
    LOCKSTEP_CHECK(size > 0, ValueError, "reduce: expected a non-empty dimension to take the max/min of, but it has size 0");
  }
  dispatch_all("reduce", x.dtype(), [&](auto tag) { reduce_typed<decltype(tag)>(op, x, out, outer, size, inner); });
}

}  // namespace

void register_reduce_kernels() { kernels::reduce.set(DeviceType::CPU, reduce_kernel); }

}  // namespace lockstep::cpu
