// Element-wise binary ops with broadcasting and their gradients; comparisons; where; the operators.
#include "src/ops/elementwise.h"

#include "src/autograd/node.h"
#include "src/ops/kernels.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"

namespace lockstep {
namespace {

bool is_comparison(BinaryOp op) { return op >= BinaryOp::kEq; }

// Resolves the dtype of `a op b`: a wrapped number takes the other operand's dtype; two tensors must agree.
DType result_dtype(const char* op, const Tensor& a, const Tensor& b) {
  const bool wa = a.impl()->wrapped_number, wb = b.impl()->wrapped_number;
  if (wa && !wb) return b.dtype();
  if (wb && !wa) return a.dtype();
  LOCKSTEP_CHECK(a.dtype() == b.dtype(), TypeError, op, ": expected tensors of one dtype, but got ",
                 dtype_name(a.dtype()), " ", shape_str(a.shape()), " and ", dtype_name(b.dtype()), " ",
                 shape_str(b.shape()), ". Convert one with .to(dtype)");
  return a.dtype();
}

Tensor materialize(const Tensor& t, DType dtype, Device device) {
  if (t.impl()->wrapped_number) return scalar_tensor(t.item(), dtype, device);
  return t;
}

// Runs the binary kernel on broadcast views; no autograd.
Tensor binary_raw(const char* name, BinaryOp op, const Tensor& a, const Tensor& b, double alpha) {
  const Device device = common_device(name, {a, b});
  const DType dtype = result_dtype(name, a, b);
  const Tensor x = materialize(a, dtype, device), y = materialize(b, dtype, device);
  const Shape shape = broadcast_shapes(name, x.shape(), y.shape());
  Tensor out = empty(shape, is_comparison(op) ? DType::u8 : dtype, device);
  kernels::binary.get(device)(op, broadcast_view(x, shape), broadcast_view(y, shape), out, alpha);
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b, double alpha) {
  Tensor out = binary_raw("add", BinaryOp::kAdd, a, b, alpha);
  const Shape sa = a.shape(), sb = b.shape();
  record("add", {a, b}, {out}, {}, [sa, sb, alpha](BackwardContext& ctx) {
    const Tensor& g = ctx.grad();
    return std::vector<Tensor>{ctx.needs_input_grad(0) ? sum_to(g, sa) : Tensor(),
                               ctx.needs_input_grad(1) ? sum_to(alpha == 1.0 ? g : g * alpha, sb) : Tensor()};
  });
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b, double alpha) { return add(a, b, -alpha); }

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw("mul", BinaryOp::kMul, a, b, 1.0);
  const Shape sa = a.shape(), sb = b.shape();
  record("mul", {a, b}, {out}, {a, b}, [sa, sb](BackwardContext& ctx) {
    const Tensor& g = ctx.grad();
    return std::vector<Tensor>{ctx.needs_input_grad(0) ? sum_to(g * ctx.saved(1), sa) : Tensor(),
                               ctx.needs_input_grad(1) ? sum_to(g * ctx.saved(0), sb) : Tensor()};
  });
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw("div", BinaryOp::kDiv, a, b, 1.0);
  const Shape sa = a.shape(), sb = b.shape();
  record("div", {a, b}, {out}, {a, b}, [sa, sb](BackwardContext& ctx) {
    const Tensor& g = ctx.grad();
    const Tensor bb = ctx.saved(1);
    Tensor da, db;
    if (ctx.needs_input_grad(0)) da = sum_to(g / bb, sa);
    if (ctx.needs_input_grad(1)) db = sum_to(-(g * ctx.saved(0)) / (bb * bb), sb);
    return std::vector<Tensor>{da, db};
  });
  return out;
}

Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw("pow", BinaryOp::kPow, a, b, 1.0);
  const Shape sa = a.shape(), sb = b.shape();
  record("pow", {a, b}, {out}, {a, b, out}, [sa, sb](BackwardContext& ctx) {
    const Tensor& g = ctx.grad();
    const Tensor x = ctx.saved(0), e = ctx.saved(1), y = ctx.saved(2);
    Tensor da, db;
    if (ctx.needs_input_grad(0)) da = sum_to(g * e * pow(x, e - 1.0), sa);
    if (ctx.needs_input_grad(1)) db = sum_to(g * y * log(x), sb);
    return std::vector<Tensor>{da, db};
  });
  return out;
}

