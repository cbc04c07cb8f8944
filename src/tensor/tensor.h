// Tensor: a cheap handle to a strided view of a Storage (shape, strides, offset, dtype, device) with
// optional autograd data. Copying a Tensor copies the handle; views share storage with their base.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "src/core/device.h"
#include "src/core/dtype.h"
#include "src/core/error.h"
#include "src/core/shape.h"
#include "src/tensor/storage.h"

namespace lockstep {

class Node;
class Tensor;
struct GradientHome;

enum class RetainGraph : bool { kNo = false, kYes = true };
enum class CreateGraph : bool { kNo = false, kYes = true };

using PostAccumulateHook = std::function<void(Tensor&)>;

// Autograd state of one tensor. Leaves own their gradient accumulator node (which reaches back to the
// leaf through a weak pointer) and their post-accumulate hooks; non-leaves own the node that made them.
struct AutogradMeta {
  bool requires_grad = false;
  std::shared_ptr<Tensor> grad;
  std::shared_ptr<Node> grad_fn;
  std::uint32_t output_nr = 0;
  std::shared_ptr<Node> grad_accumulator;
  std::vector<PostAccumulateHook> post_accumulate_hooks;
  std::shared_ptr<GradientHome> gradient_home;  // src/autograd/node.h
};

// The shared state behind Tensor handles. Not thread-safe for concurrent mutation.
struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;
  std::int64_t offset = 0;  // in elements
  DType dtype = DType::f32;
  // A 0-dim CPU tensor made from a C++ number: it may meet tensors of any device and takes their dtype.
  bool wrapped_number = false;
  std::unique_ptr<AutogradMeta> autograd;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

  // Metadata.
  const Shape& shape() const { return checked()->shape; }
  const Shape& strides() const { return checked()->strides; }
  std::int64_t dim() const { return static_cast<std::int64_t>(shape().size()); }
  std::int64_t size(std::int64_t d) const;
  std::int64_t stride(std::int64_t d) const;
  std::int64_t numel() const { return numel_of(shape()); }
  std::int64_t offset() const { return checked()->offset; }
  DType dtype() const { return checked()->dtype; }
  Device device() const { return checked()->storage->device(); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return checked()->storage; }
  std::uint64_t version() const { return storage()->version(); }
  void bump_version() const { storage()->bump_version(); }

  // Data access. data() points at the first element; data<T>() also checks the dtype.
  void* data() const;
  template <class T> T* data() const {
    LOCKSTEP_CHECK(dtype() == dtype_of<T>, TypeError, "Tensor::data: expected dtype ", dtype_name(dtype_of<T>),
                   ", but the tensor is ", dtype_name(dtype()));
    return static_cast<T*>(data());
  }
  // The single element of a one-element tensor, converted to double (copied from the device if needed).
  double item() const;
  // All elements in row-major order, converted to T, copied to the host.
  template <class T> std::vector<T> to_vector() const;

  // Autograd.
  bool requires_grad() const { return impl_ && impl_->autograd && impl_->autograd->requires_grad; }
  // Marks a floating-point leaf as requiring (or not) gradients; freezing a parameter is requires_grad_(false).
  Tensor& requires_grad_(bool on = true);
  bool is_leaf() const { return !grad_fn(); }
  // The accumulated gradient of a leaf; undefined until a backward reaches it.
  Tensor grad() const;
  void set_grad(const Tensor& grad) const;
  const std::shared_ptr<Node>& grad_fn() const;
  std::uint32_t output_nr() const { return impl_ && impl_->autograd ? impl_->autograd->output_nr : 0; }
  void set_history(std::shared_ptr<Node> fn, std::uint32_t output_nr) const;
  // A tensor sharing storage with this one but outside every graph.
  Tensor detach() const;
  // Back-propagates from this tensor (a scalar unless `gradient` is given) into the leaves' .grad. With
  // CreateGraph::kYes the graph is retained and .grad keeps its history (differentiable).
  void backward(const Tensor& gradient = {}, RetainGraph retain = RetainGraph::kNo,
                CreateGraph create = CreateGraph::kNo) const;
  // Runs after the gradient of this leaf has been accumulated, in registration order.
  void register_post_accumulate_hook(PostAccumulateHook hook) const;

  // Views and shape (differentiable; views share storage; reshape/flatten copy only when strides demand it).
  // 0-dim tensors have no dimension to slice or select (IndexError); expand takes -1 to keep a dimension.
  Tensor view(const Shape& shape) const;
  Tensor reshape(const Shape& shape) const;
  Tensor flatten(std::int64_t start_dim = 0, std::int64_t end_dim = -1) const;
  Tensor permute(const Shape& order) const;
  Tensor transpose(std::int64_t d0, std::int64_t d1) const;
  Tensor slice(std::int64_t dim, std::int64_t start, std::int64_t end, std::int64_t step = 1) const;
  Tensor select(std::int64_t dim, std::int64_t index) const;
  Tensor unsqueeze(std::int64_t dim) const;
  Tensor squeeze(std::int64_t dim) const;
  Tensor expand(const Shape& shape) const;
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;

  // In-place updates. They bump the version counter and are not recorded by autograd: in grad mode they
  // refuse tensors that require grad (use NoGradGuard, as optimizers do). An operand sharing memory with the
  // destination is read before it is overwritten; add_/mul_/div_/copy_ refuse a broadcast (stride 0)
  // destination. clamp_ also takes integer tensors (bounds rounded inwards).
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }
  Tensor& copy_(const Tensor& src);
  Tensor& add_(const Tensor& other, double alpha = 1.0);
  Tensor& sub_(const Tensor& other) { return add_(other, -1.0); }
  Tensor& mul_(const Tensor& other);
  Tensor& mul_(double value);
  Tensor& div_(const Tensor& other);
  Tensor& clamp_(double lo, double hi);

  std::string str() const;

 private:
  TensorImpl* checked() const {
    LOCKSTEP_CHECK(impl_ != nullptr, ValueError, "Tensor: expected a defined tensor, but got an undefined one");
    return impl_.get();
  }
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& out, const Tensor& t);

// Creates a tensor with fresh contiguous storage; contents uninitialised.
Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = kCPU);
// A contiguous tensor over memory that `owner` keeps alive (as long as the tensor and its views live).
Tensor borrow_memory(void* data, const Shape& shape, DType dtype, Device device,
                     std::shared_ptr<const void> owner);
// A view of `base`'s storage with the given geometry (no checks beyond bounds); used by view ops.
Tensor make_view(const Tensor& base, Shape shape, Shape strides, std::int64_t offset);
// A view of `t` broadcast to `target` (stride 0 on expanded dimensions), outside autograd: for kernels.
Tensor broadcast_view(const Tensor& t, const Shape& target);
// A 0-dim CPU tensor holding `value` that takes the dtype of the tensor it meets.
Tensor wrapped_scalar(double value);

extern template std::vector<float> Tensor::to_vector<float>() const;
extern template std::vector<double> Tensor::to_vector<double>() const;
extern template std::vector<std::int64_t> Tensor::to_vector<std::int64_t>() const;
extern template std::vector<std::uint8_t> Tensor::to_vector<std::uint8_t>() const;

}  // namespace lockstep
