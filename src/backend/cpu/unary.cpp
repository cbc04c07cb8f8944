// CPU unary element-wise kernels (math and activations) and their fused backward formulas.
#include <cmath>

#include "src/backend/cpu/loops.h"
#include "src/backend/cpu/register.h"
#include "src/ops/kernels.h"

namespace lockstep::cpu {
namespace {

template <class T> T sigmoid_of(T x) {
  return x >= 0 ? T(1) / (T(1) + std::exp(-x)) : std::exp(x) / (T(1) + std::exp(x));
}

// y = f(x) for one element.
template <class T> T forward_one(UnaryOp op, T x, T a, T b) {
  switch (op) {
    case UnaryOp::kNeg: return -x;
    case UnaryOp::kExp: return std::exp(x);
    case UnaryOp::kLog: return std::log(x);
    case UnaryOp::kSqrt: return std::sqrt(x);
    case UnaryOp::kAbs: return std::abs(x);
    case UnaryOp::kSigmoid: return sigmoid_of(x);
    case UnaryOp::kTanh: return std::tanh(x);
    case UnaryOp::kRelu: return x > T(0) ? x : T(0);
    case UnaryOp::kLeakyRelu: return x > T(0) ? x : a * x;
    case UnaryOp::kElu: return x > T(0) ? x : a * std::expm1(x);
    case UnaryOp::kSoftplus: return a * x > b ? x : std::log1p(std::exp(a * x)) / a;
    case UnaryOp::kHardtanh: return x < a ? a : (x > b ? b : x);
    case UnaryOp::kPowScalar: return std::pow(x, a);
    case UnaryOp::kLog1p: return std::log1p(x);
    case UnaryOp::kSign: return static_cast<T>((x > T(0)) - (x < T(0)));
    case UnaryOp::kSquare: return x * x;
    case UnaryOp::kReciprocal: return T(1) / x;
  }
  return x;
}

// dy/dx * g for one element, from x and y = f(x).
template <class T> T backward_one(UnaryOp op, T g, T x, T y, T a, T b) {
  switch (op) {
    case UnaryOp::kNeg: return -g;
    case UnaryOp::kExp: return g * y;
    case UnaryOp::kLog: return g / x;
    case UnaryOp::kSqrt: return g / (T(2) * y);
    case UnaryOp::kAbs: return x > T(0) ? g : (x < T(0) ? -g : T(0));
    case UnaryOp::kSigmoid: return g * y * (T(1) - y);
    case UnaryOp::kTanh: return g * (T(1) - y * y);
    case UnaryOp::kRelu: return x > T(0) ? g : T(0);
    case UnaryOp::kLeakyRelu: return x > T(0) ? g : a * g;
    case UnaryOp::kElu: return x > T(0) ? g : g * (y + a);
    case UnaryOp::kSoftplus: return a * x > b ? g : g * sigmoid_of(a * x);
    case UnaryOp::kHardtanh: return (x > a && x < b) ? g : T(0);
    case UnaryOp::kPowScalar: return g * a * std::pow(x, a - T(1));
    case UnaryOp::kLog1p: return g / (T(1) + x);
    case UnaryOp::kSign: return T(0);
    case UnaryOp::kSquare: return g * T(2) * x;
    case UnaryOp::kReciprocal: return -g * y * y;
  }
  return g;
}

template <class T> void unary_typed(UnaryOp op, const Tensor& x, const Tensor& out, T a, T b) {
  for_each_row<2>({&out, &x}, [op, a, b](std::array<char*, 2> p, std::int64_t n, std::array<std::int64_t, 2> s) {
    T* o = reinterpret_cast<T*>(p[0]);
    if (s[1] == sizeof(T)) {
      const T* in = reinterpret_cast<const T*>(p[1]);
      switch (op) {  // the hot activations get branch-free loops the compiler vectorises
        case UnaryOp::kRelu:
          for (std::int64_t i = 0; i < n; ++i) o[i] = in[i] > T(0) ? in[i] : T(0);
          return;
        case UnaryOp::kNeg:
          for (std::int64_t i = 0; i < n; ++i) o[i] = -in[i];
          return;
        default:
          for (std::int64_t i = 0; i < n; ++i) o[i] = forward_one(op, in[i], a, b);
          return;
      }
    }
    for (std::int64_t i = 0; i < n; ++i) o[i] = forward_one(op, *reinterpret_cast<const T*>(p[1] + i * s[1]), a, b);
  });
}

void unary_kernel(UnaryOp op, const Tensor& x, const Tensor& out, double a, double b) {
  dispatch_floating("unary", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    unary_typed<T>(op, x, out, static_cast<T>(a), static_cast<T>(b));
  });
}

void unary_backward_kernel(UnaryOp op, const Tensor& grad, const Tensor& x, const Tensor& y, const Tensor& dx, double a,
                           double b) {
  dispatch_floating("unary_backward", grad.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* g = grad.data<T>();
    const T* xp = x.defined() ? x.data<T>() : nullptr;
    const T* yp = y.defined() ? y.data<T>() : nullptr;
    T* d = dx.data<T>();
    const T ta = static_cast<T>(a), tb = static_cast<T>(b);
    const std::int64_t n = grad.numel();
#pragma omp parallel for if (n >= kParallelGrain)
    for (std::int64_t i = 0; i < n; ++i) d[i] = backward_one(op, g[i], xp ? xp[i] : T(0), yp ? yp[i] : T(0), ta, tb);
  });
}

}  // namespace

void register_unary_kernels() {
  kernels::unary.set(DeviceType::CPU, unary_kernel);
  kernels::unary_backward.set(DeviceType::CPU, unary_backward_kernel);
}

}  // namespace lockstep::cpu
