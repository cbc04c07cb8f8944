// LeNet5: construction and the forward pass (conv, ReLU, max-pool twice, then three fully connected layers).
#include "src/models/lenet.h"

#include "src/core/error.h"
#include "src/ops/activation.h"
#include "src/ops/pool.h"

namespace lockstep::models {
namespace {

constexpr std::int64_t kC1 = 6, kC3 = 16, kF5 = 120, kF6 = 84, kKernel = 5, kSpatial = 5;

}  // namespace

LeNet5::LeNet5(std::int64_t in_channels, std::int64_t image_size, std::int64_t classes)
    : Classifier("LeNet5"), in_channels_(in_channels), image_size_(image_size) {
  LOCKSTEP_CHECK(image_size == 28 || image_size == 32, ValueError,
                 "LeNet5: expected image_size 28 or 32, but got ", image_size,
                 ". Pad other sizes in the data loader.");
  LOCKSTEP_CHECK(in_channels > 0 && classes > 0, ValueError,
                 "LeNet5: expected positive in_channels and classes, but got in_channels=", in_channels,
                 ", classes=", classes);
  conv1_ = register_module("conv1", std::make_shared<nn::Conv2d>(nn::Conv2dOptions{
                                        .in = in_channels,
                                        .out = kC1,
                                        .kernel = kKernel,
                                        .padding = (32 - image_size) / 2,
                                    }));
  conv2_ = register_module("conv2", std::make_shared<nn::Conv2d>(nn::Conv2dOptions{
                                        .in = kC1,
                                        .out = kC3,
                                        .kernel = kKernel,
                                    }));
  fc1_ = register_module("fc1", std::make_shared<nn::Linear>(kC3 * kSpatial * kSpatial, kF5));
  fc2_ = register_module("fc2", std::make_shared<nn::Linear>(kF5, kF6));
  fc3_ = register_module("fc3", std::make_shared<nn::Linear>(kF6, classes));
}

Tensor LeNet5::features(const Tensor& input) {
  LOCKSTEP_CHECK(input.dim() == 4 && input.size(1) == in_channels_ && input.size(2) == image_size_ &&
                     input.size(3) == image_size_,
                 ValueError, "LeNet5::features: expected [N, ", in_channels_, ", ", image_size_, ", ",
                 image_size_, "], but got ", shape_str(input.shape()));
  Tensor x = max_pool2d(relu(conv1_->forward(input)), {2, 2}, {2, 2}).values;
  x = max_pool2d(relu(conv2_->forward(x)), {2, 2}, {2, 2}).values;
  x = x.flatten(1);
  x = relu(fc1_->forward(x));
  return relu(fc2_->forward(x));
}

Tensor LeNet5::head(const Tensor& features) { return fc3_->forward(features); }

std::string LeNet5::describe() const {
  return "in_channels=" + std::to_string(in_channels_) + ", image_size=" + std::to_string(image_size_);
}

}  // namespace lockstep::models
