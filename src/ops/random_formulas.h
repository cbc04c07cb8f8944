// The random fills written once, for the CPU and CUDA kernels alike: element i of a fill at (seed, offset)
// comes from lane i % 4 of Philox block offset + i / 4, so a value depends only on (seed, offset, i), never
// on threads or device. Uniform values and the dropout mask are the same bits on both devices; normal values
// use log, sin and cos, which CUDA computes to within 1-2 ulp of the host's, so they agree to about 1e-15
// relative in f64 (and almost always exactly after rounding to f32). Plain data, no Tensor include.
#pragma once

#include <cmath>
#include <cstdint>

#include "src/core/host_device.h"
#include "src/core/rng.h"

namespace lockstep {

enum class RandomKind : std::uint8_t {
  kUniform,          // in [a, b)
  kNormal,           // mean a, std b
  kBernoulliScaled,  // 1/a with probability a (keep probability), else 0: the inverted-dropout mask
};

// What one fill draws: the kind, its parameters a, b, and two values derived from them once per fill on the
// host: uniform: the largest value of the output dtype below b (rounding must never reach the open bound);
// Bernoulli: the scale 1 / a.
struct RandomDraw {
  RandomKind kind;
  double a, b, below_b, scale;
};

// The draw of one fill whose output dtype is T (host code; both devices' kernels take it from here).
template <class T>
RandomDraw random_draw(RandomKind kind, double a, double b) {
  return {kind, a, b, static_cast<double>(std::nextafter(static_cast<T>(b), static_cast<T>(a))), 1.0 / a};
}

// Uniform in (0, 1] from 32 random bits (exact in double).
LOCKSTEP_HOST_DEVICE inline double open01(std::uint32_t bits) {
  return (static_cast<double>(bits) + 1.0) * (1.0 / 4294967296.0);
}

// The four values of Philox block `counter` (elements 4 * (counter - offset) + lane) for draw d.
template <RandomKind Kind>
LOCKSTEP_HOST_DEVICE inline void random_block(std::uint64_t seed, std::uint64_t counter, const RandomDraw& d,
                                              double (&v)[4]) {
  std::uint32_t r[4];
  philox4x32(seed, 0, counter, r);
  if constexpr (Kind == RandomKind::kUniform) {
    for (int l = 0; l < 4; ++l) {
      const double u = d.a + mul_rounded(d.b - d.a, open01(r[l]) - 0x1p-32);
      v[l] = u < d.below_b ? u : d.below_b;
    }
  } else if constexpr (Kind == RandomKind::kNormal) {
    for (int l = 0; l < 4; l += 2) {
      const double radius = std::sqrt(-2.0 * std::log(open01(r[l])));
      const double angle = 2.0 * 3.141592653589793 * open01(r[l + 1]);
      v[l] = d.a + mul_rounded(mul_rounded(d.b, radius), std::cos(angle));
      v[l + 1] = d.a + mul_rounded(mul_rounded(d.b, radius), std::sin(angle));
    }
  } else {
    for (int l = 0; l < 4; ++l) v[l] = open01(r[l]) <= d.a ? d.scale : 0.0;
  }
}

}  // namespace lockstep
