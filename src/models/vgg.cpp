// VGG: the configuration lists, construction with torchvision's layer indices and initialisation, and the
// forward pass.
#include "src/models/vgg.h"

#include <vector>

#include "src/core/error.h"
#include "src/nn/activation.h"
#include "src/nn/conv.h"
#include "src/nn/dropout.h"
#include "src/nn/init.h"
#include "src/nn/linear.h"
#include "src/nn/norm.h"
#include "src/nn/pool.h"

namespace lockstep::models {
namespace {

constexpr std::int64_t kPool = 0;  // a max-pooling stage in a configuration list
constexpr std::int64_t kHidden = 512;

// torchvision's cfgs "A" (VGG-11) and "D" (VGG-16): output channels of each 3x3 convolution, kPool for
// each 2x2 max pooling.
std::vector<std::int64_t> configuration(VggDepth depth) {
  if (depth == VggDepth::k11)
    return {64, kPool, 128, kPool, 256, 256, kPool, 512, 512, kPool, 512, 512, kPool};
  return {64, 64, kPool, 128, 128, kPool, 256, 256, 256, kPool, 512, 512, 512, kPool, 512, 512, 512, kPool};
}

}  // namespace

VGG::VGG(VggDepth depth, std::int64_t in_channels, std::int64_t image_size, std::int64_t classes,
         double dropout)
    : Classifier("VGG"),
      depth_(depth),
      in_channels_(in_channels),
      image_size_(image_size),
      dropout_(dropout) {
  LOCKSTEP_CHECK(image_size == 28 || image_size == 32, ValueError,
                 "VGG: expected image_size 28 or 32, but got ", image_size,
                 ". Pad other sizes in the data loader (data.pad_to)");
  LOCKSTEP_CHECK(in_channels > 0 && classes > 0, ValueError,
                 "VGG: expected positive in_channels and classes, but got in_channels=", in_channels,
                 ", classes=", classes);
  LOCKSTEP_CHECK(dropout >= 0.0 && dropout < 1.0, ValueError, "VGG: expected dropout in [0, 1), but got ",
                 dropout);
  features_ = register_module("features", std::make_shared<nn::Sequential>());
  std::int64_t in = in_channels, stage = 0;
  for (const std::int64_t v : configuration(depth)) {
    if (v == kPool) {
      // 28x28: the third stage pools 7x7 with one pixel of padding (never the maximum), windows starting at
      // -1, 1, 3, 5, so every row and column lands in one of 4; all the other stages halve exactly.
      const std::int64_t padding = image_size == 28 && stage == 2 ? 1 : 0;
      features_->push_back(std::make_shared<nn::MaxPool2d>(2, 2, padding));
      ++stage;
      continue;
    }
    auto conv =
        std::make_shared<nn::Conv2d>(nn::Conv2dOptions{.in = in, .out = v, .kernel = 3, .padding = 1});
    nn::kaiming_normal_(conv->weight(), 0.0, nn::FanMode::kFanOut);
    nn::zeros_(conv->bias());
    features_->push_back(conv);
    features_->push_back(std::make_shared<nn::BatchNorm2d>(v));
    features_->push_back(std::make_shared<nn::ReLU>());
    in = v;
  }
  classifier_ = register_module("classifier", std::make_shared<nn::Sequential>());
  const auto linear = [&](std::int64_t out) {
    auto fc = std::make_shared<nn::Linear>(in, out);
    nn::normal_(fc->weight(), 0.0, 0.01);
    nn::zeros_(fc->bias());
    in = out;
    return fc;
  };
  for (int hidden = 0; hidden < 2; ++hidden) {
    classifier_->push_back(std::make_shared<nn::Dropout>(dropout));
    classifier_->push_back(linear(kHidden));
    classifier_->push_back(std::make_shared<nn::ReLU>());
  }
  classifier_->push_back(linear(classes));
}

Tensor VGG::features(const Tensor& input) {
  LOCKSTEP_CHECK(input.dim() == 4 && input.size(1) == in_channels_ && input.size(2) == image_size_ &&
                     input.size(3) == image_size_,
                 ValueError, "VGG::features: expected [N, ", in_channels_, ", ", image_size_, ", ",
                 image_size_, "], but got ", shape_str(input.shape()));
  Tensor x = features_->forward(input).flatten(1);  // [N, 512, 1, 1] -> [N, 512]
  for (std::size_t i = 0; i + 1 < classifier_->size(); ++i) x = classifier_->at(i)->forward(x);
  return x;
}

Tensor VGG::head(const Tensor& features) {
  return classifier_->at(classifier_->size() - 1)->forward(features);
}

std::string VGG::describe() const {
  return str_cat("depth=", depth_ == VggDepth::k11 ? 11 : 16, ", in_channels=", in_channels_,
                 ", image_size=", image_size_, ", dropout=", dropout_);
}

}  // namespace lockstep::models
