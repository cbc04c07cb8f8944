// Unary ops: the shared recorder and the math functions of elementwise.h.
#include "src/ops/unary.h"

#include "src/autograd/node.h"
#include "src/ops/elementwise.h"

namespace lockstep {

Tensor unary_op(const char* name, UnaryOp op, const Tensor& x, SaveForBackward save, double a, double b) {
  const Device device = common_device(name, {x});
  LOCKSTEP_CHECK(is_floating(x.dtype()), TypeError, name, ": expected a floating tensor, but got ", dtype_name(x.dtype()),
                 " ", shape_str(x.shape()));
  Tensor out = empty(x.shape(), x.dtype(), device);
  kernels::unary.get(device)(op, x, out, a, b);
  const bool keep_x = save == SaveForBackward::kInput || save == SaveForBackward::kBoth;
  const bool keep_y = save == SaveForBackward::kOutput || save == SaveForBackward::kBoth;
  record(name, {x}, {out}, {keep_x ? x : Tensor(), keep_y ? out : Tensor()}, [op, a, b](BackwardContext& ctx) {
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
