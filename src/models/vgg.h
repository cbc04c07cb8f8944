// VGG-style classifiers (Simonyan and Zisserman 2014) for 28x28 and 32x32 images: torchvision's feature
// stacks (configurations A = VGG-11 and D = VGG-16, each 3x3 convolution followed by batch norm and ReLU,
// 2x2 max pooling between stages) and a small head with dropout for the 512 channels left at 1x1.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "src/models/classifier.h"
#include "src/nn/container.h"

namespace lockstep::models {

enum class VggDepth : std::uint8_t { k11, k16 };

// Owns `features` (Sequential with torchvision's indices: Conv2d 3x3 with bias, BatchNorm2d, ReLU per
// convolution, MaxPool2d per stage, so that parameter names match torchvision's vgg11_bn / vgg16_bn) and
// `classifier` (Dropout, Linear 512-512, ReLU, Dropout, Linear 512-512, ReLU, Linear 512-classes).
//
// The head (dropout before each hidden linear layer, as the common CIFAR VGGs) is not torchvision's 4096-wide
// one for 7x7 maps.
//
// Pooling: five 2x2 stride-2 stages take 32x32 to 1x1. For 28x28 the third stage pads by one pixel
// (7x7 -> 4x4 instead of dropping the last row and column), so 28 -> 14 -> 7 -> 4 -> 2 -> 1 and both sizes
// reach the same head. Initialisation as torchvision's: convolutions Kaiming-normal (fan out, ReLU) with zero
// bias, batch norm 1 and 0, linear layers N(0, 0.01) with zero bias. Not thread-safe.
class VGG : public Classifier {
 public:
  // image_size 28 or 32; dropout in [0, 1).
  VGG(VggDepth depth, std::int64_t in_channels, std::int64_t image_size, std::int64_t classes,
      double dropout = 0.5);
  // forward: x [N, in_channels, image_size, image_size] -> logits [N, classes].
  // x -> the head's last hidden activations [N, 512].
  Tensor features(const Tensor& x) override;
  Tensor head(const Tensor& features) override;

 protected:
  std::string describe() const override;

 private:
  VggDepth depth_;
  std::int64_t in_channels_;
  std::int64_t image_size_;
  double dropout_;
  std::shared_ptr<nn::Sequential> features_;
  std::shared_ptr<nn::Sequential> classifier_;
};

}  // namespace lockstep::models
