// CUDA index kernels: index_select and gather copy one element per thread; index_add and scatter_add give
// each destination column or line to one thread, which adds its sources in index order.
#include <cuda_runtime.h>

#include "src/backend/cuda/check.h"
#include "src/backend/cuda/grid.cuh"
#include "src/backend/cuda/index_launch.h"

namespace lockstep::cuda {
namespace {

template <class T>
__global__ void index_select_kernel(const T* x, const std::int64_t* index, T* out, std::int64_t outer,
                                    std::int64_t size, std::int64_t inner, std::int64_t n) {
  const std::int64_t total = outer * n * inner;
  for (std::int64_t k = first_index(); k < total; k += grid_stride()) {
    const std::int64_t i = k % inner, j = (k / inner) % n, a = k / (inner * n);
    out[k] = x[(a * size + index[j]) * inner + i];
  }
}

// One thread per (outer row, column), over the indices in order.
template <class T>
__global__ void index_add_kernel(const T* src, const std::int64_t* index, T* out, std::int64_t outer,
                                 std::int64_t size, std::int64_t inner, std::int64_t n) {
  const std::int64_t columns = outer * inner;
  for (std::int64_t k = first_index(); k < columns; k += grid_stride()) {
    const std::int64_t i = k % inner, a = k / inner;
    for (std::int64_t j = 0; j < n; ++j)
      out[(a * size + index[j]) * inner + i] += src[(a * n + j) * inner + i];
  }
}

// The offsets of index position p (row-major in the index's shape) in the indexed operand, with the `dim`
// coordinate replaced by index[p], and in the dense operand.
struct Offsets {
  std::int64_t indexed, dense;
};
__device__ inline Offsets along_dim_offsets(const AlongDimShapes& s, std::int64_t p, std::int64_t idx) {
  Offsets o{0, 0};
  for (int d = s.dims - 1; d >= 0; --d) {
    const std::int64_t c = p % s.index_shape[d];
    p /= s.index_shape[d];
    o.indexed += (d == s.dim ? idx : c) * s.indexed_strides[d];
    o.dense += c * s.dense_strides[d];
  }
  return o;
}

template <class T>
__global__ void gather_kernel(const T* x, const std::int64_t* index, T* out, AlongDimShapes s,
                              std::int64_t total) {
  for (std::int64_t p = first_index(); p < total; p += grid_stride()) {
    const Offsets o = along_dim_offsets(s, p, index[p]);
    out[o.dense] = x[o.indexed];
  }
}

// One thread per line (the index positions that differ only along dim), over the line in order: positions
// of different lines never share a destination.
template <class T>
__global__ void scatter_add_kernel(const T* src, const std::int64_t* index, T* out, AlongDimShapes s,
                                   std::int64_t lines, std::int64_t n, std::int64_t post) {
  for (std::int64_t line = first_index(); line < lines; line += grid_stride()) {
    const std::int64_t pre = line / post, q = line % post;
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t p = (pre * n + i) * post + q;
      const Offsets o = along_dim_offsets(s, p, index[p]);
      out[o.indexed] += src[o.dense];
    }
  }
}

}  // namespace

void launch_index_select(DType dtype, const void* x, const std::int64_t* index, void* out, std::int64_t outer,
                         std::int64_t size, std::int64_t inner, std::int64_t n) {
  const std::int64_t total = outer * n * inner;
  if (total == 0) return;
  dispatch_all("index_select (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    index_select_kernel<T><<<blocks_for(total), kThreads>>>(static_cast<const T*>(x), index,
                                                            static_cast<T*>(out), outer, size, inner, n);
  });
  check_cuda(cudaGetLastError(), "index_select_kernel<<<...>>>");
}

void launch_index_add(DType dtype, const void* src, const std::int64_t* index, void* out, std::int64_t outer,
                      std::int64_t size, std::int64_t inner, std::int64_t n) {
  if (outer * inner == 0 || n == 0) return;
  dispatch_all("index_add (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    index_add_kernel<T><<<blocks_for(outer * inner), kThreads>>>(static_cast<const T*>(src), index,
                                                                 static_cast<T*>(out), outer, size, inner, n);
  });
  check_cuda(cudaGetLastError(), "index_add_kernel<<<...>>>");
}

namespace {
std::int64_t positions(const AlongDimShapes& s) {
  std::int64_t total = 1;
  for (int d = 0; d < s.dims; ++d) total *= s.index_shape[d];
  return total;
}
}  // namespace

void launch_gather(DType dtype, const void* x, const std::int64_t* index, void* out,
                   const AlongDimShapes& s) {
  const std::int64_t total = positions(s);
  if (total == 0) return;
  dispatch_all("gather (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    gather_kernel<T>
        <<<blocks_for(total), kThreads>>>(static_cast<const T*>(x), index, static_cast<T*>(out), s, total);
  });
  check_cuda(cudaGetLastError(), "gather_kernel<<<...>>>");
}

void launch_scatter_add(DType dtype, const void* src, const std::int64_t* index, void* out,
                        const AlongDimShapes& s) {
  const std::int64_t total = positions(s);
  if (total == 0) return;
  const std::int64_t n = s.index_shape[s.dim];
  std::int64_t post = 1;
  for (int d = s.dim + 1; d < s.dims; ++d) post *= s.index_shape[d];
  const std::int64_t lines = total / n;
  dispatch_all("scatter_add (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    scatter_add_kernel<T><<<blocks_for(lines), kThreads>>>(static_cast<const T*>(src), index,
                                                           static_cast<T*>(out), s, lines, n, post);
  });
  check_cuda(cudaGetLastError(), "scatter_add_kernel<<<...>>>");
}

}  // namespace lockstep::cuda
