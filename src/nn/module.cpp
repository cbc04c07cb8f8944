// nn::Module: registration of parameters, buffers and children, recursive traversal with dotted names,
// train/eval, state dicts (strict loading), dtype/device conversion and the summary table.
#include "src/nn/module.h"

#include <algorithm>
#include <cstddef>

#include "src/autograd/grad_mode.h"
#include "src/core/error.h"
#include "src/core/strings.h"

namespace lockstep::nn {

namespace {

std::string dotted(const std::string& prefix, const std::string& name) { return prefix + "." + name; }

// Points every handle of `t` at `converted`'s data (PyTorch's `param.data = ...`): layers, optimizers and
// graphs holding `t` see the new dtype or device. A gradient is converted with it.
void replace_data(const Tensor& t, const Tensor& converted) {
  const Tensor grad = t.grad();
  TensorImpl* impl = t.impl();
  const TensorImpl* source = converted.impl();
  impl->storage = source->storage;
  impl->shape = source->shape;
  impl->strides = source->strides;
  impl->offset = source->offset;
  impl->dtype = source->dtype;
  if (grad.defined()) t.set_grad(grad.to(impl->dtype).to(t.device()));
}

}  // namespace

Tensor Module::forward(const Tensor&) {
  throw NotImplementedError(str_cat(type_name_, "::forward: expected a module with a one-input forward, but ",
                                    type_name_, " has none. Call its own methods instead"));
}

std::vector<NamedTensor> Module::named_parameters() const {
  std::vector<NamedTensor> out = parameters_;
  for (const auto& [name, child] : children_) {
    for (auto& [child_name, tensor] : child->named_parameters())
      out.emplace_back(dotted(name, child_name), tensor);
  }
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& entry : named_parameters()) out.push_back(std::move(entry.second));
  return out;
}

