// Every binary element-wise op written once, on plain numbers: out = f(a, b) for the CPU and the CUDA
// kernels alike (the functions are __host__ __device__). Plain data and templates, no Tensor include.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "src/core/host_device.h"

namespace lockstep {

enum class BinaryOp : std::uint8_t {
  kAdd,  // a + alpha * b
  kSub,  // a - alpha * b
  kMul,
  kDiv,
  kPow,
  kMaximum,
  kMinimum,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,  // comparisons: output u8 (0 or 1)
};

LOCKSTEP_HOST_DEVICE constexpr bool binary_is_comparison(BinaryOp op) { return op >= BinaryOp::kEq; }

// The output type of op Op on operands of type T: u8 for comparisons, else T.
template <BinaryOp Op, class T>
using BinaryResult = std::conditional_t<binary_is_comparison(Op), std::uint8_t, T>;

// f(x, y) for op Op (alpha: the scale of y in add and sub). Integer operands: integer arithmetic, and pow
// through double, as std::pow promotes them.
template <BinaryOp Op, class T>
LOCKSTEP_HOST_DEVICE inline BinaryResult<Op, T> binary_formula(T x, T y, T alpha) {
  using U = std::uint8_t;
  if constexpr (Op == BinaryOp::kAdd) return static_cast<T>(x + mul_rounded(alpha, y));
  if constexpr (Op == BinaryOp::kSub) return static_cast<T>(x - mul_rounded(alpha, y));
  if constexpr (Op == BinaryOp::kMul) return static_cast<T>(x * y);
  if constexpr (Op == BinaryOp::kDiv) return static_cast<T>(x / y);
  if constexpr (Op == BinaryOp::kPow) {
    if constexpr (std::is_integral_v<T>) {
      return static_cast<T>(std::pow(static_cast<double>(x), static_cast<double>(y)));
    } else {
      return std::pow(x, y);
    }
  }
  if constexpr (Op == BinaryOp::kMaximum) return x > y ? x : y;
  if constexpr (Op == BinaryOp::kMinimum) return x < y ? x : y;
  if constexpr (Op == BinaryOp::kEq) return static_cast<U>(x == y);
  if constexpr (Op == BinaryOp::kNe) return static_cast<U>(x != y);
  if constexpr (Op == BinaryOp::kLt) return static_cast<U>(x < y);
  if constexpr (Op == BinaryOp::kLe) return static_cast<U>(x <= y);
  if constexpr (Op == BinaryOp::kGt) return static_cast<U>(x > y);
  if constexpr (Op == BinaryOp::kGe) return static_cast<U>(x >= y);
}

// dispatch_binary(op, fn) calls fn(BinaryOpTag<op>{}) with the op as a compile-time constant (tag::value).
template <BinaryOp Op>
struct BinaryOpTag {
  static constexpr BinaryOp value = Op;
};
template <class Fn>
decltype(auto) dispatch_binary(BinaryOp op, Fn&& fn) {
  switch (op) {
    case BinaryOp::kAdd:
      return fn(BinaryOpTag<BinaryOp::kAdd>{});
    case BinaryOp::kSub:
      return fn(BinaryOpTag<BinaryOp::kSub>{});
    case BinaryOp::kMul:
      return fn(BinaryOpTag<BinaryOp::kMul>{});
    case BinaryOp::kDiv:
      return fn(BinaryOpTag<BinaryOp::kDiv>{});
    case BinaryOp::kPow:
      return fn(BinaryOpTag<BinaryOp::kPow>{});
    case BinaryOp::kMaximum:
      return fn(BinaryOpTag<BinaryOp::kMaximum>{});
    case BinaryOp::kMinimum:
      return fn(BinaryOpTag<BinaryOp::kMinimum>{});
    case BinaryOp::kEq:
      return fn(BinaryOpTag<BinaryOp::kEq>{});
    case BinaryOp::kNe:
      return fn(BinaryOpTag<BinaryOp::kNe>{});
    case BinaryOp::kLt:
      return fn(BinaryOpTag<BinaryOp::kLt>{});
    case BinaryOp::kLe:
      return fn(BinaryOpTag<BinaryOp::kLe>{});
    case BinaryOp::kGt:
      return fn(BinaryOpTag<BinaryOp::kGt>{});
    case BinaryOp::kGe:
      break;
  }
  return fn(BinaryOpTag<BinaryOp::kGe>{});
}

}  // namespace lockstep
