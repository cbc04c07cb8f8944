// The ResNet family (He et al. 2016): CifarResNet (depth 6n + 2, three stages of basic blocks with 16/32/64
// channels: ResNet-20/32/56/110) and the ImageNet-style ResNet-18/34/50 (torchvision's layout and names);
// either with the original (post-activation) blocks or the pre-activation blocks of He et al. 2016b.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "src/models/classifier.h"
#include "src/nn/container.h"
#include "src/nn/conv.h"
#include "src/nn/linear.h"
#include "src/nn/norm.h"
#include "src/nn/residual.h"

namespace lockstep::models {

// The first layers of an ImageNet-style ResNet.
enum class Stem : std::uint8_t {
  kSmall,     // 3x3 convolution, stride 1, no max-pool: for 28 or 32 pixel images
  kImageNet,  // 7x7 convolution, stride 2, then 3x3 max-pool with stride 2
};

// Which residual block the stages are built of.
enum class Block : std::uint8_t {
  kBasic,   // nn::BasicBlock (Bottleneck for ResNet-50): relu(F(x) + shortcut), batch norm after convolutions
  kPreAct,  // nn::PreActBlock: F(x) + shortcut with F = conv(relu(bn(conv(relu(bn(x)))))); the network then
            // has no batch norm after conv1 (except the ImageNet stem's) and a final bn_final + ReLU before
            // pooling
};

// Owns conv1 (3x3, 16, no bias), bn1 (kBasic) or bn_final (kPreAct), layer1..layer3 (Sequential of n
// BasicBlocks with 16, 32, 64 channels, stride 2 entering layer2 and layer3) and fc (64 -> classes). Global
// average pooling before fc, so any input of at least 1 pixel works (28x28 and 32x32 alike). Conv weights
// Kaiming-normal (fan out, ReLU) as in torchvision. Not thread-safe.
class CifarResNet : public Classifier {
 public:
  // depth = 6n + 2 with n >= 1 (20, 32, 56, 110 are the paper's).
  CifarResNet(std::int64_t depth, std::int64_t in_channels, std::int64_t classes,
              nn::Shortcut shortcut = nn::Shortcut::kPadIdentity, Block block = Block::kBasic);
  // forward: x [N, in_channels, H, W] -> logits [N, classes].
  // x -> globally pooled layer3 output [N, 64].
  Tensor features(const Tensor& x) override;
  Tensor head(const Tensor& features) override;

 protected:
  std::string describe() const override;

 private:
  std::int64_t depth_;
  std::int64_t in_channels_;
  Block block_;
  std::shared_ptr<nn::Conv2d> conv1_;
  std::shared_ptr<nn::BatchNorm2d> bn1_;       // kBasic
  std::shared_ptr<nn::BatchNorm2d> bn_final_;  // kPreAct
  std::shared_ptr<nn::Sequential> layer1_;
  std::shared_ptr<nn::Sequential> layer2_;
  std::shared_ptr<nn::Sequential> layer3_;
  std::shared_ptr<nn::Linear> fc_;
};

// torchvision's ResNet-18/34 (BasicBlock, projection shortcuts) and ResNet-50 (Bottleneck). Owns conv1, bn1,
// layer1..layer4 (64, 128, 256, 512 planes; stride 2 entering layer2..4) and fc (512 * expansion ->
// classes); the stem picks conv1's geometry and the max-pool. Block::kPreAct (ResNet-18/34 only) builds the
// stages of PreActBlocks with projection shortcuts, keeps bn1 only for the ImageNet stem, and adds bn_final.
// Conv weights Kaiming-normal (fan out, ReLU). Not thread-safe.
class ResNet : public Classifier {
 public:
  ResNet(std::int64_t depth, std::int64_t in_channels, std::int64_t classes, Stem stem = Stem::kImageNet,
         Block block = Block::kBasic);
  // forward: x [N, in_channels, H, W] -> logits [N, classes].
  // x -> globally pooled layer4 output [N, 512 * expansion].
  Tensor features(const Tensor& x) override;
  Tensor head(const Tensor& features) override;

 protected:
  std::string describe() const override;

 private:
  std::int64_t depth_;
  std::int64_t in_channels_;
  Stem stem_;
  Block block_;
  std::shared_ptr<nn::Conv2d> conv1_;
  std::shared_ptr<nn::BatchNorm2d> bn1_;       // null for kPreAct with the small stem
  std::shared_ptr<nn::BatchNorm2d> bn_final_;  // kPreAct
  std::array<std::shared_ptr<nn::Sequential>, 4> layers_;
  std::shared_ptr<nn::Linear> fc_;
};

}  // namespace lockstep::models
