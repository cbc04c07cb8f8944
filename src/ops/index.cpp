// Index ops and their gradients: index_select and index_add are each other's backward, as are gather and
// scatter_add; embedding is index_select on the rows of its weight.
#include "src/ops/index.h"

#include "src/autograd/node.h"
#include "src/ops/kernels.h"
#include "src/tensor/factories.h"

namespace lockstep {
namespace {

// x viewed as [outer, size, inner] around dimension d.
struct Around {
  std::int64_t outer = 1, size = 1, inner = 1;
};

Around around(const Shape& shape, std::int64_t d) {
  Around a;
  for (std::int64_t k = 0; k < static_cast<std::int64_t>(shape.size()); ++k) {
    const std::int64_t s = shape[static_cast<std::size_t>(k)];
    if (k < d)
      a.outer *= s;
    else if (k == d)
      a.size = s;
    else
      a.inner *= s;
  }
  return a;
}

void check_index_dtype(const char* op, const Tensor& index) {
  LOCKSTEP_CHECK(index.dtype() == DType::i64, TypeError, op, ": expected an i64 index, but got ",
                 dtype_name(index.dtype()), " ", shape_str(index.shape()));
}

// Checks x (rank >= 1) and a 1-D i64 index; returns the wrapped dimension.
std::int64_t check_select_args(const char* op, const Tensor& x, std::int64_t dim, const Tensor& index) {
  check_index_dtype(op, index);
  LOCKSTEP_CHECK(index.dim() == 1, ValueError, op, ": expected a 1-D index, but got shape ",
                 shape_str(index.shape()));
  LOCKSTEP_CHECK(x.dim() >= 1, ValueError, op,
                 ": expected a tensor with at least one dimension, but got shape ", shape_str(x.shape()));
  return wrap_dim(op, dim, x.dim());
}

// Checks an index of x's rank with index.size(k) <= x.size(k) for k != dim; returns the wrapped dimension.
std::int64_t check_gather_args(const char* op, const Tensor& x, std::int64_t dim, const Tensor& index) {
  check_index_dtype(op, index);
  LOCKSTEP_CHECK(x.dim() >= 1 && index.dim() == x.dim(), ValueError, op,
                 ": expected an index with the tensor's rank (at least 1), but got index ",
                 shape_str(index.shape()), " for tensor ", shape_str(x.shape()));
  const std::int64_t d = wrap_dim(op, dim, x.dim());
  for (std::int64_t k = 0; k < x.dim(); ++k) {
    LOCKSTEP_CHECK(k == d || index.size(k) <= x.size(k), ValueError, op,
                   ": expected index sizes <= the tensor's "
                   "outside dimension ",
                   d, ", but got index ", shape_str(index.shape()), " for tensor ", shape_str(x.shape()),
                   " (dimension ", k, ")");
  }
  return d;
}

void check_same_dtype(const char* op, const Tensor& x, const Tensor& src) {
  LOCKSTEP_CHECK(src.dtype() == x.dtype(), TypeError, op, ": expected src of the tensor's dtype ",
                 dtype_name(x.dtype()), ", but got ", dtype_name(src.dtype()), " ", shape_str(src.shape()));
}

// A fresh contiguous copy of x outside autograd: the accumulating kernels add into it.
Tensor copy_of(const Tensor& x) {
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  kernels::copy.get(x.device())(x, out);
  return out;
}

}  // namespace

Tensor index_select(const Tensor& x, std::int64_t dim, const Tensor& index) {
  const Device device = common_device("index_select", {x, index});
  const std::int64_t d = check_select_args("index_select", x, dim, index);
  const Around a = around(x.shape(), d);
  Shape out_shape = x.shape();
  out_shape[static_cast<std::size_t>(d)] = index.numel();
  Tensor out = empty(out_shape, x.dtype(), device);
  kernels::index_select.get(device)(x.detach().contiguous(), index.detach().contiguous(), out, a.outer,
                                    a.size, a.inner);
  const Shape in_shape = x.shape();
  record("index_select", {x}, {out}, {index}, [in_shape, d](BackwardContext& ctx) {
    // grad [.., n, ..], index [n] -> dx [.., size, ..] (repeated indices accumulate)
    const Tensor& g = ctx.grad();
    return std::vector<Tensor>{index_add(zeros(in_shape, g.dtype(), g.device()), d, ctx.saved(0), g)};
  });
  return out;
}

Tensor index_add(const Tensor& x, std::int64_t dim, const Tensor& index, const Tensor& src) {
  const Device device = common_device("index_add", {x, index, src});
  const std::int64_t d = check_select_args("index_add", x, dim, index);
  check_same_dtype("index_add", x, src);
  Shape src_shape = x.shape();
  src_shape[static_cast<std::size_t>(d)] = index.numel();
  LOCKSTEP_CHECK(src.shape() == src_shape, ValueError, "index_add: expected src of shape ",
                 shape_str(src_shape), " (the tensor's shape with the index length along dimension ", d,
                 "), but got ", shape_str(src.shape()), " for tensor ", shape_str(x.shape()), " and index ",
                 shape_str(index.shape()));
  const Around a = around(x.shape(), d);
  Tensor out = copy_of(x);
  kernels::index_add.get(device)(src.detach().contiguous(), index.detach().contiguous(), out, a.outer, a.size,
                                 a.inner);
  record("index_add", {x, src}, {out}, {index}, [d](BackwardContext& ctx) {
    // grad [.., size, ..] -> dx [.., size, ..], dsrc [.., n, ..] = grad at index
    const Tensor& g = ctx.grad();
    return std::vector<Tensor>{ctx.needs_input_grad(0) ? g : Tensor(),
                               ctx.needs_input_grad(1) ? index_select(g, d, ctx.saved(0)) : Tensor()};
  });
  return out;
}

Tensor gather(const Tensor& x, std::int64_t dim, const Tensor& index) {
  const Device device = common_device("gather", {x, index});
  const std::int64_t d = check_gather_args("gather", x, dim, index);
  Tensor out = empty(index.shape(), x.dtype(), device);
  kernels::gather.get(device)(x.detach().contiguous(), index.detach().contiguous(), out, d);
  const Shape in_shape = x.shape();
  record("gather", {x}, {out}, {index}, [in_shape, d](BackwardContext& ctx) {
    // grad [index shape] -> dx [x shape]: scattered back, repeated indices accumulate
    const Tensor& g = ctx.grad();
    return std::vector<Tensor>{scatter_add(zeros(in_shape, g.dtype(), g.device()), d, ctx.saved(0), g)};
  });
  return out;
}

Tensor scatter_add(const Tensor& x, std::int64_t dim, const Tensor& index, const Tensor& src) {
  const Device device = common_device("scatter_add", {x, index, src});
  const std::int64_t d = check_gather_args("scatter_add", x, dim, index);
  check_same_dtype("scatter_add", x, src);
  LOCKSTEP_CHECK(src.shape() == index.shape(), ValueError, "scatter_add: expected src of the index's shape ",
                 shape_str(index.shape()), ", but got ", shape_str(src.shape()));
  Tensor out = copy_of(x);
  kernels::scatter_add.get(device)(src.detach().contiguous(), index.detach().contiguous(), out, d);
  record("scatter_add", {x, src}, {out}, {index}, [d](BackwardContext& ctx) {
    // grad [x shape] -> dx [x shape], dsrc [index shape] = grad gathered at index
    const Tensor& g = ctx.grad();
    return std::vector<Tensor>{ctx.needs_input_grad(0) ? g : Tensor(),
                               ctx.needs_input_grad(1) ? gather(g, d, ctx.saved(0)) : Tensor()};
  });
  return out;
}

Tensor embedding(const Tensor& weight, const Tensor& indices) {
  LOCKSTEP_CHECK(weight.dim() == 2, ValueError, "embedding: expected a weight of shape [V, D], but got ",
                 shape_str(weight.shape()));
  check_index_dtype("embedding", indices);
  Shape out_shape = indices.shape();
  out_shape.push_back(weight.size(1));
  Tensor rows;
  try {
    rows = index_select(weight, 0, indices.reshape({-1}));
  } catch (const IndexError& e) {
    throw IndexError(str_cat("embedding: ", e.what(), " (weight ", shape_str(weight.shape()), ", indices ",
                         shape_str(indices.shape()), ")"));
  }
  return rows.view(out_shape);
}

}  // namespace lockstep
