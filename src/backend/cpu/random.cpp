// CPU random fills from the counter-based Philox generator: element i depends only on (seed, offset, i),
// so results do not depend on the thread count.
#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>

#include "src/backend/cpu/register.h"
#include "src/core/rng.h"
#include "src/core/threading.h"
#include "src/ops/kernels.h"

namespace lockstep::cpu {
namespace {

// Uniform in (0, 1] from 32 random bits.
inline double open01(std::uint32_t bits) { return (static_cast<double>(bits) + 1.0) * (1.0 / 4294967296.0); }

// Fills out[blk*4 .. blk*4+3] from one Philox block with `draw(bits, v)`; the switch on the kind stays outside
// the loop so each kind's loop is compiled on its own (branch-free for the dropout mask).
template <class T, class Draw>
void fill_blocks(T* out, std::int64_t n, std::uint64_t seed, std::uint64_t offset, Draw draw) {
  const std::int64_t blocks = (n + 3) / 4;
#pragma omp parallel for if (n >= kParallelGrain)
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    const auto r = philox4x32(seed, 0, offset + static_cast<std::uint64_t>(blk));
    double v[4];
    draw(r, v);
    if (blk * 4 + 4 <= n) {
      for (int l = 0; l < 4; ++l) out[blk * 4 + l] = static_cast<T>(v[l]);
    } else {
      for (std::int64_t l = 0; blk * 4 + l < n; ++l) out[blk * 4 + l] = static_cast<T>(v[l]);
    }
  }
}

template <class T>
void random_typed(RandomKind kind, T* out, std::int64_t n, std::uint64_t seed, std::uint64_t offset, double a, double b) {
  using Bits = std::array<std::uint32_t, 4>;
  switch (kind) {
    case RandomKind::kUniform: {
      // The largest T below b: rounding to T must never reach the open upper bound.
      const double below_b = static_cast<double>(std::nextafter(static_cast<T>(b), static_cast<T>(a)));
      fill_blocks(out, n, seed, offset, [a, b, below_b](const Bits& r, double* v) {
        for (int l = 0; l < 4; ++l) {
          v[l] = std::min(a + (b - a) * (open01(r[static_cast<std::size_t>(l)]) - 0x1p-32), below_b);
        }
      });
      return;
    }
    case RandomKind::kNormal:
      fill_blocks(out, n, seed, offset, [a, b](const Bits& r, double* v) {
        for (int l = 0; l < 4; l += 2) {
          const double radius = std::sqrt(-2.0 * std::log(open01(r[static_cast<std::size_t>(l)])));
          const double angle = 2.0 * std::numbers::pi * open01(r[static_cast<std::size_t>(l + 1)]);
          v[l] = a + b * radius * std::cos(angle);
          v[l + 1] = a + b * radius * std::sin(angle);
        }
      });
      return;
    case RandomKind::kBernoulliScaled: {
      const double scale = 1.0 / a;
      fill_blocks(out, n, seed, offset, [a, scale](const Bits& r, double* v) {
        for (int l = 0; l < 4; ++l) v[l] = static_cast<double>(open01(r[static_cast<std::size_t>(l)]) <= a) * scale;
      });
      return;
    }
  }
}

void random_kernel(RandomKind kind, const Tensor& out, std::uint64_t seed, std::uint64_t offset, double a, double b) {
  dispatch_floating("random", out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    random_typed<T>(kind, out.data<T>(), out.numel(), seed, offset, a, b);
  });
}

}  // namespace

void register_random_kernels() { kernels::random.set(DeviceType::CPU, random_kernel); }

}  // namespace lockstep::cpu
