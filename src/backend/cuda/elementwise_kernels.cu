// CUDA element-wise kernels: fill, converting copy and the binary ops (the formulas of
// src/ops/binary_formulas.h, which the CPU kernels share), over strided layouts of up to kMaxDims dimensions,
// with a linear fast path when every operand is contiguous. Grid-stride loops.
#include <cuda_runtime.h>

#include <algorithm>

#include "src/backend/cuda/check.h"
#include "src/backend/cuda/elementwise_launch.h"
#include "src/backend/cuda/grid.cuh"

namespace lockstep::cuda {
namespace {

template <class T, bool kContiguous>
__global__ void fill_kernel(T* dst, Layout<1> layout, std::int64_t n, T value) {
  for (std::int64_t i = first_index(); i < n; i += grid_stride()) {
    if constexpr (kContiguous) {
      dst[i] = value;
    } else {
      std::int64_t off[1];
      element_offsets(layout, i, off);
      dst[off[0]] = value;
    }
  }
}

template <class Dst, class Src, bool kContiguous>
__global__ void copy_kernel(Dst* dst, const Src* src, Layout<2> layout, std::int64_t n) {
  for (std::int64_t i = first_index(); i < n; i += grid_stride()) {
    if constexpr (kContiguous) {
      dst[i] = static_cast<Dst>(src[i]);
    } else {
      std::int64_t off[2];
      element_offsets(layout, i, off);
      dst[off[0]] = static_cast<Dst>(src[off[1]]);
    }
  }
}

// out may alias a: each thread reads its own element before writing it.
template <BinaryOp Op, class T, bool kContiguous>
__global__ void binary_kernel(BinaryResult<Op, T>* out, const T* a, const T* b, Layout<3> layout,
                              std::int64_t n, T alpha) {
  for (std::int64_t i = first_index(); i < n; i += grid_stride()) {
    if constexpr (kContiguous) {
      out[i] = binary_formula<Op>(a[i], b[i], alpha);
    } else {
      std::int64_t off[3];
      element_offsets(layout, i, off);
      out[off[0]] = binary_formula<Op>(a[off[1]], b[off[2]], alpha);
    }
  }
}

template <class T, bool kContiguous>
__global__ void where_kernel(T* out, const std::uint8_t* cond, const T* a, const T* b, Layout<4> layout,
                             std::int64_t n) {
  for (std::int64_t i = first_index(); i < n; i += grid_stride()) {
    if constexpr (kContiguous) {
      out[i] = cond[i] ? a[i] : b[i];
    } else {
      std::int64_t off[4];
      element_offsets(layout, i, off);
      out[off[0]] = cond[off[1]] ? a[off[2]] : b[off[3]];
    }
  }
}

template <class T> void fill_typed(void* dst, const Layout<1>& layout, std::int64_t n, double value) {
  const T v = static_cast<T>(value);
  T* d = static_cast<T*>(dst);
  if (layout.contiguous()) {
    fill_kernel<T, true><<<blocks_for(n), kThreads>>>(d, layout, n, v);
  } else {
    fill_kernel<T, false><<<blocks_for(n), kThreads>>>(d, layout, n, v);
  }
  check_cuda(cudaGetLastError(), "fill_kernel<<<...>>>");
}

template <class Dst, class Src> void copy_typed(void* dst, const void* src, const Layout<2>& layout, std::int64_t n) {
  Dst* d = static_cast<Dst*>(dst);
  const Src* s = static_cast<const Src*>(src);
  if (layout.contiguous()) {
    copy_kernel<Dst, Src, true><<<blocks_for(n), kThreads>>>(d, s, layout, n);
  } else {
    copy_kernel<Dst, Src, false><<<blocks_for(n), kThreads>>>(d, s, layout, n);
  }
  check_cuda(cudaGetLastError(), "copy_kernel<<<...>>>");
}

}  // namespace

void launch_fill(DType dtype, void* dst, const Layout<1>& layout, std::int64_t n, double value) {
  if (n == 0) return;
  dispatch_all("fill (CUDA)", dtype, [&](auto tag) { fill_typed<decltype(tag)>(dst, layout, n, value); });
}

void launch_copy(DType dst_dtype, void* dst, DType src_dtype, const void* src, const Layout<2>& layout,
                 std::int64_t n) {
  if (n == 0) return;
  dispatch_all("copy (CUDA)", dst_dtype, [&](auto d) {
    dispatch_all("copy (CUDA)", src_dtype, [&](auto s) { copy_typed<decltype(d), decltype(s)>(dst, src, layout, n); });
  });
}

void launch_binary(BinaryOp op, DType dtype, void* out, const void* a, const void* b, const Layout<3>& layout,
                   std::int64_t n, double alpha) {
  if (n == 0) return;
  dispatch_all("binary (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* x = static_cast<const T*>(a);
    const T* y = static_cast<const T*>(b);
    const T al = static_cast<T>(alpha);
    dispatch_binary(op, [&](auto op_tag) {
      constexpr BinaryOp kOp = decltype(op_tag)::value;
      auto* o = static_cast<BinaryResult<kOp, T>*>(out);
      if (layout.contiguous()) {
        binary_kernel<kOp, T, true><<<blocks_for(n), kThreads>>>(o, x, y, layout, n, al);
      } else {
        binary_kernel<kOp, T, false><<<blocks_for(n), kThreads>>>(o, x, y, layout, n, al);
      }
    });
  });
  check_cuda(cudaGetLastError(), "binary_kernel<<<...>>>");
}

void launch_where(DType dtype, void* out, const void* cond, const void* a, const void* b,
                  const Layout<4>& layout, std::int64_t n) {
  if (n == 0) return;
  dispatch_all("where (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    auto* o = static_cast<T*>(out);
    const auto* c = static_cast<const std::uint8_t*>(cond);
    const T* x = static_cast<const T*>(a);
    const T* y = static_cast<const T*>(b);
    if (layout.contiguous()) {
      where_kernel<T, true><<<blocks_for(n), kThreads>>>(o, c, x, y, layout, n);
    } else {
      where_kernel<T, false><<<blocks_for(n), kThreads>>>(o, c, x, y, layout, n);
    }
  });
  check_cuda(cudaGetLastError(), "where_kernel<<<...>>>");
}

}  // namespace lockstep::cuda
