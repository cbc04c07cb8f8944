// Every unary op written once: y = f(x) on plain numbers, and the derivative dx = g * f'(x) from x and/or
// y = f(x), generic over the value type through a small math policy, so that the CPU and CUDA kernels compute
// both on float/double (the functions are __host__ __device__) and the op's differentiable backward
// (create_graph) composes the derivative from recorded Tensor ops. Plain data and templates, no Tensor
// include.
#pragma once

#include <cmath>
#include <cstdint>

#include "src/core/host_device.h"

namespace lockstep {

enum class UnaryOp : std::uint8_t {
  kNeg,
  kExp,
  kLog,
  kSqrt,
  kAbs,
  kSigmoid,
  kTanh,
  kRelu,
  kLeakyRelu,  // a = negative slope
  kElu,        // a = alpha
  kSoftplus,   // a = beta, b = threshold (linear above it, as in PyTorch)
  kHardtanh,   // a = min, b = max (also clamp)
  kPowScalar,  // x ** a
  kLog1p,
  kSign,
  kSquare,
  kReciprocal,
};

// Which of x and y = f(x) each derivative reads (the op layer must save those).
LOCKSTEP_HOST_DEVICE constexpr bool unary_backward_reads_x(UnaryOp op) {
  switch (op) {
    case UnaryOp::kLog:
    case UnaryOp::kAbs:
    case UnaryOp::kRelu:
    case UnaryOp::kLeakyRelu:
    case UnaryOp::kElu:
    case UnaryOp::kSoftplus:
    case UnaryOp::kHardtanh:
    case UnaryOp::kPowScalar:
    case UnaryOp::kLog1p:
    case UnaryOp::kSquare:
      return true;
    default:
      return false;
  }
}
LOCKSTEP_HOST_DEVICE constexpr bool unary_backward_reads_y(UnaryOp op) {
  switch (op) {
    case UnaryOp::kExp:
    case UnaryOp::kSqrt:
    case UnaryOp::kSigmoid:
    case UnaryOp::kTanh:
    case UnaryOp::kElu:
    case UnaryOp::kReciprocal:
      return true;
    default:
      return false;
  }
}

// The math policy for plain numbers T (float, double).
template <class T>
struct ScalarMath {
  using Value = T;
  using Scalar = T;
  // x > t ? p : q
  LOCKSTEP_HOST_DEVICE static T select_gt(T x, T t, T p, T q) { return x > t ? p : q; }
  // lo < x < hi ? p : q
  LOCKSTEP_HOST_DEVICE static T select_inside(T x, T lo, T hi, T p, T q) {
    return (x > lo && x < hi) ? p : q;
  }
  // 0 where the derivative vanishes (broadcastable against g)
  LOCKSTEP_HOST_DEVICE static T zero(T) { return T(0); }
  LOCKSTEP_HOST_DEVICE static T sign(T x) { return static_cast<T>((x > T(0)) - (x < T(0))); }
  LOCKSTEP_HOST_DEVICE static T pow(T x, T e) { return std::pow(x, e); }
  LOCKSTEP_HOST_DEVICE static T sigmoid(T x) {
    return x >= T(0) ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x));
  }
};

// y = f(x) for op Op and its parameters a, b on a plain number T (float, double): the one definition that the
// CPU and CUDA kernels both run. NaN propagates through every op (relu included, as in PyTorch).
template <UnaryOp Op, class T>
LOCKSTEP_HOST_DEVICE inline T unary_forward_formula(T x, T a, T b) {
  if constexpr (Op == UnaryOp::kNeg) return -x;
  if constexpr (Op == UnaryOp::kExp) return std::exp(x);
  if constexpr (Op == UnaryOp::kLog) return std::log(x);
  if constexpr (Op == UnaryOp::kSqrt) return std::sqrt(x);
  if constexpr (Op == UnaryOp::kAbs) return std::abs(x);
  if constexpr (Op == UnaryOp::kSigmoid) return ScalarMath<T>::sigmoid(x);
  if constexpr (Op == UnaryOp::kTanh) return std::tanh(x);
  if constexpr (Op == UnaryOp::kRelu) return x < T(0) ? T(0) : x;
  if constexpr (Op == UnaryOp::kLeakyRelu) return x > T(0) ? x : a * x;
  if constexpr (Op == UnaryOp::kElu) return x > T(0) ? x : a * std::expm1(x);
  // beta * x > threshold: linear, as in PyTorch.
  if constexpr (Op == UnaryOp::kSoftplus) return a * x > b ? x : std::log1p(std::exp(a * x)) / a;
  if constexpr (Op == UnaryOp::kHardtanh) return x < a ? a : (x > b ? b : x);
  if constexpr (Op == UnaryOp::kPowScalar) return std::pow(x, a);
  if constexpr (Op == UnaryOp::kLog1p) return std::log1p(x);
  if constexpr (Op == UnaryOp::kSign) return static_cast<T>((x > T(0)) - (x < T(0)));
  if constexpr (Op == UnaryOp::kSquare) return x * x;
  if constexpr (Op == UnaryOp::kReciprocal) return T(1) / x;
}

