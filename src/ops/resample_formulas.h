// Bilinear resampling written once, on plain numbers, for the CPU and the CUDA kernels alike (the functions
// are __host__ __device__): PyTorch's source coordinate with or without align_corners, the two taps and
// weights of a destination position along one axis, and the arithmetic of the forward value and of one
// term of the adjoint. Products followed by additions go through mul_rounded, so both devices give the
// same bits. Plain data, no Tensor include.
#pragma once

#include <cstdint>

#include "src/core/host_device.h"

namespace lockstep {

// Bilinear taps of one destination position along an axis: value = w0 * x[i0] + w1 * x[i1].
struct BilinearTaps {
  std::int64_t i0, i1;
  double w0, w1;
};

// The scale from destination to source coordinates along an axis of size `in` resampled to `out`.
LOCKSTEP_HOST_DEVICE inline double bilinear_scale(std::int64_t in, std::int64_t out, bool align_corners) {
  if (align_corners) return out > 1 ? static_cast<double>(in - 1) / static_cast<double>(out - 1) : 0.0;
  return static_cast<double>(in) / static_cast<double>(out);
}

// The taps of destination position i (scale from bilinear_scale). i0 is non-decreasing in i, and
// i1 is i0 + 1, or i0 at the last source position.
LOCKSTEP_HOST_DEVICE inline BilinearTaps bilinear_taps(std::int64_t i, std::int64_t in, double scale,
                                                       bool align_corners) {
  const double d = static_cast<double>(i);
  double src = 0.0;
  if (align_corners) {
    src = mul_rounded(d, scale);
  } else {
    const double s = mul_rounded(d + 0.5, scale) - 0.5;
    src = s < 0.0 ? 0.0 : s;  // std::max(s, 0.0)
  }
  const std::int64_t t = static_cast<std::int64_t>(src);
  const std::int64_t i0 = t < in - 1 ? t : in - 1;
  const std::int64_t i1 = i0 < in - 1 ? i0 + 1 : i0;
  const double l1 = src - static_cast<double>(i0);
  return {i0, i1, 1.0 - l1, l1};
}

// w0 * a0 + w1 * a1, each product rounded on its own. The forward value of a destination element with row
// weights r0, r1 and column weights c0, c1 is
//   bilinear_mix(r0, bilinear_mix(c0, top[i0], c1, top[i1]), r1, bilinear_mix(c0, bottom[i0], c1,
//   bottom[i1])).
template <class T>
LOCKSTEP_HOST_DEVICE inline T bilinear_mix(T w0, T a0, T w1, T a1) {
  return static_cast<T>(mul_rounded(w0, a0) + mul_rounded(w1, a1));
}

// The adjoint's term for one (row tap, column tap) of a destination element with gradient g: rw * (cw * g),
// added to the source element's gradient.
template <class T>
LOCKSTEP_HOST_DEVICE inline T bilinear_grad_term(T rw, T cw, T g) {
  return mul_rounded(rw, mul_rounded(cw, g));
}

}  // namespace lockstep
