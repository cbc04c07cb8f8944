// CPU unary element-wise kernels (math and activations) and their fused backward (the formulas of
// src/ops/unary_formulas.h, which the CUDA kernels share), instantiated per op so that every loop is
// branch-free in the op and the simple ones vectorise.
#include "src/backend/cpu/loops.h"
#include "src/backend/cpu/register.h"
#include "src/ops/kernels.h"

namespace lockstep::cpu {
namespace {

template <UnaryOp Op, class T>
inline T backward_one(T g, T x, T y, T a, T b) {
  return unary_backward_formula<Op, ScalarMath<T>>(g, x, y, a, b);
}

constexpr bool backward_reads_x(UnaryOp op) { return unary_backward_reads_x(op); }
constexpr bool backward_reads_y(UnaryOp op) { return unary_backward_reads_y(op); }

template <UnaryOp Op, class T>
void unary_typed(const Tensor& x, const Tensor& out, T a, T b) {
  for_each_row<2>({&out, &x}, [a, b](std::array<char*, 2> p, std::int64_t n, std::array<std::int64_t, 2> s) {
    T* __restrict o = reinterpret_cast<T*>(p[0]);
    if (s[1] == sizeof(T)) {
      const T* __restrict in = reinterpret_cast<const T*>(p[1]);
      for (std::int64_t i = 0; i < n; ++i) o[i] = unary_forward_formula<Op>(in[i], a, b);
    } else {
      for (std::int64_t i = 0; i < n; ++i)
        o[i] = unary_forward_formula<Op>(*reinterpret_cast<const T*>(p[1] + i * s[1]), a, b);
    }
  });
}

template <UnaryOp Op, class T>
void unary_backward_typed(const T* __restrict g, const T* __restrict x, const T* __restrict y,
                          T* __restrict d, std::int64_t n, T a, T b) {
#pragma omp parallel for schedule(static) if (n >= kParallelGrain)
  for (std::int64_t i = 0; i < n; ++i) {
    if constexpr (backward_reads_x(Op) && backward_reads_y(Op)) {
      d[i] = backward_one<Op>(g[i], x[i], y[i], a, b);
    } else if constexpr (backward_reads_x(Op)) {
      d[i] = backward_one<Op>(g[i], x[i], T(0), a, b);
    } else if constexpr (backward_reads_y(Op)) {
      d[i] = backward_one<Op>(g[i], T(0), y[i], a, b);
    } else {
      d[i] = backward_one<Op>(g[i], T(0), T(0), a, b);
    }
  }
}

void unary_kernel(UnaryOp op, const Tensor& x, const Tensor& out, double a, double b) {
  dispatch_floating("unary", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    dispatch_unary(op, [&](auto op_tag) {
      unary_typed<decltype(op_tag)::value, T>(x, out, static_cast<T>(a), static_cast<T>(b));
    });
  });
}

void unary_backward_kernel(UnaryOp op, const Tensor& grad, const Tensor& x, const Tensor& y, const Tensor& dx,
                           double a, double b) {
  LOCKSTEP_CHECK(!backward_reads_x(op) || x.defined(), ValueError,
                 "unary_backward: this op's gradient reads its input, but the input was not saved");
  LOCKSTEP_CHECK(!backward_reads_y(op) || y.defined(), ValueError,
                 "unary_backward: this op's gradient reads its output, but the output was not saved");
  dispatch_floating("unary_backward", grad.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.defined() ? x.data<T>() : nullptr;
    const T* yp = y.defined() ? y.data<T>() : nullptr;
    dispatch_unary(op, [&](auto op_tag) {
      unary_backward_typed<decltype(op_tag)::value, T>(grad.data<T>(), xp, yp, dx.data<T>(), grad.numel(),
                                                       static_cast<T>(a), static_cast<T>(b));
    });
  });
}

}  // namespace

void register_unary_kernels() {
  kernels::unary.set(DeviceType::CPU, unary_kernel);
  kernels::unary_backward.set(DeviceType::CPU, unary_backward_kernel);
}

}  // namespace lockstep::cpu
