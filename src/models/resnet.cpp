// CifarResNet and ResNet: stage construction, torchvision's initialisation, and the forward passes.
#include "src/models/resnet.h"

#include <array>

#include "src/core/error.h"
#include "src/nn/init.h"
#include "src/ops/activation.h"
#include "src/ops/pool.h"

namespace lockstep::models {
namespace {

// Kaiming-normal (fan out, ReLU) for every convolution below `model`, as torchvision's ResNet does; batch
// norm keeps weight 1, bias 0 and the Linear keeps PyTorch's default.
void init_convolutions(const nn::Module& model) {
  for (const auto& [name, module] : model.named_modules()) {
    if (const auto conv = std::dynamic_pointer_cast<nn::Conv2d>(module)) {
      nn::kaiming_normal_(conv->weight(), 0.0, nn::FanMode::kFanOut);
    }
  }
}

void check_input(const char* where, const Tensor& input, std::int64_t channels) {
  LOCKSTEP_CHECK(input.dim() == 4 && input.size(1) == channels, ValueError, where, ": expected [N, ",
                 channels, ", H, W], but got ", shape_str(input.shape()));
}

}  // namespace

CifarResNet::CifarResNet(std::int64_t depth, std::int64_t in_channels, std::int64_t classes,
                         nn::Shortcut shortcut, Block block)
    : Classifier("CifarResNet"), depth_(depth), in_channels_(in_channels), block_(block) {
  LOCKSTEP_CHECK(depth >= 8 && (depth - 2) % 6 == 0, ValueError,
                 "CifarResNet: expected depth = 6n + 2 (20, 32, 56, 110, ...), but got ", depth);
  LOCKSTEP_CHECK(in_channels > 0 && classes > 0, ValueError,
                 "CifarResNet: expected positive in_channels and classes, but got in_channels=", in_channels,
                 ", classes=", classes);
  const std::int64_t blocks = (depth - 2) / 6;
  conv1_ = register_module("conv1", std::make_shared<nn::Conv2d>(nn::Conv2dOptions{
                                        .in = in_channels,
                                        .out = 16,
                                        .kernel = 3,
                                        .padding = 1,
                                        .bias = nn::Bias::kNo,
                                    }));
  if (block == Block::kBasic) bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d>(16));
  const std::array<std::int64_t, 3> widths = {16, 32, 64};
  std::array<std::shared_ptr<nn::Sequential>, 3> stages;
  std::int64_t in = 16;
  for (std::size_t s = 0; s < stages.size(); ++s) {
    stages[s] = std::make_shared<nn::Sequential>();
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::int64_t stride = (b == 0 && s > 0) ? 2 : 1;
      if (block == Block::kPreAct) {
        stages[s]->push_back(std::make_shared<nn::PreActBlock>(in, widths[s], stride, shortcut));
      } else {
        stages[s]->push_back(std::make_shared<nn::BasicBlock>(in, widths[s], stride, shortcut));
      }
      in = widths[s];
    }
  }
  layer1_ = register_module("layer1", stages[0]);
  layer2_ = register_module("layer2", stages[1]);
  layer3_ = register_module("layer3", stages[2]);
  if (block == Block::kPreAct) bn_final_ = register_module("bn_final", std::make_shared<nn::BatchNorm2d>(64));
  fc_ = register_module("fc", std::make_shared<nn::Linear>(64, classes));
  init_convolutions(*this);
}

Tensor CifarResNet::features(const Tensor& input) {
  check_input("CifarResNet::features", input, in_channels_);
  Tensor x = conv1_->forward(input);
  if (bn1_) x = bn1_->forward(x, then_relu());
  x = layer3_->forward(layer2_->forward(layer1_->forward(x)));
  if (bn_final_) x = bn_final_->forward(x, then_relu());
  return global_avg_pool2d(x).flatten(1);
}

Tensor CifarResNet::head(const Tensor& features) { return fc_->forward(features); }

std::string CifarResNet::describe() const {
  return "depth=" + std::to_string(depth_) + (block_ == Block::kPreAct ? ", block=preact" : "");
}

