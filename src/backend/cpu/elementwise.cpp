// CPU element-wise kernels: copy with dtype conversion, fill, broadcast binary ops and comparisons (the
// formulas of src/ops/binary_formulas.h, which the CUDA kernels share), where.
#include <cmath>
#include <cstring>

#include "src/backend/cpu/loops.h"
#include "src/backend/cpu/register.h"
#include "src/ops/kernels.h"

namespace lockstep::cpu {
namespace {

template <class T> inline T& at(char* p, std::int64_t i, std::int64_t stride) {
  return *reinterpret_cast<T*>(p + i * stride);
}

template <class Dst, class Src> void copy_typed(const Tensor& src, const Tensor& dst) {
  for_each_row<2>({&dst, &src}, [](std::array<char*, 2> p, std::int64_t n, std::array<std::int64_t, 2> s) {
    if (s[0] == sizeof(Dst) && s[1] == sizeof(Src)) {
      Dst* d = reinterpret_cast<Dst*>(p[0]);
      const Src* x = reinterpret_cast<const Src*>(p[1]);
      if constexpr (std::is_same_v<Dst, Src>) {
        std::memcpy(d, x, static_cast<std::size_t>(n) * sizeof(Dst));
      } else {
        for (std::int64_t i = 0; i < n; ++i) d[i] = static_cast<Dst>(x[i]);
      }
    } else {
      for (std::int64_t i = 0; i < n; ++i) at<Dst>(p[0], i, s[0]) = static_cast<Dst>(at<Src>(p[1], i, s[1]));
    }
  });
}

void copy_kernel(const Tensor& src, const Tensor& dst) {
  dispatch_all("copy", dst.dtype(), [&](auto d) {
    dispatch_all("copy", src.dtype(), [&](auto s) { copy_typed<decltype(d), decltype(s)>(src, dst); });
  });
}

void fill_kernel(const Tensor& dst, double value) {
  dispatch_all("fill", dst.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T v = static_cast<T>(value);
    for_each_row<1>({&dst}, [v](std::array<char*, 1> p, std::int64_t n, std::array<std::int64_t, 1> s) {
      if (s[0] == sizeof(T)) {
        T* d = reinterpret_cast<T*>(p[0]);
        for (std::int64_t i = 0; i < n; ++i) d[i] = v;
      } else {
        for (std::int64_t i = 0; i < n; ++i) at<T>(p[0], i, s[0]) = v;
      }
    });
  });
}

// Applies out = f(a, b) over rows, with fast paths for contiguous operands and a broadcast scalar b.
template <class Out, class T, class F> void binary_loop(const Tensor& a, const Tensor& b, const Tensor& out, F f) {
  for_each_row<3>({&out, &a, &b}, [f](std::array<char*, 3> p, std::int64_t n, std::array<std::int64_t, 3> s) {
    Out* o = reinterpret_cast<Out*>(p[0]);
    const T* x = reinterpret_cast<const T*>(p[1]);
    const T* y = reinterpret_cast<const T*>(p[2]);
    if (s[0] == sizeof(Out) && s[1] == sizeof(T) && s[2] == sizeof(T)) {
      for (std::int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
    } else if (s[0] == sizeof(Out) && s[1] == sizeof(T) && s[2] == 0) {
      const T yv = *y;
      for (std::int64_t i = 0; i < n; ++i) o[i] = f(x[i], yv);
    } else if (s[0] == sizeof(Out) && s[1] == 0 && s[2] == sizeof(T)) {
      const T xv = *x;
      for (std::int64_t i = 0; i < n; ++i) o[i] = f(xv, y[i]);
    } else {
      for (std::int64_t i = 0; i < n; ++i) at<Out>(p[0], i, s[0]) = f(at<T>(p[1], i, s[1]), at<T>(p[2], i, s[2]));
    }
  });
}

void binary_kernel(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out, double alpha) {
  dispatch_all("binary", a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T al = static_cast<T>(alpha);
    dispatch_binary(op, [&](auto op_tag) {
      constexpr BinaryOp kOp = decltype(op_tag)::value;
      binary_loop<BinaryResult<kOp, T>, T>(a, b, out,
                                           [al](T x, T y) { return binary_formula<kOp>(x, y, al); });
    });
  });
}

void where_kernel(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  dispatch_all("where", out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    for_each_row<4>({&out, &cond, &a, &b}, [](std::array<char*, 4> p, std::int64_t n, std::array<std::int64_t, 4> s) {
      for (std::int64_t i = 0; i < n; ++i) {
        at<T>(p[0], i, s[0]) = at<std::uint8_t>(p[1], i, s[1]) ? at<T>(p[2], i, s[2]) : at<T>(p[3], i, s[3]);
      }
    });
  });
}

}  // namespace

void register_elementwise_kernels() {
  kernels::copy.set(DeviceType::CPU, copy_kernel);
  kernels::fill.set(DeviceType::CPU, fill_kernel);
  kernels::binary.set(DeviceType::CPU, binary_kernel);
  kernels::where.set(DeviceType::CPU, where_kernel);
}

}  // namespace lockstep::cpu
