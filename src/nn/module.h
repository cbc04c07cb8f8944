// nn::Module: the base of every layer and model. Owns parameters, buffers (e.g. running statistics) and
// submodules by name; dotted names (`layer1.0.conv1.weight`) are the checkpoint and optimizer keys.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "src/nn/state_dict.h"
#include "src/tensor/tensor.h"

namespace lockstep::nn {

using NamedTensor = std::pair<std::string, Tensor>;

enum class Strict { kYes, kNo };

// Not thread-safe. Modules are shared through std::shared_ptr; a module may be registered in one parent only.
class Module {
 public:
  explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // One-input forward, used by Sequential and most layers. Modules with other signatures (GAN pairs,
  // losses) add their own methods and leave this one throwing NotImplementedError.
  virtual Tensor forward(const Tensor& input);
  Tensor operator()(const Tensor& input) { return forward(input); }

  const std::string& type_name() const { return type_name_; }

  // Recursive, registration order, parents' own entries before their children's.
  std::vector<NamedTensor> named_parameters() const;
  std::vector<Tensor> parameters() const;
  std::vector<NamedTensor> named_buffers() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const { return children_; }
  // Every module below this one (not this one), with dotted names.
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules() const;
  std::int64_t num_parameters() const;  // elements of all parameters

  // Training mode (dropout active, batch norm on batch statistics) for this module and all below it.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Drops every parameter's gradient.
  void zero_grad();
  // Sets requires_grad on every parameter, e.g. to freeze a network during another one's step (PyTorch's
  // Module.requires_grad_).
  void requires_grad_(bool on);
  // Parameters and buffers under their dotted names; tensors share storage with the module.
  StateDict state_dict() const;
  // Copies values in (no autograd). With Strict::kYes every missing key, unexpected key, shape or dtype
  // mismatch is listed in one ValueError before anything is copied.
  void load_state_dict(const StateDict& state, Strict strict = Strict::kYes);
  // Moves/converts all parameters and buffers (keeps requires_grad on parameters).
  void to(DType dtype);
  void to(Device device);

  // A one-line description per module, indented, with parameter counts (for `lockstep inspect` and logs).
  std::string summary() const;

 protected:
  // Registers a leaf that requires grad; returns the stored handle.
  Tensor& register_parameter(std::string name, Tensor tensor);
  Tensor& register_buffer(std::string name, Tensor tensor);
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> module) {
    add_child(std::move(name), module);
    return module;
  }
  // Extra text for summary(), e.g. "in=784, out=512".
  virtual std::string describe() const { return {}; }

 private:
  void add_child(std::string name, std::shared_ptr<Module> module);
  void check_new_name(const std::string& name) const;

  std::string type_name_;
  bool training_ = true;
  std::vector<NamedTensor> parameters_;
  std::vector<NamedTensor> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

}  // namespace lockstep::nn
