// LeNet-5 (LeCun et al. 1998) for 28x28 or 32x32 images: C1 6@5x5, S2, C3 16@5x5, S4, F5 120, F6 84, output,
// with ReLU activations and 2x2 max pooling in the subsampling layers (the modern reading of the classic
// net).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "src/models/classifier.h"
#include "src/nn/conv.h"
#include "src/nn/linear.h"

namespace lockstep::models {

// Owns conv1 (C1), conv2 (C3), fc1 (F5), fc2 (F6) and fc3 (output). 28x28 inputs are zero-padded by 2 in C1
// so that both sizes reach F5 as 16x5x5. Not thread-safe.
class LeNet5 : public Classifier {
 public:
  LeNet5(std::int64_t in_channels, std::int64_t image_size, std::int64_t classes);
  // forward: x [N, in_channels, image_size, image_size] -> logits [N, classes].
  // x -> F6 activations [N, 84].
  Tensor features(const Tensor& x) override;
  Tensor head(const Tensor& features) override;

 protected:
  std::string describe() const override;

 private:
  std::int64_t in_channels_;
  std::int64_t image_size_;
  std::shared_ptr<nn::Conv2d> conv1_;
  std::shared_ptr<nn::Conv2d> conv2_;
  std::shared_ptr<nn::Linear> fc1_;
  std::shared_ptr<nn::Linear> fc2_;
  std::shared_ptr<nn::Linear> fc3_;
};

}  // namespace lockstep::models