// g * f'(x) for op Op, from x and y = f(x) (only those that unary_backward_reads_x/_y name are read; the
// others may be anything) and the op's parameters a, b. M is ScalarMath<T> or the Tensor policy of
// src/ops/unary.cpp.
template <UnaryOp Op, class M>
LOCKSTEP_HOST_DEVICE typename M::Value unary_backward_formula(const typename M::Value& g,
                                                              const typename M::Value& x,
                                                              const typename M::Value& y,
                                                              typename M::Scalar a, typename M::Scalar b) {
  using S = typename M::Scalar;
  if constexpr (Op == UnaryOp::kNeg) return -g;
  if constexpr (Op == UnaryOp::kExp) return g * y;
  if constexpr (Op == UnaryOp::kLog) return g / x;
  if constexpr (Op == UnaryOp::kSqrt) return g / (y * S(2));
  if constexpr (Op == UnaryOp::kAbs) return g * M::sign(x);
  if constexpr (Op == UnaryOp::kSigmoid) return g * (y * (S(1) - y));
  if constexpr (Op == UnaryOp::kTanh) return g * (S(1) - y * y);
  if constexpr (Op == UnaryOp::kRelu) return M::select_gt(x, S(0), g, M::zero(g));
  if constexpr (Op == UnaryOp::kLeakyRelu) return M::select_gt(x, S(0), g, g * a);
  if constexpr (Op == UnaryOp::kElu)
    return M::select_gt(x, S(0), g, g * (y + a));  // alpha * exp(x) = y + alpha
  if constexpr (Op == UnaryOp::kSoftplus) return M::select_gt(x * a, b, g, g * M::sigmoid(x * a));
  if constexpr (Op == UnaryOp::kHardtanh) return M::select_inside(x, a, b, g, M::zero(g));
  if constexpr (Op == UnaryOp::kPowScalar) return g * (M::pow(x, a - S(1)) * a);
  if constexpr (Op == UnaryOp::kLog1p) return g / (x + S(1));
  if constexpr (Op == UnaryOp::kSign) return g * S(0);
  if constexpr (Op == UnaryOp::kSquare) return g * (x * S(2));
  if constexpr (Op == UnaryOp::kReciprocal) return -(g * (y * y));
}

// dispatch_unary(op, fn) calls fn(UnaryOpTag<op>{}) with the op as a compile-time constant (tag::value).
template <UnaryOp Op>
struct UnaryOpTag {
  static constexpr UnaryOp value = Op;
};
template <class Fn>
decltype(auto) dispatch_unary(UnaryOp op, Fn&& fn) {
  switch (op) {
    case UnaryOp::kNeg:
      return fn(UnaryOpTag<UnaryOp::kNeg>{});
    case UnaryOp::kExp:
      return fn(UnaryOpTag<UnaryOp::kExp>{});
    case UnaryOp::kLog:
      return fn(UnaryOpTag<UnaryOp::kLog>{});
    case UnaryOp::kSqrt:
      return fn(UnaryOpTag<UnaryOp::kSqrt>{});
    case UnaryOp::kAbs:
      return fn(UnaryOpTag<UnaryOp::kAbs>{});
    case UnaryOp::kSigmoid:
      return fn(UnaryOpTag<UnaryOp::kSigmoid>{});
    case UnaryOp::kTanh:
      return fn(UnaryOpTag<UnaryOp::kTanh>{});
    case UnaryOp::kRelu:
      return fn(UnaryOpTag<UnaryOp::kRelu>{});
    case UnaryOp::kLeakyRelu:
      return fn(UnaryOpTag<UnaryOp::kLeakyRelu>{});
    case UnaryOp::kElu:
      return fn(UnaryOpTag<UnaryOp::kElu>{});
    case UnaryOp::kSoftplus:
      return fn(UnaryOpTag<UnaryOp::kSoftplus>{});
    case UnaryOp::kHardtanh:
      return fn(UnaryOpTag<UnaryOp::kHardtanh>{});
    case UnaryOp::kPowScalar:
      return fn(UnaryOpTag<UnaryOp::kPowScalar>{});
    case UnaryOp::kLog1p:
      return fn(UnaryOpTag<UnaryOp::kLog1p>{});
    case UnaryOp::kSign:
      return fn(UnaryOpTag<UnaryOp::kSign>{});
    case UnaryOp::kSquare:
      return fn(UnaryOpTag<UnaryOp::kSquare>{});
    case UnaryOp::kReciprocal:
      break;
  }
  return fn(UnaryOpTag<UnaryOp::kReciprocal>{});
}

}  // namespace lockstep