ResNet::ResNet(std::int64_t depth, std::int64_t in_channels, std::int64_t classes, Stem stem, Block block)
    : Classifier("ResNet"), depth_(depth), in_channels_(in_channels), stem_(stem), block_(block) {
  LOCKSTEP_CHECK(depth == 18 || depth == 34 || depth == 50, ValueError,
                 "ResNet: expected depth 18, 34 or 50, but got ", depth,
                 ". CifarResNet covers depths 20, 32, 56 and 110.");
  LOCKSTEP_CHECK(in_channels > 0 && classes > 0, ValueError,
                 "ResNet: expected positive in_channels and classes, but got in_channels=", in_channels,
                 ", classes=", classes);
  LOCKSTEP_CHECK(
      block == Block::kBasic || depth != 50, ValueError,
      "ResNet: expected depth 18 or 34 with pre-activation blocks, but got depth 50 (its bottleneck "
      "blocks have no pre-activation form here)");
  const std::array<std::int64_t, 4> blocks =
      depth == 18 ? std::array<std::int64_t, 4>{2, 2, 2, 2} : std::array<std::int64_t, 4>{3, 4, 6, 3};
  const bool bottleneck = depth == 50;
  const nn::Conv2dOptions stem_conv =
      stem == Stem::kImageNet
          ? nn::Conv2dOptions{.in = in_channels,
                              .out = 64,
                              .kernel = 7,
                              .stride = 2,
                              .padding = 3,
                              .bias = nn::Bias::kNo}
          : nn::Conv2dOptions{.in = in_channels, .out = 64, .kernel = 3, .padding = 1, .bias = nn::Bias::kNo};
  conv1_ = register_module("conv1", std::make_shared<nn::Conv2d>(stem_conv));
  if (block == Block::kBasic || stem == Stem::kImageNet)
    bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d>(64));
  std::int64_t in = 64;
  for (std::size_t s = 0; s < blocks.size(); ++s) {
    const std::int64_t planes = std::int64_t{64} << s;
    auto stage = std::make_shared<nn::Sequential>();
    for (std::int64_t b = 0; b < blocks[s]; ++b) {
      const std::int64_t stride = (b == 0 && s > 0) ? 2 : 1;
      if (bottleneck) {
        stage->push_back(std::make_shared<nn::Bottleneck>(in, planes, stride));
        in = planes * nn::Bottleneck::kExpansion;
      } else if (block == Block::kPreAct) {
        stage->push_back(std::make_shared<nn::PreActBlock>(in, planes, stride, nn::Shortcut::kProjection));
        in = planes;
      } else {
        stage->push_back(std::make_shared<nn::BasicBlock>(in, planes, stride, nn::Shortcut::kProjection));
        in = planes;
      }
    }
    layers_[s] = register_module("layer" + std::to_string(s + 1), stage);
  }
  if (block == Block::kPreAct) bn_final_ = register_module("bn_final", std::make_shared<nn::BatchNorm2d>(in));
  fc_ = register_module("fc", std::make_shared<nn::Linear>(in, classes));
  init_convolutions(*this);
}

Tensor ResNet::features(const Tensor& input) {
  check_input("ResNet::features", input, in_channels_);
  Tensor x = conv1_->forward(input);
  if (bn1_) x = bn1_->forward(x, then_relu());
  if (stem_ == Stem::kImageNet) x = max_pool2d(x, {3, 3}, {2, 2}, {1, 1}).values;
  for (const auto& stage : layers_) x = stage->forward(x);
  if (bn_final_) x = bn_final_->forward(x, then_relu());
  return global_avg_pool2d(x).flatten(1);
}

Tensor ResNet::head(const Tensor& features) { return fc_->forward(features); }

std::string ResNet::describe() const {
  return "depth=" + std::to_string(depth_) + (stem_ == Stem::kImageNet ? ", stem=imagenet" : ", stem=small") +
         (block_ == Block::kPreAct ? ", block=preact" : "");
}

}  // namespace lockstep::models
