// Padding layers over [.., H, W] tensors: ReflectionPad2d, a thin module over pad2d of src/ops/pad.h.
#pragma once

#include <cstdint>
#include <string>

#include "src/nn/module.h"
#include "src/ops/pad.h"

namespace lockstep::nn {

// Mirrors the last two dimensions by `padding` on every side without repeating the edge (PyTorch's
// ReflectionPad2d(padding)); each side's padding must be smaller than its dimension. Owns nothing. Not
// thread-safe.
class ReflectionPad2d : public Module {
 public:
  explicit ReflectionPad2d(std::int64_t padding);

  // x [.., H, W] -> [.., H + 2 * padding, W + 2 * padding].
  Tensor forward(const Tensor& input) override;
  std::int64_t padding() const { return padding_; }

 protected:
  std::string describe() const override;

 private:
  std::int64_t padding_;
};

}  // namespace lockstep::nn
