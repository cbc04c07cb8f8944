// The Dropout layer: inverted dropout in training mode, identity in evaluation mode.
#pragma once

#include <string>

#include "src/nn/module.h"

namespace lockstep::nn {

// Owns nothing but p; draws its masks from the default generator. Not thread-safe.
class Dropout : public Module {
 public:
  // p in [0, 1] (ValueError otherwise).
  explicit Dropout(double p = 0.5);

  Tensor forward(const Tensor& input) override;

  double p() const { return p_; }

 protected:
  std::string describe() const override;

 private:
  double p_;
};

}  // namespace lockstep::nn
