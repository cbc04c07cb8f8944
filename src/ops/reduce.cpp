// Reductions along dimensions and their gradients.
#include "src/ops/reduce.h"

#include <algorithm>
#include <numeric>

#include "src/autograd/node.h"
#include "src/ops/elementwise.h"
#include "src/ops/kernels.h"
#include "src/tensor/factories.h"

namespace lockstep {
namespace {

struct ReducePlan {
  Tensor input;  // contiguous, viewed as [outer, size, inner]
  std::int64_t outer = 1, size = 1, inner = 1;
  Shape kept_shape;    // keepdim shape (reduced dims set to 1)
  Shape output_shape;  // without the reduced dims
};

// Canonicalises `dims` (all when empty), and arranges x so the reduced dims form one contiguous block.
ReducePlan plan_reduction(const char* op, const Tensor& x, const std::vector<std::int64_t>& dims) {
  const std::int64_t nd = x.dim();
  std::vector<bool> reduced(static_cast<std::size_t>(nd), dims.empty());
  for (auto d : dims) {
    const std::int64_t w = wrap_dim(op, d, nd);
    LOCKSTEP_CHECK(!reduced[static_cast<std::size_t>(w)] || dims.empty(), ValueError, op,
                   ": expected each dimension once, but dimension ", w, " appears twice");
    reduced[static_cast<std::size_t>(w)] = true;
  }
  ReducePlan p;
  p.kept_shape = x.shape();
  std::int64_t first = -1, last = -1;
  for (std::int64_t d = 0; d < nd; ++d) {
    if (reduced[static_cast<std::size_t>(d)]) {
      p.kept_shape[static_cast<std::size_t>(d)] = 1;
      if (first < 0) first = d;
      last = d;
    } else {
      p.output_shape.push_back(x.size(d));
    }
  }
  if (first < 0) {  // nothing to reduce (0-dim input)
    p.input = x.contiguous();
    p.outer = x.numel();
    return p;
  }
  bool block = true;
  for (std::int64_t d = first; d <= last; ++d) block = block && reduced[static_cast<std::size_t>(d)];
  if (block) {
    p.input = x.contiguous();
    for (std::int64_t d = 0; d < first; ++d) p.outer *= x.size(d);
    for (std::int64_t d = first; d <= last; ++d) p.size *= x.size(d);
    for (std::int64_t d = last + 1; d < nd; ++d) p.inner *= x.size(d);
  } else {
    Shape order;
    for (std::int64_t d = 0; d < nd; ++d) {
      if (!reduced[static_cast<std::size_t>(d)]) order.push_back(d);
    }
    for (std::int64_t d = 0; d < nd; ++d) {
      if (reduced[static_cast<std::size_t>(d)]) order.push_back(d);
    }
    Shape st(order.size()), sh(order.size());
    for (std::size_t i = 0; i < order.size(); ++i) {
      sh[i] = x.shape()[static_cast<std::size_t>(order[i])];
      st[i] = x.strides()[static_cast<std::size_t>(order[i])];
    }
    p.input = make_view(x, sh, st, x.offset()).contiguous();
    p.outer = numel_of(p.output_shape);
    p.size = x.numel() / std::max<std::int64_t>(p.outer, 1);
    if (p.outer == 0) p.size = 0;
  }
  return p;
}

Tensor reduce_raw(ReduceOp op, const ReducePlan& p, DType out_dtype) {
  Tensor out = empty(p.output_shape, out_dtype, p.input.device());
  kernels::reduce.get(p.input.device())(op, p.input, out, p.outer, p.size, p.inner);
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<std::int64_t>& dims, KeepDim keepdim) {
  const ReducePlan p = plan_reduction("sum", x, dims);
  Tensor out = reduce_raw(ReduceOp::kSum, p, x.dtype());
  if (keepdim == KeepDim::kYes) out = out.detach().view(p.kept_shape);
  const Shape in_shape = x.shape(), kept = p.kept_shape;
  record("sum", {x}, {out}, {}, [in_shape, kept](BackwardContext& ctx) {
    return std::vector<Tensor>{ctx.grad().reshape(kept).expand(in_shape)};
  });
  return out;
}

Tensor mean(const Tensor& x, const std::vector<std::int64_t>& dims, KeepDim keepdim) {
  const ReducePlan p = plan_reduction("mean", x, dims);
  LOCKSTEP_CHECK(is_floating(x.dtype()), TypeError, "mean: expected a floating tensor, but got ",
                 dtype_name(x.dtype()), " ", shape_str(x.shape()));
  Tensor out = reduce_raw(ReduceOp::kMean, p, x.dtype());
  if (keepdim == KeepDim::kYes) out = out.detach().view(p.kept_shape);
  const Shape in_shape = x.shape(), kept = p.kept_shape;
  const double count = static_cast<double>(std::max<std::int64_t>(p.size, 1));
  record("mean", {x}, {out}, {}, [in_shape, kept, count](BackwardContext& ctx) {
    return std::vector<Tensor>{(ctx.grad() / count).reshape(kept).expand(in_shape)};
  });
  return out;
}

namespace {

// max/min along one dimension: values, and when recording, the argmax/argmin positions for the gradient.
Tensor extreme_along(const char* name, ReduceOp value_op, ReduceOp index_op, const Tensor& x,
                     std::int64_t dim, KeepDim keepdim) {
  const std::int64_t d = wrap_dim(name, dim, x.dim());
  LOCKSTEP_CHECK(x.size(d) > 0, ValueError, name, ": expected a non-empty dimension ", d, ", but got shape ",
                 shape_str(x.shape()));
  const ReducePlan p = plan_reduction(name, x, {d});
  Tensor out = reduce_raw(value_op, p, x.dtype());
  if (keepdim == KeepDim::kYes) out = out.view(p.kept_shape);
  if (!needs_grad({x})) return out;
  const Tensor positions = reduce_raw(index_op, p, DType::i64).view(p.kept_shape);
  const Shape kept = p.kept_shape;
  const std::int64_t size = x.size(d);
  Shape along(kept.size(), 1);
  along[static_cast<std::size_t>(d)] = size;
  record(name, {x}, {out}, {positions}, [kept, along, size](BackwardContext& ctx) {
    // g [.., 1 or none, ..], positions i64 [.., 1, ..] -> dx [.., S, ..] (g at the arg position, 0 elsewhere)
    const Tensor g = ctx.grad().reshape(kept);
    const Tensor picked = eq(arange(size, DType::i64, g.device()).view(along), ctx.saved(0));
    return std::vector<Tensor>{where(picked, g, zeros({}, g.dtype(), g.device()))};
  });
  return out;
}

// max/min over every element; ties share the gradient evenly.
Tensor extreme_all(const char* name, ReduceOp op, const Tensor& x) {
  LOCKSTEP_CHECK(x.numel() > 0, ValueError, name, ": expected a non-empty tensor, but got shape ",
                 shape_str(x.shape()));
  const ReducePlan p = plan_reduction(name, x, {});
  Tensor out = reduce_raw(op, p, x.dtype());
  record(name, {x}, {out}, {x, out}, [](BackwardContext& ctx) {
    // x [*], y [] , g [] -> dx [*] = g / count where x == y
    const Tensor& g = ctx.grad();
    const Tensor hit = eq(ctx.saved(0), ctx.saved(1)).to(g.dtype());
    return std::vector<Tensor>{hit * (g / sum(hit))};
  });
  return out;
}

Tensor arg_along(const char* name, ReduceOp op, const Tensor& x, std::int64_t dim, KeepDim keepdim) {
  const std::int64_t d = wrap_dim(name, dim, x.dim());
  LOCKSTEP_CHECK(x.size(d) > 0, ValueError, name, ": expected a non-empty dimension ", d, ", but got shape ",
                 shape_str(x.shape()));
  const ReducePlan p = plan_reduction(name, x, {d});
  const Tensor out = reduce_raw(op, p, DType::i64);
  return keepdim == KeepDim::kYes ? out.view(p.kept_shape) : out;
}

}  // namespace

Tensor max(const Tensor& x, std::int64_t dim, KeepDim keepdim) {
  return extreme_along("max", ReduceOp::kMax, ReduceOp::kArgmax, x, dim, keepdim);
}
Tensor min(const Tensor& x, std::int64_t dim, KeepDim keepdim) {
  return extreme_along("min", ReduceOp::kMin, ReduceOp::kArgmin, x, dim, keepdim);
}
Tensor max(const Tensor& x) { return extreme_all("max", ReduceOp::kMax, x); }
Tensor min(const Tensor& x) { return extreme_all("min", ReduceOp::kMin, x); }
Tensor argmax(const Tensor& x, std::int64_t dim, KeepDim keepdim) {
  return arg_along("argmax", ReduceOp::kArgmax, x, dim, keepdim);
}
Tensor argmin(const Tensor& x, std::int64_t dim, KeepDim keepdim) {
  return arg_along("argmin", ReduceOp::kArgmin, x, dim, keepdim);
}

Tensor var(const Tensor& x, const std::vector<std::int64_t>& dims, std::int64_t correction, KeepDim keepdim) {
  LOCKSTEP_CHECK(is_floating(x.dtype()), TypeError, "var: expected a floating tensor, but got ",
                 dtype_name(x.dtype()), " ", shape_str(x.shape()));
  std::int64_t count = dims.empty() ? x.numel() : 1;
  for (auto d : dims) count *= x.size(wrap_dim("var", d, x.dim()));
  const Tensor centered = x - mean(x, dims, KeepDim::kYes);
  return sum(square(centered), dims, keepdim) /
         static_cast<double>(std::max<std::int64_t>(count - correction, 0));
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const std::int64_t lead = x.dim() - static_cast<std::int64_t>(shape.size());
  LOCKSTEP_CHECK(lead >= 0, ValueError, "sum_to: expected a target shape with at most ", x.dim(),
                 " dimensions, but got ", shape_str(shape));
  std::vector<std::int64_t> dims;
  for (std::int64_t d = 0; d < x.dim(); ++d) {
    if (d < lead || (shape[static_cast<std::size_t>(d - lead)] == 1 && x.size(d) != 1)) dims.push_back(d);
  }
  if (dims.empty()) return x.reshape(shape);
  return sum(x, dims, KeepDim::kYes).reshape(shape);
}

}  // namespace lockstep
