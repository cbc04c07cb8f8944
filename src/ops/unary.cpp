// Unary ops: the shared recorder and the math functions of elementwise.h.
#include "src/ops/unary.h"

#include "src/autograd/grad_mode.h"
#include "src/autograd/node.h"
#include "src/ops/elementwise.h"

namespace lockstep {
namespace {

// dx = g * f'(x) composed from ops, for backward with create_graph, so that the gradient is itself
// differentiable (in g, and in x through the saved x or the saved y, which then comes back with its history).
Tensor composed_backward(UnaryOp op, const Tensor& g, const Tensor& x, const Tensor& y, double a, double b) {
  const Tensor zero = wrapped_scalar(0.0);
  switch (op) {
    case UnaryOp::kNeg:
      return -g;
    case UnaryOp::kExp:
      return g * y;
    case UnaryOp::kLog:
      return g / x;
    case UnaryOp::kSqrt:
      return g / (y * 2.0);
    case UnaryOp::kAbs:
      return g * unary_op("sign", UnaryOp::kSign, x, SaveForBackward::kNone);
    case UnaryOp::kSigmoid:
      return g * (y * (1.0 - y));
    case UnaryOp::kTanh:
      return g * (1.0 - y * y);
    case UnaryOp::kRelu:
      return where(gt(x, zero), g, zero);
    case UnaryOp::kLeakyRelu:
      return where(gt(x, zero), g, g * a);
    case UnaryOp::kElu:
      return where(gt(x, zero), g, g * (y + a));
    case UnaryOp::kSoftplus:
      return where(gt(x * a, wrapped_scalar(b)), g,
                   g * unary_op("sigmoid", UnaryOp::kSigmoid, x * a, SaveForBackward::kOutput));
    case UnaryOp::kHardtanh:
      return where(gt(x, wrapped_scalar(a)), where(lt(x, wrapped_scalar(b)), g, zero), zero);
    case UnaryOp::kPowScalar:
      return g * (pow(x, a - 1.0) * a);
    case UnaryOp::kLog1p:
      return g / (x + 1.0);
    case UnaryOp::kSign:
      return g * 0.0;
    case UnaryOp::kSquare:
      return g * (x * 2.0);
    case UnaryOp::kReciprocal:
      return -(g * (y * y));
  }
  return g;
}

}  // namespace

Tensor unary_op(const char* name, UnaryOp op, const Tensor& x, SaveForBackward save, double a, double b) {
  const Device device = common_device(name, {x});
  LOCKSTEP_CHECK(is_floating(x.dtype()), TypeError, name, ": expected a floating tensor, but got ",
                 dtype_name(x.dtype()), " ", shape_str(x.shape()));
  Tensor out = empty(x.shape(), x.dtype(), device);
  kernels::unary.get(device)(op, x, out, a, b);
  const bool keep_x = save == SaveForBackward::kInput || save == SaveForBackward::kBoth;
  const bool keep_y = save == SaveForBackward::kOutput || save == SaveForBackward::kBoth;
  record(name, {x}, {out}, {keep_x ? x : Tensor(), keep_y ? out : Tensor()},
         [op, a, b](BackwardContext& ctx) {
           // x [*], g [*] -> dx [*]
           if (GradMode::is_enabled()) {  // create_graph: a differentiable gradient
             return std::vector<Tensor>{composed_backward(op, ctx.grad(), ctx.saved(0), ctx.saved(1), a, b)};
           }
           const Tensor g = ctx.grad().contiguous();
           const Tensor xs = ctx.saved(0), ys = ctx.saved(1);
           Tensor dx = empty(g.shape(), g.dtype(), g.device());
           kernels::unary_backward.get(g.device())(op, g, xs.defined() ? xs.contiguous() : xs,
                                                   ys.defined() ? ys.contiguous() : ys, dx, a, b);
           return std::vector<Tensor>{dx};
         });
  return out;
}

Tensor neg(const Tensor& x) { return unary_op("neg", UnaryOp::kNeg, x, SaveForBackward::kNone); }
Tensor exp(const Tensor& x) { return unary_op("exp", UnaryOp::kExp, x, SaveForBackward::kOutput); }
Tensor log(const Tensor& x) { return unary_op("log", UnaryOp::kLog, x, SaveForBackward::kInput); }
Tensor sqrt(const Tensor& x) { return unary_op("sqrt", UnaryOp::kSqrt, x, SaveForBackward::kOutput); }
Tensor abs(const Tensor& x) { return unary_op("abs", UnaryOp::kAbs, x, SaveForBackward::kInput); }
Tensor square(const Tensor& x) { return unary_op("square", UnaryOp::kSquare, x, SaveForBackward::kInput); }
Tensor clamp(const Tensor& x, double lo, double hi) {
  LOCKSTEP_CHECK(lo <= hi, ValueError, "clamp: expected lo <= hi, but got ", lo, " and ", hi);
  return unary_op("clamp", UnaryOp::kHardtanh, x, SaveForBackward::kInput, lo, hi);
}

}  // namespace lockstep
