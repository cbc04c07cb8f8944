// CPU index kernels: index_select / index_add over [outer, size, inner] and gather / scatter_add along one
// dimension. Every index is bounds-checked before any parallel loop starts.
#include <algorithm>
#include <cstring>
#include <vector>

#include "src/backend/cpu/register.h"
#include "src/core/threading.h"
#include "src/ops/kernels.h"

namespace lockstep::cpu {
namespace {

// Columns of the innermost block handled by one parallel work item of the accumulating kernels.
constexpr std::int64_t kColumnChunk = 64;

// Raises IndexError naming `op` and the first index of `idx[0, n)` outside [0, size).
void check_indices(const char* op, const std::int64_t* idx, std::int64_t n, std::int64_t size) {
  std::int64_t lo = 0, hi = 0;
#pragma omp simd reduction(min : lo) reduction(max : hi)
  for (std::int64_t i = 0; i < n; ++i) {
    lo = idx[i] < lo ? idx[i] : lo;  // the ternary form vectorises; std::min does not
    hi = idx[i] > hi ? idx[i] : hi;
  }
  if (lo >= 0 && hi < size) return;
  for (std::int64_t i = 0; i < n; ++i) {
    LOCKSTEP_CHECK(idx[i] >= 0 && idx[i] < size, IndexError, op, ": expected indices in [0, ", size - 1,
                   "] (a dimension of size ", size, "), but got ", idx[i], " at position ", i);
  }
}

// Element offsets, under `strides`, of every position of the row-major block shape[lo, hi).
std::vector<std::int64_t> block_offsets(const Shape& shape, std::size_t lo, std::size_t hi,
                                        const Shape& strides) {
  std::int64_t count = 1;
  for (std::size_t d = lo; d < hi; ++d) count *= shape[d];
  std::vector<std::int64_t> out(static_cast<std::size_t>(count));
  std::vector<std::int64_t> coord(hi - lo, 0);
  std::int64_t off = 0;
  for (std::int64_t k = 0; k < count; ++k) {
    out[static_cast<std::size_t>(k)] = off;
    for (std::size_t d = hi; d-- > lo;) {
      if (++coord[d - lo] < shape[d]) {
        off += strides[d];
        break;
      }
      off -= (shape[d] - 1) * strides[d];
      coord[d - lo] = 0;
    }
  }
  return out;
}

template <class T>
void index_select_typed(const Tensor& x, const Tensor& index, const Tensor& out, std::int64_t outer,
                        std::int64_t size, std::int64_t inner) {
  const T* src = x.data<T>();
  const std::int64_t* idx = index.data<std::int64_t>();
  T* dst = out.data<T>();
  const std::int64_t n = index.numel();
  const bool parallel = outer * n * inner >= kParallelGrain;
  if (inner == 1) {
#pragma omp parallel for if (parallel)
    for (std::int64_t a = 0; a < outer; ++a) {
      const T* s = src + a * size;
      T* d = dst + a * n;
      for (std::int64_t j = 0; j < n; ++j) d[j] = s[idx[j]];
    }
    return;
  }
  const std::size_t row_bytes = static_cast<std::size_t>(inner) * sizeof(T);
#pragma omp parallel for collapse(2) if (parallel)
  for (std::int64_t a = 0; a < outer; ++a) {
    for (std::int64_t j = 0; j < n; ++j)
      std::memcpy(dst + (a * n + j) * inner, src + (a * size + idx[j]) * inner, row_bytes);
  }
}

void index_select_kernel(const Tensor& x, const Tensor& index, const Tensor& out, std::int64_t outer,
                         std::int64_t size, std::int64_t inner) {
  check_indices("index_select", index.data<std::int64_t>(), index.numel(), size);
  dispatch_all("index_select", x.dtype(),
               [&](auto tag) { index_select_typed<decltype(tag)>(x, index, out, outer, size, inner); });
}

// Repeated indices accumulate: the work is split over outer rows and column chunks, never over indices.
template <class T>
void index_add_typed(const Tensor& src, const Tensor& index, const Tensor& out, std::int64_t outer,
                     std::int64_t size, std::int64_t inner) {
  const T* s = src.data<T>();
  const std::int64_t* idx = index.data<std::int64_t>();
  T* o = out.data<T>();
  const std::int64_t n = index.numel();
  const std::int64_t chunks = (inner + kColumnChunk - 1) / kColumnChunk;
  const bool parallel = outer * n * inner >= kParallelGrain && outer * chunks > 1;
#pragma omp parallel for collapse(2) if (parallel)
  for (std::int64_t a = 0; a < outer; ++a) {
    for (std::int64_t c = 0; c < chunks; ++c) {
      const std::int64_t c0 = c * kColumnChunk, c1 = std::min(inner, c0 + kColumnChunk);
      for (std::int64_t j = 0; j < n; ++j) {
        T* d = o + (a * size + idx[j]) * inner;
        const T* q = s + (a * n + j) * inner;
        for (std::int64_t k = c0; k < c1; ++k) d[k] += q[k];
      }
    }
  }
}

void index_add_kernel(const Tensor& src, const Tensor& index, const Tensor& out, std::int64_t outer,
                      std::int64_t size, std::int64_t inner) {
  check_indices("index_add", index.data<std::int64_t>(), index.numel(), size);
  dispatch_all("index_add", out.dtype(),
               [&](auto tag) { index_add_typed<decltype(tag)>(src, index, out, outer, size, inner); });
}

// The geometry shared by gather and scatter_add: index viewed as [pre, n, post] around `dim`, with the
// offsets of each pre / post position in the index, the strided operand (x or out) and the dense one (out or
// src).
struct AlongDim {
  std::int64_t pre = 1, n = 1, post = 1;
  std::int64_t index_stride = 0, strided_stride = 0, dense_stride = 0;  // strides along dim
  std::vector<std::int64_t> pre_index, pre_strided, pre_dense, post_index, post_strided, post_dense;
};

AlongDim plan_along_dim(const Tensor& index, const Tensor& strided, const Tensor& dense, std::int64_t dim) {
  const Shape& shape = index.shape();
  const std::size_t d = static_cast<std::size_t>(dim), nd = shape.size();
  AlongDim g;
  for (std::size_t i = 0; i < d; ++i) g.pre *= shape[i];
  g.n = shape[d];
  for (std::size_t i = d + 1; i < nd; ++i) g.post *= shape[i];
  g.index_stride = index.strides()[d];
  g.strided_stride = strided.strides()[d];
  g.dense_stride = dense.strides()[d];
  g.pre_index = block_offsets(shape, 0, d, index.strides());
  g.pre_strided = block_offsets(shape, 0, d, strided.strides());
  g.pre_dense = block_offsets(shape, 0, d, dense.strides());
  g.post_index = block_offsets(shape, d + 1, nd, index.strides());
  g.post_strided = block_offsets(shape, d + 1, nd, strided.strides());
  g.post_dense = block_offsets(shape, d + 1, nd, dense.strides());
  return g;
}

// Calls body(strided_offset, dense_offset) for every index position. Positions that differ only along `dim`
// stay on one thread, in order, so scatter_add's accumulation into one destination never races.
template <class Body>
void for_each_along_dim(const AlongDim& g, const std::int64_t* idx, Body&& body) {
  const std::int64_t chunks = (g.post + kColumnChunk - 1) / kColumnChunk;
  const bool parallel = g.pre * g.n * g.post >= kParallelGrain && g.pre * chunks > 1;
#pragma omp parallel for collapse(2) if (parallel)
  for (std::int64_t p = 0; p < g.pre; ++p) {
    for (std::int64_t c = 0; c < chunks; ++c) {
      const std::size_t pu = static_cast<std::size_t>(p);
      const std::int64_t q0 = c * kColumnChunk, q1 = std::min(g.post, q0 + kColumnChunk);
      for (std::int64_t i = 0; i < g.n; ++i) {
        const std::int64_t* ip = idx + g.pre_index[pu] + i * g.index_stride;
        const std::int64_t strided_base = g.pre_strided[pu],
                           dense_base = g.pre_dense[pu] + i * g.dense_stride;
        for (std::int64_t q = q0; q < q1; ++q) {
          const std::size_t qu = static_cast<std::size_t>(q);
          body(strided_base + ip[g.post_index[qu]] * g.strided_stride + g.post_strided[qu],
               dense_base + g.post_dense[qu]);
        }
      }
    }
  }
}

// Bounds-checks a possibly strided index tensor against `size`.
void check_index_tensor(const char* op, const Tensor& index, std::int64_t size) {
  const Tensor dense = index.is_contiguous() ? index : index.detach().contiguous();
  check_indices(op, dense.data<std::int64_t>(), dense.numel(), size);
}

void gather_kernel(const Tensor& x, const Tensor& index, const Tensor& out, std::int64_t dim) {
  check_index_tensor("gather", index, x.size(dim));
  const AlongDim g = plan_along_dim(index, x, out, dim);
  dispatch_all("gather", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xs = x.data<T>();
    T* o = out.data<T>();
    for_each_along_dim(g, index.data<std::int64_t>(),
                       [xs, o](std::int64_t from, std::int64_t to) { o[to] = xs[from]; });
  });
}

void scatter_add_kernel(const Tensor& src, const Tensor& index, const Tensor& out, std::int64_t dim) {
  check_index_tensor("scatter_add", index, out.size(dim));
  const AlongDim g = plan_along_dim(index, out, src, dim);
  dispatch_all("scatter_add", out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* s = src.data<T>();
    T* o = out.data<T>();
    for_each_along_dim(g, index.data<std::int64_t>(),
                       [s, o](std::int64_t to, std::int64_t from) { o[to] += s[from]; });
  });
}

}  // namespace

void register_index_kernels() {
  kernels::index_select.set(DeviceType::CPU, index_select_kernel);
  kernels::index_add.set(DeviceType::CPU, index_add_kernel);
  kernels::gather.set(DeviceType::CPU, gather_kernel);
  kernels::scatter_add.set(DeviceType::CPU, scatter_add_kernel);
}

}  // namespace lockstep::cpu
