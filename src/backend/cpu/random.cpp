// CPU random fills from the counter-based Philox generator (the formulas of src/ops/random_formulas.h, which
// the CUDA kernel shares): element i depends only on (seed, offset, i), so results do not depend on the
// thread count.
#include "src/backend/cpu/register.h"
#include "src/core/threading.h"
#include "src/ops/kernels.h"

namespace lockstep::cpu {
namespace {

// Fills out[blk*4 .. blk*4+3] from Philox block offset + blk; the kind is a template argument so each kind's
// loop is compiled on its own (branch-free for the dropout mask).
template <RandomKind Kind, class T>
void fill_blocks(T* out, std::int64_t n, std::uint64_t seed, std::uint64_t offset, const RandomDraw& d) {
  const std::int64_t blocks = (n + 3) / 4;
#pragma omp parallel for if (n >= kParallelGrain)
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    double v[4];
    random_block<Kind>(seed, offset + static_cast<std::uint64_t>(blk), d, v);
    if (blk * 4 + 4 <= n) {
      for (int l = 0; l < 4; ++l) out[blk * 4 + l] = static_cast<T>(v[l]);
    } else {
      for (std::int64_t l = 0; blk * 4 + l < n; ++l) out[blk * 4 + l] = static_cast<T>(v[l]);
    }
  }
}

void random_kernel(RandomKind kind, const Tensor& out, std::uint64_t seed, std::uint64_t offset, double a, double b) {
  dispatch_floating("random", out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const RandomDraw d = random_draw<T>(kind, a, b);
    T* o = out.data<T>();
    const std::int64_t n = out.numel();
    switch (kind) {
      case RandomKind::kUniform:
        return fill_blocks<RandomKind::kUniform>(o, n, seed, offset, d);
      case RandomKind::kNormal:
        return fill_blocks<RandomKind::kNormal>(o, n, seed, offset, d);
      case RandomKind::kBernoulliScaled:
        return fill_blocks<RandomKind::kBernoulliScaled>(o, n, seed, offset, d);
    }
  });
}

}  // namespace

void register_random_kernels() { kernels::random.set(DeviceType::CPU, random_kernel); }

}  // namespace lockstep::cpu
