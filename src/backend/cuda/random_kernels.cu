// CUDA random fills: one thread per Philox block around the formulas of src/ops/random_formulas.h, the same
// functions the CPU kernel runs, so a fill at (seed, offset) gives the CPU's values (see that header for
// which are the same bits).
#include <cuda_runtime.h>

#include <algorithm>

#include "src/backend/cuda/check.h"
#include "src/backend/cuda/grid.cuh"
#include "src/backend/cuda/random_launch.h"

namespace lockstep::cuda {
namespace {

template <RandomKind Kind, class T>
__global__ void random_kernel(T* out, std::int64_t n, std::uint64_t seed, std::uint64_t offset,
                              RandomDraw d) {
  const std::int64_t blocks = (n + 3) / 4;
  for (std::int64_t blk = first_index(); blk < blocks; blk += grid_stride()) {
    double v[4];
    random_block<Kind>(seed, offset + static_cast<std::uint64_t>(blk), d, v);
    for (int l = 0; l < 4 && blk * 4 + l < n; ++l) out[blk * 4 + l] = static_cast<T>(v[l]);
  }
}

template <RandomKind Kind, class T>
void launch(T* out, std::int64_t n, std::uint64_t seed, std::uint64_t offset, const RandomDraw& d) {
  random_kernel<Kind, T><<<blocks_for((n + 3) / 4), kThreads>>>(out, n, seed, offset, d);
}

}  // namespace

void launch_random(DType dtype, void* out, std::int64_t n, std::uint64_t seed, std::uint64_t offset,
                   const RandomDraw& d) {
  if (n == 0) return;
  dispatch_floating("random (CUDA)", dtype, [&](auto tag) {
    using T = decltype(tag);
    T* o = static_cast<T*>(out);
    switch (d.kind) {
      case RandomKind::kUniform:
        return launch<RandomKind::kUniform>(o, n, seed, offset, d);
      case RandomKind::kNormal:
        return launch<RandomKind::kNormal>(o, n, seed, offset, d);
      case RandomKind::kBernoulliScaled:
        return launch<RandomKind::kBernoulliScaled>(o, n, seed, offset, d);
    }
  });
  check_cuda(cudaGetLastError(), "random_kernel<<<...>>>");
}

}  // namespace lockstep::cuda
