// models::Classifier: an image classifier whose penultimate features can be read out (for the Fréchet
// distance of generated images and for linear probes). forward(x) = head(features(x)).
#pragma once

#include <string>

#include "src/nn/module.h"

namespace lockstep::models {

// Owns nothing beyond nn::Module; not thread-safe.
class Classifier : public nn::Module {
 public:
  using nn::Module::Module;
  // x [N, C, H, W] -> features [N, D] (the input of the last linear layer).
  virtual Tensor features(const Tensor& x) = 0;
  // features [N, D] -> logits [N, classes].
  virtual Tensor head(const Tensor& features) = 0;
  Tensor forward(const Tensor& x) override { return head(features(x)); }
};

}  // namespace lockstep::models
