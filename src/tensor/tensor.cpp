// Tensor handles: metadata, views with their gradients, device and dtype conversion, in-place updates,
// autograd entry points and printing.
#include "src/tensor/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <ostream>
#include <sstream>

#include "src/autograd/engine.h"
#include "src/autograd/grad_mode.h"
#include "src/autograd/node.h"
#include "src/ops/elementwise.h"
#include "src/ops/kernels.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"

namespace lockstep {

Tensor empty(const Shape& shape, DType dtype, Device device) {
  for (auto d : shape) {
    LOCKSTEP_CHECK(d >= 0, ValueError, "empty: expected non-negative sizes, but got shape ", shape_str(shape));
  }
  auto impl = std::make_shared<TensorImpl>();
  const std::size_t bytes = static_cast<std::size_t>(numel_of(shape)) * element_size(dtype);
  impl->storage = std::make_shared<Storage>(bytes, device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor borrow_memory(void* data, const Shape& shape, DType dtype, Device device,
                     std::shared_ptr<const void> owner) {
  for (auto d : shape) {
    LOCKSTEP_CHECK(d >= 0, ValueError, "borrow_memory: expected non-negative sizes, but got shape ",
                   shape_str(shape));
  }
  LOCKSTEP_CHECK(owner != nullptr, ValueError,
                 "borrow_memory: expected the owner of the memory, but got null");
  auto impl = std::make_shared<TensorImpl>();
  const std::size_t bytes = static_cast<std::size_t>(numel_of(shape)) * element_size(dtype);
  impl->storage = std::make_shared<Storage>(data, bytes, device, std::move(owner));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor make_view(const Tensor& base, Shape shape, Shape strides, std::int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

Tensor wrapped_scalar(double value) {
  Tensor t = empty({}, DType::f64, kCPU);
  *t.data<double>() = value;
  t.impl()->wrapped_number = true;
  return t;
}

namespace {

// Like wrap_dim, but a 0-dim tensor has no dimension to index (wrap_dim lets dimension 0 / -1 through for it).
std::int64_t indexable_dim(const char* where, std::int64_t d, const Tensor& t) {
  LOCKSTEP_CHECK(t.dim() > 0, IndexError, where, ": expected a tensor with at least one dimension, but got a 0-dim "
                 "tensor (dimension ", d, " requested)");
  return wrap_dim(where, d, t.dim());
}

}  // namespace

std::int64_t Tensor::size(std::int64_t d) const {
  return shape()[static_cast<std::size_t>(indexable_dim("Tensor::size", d, *this))];
}
std::int64_t Tensor::stride(std::int64_t d) const {
  return strides()[static_cast<std::size_t>(indexable_dim("Tensor::stride", d, *this))];
}

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;  // no element to lay out
  std::int64_t expected = 1;
  const auto& sh = shape();
  const auto& st = strides();
  for (std::size_t i = sh.size(); i-- > 0;) {
    if (sh[i] == 1) continue;
    if (st[i] != expected) return false;
    expected *= sh[i];
  }
  return true;
}

void* Tensor::data() const {
  return static_cast<char*>(storage()->data()) + offset() * static_cast<std::int64_t>(element_size(dtype()));
}

double Tensor::item() const {
  LOCKSTEP_CHECK(numel() == 1, ValueError, "item: expected a tensor with one element, but got shape ",
                 shape_str(shape()));
  return to_vector<double>()[0];
}

template <class T> std::vector<T> Tensor::to_vector() const {
  Tensor host = device().is_cpu() ? *this : to(kCPU);
  Tensor out = empty(host.shape(), dtype_of<T>, kCPU);
  kernels::copy.get(kCPU)(host, out);
  const T* p = out.data<T>();
  return std::vector<T>(p, p + out.numel());
}

template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<std::int64_t> Tensor::to_vector<std::int64_t>() const;
template std::vector<std::uint8_t> Tensor::to_vector<std::uint8_t>() const;

// ---- autograd ----

Tensor& Tensor::requires_grad_(bool on) {
  TensorImpl* impl = checked();
  if (on) {
    LOCKSTEP_CHECK(is_floating(impl->dtype), TypeError, "requires_grad_: expected a floating-point tensor, but got ",
                   dtype_name(impl->dtype), " ", shape_str(impl->shape));
  }
  LOCKSTEP_CHECK(is_leaf(), AutogradError, "requires_grad_: expected a leaf tensor, but this one was computed by ",
                 grad_fn()->name(), ". Use detach() to make a new leaf");
  if (!impl->autograd) impl->autograd = std::make_unique<AutogradMeta>();
  impl->autograd->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  if (!impl_ || !impl_->autograd || !impl_->autograd->grad) return Tensor();
  return *impl_->autograd->grad;
}

void Tensor::set_grad(const Tensor& grad) const {
  TensorImpl* impl = checked();
  if (!impl->autograd) impl->autograd = std::make_unique<AutogradMeta>();
  if (grad.defined()) {
    LOCKSTEP_CHECK(grad.shape() == impl->shape, ValueError, "set_grad: expected a gradient of shape ",
                   shape_str(impl->shape), ", but got ", shape_str(grad.shape()));
    LOCKSTEP_CHECK(grad.dtype() == impl->dtype, TypeError, "set_grad: expected a gradient of dtype ",
                   dtype_name(impl->dtype), ", but got ", dtype_name(grad.dtype()), " ", shape_str(grad.shape()));
    impl->autograd->grad = std::make_shared<Tensor>(grad);
  } else {
    impl->autograd->grad.reset();
  }
}

const std::shared_ptr<Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<Node> kNone;
  return impl_ && impl_->autograd ? impl_->autograd->grad_fn : kNone;
}

void Tensor::set_history(std::shared_ptr<Node> fn, std::uint32_t output_nr) const {
  TensorImpl* impl = checked();
  if (!impl->autograd) impl->autograd = std::make_unique<AutogradMeta>();
  impl->autograd->requires_grad = true;
  impl->autograd->grad_fn = std::move(fn);
  impl->autograd->output_nr = output_nr;
}

Tensor Tensor::detach() const {
  Tensor out = make_view(*this, shape(), strides(), offset());
  out.impl()->wrapped_number = impl_->wrapped_number;
  return out;
}

void Tensor::backward(const Tensor& gradient, RetainGraph retain, CreateGraph create) const {
  run_backward({*this}, {gradient}, retain, create);
}

void Tensor::register_post_accumulate_hook(PostAccumulateHook hook) const {
  LOCKSTEP_CHECK(requires_grad() && is_leaf(), AutogradError, "register_post_accumulate_hook: expected a leaf that "
                 "requires grad, but got a tensor of shape ", shape_str(shape()),
                 requires_grad() ? " computed by an op" : " that does not require grad");
  impl_->autograd->post_accumulate_hooks.push_back(std::move(hook));
}

// ---- views ----

namespace {

Shape infer_shape(const char* where, Shape shape, std::int64_t numel) {
  std::int64_t known = 1, infer = -1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      LOCKSTEP_CHECK(infer < 0, ValueError, where, ": expected at most one -1 in the shape, but got ", shape_str(shape));
      infer = static_cast<std::int64_t>(i);
    } else {
      LOCKSTEP_CHECK(shape[i] >= 0, ValueError, where, ": expected sizes >= 0 or -1, but got ", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    LOCKSTEP_CHECK(known > 0 && numel % known == 0, ValueError, where, ": cannot infer -1 in shape ",
                   shape_str(shape), " for ", numel, " elements");
    shape[static_cast<std::size_t>(infer)] = numel / known;
  }
  LOCKSTEP_CHECK(numel_of(shape) == numel, ValueError, where, ": expected a shape with ", numel,
                 " elements, but got ", shape_str(shape), " (", numel_of(shape), " elements)");
  return shape;
}

}  // namespace

Tensor Tensor::view(const Shape& new_shape) const {
  const Shape shape_out = infer_shape("view", new_shape, numel());
  LOCKSTEP_CHECK(is_contiguous(), ValueError, "view: expected a contiguous tensor, but got shape ", shape_str(shape()),
                 " with strides ", shape_str(strides()), ". Use reshape(), which copies when needed");
  Tensor out = make_view(*this, shape_out, contiguous_strides(shape_out), offset());
  const Shape in_shape = shape();
  record("view", {*this}, {out}, {}, [in_shape](BackwardContext& ctx) {
    return std::vector<Tensor>{ctx.grad().reshape(in_shape)};
  });
  return out;
}

Tensor Tensor::reshape(const Shape& new_shape) const { return is_contiguous() ? view(new_shape) : contiguous().view(new_shape); }

Tensor Tensor::flatten(std::int64_t start_dim, std::int64_t end_dim) const {
  const std::int64_t s = wrap_dim("flatten", start_dim, dim()), e = wrap_dim("flatten", end_dim, dim());
  if (dim() == 0) return reshape({1});
  LOCKSTEP_CHECK(s <= e, ValueError, "flatten: expected start_dim <= end_dim, but got ", start_dim, " and ", end_dim);
  Shape out;
  for (std::int64_t i = 0; i < s; ++i) out.push_back(size(i));
  std::int64_t m = 1;
  for (std::int64_t i = s; i <= e; ++i) m *= size(i);
  out.push_back(m);
  for (std::int64_t i = e + 1; i < dim(); ++i) out.push_back(size(i));
  return reshape(out);
}

Tensor Tensor::permute(const Shape& order) const {
  LOCKSTEP_CHECK(static_cast<std::int64_t>(order.size()) == dim(), ValueError, "permute: expected ", dim(),
                 " dimensions in the order, but got ", shape_str(order));
  Shape sh(order.size()), st(order.size()), inverse(order.size());
  std::vector<bool> used(order.size(), false);
  for (std::size_t i = 0; i < order.size(); ++i) {
    const std::int64_t d = wrap_dim("permute", order[i], dim());
    LOCKSTEP_CHECK(!used[static_cast<std::size_t>(d)], ValueError, "permute: expected each dimension once, but got ",
                   shape_str(order));
    used[static_cast<std::size_t>(d)] = true;
    sh[i] = shape()[static_cast<std::size_t>(d)];
    st[i] = strides()[static_cast<std::size_t>(d)];
    inverse[static_cast<std::size_t>(d)] = static_cast<std::int64_t>(i);
  }
  Tensor out = make_view(*this, sh, st, offset());
  record("permute", {*this}, {out}, {}, [inverse](BackwardContext& ctx) {
    return std::vector<Tensor>{ctx.grad().permute(inverse)};
  });
  return out;
}

Tensor Tensor::transpose(std::int64_t d0, std::int64_t d1) const {
  const std::int64_t a = wrap_dim("transpose", d0, dim()), b = wrap_dim("transpose", d1, dim());
  Shape order(static_cast<std::size_t>(dim()));
  std::iota(order.begin(), order.end(), 0);
  if (dim() > 0) std::swap(order[static_cast<std::size_t>(a)], order[static_cast<std::size_t>(b)]);
  return permute(order);
}

namespace {

// The gradient of slice: zeros of `in_shape` with `g` written at the slice. Recorded, so that a gradient
// computed with create_graph can be differentiated again (its own gradient is the slice of the incoming one).
Tensor slice_backward(const Tensor& g, const Shape& in_shape, std::int64_t d, std::int64_t start, std::int64_t end,
                      std::int64_t step) {
  Tensor out = zeros(in_shape, g.dtype(), g.device());
  {
    NoGradGuard no_grad;
    out.slice(d, start, end, step).copy_(g);
  }
  record("slice_backward", {g}, {out}, {}, [d, start, end, step](BackwardContext& ctx) {
    // g [in_shape] -> d(slice) [.., (end - start) / step, ..]
    return std::vector<Tensor>{ctx.grad().slice(d, start, end, step)};
  });
  return out;
}

// A view with the same elements and offset as `base` but another shape (squeeze, unsqueeze); its gradient is
// reshaped back.
Tensor alias_with_shape(const char* name, const Tensor& base, Shape shape, Shape strides) {
  Tensor out = make_view(base, std::move(shape), std::move(strides), base.offset());
  const Shape in_shape = base.shape();
  record(name, {base}, {out}, {}, [in_shape](BackwardContext& ctx) {
    // g [out shape] -> dx [in_shape]
    return std::vector<Tensor>{ctx.grad().reshape(in_shape)};
  });
  return out;
}

}  // namespace

Tensor Tensor::slice(std::int64_t d, std::int64_t start, std::int64_t end, std::int64_t step) const {
  d = indexable_dim("slice", d, *this);
  LOCKSTEP_CHECK(step >= 1, ValueError, "slice: expected step >= 1, but got ", step);
  const std::int64_t n = size(d);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<std::int64_t>(start, 0, n);
  end = std::clamp<std::int64_t>(end, start, n);
  Shape sh = shape(), st = strides();
  sh[static_cast<std::size_t>(d)] = (end - start + step - 1) / step;
  st[static_cast<std::size_t>(d)] *= step;
  Tensor out = make_view(*this, sh, st, offset() + start * stride(d));
  const Shape in_shape = shape();
  record("slice", {*this}, {out}, {}, [in_shape, d, start, end, step](BackwardContext& ctx) {
    // g [.., (end - start) / step, ..] -> dx [in_shape]
    return std::vector<Tensor>{slice_backward(ctx.grad(), in_shape, d, start, end, step)};
  });
  return out;
}

Tensor Tensor::select(std::int64_t d, std::int64_t index) const {
  d = indexable_dim("select", d, *this);
  const std::int64_t n = size(d);
  LOCKSTEP_CHECK(index >= -n && index < n, IndexError, "select: expected an index in [", -n, ", ", n - 1,
                 "] for dimension ", d, " of shape ", shape_str(shape()), ", but got ", index);
  if (index < 0) index += n;
  return slice(d, index, index + 1).squeeze(d);
}

Tensor Tensor::unsqueeze(std::int64_t d) const {
  d = wrap_dim("unsqueeze", d, dim() + 1);
  Shape sh = shape(), st = strides();
  const std::int64_t stride = d < dim() ? sh[static_cast<std::size_t>(d)] * st[static_cast<std::size_t>(d)] : 1;
  sh.insert(sh.begin() + d, 1);
  st.insert(st.begin() + d, stride);
  return alias_with_shape("unsqueeze", *this, std::move(sh), std::move(st));
}

Tensor Tensor::squeeze(std::int64_t d) const {
  d = wrap_dim("squeeze", d, dim());
  Shape sh = shape(), st = strides();
  if (dim() > 0 && sh[static_cast<std::size_t>(d)] == 1) {
    sh.erase(sh.begin() + d);
    st.erase(st.begin() + d);
  }
  return alias_with_shape("squeeze", *this, std::move(sh), std::move(st));
}

Tensor Tensor::expand(const Shape& target) const {
  LOCKSTEP_CHECK(static_cast<std::int64_t>(target.size()) >= dim(), ValueError, "expand: expected at least ", dim(),
                 " dimensions, but got ", shape_str(target), " for a tensor of shape ", shape_str(shape()));
  const std::size_t lead = target.size() - shape().size();
  Shape sh(target.size()), st(target.size(), 0);
  for (std::size_t i = 0; i < target.size(); ++i) {
    // -1 keeps an existing dimension's size; new leading dimensions need an explicit size.
    const std::int64_t t = i >= lead && target[i] == -1 ? shape()[i - lead] : target[i];
    LOCKSTEP_CHECK(t >= 0, ValueError, "expand: expected sizes >= 0 (or -1 for an existing dimension), but got target ",
                   shape_str(target), " for a tensor of shape ", shape_str(shape()));
    sh[i] = t;
    if (i < lead) continue;
    const std::int64_t s = shape()[i - lead];
    LOCKSTEP_CHECK(s == t || s == 1, ValueError, "expand: expected size 1 or ", t, " at dimension ", i,
                   ", but got shape ", shape_str(shape()), " for target ", shape_str(target));
    st[i] = s == t ? strides()[i - lead] : 0;
  }
  Tensor out = make_view(*this, sh, st, offset());
  const Shape in_shape = shape();
  record("expand", {*this}, {out}, {}, [in_shape](BackwardContext& ctx) {
    return std::vector<Tensor>{sum_to(ctx.grad(), in_shape)};
  });
  return out;
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  kernels::copy.get(device())(*this, out);
  record("clone", {*this}, {out}, {}, [](BackwardContext& ctx) { return std::vector<Tensor>{ctx.grad()}; });
  return out;
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  Tensor out = empty(shape(), target, device());
  kernels::copy.get(device())(*this, out);
  if (is_floating(target)) {
    const DType source = dtype();
    record("to_dtype", {*this}, {out}, {}, [source](BackwardContext& ctx) {
      return std::vector<Tensor>{ctx.grad().to(source)};
    });
  }
  return out;
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  Tensor src = contiguous();
  Tensor out = empty(shape(), dtype(), target);
  kernels::transfer.get(target.is_cpu() ? device() : target)(src, out);
  const Device source = device();
  record("to_device", {*this}, {out}, {}, [source](BackwardContext& ctx) {
    return std::vector<Tensor>{ctx.grad().to(source)};
  });
  return out;
}

// ---- in-place ----

namespace {

void check_inplace(const char* op, const Tensor& self, std::initializer_list<Tensor> others) {
  LOCKSTEP_CHECK(!GradMode::is_enabled() || !self.requires_grad(), AutogradError, op,
                 ": expected a tensor that does not require grad while grad mode is on, but got one of shape ",
                 shape_str(self.shape()), self.is_leaf() ? " (a leaf)" : "",
                 ". In-place updates are not recorded; wrap them in NoGradGuard (as optimizers do)");
  common_device(op, {self});
  for (const auto& o : others) {
    common_device(op, {self, o});
    LOCKSTEP_CHECK(o.impl()->wrapped_number || broadcast_shapes(op, self.shape(), o.shape()) == self.shape(),
                   ValueError, op, ": expected an operand broadcastable to ", shape_str(self.shape()), ", but got ",
                   shape_str(o.shape()));
  }
}

// An in-place op that reads `self` while writing it cannot write through a broadcast view (several elements
// of which are one memory location): the result would depend on the order of the writes.
void check_no_internal_overlap(const char* op, const Tensor& self) {
  for (std::int64_t d = 0; d < self.dim(); ++d) {
    LOCKSTEP_CHECK(self.shape()[static_cast<std::size_t>(d)] <= 1 || self.strides()[static_cast<std::size_t>(d)] != 0,
                   ValueError, op, ": expected a tensor whose elements are distinct memory locations, but got shape ",
                   shape_str(self.shape()), " with strides ", shape_str(self.strides()),
                   " (a broadcast view). Call contiguous() first");
  }
}

// `src` as an operand of a write into `self`: when it shares memory with `self` in another geometry, a copy
// taken first, so that no element is read after it has been overwritten.
Tensor unaliased(const Tensor& self, const Tensor& src) {
  if (src.storage() != self.storage() || src.numel() == 0) return src;
  if (src.shape() == self.shape() && src.strides() == self.strides() && src.offset() == self.offset()) return src;
  Tensor copy = empty(src.shape(), src.dtype(), src.device());
  kernels::copy.get(src.device())(src, copy);
  return copy;
}

Tensor as_operand(const Tensor& self, const Tensor& other) {
  Tensor o = other.impl()->wrapped_number ? scalar_tensor(other.item(), self.dtype(), self.device()) : other;
  LOCKSTEP_CHECK(o.dtype() == self.dtype(), TypeError, "in-place op: expected operands of one dtype, but got ",
                 dtype_name(self.dtype()), " ", shape_str(self.shape()), " and ", dtype_name(o.dtype()), " ",
                 shape_str(o.shape()));
  return broadcast_view(unaliased(self, o), self.shape());
}

}  // namespace

Tensor& Tensor::fill_(double value) {
  check_inplace("fill_", *this, {});
  kernels::fill.get(device())(*this, value);
  bump_version();
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  check_inplace("copy_", *this, {src});
  check_no_internal_overlap("copy_", *this);
  Tensor s = src.impl()->wrapped_number ? scalar_tensor(src.item(), dtype(), device()) : unaliased(*this, src);
  kernels::copy.get(device())(broadcast_view(s, shape()), *this);
  bump_version();
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  check_inplace("add_", *this, {other});
  check_no_internal_overlap("add_", *this);
  kernels::binary.get(device())(BinaryOp::kAdd, *this, as_operand(*this, other), *this, alpha);
  bump_version();
  return *this;
}

Tensor& Tensor::mul_(const Tensor& other) {
  check_inplace("mul_", *this, {other});
  check_no_internal_overlap("mul_", *this);
  kernels::binary.get(device())(BinaryOp::kMul, *this, as_operand(*this, other), *this, 1.0);
  bump_version();
  return *this;
}

Tensor& Tensor::mul_(double value) { return mul_(wrapped_scalar(value)); }

Tensor& Tensor::div_(const Tensor& other) {
  check_inplace("div_", *this, {other});
  check_no_internal_overlap("div_", *this);
  kernels::binary.get(device())(BinaryOp::kDiv, *this, as_operand(*this, other), *this, 1.0);
  bump_version();
  return *this;
}

Tensor& Tensor::clamp_(double lo, double hi) {
  check_inplace("clamp_", *this, {});
  if (!is_floating(dtype())) {
    // Integers: max then min with the bounds rounded inwards and limited to the dtype's range.
    LOCKSTEP_CHECK(!std::isnan(lo) && !std::isnan(hi), ValueError, "clamp_: expected bounds that are numbers, but got ",
                   lo, " and ", hi, " for a ", dtype_name(dtype()), " tensor");
    const double min = dtype() == DType::u8 ? 0.0 : -9223372036854775808.0;
    const double max = dtype() == DType::u8 ? 255.0 : 9223372036854774784.0;  // the largest double below 2^63
    const Tensor low = scalar_tensor(std::clamp(std::ceil(lo), min, max), dtype(), device());
    const Tensor high = scalar_tensor(std::clamp(std::floor(hi), min, max), dtype(), device());
    kernels::binary.get(device())(BinaryOp::kMaximum, *this, broadcast_view(low, shape()), *this, 1.0);
    kernels::binary.get(device())(BinaryOp::kMinimum, *this, broadcast_view(high, shape()), *this, 1.0);
    bump_version();
    return *this;
  }
  Tensor src = contiguous();
  Tensor out = is_contiguous() ? *this : empty_like(*this);
  kernels::unary.get(device())(UnaryOp::kHardtanh, src, out, lo, hi);
  if (!out.same(*this)) kernels::copy.get(device())(out, *this);
  bump_version();
  return *this;
}

Tensor broadcast_view(const Tensor& t, const Shape& target) {
  if (t.shape() == target) return t;
  const std::size_t lead = target.size() - t.shape().size();
  Shape st(target.size(), 0);
  for (std::size_t i = lead; i < target.size(); ++i) st[i] = t.shape()[i - lead] == 1 ? 0 : t.strides()[i - lead];
  return make_view(t, target, st, t.offset());
}

// ---- printing ----

namespace {

// Elements of a tensor formatted for printing: integers exactly (i64 is not routed through double), floating
// values with four decimals.
class ElementFormatter {
 public:
  explicit ElementFormatter(const Tensor& t) : integral_(!is_floating(t.dtype())) {
    if (integral_) {
      ints_ = t.to_vector<std::int64_t>();
    } else {
      floats_ = t.to_vector<double>();
    }
  }
  void write(std::ostream& out, std::int64_t i) const {
    if (integral_) {
      out << ints_[static_cast<std::size_t>(i)];
      return;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.4f", floats_[static_cast<std::size_t>(i)]);
    out << buf;
  }

 private:
  bool integral_;
  std::vector<std::int64_t> ints_;
  std::vector<double> floats_;
};

void print_rec(std::ostream& out, const ElementFormatter& v, const Shape& shape, std::size_t d, std::int64_t base,
               const Shape& strides, bool summarize, int indent) {
  if (shape.empty()) {
    v.write(out, base);
    return;
  }
  const std::int64_t n = shape[d];
  out << "[";
  constexpr std::int64_t kEdge = 3;
  for (std::int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * kEdge && i == kEdge) {
      out << (d + 1 == shape.size() ? "..., " : "...,\n" + std::string(static_cast<std::size_t>(indent + 1), ' '));
      i = n - kEdge;
    }
    const std::int64_t at = base + i * strides[d];
    if (d + 1 == shape.size()) {
      v.write(out, at);
    } else {
      print_rec(out, v, shape, d + 1, at, strides, summarize, indent + 1);
    }
    if (i + 1 < n) out << (d + 1 == shape.size() ? ", " : ",\n" + std::string(static_cast<std::size_t>(indent + 1), ' '));
  }
  out << "]";
}

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  std::ostringstream out;
  out << "tensor(";
  print_rec(out, ElementFormatter(*this), shape(), 0, 0, contiguous_strides(shape()), numel() > 1000, 7);
  out << ", shape=" << shape_str(shape()) << ", dtype=" << dtype_name(dtype());
  if (!device().is_cpu()) out << ", device=" << device().str();
  if (requires_grad()) out << ", requires_grad";
  out << ")";
  return out.str();
}

std::ostream& operator<<(std::ostream& out, const Tensor& t) { return out << t.str(); }

}  // namespace lockstep