Tensor maximum(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw("maximum", BinaryOp::kMaximum, a, b, 1.0);
  const Shape sa = a.shape(), sb = b.shape();
  record("maximum", {a, b}, {out}, {a, b}, [sa, sb](BackwardContext& ctx) {
    const Tensor& g = ctx.grad();
    const Tensor mask = ge(ctx.saved(0), ctx.saved(1)).to(g.dtype());  // ties go to a
    return std::vector<Tensor>{ctx.needs_input_grad(0) ? sum_to(g * mask, sa) : Tensor(),
                               ctx.needs_input_grad(1) ? sum_to(g * (1.0 - mask), sb) : Tensor()};
  });
  return out;
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  Tensor out = binary_raw("minimum", BinaryOp::kMinimum, a, b, 1.0);
  const Shape sa = a.shape(), sb = b.shape();
  record("minimum", {a, b}, {out}, {a, b}, [sa, sb](BackwardContext& ctx) {
    const Tensor& g = ctx.grad();
    const Tensor mask = le(ctx.saved(0), ctx.saved(1)).to(g.dtype());  // ties go to a
    return std::vector<Tensor>{ctx.needs_input_grad(0) ? sum_to(g * mask, sa) : Tensor(),
                               ctx.needs_input_grad(1) ? sum_to(g * (1.0 - mask), sb) : Tensor()};
  });
  return out;
}

Tensor eq(const Tensor& a, const Tensor& b) { return binary_raw("eq", BinaryOp::kEq, a, b, 1.0); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary_raw("ne", BinaryOp::kNe, a, b, 1.0); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_raw("lt", BinaryOp::kLt, a, b, 1.0); }
Tensor le(const Tensor& a, const Tensor& b) { return binary_raw("le", BinaryOp::kLe, a, b, 1.0); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_raw("gt", BinaryOp::kGt, a, b, 1.0); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary_raw("ge", BinaryOp::kGe, a, b, 1.0); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  const Device device = common_device("where", {cond, a, b});
  LOCKSTEP_CHECK(cond.dtype() == DType::u8, TypeError, "where: expected a u8 condition, but got ",
                 dtype_name(cond.dtype()), " ", shape_str(cond.shape()));
  const DType dtype = result_dtype("where", a, b);
  const Tensor x = materialize(a, dtype, device), y = materialize(b, dtype, device);
  const Shape shape = broadcast_shapes("where", broadcast_shapes("where", cond.shape(), x.shape()), y.shape());
  Tensor out = empty(shape, dtype, device);
  kernels::where.get(device)(broadcast_view(cond, shape), broadcast_view(x, shape), broadcast_view(y, shape), out);
  const Shape sa = a.shape(), sb = b.shape();
  record("where", {a, b}, {out}, {cond}, [sa, sb](BackwardContext& ctx) {
    const Tensor& g = ctx.grad();
    const Tensor c = ctx.saved(0);
    const Tensor zero = zeros({}, g.dtype(), g.device());
    return std::vector<Tensor>{ctx.needs_input_grad(0) ? sum_to(where(c, g, zero), sa) : Tensor(),
                               ctx.needs_input_grad(1) ? sum_to(where(c, zero, g), sb) : Tensor()};
  });
  return out;
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, double b) { return add(a, wrapped_scalar(b)); }
Tensor operator-(const Tensor& a, double b) { return sub(a, wrapped_scalar(b)); }
Tensor operator*(const Tensor& a, double b) { return mul(a, wrapped_scalar(b)); }
Tensor operator/(const Tensor& a, double b) { return div(a, wrapped_scalar(b)); }
Tensor operator+(double a, const Tensor& b) { return add(wrapped_scalar(a), b); }
Tensor operator-(double a, const Tensor& b) { return sub(wrapped_scalar(a), b); }
Tensor operator*(double a, const Tensor& b) { return mul(wrapped_scalar(a), b); }
Tensor operator/(double a, const Tensor& b) { return div(wrapped_scalar(a), b); }

Tensor pow(const Tensor& a, double exponent) { return pow(a, wrapped_scalar(exponent)); }

}  // namespace lockstep
