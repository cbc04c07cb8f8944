// Inverted dropout on the random and binary kernels; the backward multiplies by the saved mask.
#include "src/ops/dropout.h"

#include <vector>

#include "src/autograd/node.h"
#include "src/ops/elementwise.h"
#include "src/ops/kernels.h"
#include "src/tensor/factories.h"

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
    random_fill(mask, RandomKind::kBernoulliScaled, 1.0 - p, 0.0, gen);
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
