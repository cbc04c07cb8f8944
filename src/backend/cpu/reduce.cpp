// CPU reductions over the middle axis of [outer, size, inner] (f32 sums accumulate in f64). Work is cut into
// tasks by the shape alone (never by the thread count), so results are bitwise the same at any thread count.
#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "src/backend/cpu/register.h"
#include "src/core/threading.h"
#include "src/ops/kernels.h"

namespace lockstep::cpu {
namespace {

template <class T>
using Acc = std::conditional_t<std::is_floating_point_v<T>, double, std::int64_t>;

// Elements one task reads, at most; and the output size under which the reduced axis is split into blocks
// (with per-block partial results combined in block order) so that small outputs still use every thread.
constexpr std::int64_t kTaskElements = 16384;
constexpr std::int64_t kSplitBelowOutput = 4096;
constexpr std::int64_t kMaxColumns = 4096;  // columns of `inner` per task

// A task covers slab `a`, columns [c0, c1) of `inner` and rows [r0, r1) of `size`.
struct Task {
  std::int64_t a, c0, c1, r0, r1, block;
};

struct TaskPlan {
  std::int64_t outer, size, inner;
  std::int64_t cols, col_blocks;  // columns per task, column blocks per slab
  std::int64_t rows, row_blocks;  // rows per task, row blocks per slab (> 1: partial results)

