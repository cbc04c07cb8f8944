// Inverted dropout on the random and binary kernels; the backward multiplies by the saved mask.
#include "src/ops/dropout.h"

#include <vector>

#include "src/autograd/node.h"
#include "src/ops/elementwise.h"
#include "src/ops/kernels.h"

namespace lockstep {

Tensor dropout(const Tensor& x, double p, DropoutMode mode, Generator* gen) {
  LOCKSTEP_CHECK(p >= 0.0 && p <= 1.0, ValueError, "dropout: expected a probability p in [0, 1], but got ", p,
                 " for input ", shape_str(x.shape()));
  LOCKSTEP_CHECK(is_floating(x.dtype()), TypeError, "dropout: expected a floating input, but got ",
                 dtype_name(x.dtype()), " ", shape_str(x.shape()));
  if (mode == DropoutMode::kEval || p == 0.0) return x;
  const Device device = common_device("dropout", {x});
  Tensor mask = empty(x.shape(), x.dtype(), device);
  if (p == 1.0) {
    kernels::fill.get(device)(mask, 0.0);
  } else {
    Generator& g = gen != nullptr ? *gen : default_generator();
    const std::uint64_t offset = g.take((static_cast<std::uint64_t>(x.numel()) + 3) / 4);
    kernels::random.get(device)(RandomKind::kBernoulliScaled, mask, g.seed(), offset, 1.0 - p, 0.0);
  }
  Tensor y = empty(x.shape(), x.dtype(), device);
  kernels::binary.get(device)(BinaryOp::kMul, x, mask, y, 1.0);
  record("dropout", {x}, {y}, {mask}, [](BackwardContext& ctx) {
    // dy [*], mask [*] -> dx [*]
    return std::vector<Tensor>{ctx.grad() * ctx.saved(0)};
  });
  return y;
}

}  // namespace lockstep
