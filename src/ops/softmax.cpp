// Softmax ops: x viewed as [outer, size, inner] around the softmax dimension, the softmax kernel forward and
// the fused softmax_backward kernel from the saved output; with create_graph the same gradient composed from
// recorded ops, so that it can be differentiated again.
#include "src/ops/softmax.h"

#include "src/autograd/grad_mode.h"
#include "src/autograd/node.h"
#include "src/ops/elementwise.h"
#include "src/ops/kernels.h"
#include "src/ops/reduce.h"
#include "src/ops/unary.h"

namespace lockstep {
namespace {

// The fused kernel's formula from ops: softmax dx = y * (g - sum(g * y)), log-softmax dx = g - exp(y) *
// sum(g), sums over the softmax dimension (the middle of [outer, size, inner]).
Tensor composed_backward(SoftmaxKind kind, const Tensor& grad, const Tensor& out, std::int64_t outer,
                         std::int64_t size, std::int64_t inner) {
  const Shape shape = grad.shape();
  const Tensor g = grad.reshape({outer, size, inner});
  const Tensor y = out.reshape({outer, size, inner});
  if (kind == SoftmaxKind::kSoftmax) return (y * (g - sum(g * y, {1}, KeepDim::kYes))).reshape(shape);
  return (g - exp(y) * sum(g, {1}, KeepDim::kYes)).reshape(shape);
}

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
    if (GradMode::is_enabled()) {  // create_graph: a differentiable gradient
      return std::vector<Tensor>{composed_backward(kind, ctx.grad(), ctx.saved(0), outer, size, inner)};
    }
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
