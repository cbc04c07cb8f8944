// Unary ops: the shared recorder (fused backward kernel, or under create_graph the same derivative formula
// composed from recorded ops) and the math functions of elementwise.h.
#include "src/ops/unary.h"

#include "src/autograd/grad_mode.h"
#include "src/autograd/node.h"
#include "src/ops/elementwise.h"

namespace lockstep {
namespace {

// The math policy of unary_backward_formula on tensors: every step a recorded op, so that with create_graph
// the gradient is itself differentiable (in g, and in x through the saved x or the saved y, which then comes
// back with its history).
struct TensorMath {
  using Value = Tensor;
  using Scalar = double;
  static Tensor select_gt(const Tensor& x, double t, const Tensor& p, const Tensor& q) {
    return where(gt(x, wrapped_scalar(t)), p, q);
  }
  static Tensor select_inside(const Tensor& x, double lo, double hi, const Tensor& p, const Tensor& q) {
    return where(gt(x, wrapped_scalar(lo)), where(lt(x, wrapped_scalar(hi)), p, q), q);
  }
  static Tensor zero(const Tensor&) { return wrapped_scalar(0.0); }
  static Tensor sign(const Tensor& x) { return unary_op("sign", UnaryOp::kSign, x, SaveForBackward::kNone); }
  static Tensor pow(const Tensor& x, double e) { return lockstep::pow(x, e); }
  static Tensor sigmoid(const Tensor& x) {
    return unary_op("sigmoid", UnaryOp::kSigmoid, x, SaveForBackward::kOutput);
  }
};

Tensor composed_backward(UnaryOp op, const Tensor& g, const Tensor& x, const Tensor& y, double a, double b) {
  return dispatch_unary(
      op, [&](auto tag) { return unary_backward_formula<decltype(tag)::value, TensorMath>(g, x, y, a, b); });
}

// ReLU, leaky ReLU and hardtanh have a derivative that is piecewise constant in x: dx = f'(x) g is linear in
// g (the same element-wise map again in its own derivative) and has zero derivative in x almost everywhere.
// So under create_graph it is one recorded op, the fused backward kernel, differentiable in g to any order by
// itself and not in x, where the composed formula costs a comparison, a product and a select, and their
// backwards. The values are the same; x's gradient through the derivative is zero either way.
bool piecewise_linear(UnaryOp op) {
  return op == UnaryOp::kRelu || op == UnaryOp::kLeakyRelu || op == UnaryOp::kHardtanh;
}

const char* piecewise_linear_backward_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::kRelu:
      return "relu_backward";
    case UnaryOp::kLeakyRelu:
      return "leaky_relu_backward";
    default:
      return "hardtanh_backward";
  }
}

}  // namespace

Tensor piecewise_linear_backward(UnaryOp op, const Tensor& g, const Tensor& x, double a, double b) {
  const Tensor gc = g.contiguous();
  Tensor dx = empty(gc.shape(), gc.dtype(), gc.device());
  kernels::unary_backward.get(gc.device())(op, gc, x, Tensor(), dx, a, b);
  record(piecewise_linear_backward_name(op), {g}, {dx}, {x}, [op, a, b](BackwardContext& ctx) {
    return std::vector<Tensor>{piecewise_linear_backward(op, ctx.grad(), ctx.saved(0), a, b)};
  });
  return dx;
}

Tensor unary_op(const char* name, UnaryOp op, const Tensor& x, SaveForBackward save, double a, double b) {
  const Device device = common_device(name, {x});
  LOCKSTEP_CHECK(is_floating(x.dtype()), TypeError, name, ": expected a floating tensor, but got ",
                 dtype_name(x.dtype()), " ", shape_str(x.shape()));
  Tensor out = empty(x.shape(), x.dtype(), device);
  kernels::unary.get(device)(op, x, out, a, b);
  const bool keep_x = save == SaveForBackward::kInput || save == SaveForBackward::kBoth;
  const bool keep_y = save == SaveForBackward::kOutput || save == SaveForBackward::kBoth;
  const bool rx = unary_backward_reads_x(op), ry = unary_backward_reads_y(op);
  LOCKSTEP_CHECK((keep_x || !rx) && (keep_y || !ry), ValueError, name, ": expected to save ",
                 rx && ry ? "the input and the output" : (rx ? "the input" : "the output"),
                 " (the derivative reads them), but got SaveForBackward ", static_cast<int>(save),
                 ". Pass what unary_backward_reads_x/_y name");
  record(name, {x}, {out}, {keep_x ? x : Tensor(), keep_y ? out : Tensor()},
         [op, a, b](BackwardContext& ctx) {
           // x [*], g [*] -> dx [*]
           if (GradMode::is_enabled()) {  // create_graph: a differentiable gradient
             if (piecewise_linear(op)) {
               return std::vector<Tensor>{
                   piecewise_linear_backward(op, ctx.grad(), ctx.saved(0).contiguous(), a, b)};
             }
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
