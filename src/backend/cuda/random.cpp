// CUDA random fills: validation, the per-fill constants and the call to the launcher of random_kernels.cu.
#include "src/backend/cuda/device.h"
#include "src/backend/cuda/random_launch.h"
#include "src/backend/cuda/register.h"
#include "src/ops/kernels.h"

namespace lockstep::cuda {
namespace {

void random_kernel(RandomKind kind, const Tensor& out, std::uint64_t seed, std::uint64_t offset, double a,
                   double b) {
  LOCKSTEP_CHECK(out.is_contiguous(), ValueError,
                 "random (CUDA): expected a contiguous output, but got strides ", shape_str(out.strides()));
  dispatch_floating("random (CUDA)", out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const RandomDraw d = random_draw<T>(kind, a, b);
    DeviceGuard guard(out.device());
    launch_random(out.dtype(), out.data(), out.numel(), seed, offset, d);
  });
}

}  // namespace

void register_random_kernels() { kernels::random.set(DeviceType::CUDA, random_kernel); }

}  // namespace lockstep::cuda
