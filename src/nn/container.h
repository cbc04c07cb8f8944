// Containers and glue layers: Sequential (children "0", "1", ... applied in order) and Flatten.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "src/nn/module.h"

namespace lockstep::nn {

// Owns its children (shared); forward feeds each child's output to the next (a batch norm followed by a ReLU
// as one op, the ReLU fused into the batch norm: the same values). Not thread-safe.
class Sequential : public Module {
 public:
  Sequential();
  explicit Sequential(std::vector<std::shared_ptr<Module>> modules);

  // Appends `module` under the name str(size()).
  void push_back(std::shared_ptr<Module> module);
  std::size_t size() const { return modules_.size(); }
  // IndexError when i >= size().
  const std::shared_ptr<Module>& at(std::size_t i) const;

  Tensor forward(const Tensor& input) override;

 private:
  std::vector<std::shared_ptr<Module>> modules_;
};

// Flattens dimensions start_dim..last into one: [N, C, H, W] -> [N, C * H * W] by default. Not thread-safe.
class Flatten : public Module {
 public:
  explicit Flatten(std::int64_t start_dim = 1);

  Tensor forward(const Tensor& input) override;

 protected:
  std::string describe() const override;

 private:
  std::int64_t start_dim_;
};

// Unflattens [N, prod(shape)] into [N, shape...] (the inverse of Flatten()). Not thread-safe.
class Unflatten : public Module {
 public:
  explicit Unflatten(Shape shape);

  Tensor forward(const Tensor& input) override;

 protected:
  std::string describe() const override;

 private:
  Shape shape_;
};

}  // namespace lockstep::nn
