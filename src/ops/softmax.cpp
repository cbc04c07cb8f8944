// Softmax ops: x viewed as [outer, size, inner] around the softmax dimension, the softmax kernel forward and
// the fused softmax_backward kernel from the saved output.
#include "src/ops/softmax.h"

#include "src/autograd/node.h"
#include "src/ops/kernels.h"

namespace lockstep {
namespace {

Tensor softmax_op(const char* name, SoftmaxKind kind, const Tensor& x, std::int64_t dim) {
  const Device device = common_device(name, {x});
  LOCKSTEP_CHECK(is_floating(x.dtype()), TypeError, name, ": expected a floating tensor, but got ",
                 dtype_name(x.dtype()), " ", shape_str(x.shape()));
  const std::int64_t d = wrap_dim(name, dim, x.dim());
  std::int64_t outer = 1, size = 1, inner = 1;
  for (std::int64_t k = 0; k < x.dim(); ++k) {
    if (k < d)
      outer *= x.size(k);
    else if (k == d)
      size = x.size(k);
    else
      inner *= x.size(k);
  }
  Tensor y = empty(x.shape(), x.dtype(), device);
  kernels::softmax.get(device)(kind, x.detach().contiguous(), y, outer, size, inner);
  record(name, {x}, {y}, {y}, [kind, outer, size, inner](BackwardContext& ctx) {
    // grad, y [outer, size, inner] -> dx [outer, size, inner]
    const Tensor g = ctx.grad().contiguous();
    Tensor dx = empty(g.shape(), g.dtype(), g.device());
    kernels::softmax_backward.get(g.device())(kind, g, ctx.saved(0), dx, outer, size, inner);
    return std::vector<Tensor>{dx};
  });
  return y;
}

}  // namespace

Tensor softmax(const Tensor& x, std::int64_t dim) {
  return softmax_op("softmax", SoftmaxKind::kSoftmax, x, dim);
}
Tensor log_softmax(const Tensor& x, std::int64_t dim) {
  return softmax_op("log_softmax", SoftmaxKind::kLogSoftmax, x, dim);
}

}  // namespace lockstep
