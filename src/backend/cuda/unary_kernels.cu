// CUDA unary kernels (math and activations) and their fused backward: grid-stride loops around the formulas
// of src/ops/unary_formulas.h, the same functions the CPU kernels run, so the CPU op table tests the math
// that runs here. Forward over strided layouts (linear fast path when contiguous); backward on contiguous
// operands.
#include <cuda_runtime.h>

#include <algorithm>

#include "src/backend/cuda/check.h"
#include "src/backend/cuda/grid.cuh"
#include "src/backend/cuda/unary_launch.h"
#include "src/ops/unary_formulas.h"

namespace lockstep::cuda {
namespace {

template <UnaryOp Op, class T, bool kContiguous>
__global__ void unary_kernel(T* out, const T* x, Layout<2> layout, std::int64_t n, T a, T b) {
  for (std::int64_t i = first_index(); i < n; i += grid_stride()) {
    if constexpr (kContiguous) {
      out[i] = unary_forward_formula<Op>(x[i], a, b);
    } else {
      std::int64_t off[2];
      element_offsets(layout, i, off);
      out[off[0]] = unary_forward_formula<Op>(x[off[1]], a, b);
    }
  }
}

// x and y may be null where the op's derivative does not read them (unary_backward_reads_x/_y).
template <UnaryOp Op, class T>
__global__ void unary_backward_kernel(const T* g, const T* x, const T* y, T* d, std::int64_t n, T a, T b) {
  for (std::int64_t i = first_index(); i < n; i += grid_stride()) {
    T xi = T(0);
    T yi = T(0);
    if constexpr (unary_backward_reads_x(Op)) xi = x[i];
    if constexpr (unary_backward_reads_y(Op)) yi = y[i];
    d[i] = unary_backward_formula<Op, ScalarMath<T>>(g[i], xi, yi, a, b);
  }
}

}  // namespace

void launch_unary(UnaryOp op, DType dtype, void* out, const void* x, const Layout<2>& layout, std::int64_t n,
                  double a, double b) {
  if (n == 0) return;
  dispatch_floating("unary (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    T* o = static_cast<T*>(out);
    const T* in = static_cast<const T*>(x);
    dispatch_unary(op, [&](auto op_tag) {
      constexpr UnaryOp kOp = decltype(op_tag)::value;
      if (layout.contiguous()) {
        unary_kernel<kOp, T, true>
            <<<blocks_for(n), kThreads>>>(o, in, layout, n, static_cast<T>(a), static_cast<T>(b));
      } else {
        unary_kernel<kOp, T, false>
            <<<blocks_for(n), kThreads>>>(o, in, layout, n, static_cast<T>(a), static_cast<T>(b));
      }
    });
  });
  check_cuda(cudaGetLastError(), "unary_kernel<<<...>>>");
}

void launch_unary_backward(UnaryOp op, DType dtype, const void* g, const void* x, const void* y, void* d,
                           std::int64_t n, double a, double b) {
  if (n == 0) return;
  dispatch_floating("unary_backward (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    dispatch_unary(op, [&](auto op_tag) {
      unary_backward_kernel<decltype(op_tag)::value, T><<<blocks_for(n), kThreads>>>(
          static_cast<const T*>(g), static_cast<const T*>(x), static_cast<const T*>(y), static_cast<T*>(d), n,
          static_cast<T>(a), static_cast<T>(b));
    });
  });
  check_cuda(cudaGetLastError(), "unary_backward_kernel<<<...>>>");
}

}  // namespace lockstep::cuda
