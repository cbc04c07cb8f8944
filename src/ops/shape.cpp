// cat and stack: allocate the output once, copy each input into its slice with the copy kernel; the backward
// hands each input its slice of the gradient (a view).
#include "src/ops/shape.h"

#include "src/autograd/node.h"
#include "src/ops/kernels.h"

namespace lockstep {
namespace {

// Checks what cat and stack share: a non-empty list of tensors of one dtype and device.
Device check_list(const char* op, const std::vector<Tensor>& tensors) {
  LOCKSTEP_CHECK(!tensors.empty(), ValueError, op, ": expected at least one tensor, but got an empty list");
  const Tensor& first = tensors.front();
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    common_device(op, {first, t});
    LOCKSTEP_CHECK(t.dtype() == first.dtype(), TypeError, op,
                   ": expected tensors of one dtype, but tensor 0 is ", dtype_name(first.dtype()), " ",
                   shape_str(first.shape()), " and tensor ", i, " is ", dtype_name(t.dtype()), " ",
                   shape_str(t.shape()));
  }
  return first.device();
}

// Copies `src` into the view of `out` with src's shape, `strides` and element offset `offset`, outside
// autograd.
void copy_into(const Tensor& src, const Tensor& out, const Shape& strides, std::int64_t offset) {
  kernels::copy.get(out.device())(src, make_view(out, src.shape(), strides, offset));
}

}  // namespace

Tensor cat(const std::vector<Tensor>& tensors, std::int64_t dim) {
  const Device device = check_list("cat", tensors);
  const Tensor& first = tensors.front();
  LOCKSTEP_CHECK(first.dim() > 0, ValueError,
                 "cat: expected tensors with at least one dimension, but got shape ",
                 shape_str(first.shape()), ". Use stack() for 0-dim tensors");
  const std::int64_t d = wrap_dim("cat", dim, first.dim());
  Shape out_shape = first.shape();
  out_shape[static_cast<std::size_t>(d)] = 0;
  Shape offsets, extents;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    bool same = t.dim() == first.dim();
    for (std::int64_t k = 0; same && k < t.dim(); ++k) same = k == d || t.size(k) == first.size(k);
    LOCKSTEP_CHECK(same, ValueError, "cat: expected shapes that match except along dimension ", d,
                   ", but tensor 0 is ", shape_str(first.shape()), " and tensor ", i, " is ",
                   shape_str(t.shape()));
    offsets.push_back(out_shape[static_cast<std::size_t>(d)]);
    extents.push_back(t.size(d));
    out_shape[static_cast<std::size_t>(d)] += t.size(d);
  }
  Tensor out = empty(out_shape, first.dtype(), device);
  const std::int64_t step = out.strides()[static_cast<std::size_t>(d)];
  for (std::size_t i = 0; i < tensors.size(); ++i)
    copy_into(tensors[i], out, out.strides(), offsets[i] * step);
  record("cat", tensors, {out}, {}, [d, offsets, extents](BackwardContext& ctx) {
    // out [.., sum_i n_i, ..] -> d tensor_i [.., n_i, ..]: slices of the gradient
    std::vector<Tensor> grads(offsets.size());
    for (std::size_t i = 0; i < grads.size(); ++i) {
      if (ctx.needs_input_grad(i)) grads[i] = ctx.grad().slice(d, offsets[i], offsets[i] + extents[i]);
    }
    return grads;
  });
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, std::int64_t dim) {
  const Device device = check_list("stack", tensors);
  const Tensor& first = tensors.front();
  const std::int64_t d = wrap_dim("stack", dim, first.dim() + 1);
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    LOCKSTEP_CHECK(tensors[i].shape() == first.shape(), ValueError,
                   "stack: expected tensors of one shape, but tensor 0 is ", shape_str(first.shape()),
                   " and tensor ", i, " is ", shape_str(tensors[i].shape()));
  }
  Shape out_shape = first.shape();
  out_shape.insert(out_shape.begin() + d, static_cast<std::int64_t>(tensors.size()));
  Tensor out = empty(out_shape, first.dtype(), device);
  Shape strides = out.strides();
  const std::int64_t step = strides[static_cast<std::size_t>(d)];
  strides.erase(strides.begin() + d);
  for (std::size_t i = 0; i < tensors.size(); ++i)
    copy_into(tensors[i], out, strides, static_cast<std::int64_t>(i) * step);
  const std::size_t count = tensors.size();
  record("stack", tensors, {out}, {}, [d, count](BackwardContext& ctx) {
    // out [.., count, ..] -> d tensor_i [..]: the gradient selected at i along d
    std::vector<Tensor> grads(count);
    for (std::size_t i = 0; i < count; ++i) {
      if (ctx.needs_input_grad(i)) grads[i] = ctx.grad().select(d, static_cast<std::int64_t>(i));
    }
    return grads;
  });
  return out;
}

}  // namespace lockstep