  TaskPlan(std::int64_t outer_, std::int64_t size_, std::int64_t inner_)
      : outer(outer_), size(size_), inner(inner_) {
    cols = std::min(inner, kMaxColumns);
    col_blocks = (inner + cols - 1) / cols;
    rows = outer * inner <= kSplitBelowOutput ? std::max<std::int64_t>(1, kTaskElements / cols) : size;
    rows = std::max<std::int64_t>(std::min(rows, size), 1);
    row_blocks = std::max<std::int64_t>((size + rows - 1) / rows, 1);
  }
  std::int64_t tasks() const { return outer * col_blocks * row_blocks; }
  Task task(std::int64_t t) const {
    const std::int64_t block = t % row_blocks, rest = t / row_blocks;
    const std::int64_t cb = rest % col_blocks, a = rest / col_blocks;
    const std::int64_t c0 = cb * cols, r0 = block * rows;
    return {a, c0, std::min(c0 + cols, inner), r0, std::min(r0 + rows, size), block};
  }
};

// Runs body(task, scratch) over all tasks, in parallel when the input is large; `scratch` is a per-thread
// buffer of `scratch_size` elements of S, allocated once per thread.
template <class S, class Body>
void run_tasks(const TaskPlan& plan, std::size_t scratch_size, Body&& body) {
  const std::int64_t n = plan.tasks();
  const bool parallel = plan.outer * plan.size * plan.inner >= kParallelGrain && n > 1;
#pragma omp parallel if (parallel)
  {
    std::vector<S> scratch(scratch_size);
#pragma omp for schedule(static)
    for (std::int64_t t = 0; t < n; ++t) body(plan.task(t), scratch.data());
  }
}

template <class T, bool IsMax>
inline bool better(T v, T best) {
  if constexpr (std::is_floating_point_v<T>) {
    if (v != v) return best == best;  // NaN wins (and the first NaN stays), as in PyTorch
  }
  return IsMax ? v > best : v < best;
}

// sum / mean.
template <class T>
void reduce_sum(const T* in, T* out, const TaskPlan& p, double scale) {
  using A = Acc<T>;
  const std::int64_t nb = p.row_blocks;
  std::vector<A> partial(nb > 1 ? static_cast<std::size_t>(p.outer * nb * p.inner) : 0);
  run_tasks<A>(p, static_cast<std::size_t>(p.cols), [&](const Task& t, A* acc) {
    const std::int64_t w = t.c1 - t.c0;
    const T* slab = in + t.a * p.size * p.inner + t.c0;
    if (p.inner == 1) {
      A s = 0;
      const T* q = slab + t.r0;
      const std::int64_t len = t.r1 - t.r0;
#pragma omp simd reduction(+ : s)
      for (std::int64_t i = 0; i < len; ++i) s += static_cast<A>(q[i]);
      acc[0] = s;
    } else {
      std::fill(acc, acc + w, A(0));
      for (std::int64_t r = t.r0; r < t.r1; ++r) {
        const T* q = slab + r * p.inner;
        for (std::int64_t c = 0; c < w; ++c) acc[c] += static_cast<A>(q[c]);
      }
    }
    if (nb > 1) {
      std::copy(acc, acc + w, partial.begin() + (t.a * nb + t.block) * p.inner + t.c0);
    } else {
      T* o = out + t.a * p.inner + t.c0;
      for (std::int64_t c = 0; c < w; ++c) o[c] = static_cast<T>(static_cast<double>(acc[c]) * scale);
    }
  });
  if (nb == 1) return;
  for (std::int64_t a = 0; a < p.outer; ++a) {
    for (std::int64_t c = 0; c < p.inner; ++c) {
      A s = 0;
      for (std::int64_t b = 0; b < nb; ++b)
        s += partial[static_cast<std::size_t>((a * nb + b) * p.inner + c)];
      out[a * p.inner + c] = static_cast<T>(static_cast<double>(s) * scale);
    }
  }
}

// max / min values.
template <class T, bool IsMax>
void reduce_extreme(const T* in, T* out, const TaskPlan& p) {
  const std::int64_t nb = p.row_blocks;
  std::vector<T> partial(nb > 1 ? static_cast<std::size_t>(p.outer * nb * p.inner) : 0);
  run_tasks<T>(p, static_cast<std::size_t>(p.cols), [&](const Task& t, T* acc) {
    const std::int64_t w = t.c1 - t.c0;
    const T* slab = in + t.a * p.size * p.inner + t.c0;
    if (p.inner == 1) {
      // One contiguous stretch: a vectorised max/min, then NaN (if any) overrides it.
      const T* q = slab + t.r0;
      const std::int64_t len = t.r1 - t.r0;
      T best = q[0];
      bool nan = false;
      if constexpr (IsMax) {
#pragma omp simd reduction(max : best) reduction(|| : nan)
        for (std::int64_t i = 0; i < len; ++i) {
          best = q[i] > best ? q[i] : best;
          if constexpr (std::is_floating_point_v<T>) nan = nan || q[i] != q[i];
        }
      } else {
#pragma omp simd reduction(min : best) reduction(|| : nan)
        for (std::int64_t i = 0; i < len; ++i) {
          best = q[i] < best ? q[i] : best;
          if constexpr (std::is_floating_point_v<T>) nan = nan || q[i] != q[i];
        }
      }
      acc[0] = nan ? std::numeric_limits<T>::quiet_NaN() : best;
    } else {
      std::copy(slab + t.r0 * p.inner, slab + t.r0 * p.inner + w, acc);
      for (std::int64_t r = t.r0 + 1; r < t.r1; ++r) {
        const T* q = slab + r * p.inner;
        for (std::int64_t c = 0; c < w; ++c) acc[c] = better<T, IsMax>(q[c], acc[c]) ? q[c] : acc[c];
      }
    }
    T* dst = nb > 1 ? partial.data() + (t.a * nb + t.block) * p.inner + t.c0 : out + t.a * p.inner + t.c0;
    std::copy(acc, acc + w, dst);
  });
  if (nb == 1) return;
  for (std::int64_t a = 0; a < p.outer; ++a) {
    for (std::int64_t c = 0; c < p.inner; ++c) {
      T best = partial[static_cast<std::size_t>(a * nb * p.inner + c)];
      for (std::int64_t b = 1; b < nb; ++b) {
        const T v = partial[static_cast<std::size_t>((a * nb + b) * p.inner + c)];
        if (better<T, IsMax>(v, best)) best = v;
      }
      out[a * p.inner + c] = best;
    }
  }
}

// argmax / argmin: the first position of the extreme value (of the first NaN, if any).
template <class T, bool IsMax>
void reduce_arg(const T* in, std::int64_t* out, const TaskPlan& p) {
  struct Best {
    T value;
    std::int64_t index;
  };
  const std::int64_t nb = p.row_blocks;
  std::vector<Best> partial(nb > 1 ? static_cast<std::size_t>(p.outer * nb * p.inner) : 0);
  run_tasks<Best>(p, static_cast<std::size_t>(p.cols), [&](const Task& t, Best* acc) {
    const std::int64_t w = t.c1 - t.c0;
    const T* slab = in + t.a * p.size * p.inner + t.c0;
    for (std::int64_t c = 0; c < w; ++c) acc[c] = {slab[t.r0 * p.inner + c], t.r0};
    for (std::int64_t r = t.r0 + 1; r < t.r1; ++r) {
      const T* q = slab + r * p.inner;
      for (std::int64_t c = 0; c < w; ++c) {
        if (better<T, IsMax>(q[c], acc[c].value)) acc[c] = {q[c], r};
      }
    }
    if (nb > 1) {
      std::copy(acc, acc + w, partial.begin() + (t.a * nb + t.block) * p.inner + t.c0);
    } else {
      std::int64_t* o = out + t.a * p.inner + t.c0;
      for (std::int64_t c = 0; c < w; ++c) o[c] = acc[c].index;
    }
  });
  if (nb == 1) return;
  for (std::int64_t a = 0; a < p.outer; ++a) {
    for (std::int64_t c = 0; c < p.inner; ++c) {
      Best best = partial[static_cast<std::size_t>(a * nb * p.inner + c)];
      for (std::int64_t b = 1; b < nb; ++b) {
        const Best& v = partial[static_cast<std::size_t>((a * nb + b) * p.inner + c)];
        if (better<T, IsMax>(v.value, best.value)) best = v;
      }
      out[a * p.inner + c] = best.index;
    }
  }
}

template <class T>
void reduce_typed(ReduceOp op, const Tensor& x, const Tensor& out, std::int64_t outer, std::int64_t size,
                  std::int64_t inner) {
  if (outer * inner == 0) return;
  const TaskPlan plan(outer, size, inner);
  const T* in = x.data<T>();
  switch (op) {
    case ReduceOp::kSum:
      return reduce_sum<T>(in, out.data<T>(), plan, 1.0);
    case ReduceOp::kMean:
      return reduce_sum<T>(in, out.data<T>(), plan, 1.0 / static_cast<double>(size));
    case ReduceOp::kMax:
      return reduce_extreme<T, true>(in, out.data<T>(), plan);
    case ReduceOp::kMin:
      return reduce_extreme<T, false>(in, out.data<T>(), plan);
    case ReduceOp::kArgmax:
      return reduce_arg<T, true>(in, out.data<std::int64_t>(), plan);
    case ReduceOp::kArgmin:
      return reduce_arg<T, false>(in, out.data<std::int64_t>(), plan);
  }
}

void reduce_kernel(ReduceOp op, const Tensor& x, const Tensor& out, std::int64_t outer, std::int64_t size,
                   std::int64_t inner) {
  if (op != ReduceOp::kSum && op != ReduceOp::kMean) {
    LOCKSTEP_CHECK(size > 0 || outer * inner == 0, ValueError,
                   "reduce: expected a non-empty dimension to take the max/min of, but it has size 0");
  }
  dispatch_all("reduce", x.dtype(),
               [&](auto tag) { reduce_typed<decltype(tag)>(op, x, out, outer, size, inner); });
}

}  // namespace

void register_reduce_kernels() { kernels::reduce.set(DeviceType::CPU, reduce_kernel); }

}  // namespace lockstep::cpu