std::vector<NamedTensor> Module::named_buffers() const {
  std::vector<NamedTensor> out = buffers_;
  for (const auto& [name, child] : children_) {
    for (auto& [child_name, tensor] : child->named_buffers())
      out.emplace_back(dotted(name, child_name), tensor);
  }
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules() const {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  for (const auto& [name, child] : children_) {
    out.emplace_back(name, child);
    for (auto& [below, module] : child->named_modules())
      out.emplace_back(dotted(name, below), std::move(module));
  }
  return out;
}

std::int64_t Module::num_parameters() const {
  std::int64_t total = 0;
  for (const auto& [name, tensor] : named_parameters()) total += tensor.numel();
  return total;
}

void Module::requires_grad_(bool on) {
  for (Tensor p : parameters()) p.requires_grad_(on);
}

void Module::train(bool on) {
  training_ = on;
  for (const auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (const auto& [name, tensor] : named_parameters()) tensor.set_grad(Tensor());
}

StateDict Module::state_dict() const {
  StateDict out;
  for (const auto& [name, tensor] : parameters_) out.insert(name, tensor);
  for (const auto& [name, tensor] : buffers_) out.insert(name, tensor);
  for (const auto& [name, child] : children_) {
    for (const auto& [child_name, tensor] : child->state_dict()) out.insert(dotted(name, child_name), tensor);
  }
  return out;
}

void Module::load_state_dict(const StateDict& state, Strict strict) {
  const StateDict own = state_dict();
  std::vector<std::string> missing;
  std::vector<std::string> unexpected;
  std::vector<std::string> mismatched;
  for (const auto& [name, dst] : own) {
    const Tensor* src = state.find(name);
    if (src == nullptr) {
      missing.push_back(name);
      continue;
    }
    if (src->shape() != dst.shape()) {
      mismatched.push_back(str_cat("'", name, "' has shape ", shape_str(src->shape()),
                                   " in the state dict but ", shape_str(dst.shape()), " in the module"));
    }
    if (src->dtype() != dst.dtype()) {
      mismatched.push_back(str_cat("'", name, "' has dtype ", dtype_name(src->dtype()),
                                   " in the state dict but ", dtype_name(dst.dtype()), " in the module"));
    }
  }
  for (const auto& [name, tensor] : state) {
    if (!own.contains(name)) unexpected.push_back(name);
  }
  if (strict == Strict::kNo) {
    missing.clear();
    unexpected.clear();
  }
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::string details;
    const auto append = [&details](const std::string& item) {
      details += str_cat(details.empty() ? "" : "; ", item);
    };
    for (const std::string& name : missing) append(str_cat("missing key '", name, "'"));
    for (const std::string& name : unexpected) append(str_cat("unexpected key '", name, "'"));
    for (const std::string& item : mismatched) append(item);
    throw ValueError(str_cat("Module::load_state_dict: expected a state dict matching the ", own.size(),
                             " entries of ", type_name_, ", but got ", missing.size(), " missing, ",
                             unexpected.size(), " unexpected and ", mismatched.size(),
                             " mismatched: ", details, ". Nothing was loaded"));
  }
  NoGradGuard no_grad;
  for (const auto& [name, dst] : own) {
    const Tensor* src = state.find(name);
    if (src == nullptr || src->same(dst)) continue;
    Tensor value = *src;
    if (value.device() != dst.device()) value = value.to(dst.device());
    Tensor(dst).copy_(value);
  }
}

void Module::to(DType dtype) {
  LOCKSTEP_CHECK(is_floating(dtype), TypeError, type_name_, "::to: expected a floating dtype, but got ",
                 dtype_name(dtype), ". Integer buffers keep their dtype; parameters must be floating");
  NoGradGuard no_grad;
  for (const auto& [name, tensor] : named_parameters()) {
    if (tensor.dtype() != dtype) replace_data(tensor, tensor.to(dtype));
  }
  for (const auto& [name, tensor] : named_buffers()) {
    if (is_floating(tensor.dtype()) && tensor.dtype() != dtype) replace_data(tensor, tensor.to(dtype));
  }
}

void Module::to(Device device) {
  NoGradGuard no_grad;
  for (const auto& [name, tensor] : named_parameters()) {
    if (tensor.device() != device) replace_data(tensor, tensor.to(device));
  }
  for (const auto& [name, tensor] : named_buffers()) {
    if (tensor.device() != device) replace_data(tensor, tensor.to(device));
  }
}

std::string Module::summary() const {
  const auto line = [](const Module& module, const std::string& label, std::size_t depth) {
    const std::string description = module.describe();
    return str_cat(std::string(2 * depth, ' '), label, module.type_name_,
                   description.empty() ? "" : str_cat("(", description, ")"), "  ",
                   group_thousands(module.num_parameters()), " params\n");
  };
  std::string out = line(*this, "", 0);
  for (const auto& [name, module] : named_modules()) {
    const std::size_t depth = 1 + static_cast<std::size_t>(std::count(name.begin(), name.end(), '.'));
    const std::size_t dot = name.rfind('.');
    out += line(*module, (dot == std::string::npos ? name : name.substr(dot + 1)) + ": ", depth);
  }
  return out;
}

Tensor& Module::register_parameter(std::string name, Tensor tensor) {
  check_new_name(name);
  LOCKSTEP_CHECK(tensor.defined(), ValueError, type_name_,
                 "::register_parameter: expected a defined tensor for '", name,
                 "', but got an undefined one");
  LOCKSTEP_CHECK(tensor.is_leaf(), ValueError, type_name_,
                 "::register_parameter: expected a leaf tensor for '", name,
                 "', but got one computed by an op. Pass tensor.detach()");
  tensor.requires_grad_(true);
  parameters_.emplace_back(std::move(name), std::move(tensor));
  return parameters_.back().second;
}

Tensor& Module::register_buffer(std::string name, Tensor tensor) {
  check_new_name(name);
  LOCKSTEP_CHECK(tensor.defined(), ValueError, type_name_,
                 "::register_buffer: expected a defined tensor for '", name, "', but got an undefined one");
  buffers_.emplace_back(std::move(name), std::move(tensor));
  return buffers_.back().second;
}

void Module::add_child(std::string name, std::shared_ptr<Module> module) {
  check_new_name(name);
  LOCKSTEP_CHECK(module != nullptr, ValueError, type_name_, "::register_module: expected a module for '",
                 name, "', but got a null pointer");
  LOCKSTEP_CHECK(module.get() != this, ValueError, type_name_,
                 "::register_module: expected another module for '", name, "', but got the module itself");
  children_.emplace_back(std::move(name), std::move(module));
}

void Module::check_new_name(const std::string& name) const {
  LOCKSTEP_CHECK(!name.empty() && name.find('.') == std::string::npos, ValueError, type_name_,
                 ": expected a non-empty name without '.', but got '", name, "'");
  const auto taken = [&name](const auto& entries) {
    return std::any_of(entries.begin(), entries.end(),
                       [&name](const auto& entry) { return entry.first == name; });
  };
  LOCKSTEP_CHECK(!taken(parameters_) && !taken(buffers_) && !taken(children_), ValueError, type_name_,
                 ": expected a new name, but '", name, "' is already a parameter, buffer or child");
}

}  // namespace lockstep::nn
