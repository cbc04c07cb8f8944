// Sequential (ordered children, chained forward), Flatten and Unflatten.
#include "src/nn/container.h"

#include <typeinfo>

#include "src/core/error.h"
#include "src/nn/activation.h"
#include "src/nn/norm.h"

namespace lockstep::nn {

Sequential::Sequential() : Module("Sequential") {}

Sequential::Sequential(std::vector<std::shared_ptr<Module>> modules) : Module("Sequential") {
  modules_.reserve(modules.size());
  for (auto& module : modules) push_back(std::move(module));
}

void Sequential::push_back(std::shared_ptr<Module> module) {
  register_module(std::to_string(modules_.size()), module);
  modules_.push_back(std::move(module));
}

const std::shared_ptr<Module>& Sequential::at(std::size_t i) const {
  LOCKSTEP_CHECK(i < modules_.size(), IndexError, "Sequential::at: expected an index below ", modules_.size(),
                 ", but got ", i);
  return modules_[i];
}

Tensor Sequential::forward(const Tensor& input) {
  Tensor x = input;
  for (std::size_t i = 0; i < modules_.size(); ++i) {
    // A batch norm and the ReLU after it run as one op: the ReLU as the batch norm's fused epilogue (exact
    // types only, so that a subclass's own forward is never bypassed).
    const Module& module = *modules_[i];
    const Module* next = i + 1 < modules_.size() ? modules_[i + 1].get() : nullptr;
    const bool batch_norm = typeid(module) == typeid(BatchNorm1d) || typeid(module) == typeid(BatchNorm2d);
    if (batch_norm && next != nullptr && typeid(*next) == typeid(ReLU)) {
      x = static_cast<BatchNorm&>(*modules_[i]).forward(x, then_relu());
      ++i;
    } else {
      x = modules_[i]->forward(x);
    }
  }
  return x;
}

Flatten::Flatten(std::int64_t start_dim) : Module("Flatten"), start_dim_(start_dim) {}

Tensor Flatten::forward(const Tensor& input) { return input.flatten(start_dim_, -1); }

std::string Flatten::describe() const { return str_cat("start_dim=", start_dim_); }

Unflatten::Unflatten(Shape shape) : Module("Unflatten"), shape_(std::move(shape)) {}

Tensor Unflatten::forward(const Tensor& input) {
  std::int64_t features = 1;
  for (const std::int64_t d : shape_) features *= d;
  LOCKSTEP_CHECK(input.dim() == 2 && input.size(1) == features, ValueError, "Unflatten: expected [N, ", features,
                 "], but got ", shape_str(input.shape()));
  Shape out = {input.size(0)};
  out.insert(out.end(), shape_.begin(), shape_.end());
  return input.reshape(out);
}

std::string Unflatten::describe() const { return str_cat("shape=", shape_str(shape_)); }

}  // namespace lockstep::nn
