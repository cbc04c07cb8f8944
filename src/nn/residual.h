// Residual blocks of the ResNet family: BasicBlock (two 3x3 convolutions; CIFAR ResNets, ResNet-18/34),
// its pre-activation form PreActBlock (He et al. 2016, identity mappings) and Bottleneck (1x1, 3x3, 1x1 with
// expansion 4; ResNet-50), as in He et al. 2016 and torchvision.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "src/nn/container.h"
#include "src/nn/conv.h"
#include "src/nn/module.h"
#include "src/nn/norm.h"

namespace lockstep::nn {

// How a block's shortcut matches a change of shape (stride != 1 or channel change).
enum class Shortcut : std::uint8_t {
  kPadIdentity,  // type A: subsample with the stride and zero-pad the new channels; no parameters
  kProjection,   // type B: 1x1 convolution with the stride, then batch norm
};

// relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)). Owns children conv1 (3x3, stride), bn1, conv2 (3x3),
// bn2, and `shortcut` (Sequential of a 1x1 Conv2d and a BatchNorm2d) only for kProjection when the shape
// changes. kPadIdentity needs out >= in. Not thread-safe.
class BasicBlock : public Module {
 public:
  static constexpr std::int64_t kExpansion = 1;

  BasicBlock(std::int64_t in, std::int64_t out, std::int64_t stride, Shortcut shortcut);

  // x [N, in, H, W] -> [N, out, ceil(H / stride), ceil(W / stride)].
  Tensor forward(const Tensor& input) override;

  std::int64_t in_channels() const { return in_; }
  std::int64_t out_channels() const { return out_; }

 protected:
  std::string describe() const override;

 private:
  std::int64_t in_;
  std::int64_t out_;
  std::int64_t stride_;
  Shortcut shortcut_kind_;
  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::shared_ptr<Conv2d> conv2_;
  std::shared_ptr<BatchNorm2d> bn2_;
  std::shared_ptr<Sequential> shortcut_;  // null unless a projection is needed
};

// The pre-activation ("identity mapping") block of He et al. 2016b:
//   y = conv2(relu(bn2(conv1(relu(bn1(x)))))) + shortcut,
// with nothing after the addition, so the identity path runs unchanged from block to block. Owns children
// bn1 (over `in` channels), conv1 (3x3, stride), bn2, conv2 (3x3), and `shortcut` (a 1x1 Conv2d with the
// stride, no batch norm) only for kProjection when the shape changes; the projection reads the pre-activated
// relu(bn1(x)) as in the paper's code, the parameter-free kPadIdentity shortcut reads x. Not thread-safe.
class PreActBlock : public Module {
 public:
  static constexpr std::int64_t kExpansion = 1;

  PreActBlock(std::int64_t in, std::int64_t out, std::int64_t stride, Shortcut shortcut);

  // x [N, in, H, W] -> [N, out, ceil(H / stride), ceil(W / stride)].
  Tensor forward(const Tensor& input) override;

  std::int64_t in_channels() const { return in_; }
  std::int64_t out_channels() const { return out_; }

 protected:
  std::string describe() const override;

 private:
  std::int64_t in_;
  std::int64_t out_;
  std::int64_t stride_;
  Shortcut shortcut_kind_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<BatchNorm2d> bn2_;
  std::shared_ptr<Conv2d> conv2_;
  std::shared_ptr<Conv2d> shortcut_;  // null unless a projection is needed
};

// relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x)) with conv1 1x1 in -> planes, conv2
// 3x3 planes -> planes with the stride, conv3 1x1 planes -> 4 * planes, and `shortcut` (1x1 Conv2d with the
// stride + BatchNorm2d) when stride != 1 or in != 4 * planes. Owns those children. Not thread-safe.
class Bottleneck : public Module {
 public:
  static constexpr std::int64_t kExpansion = 4;

  Bottleneck(std::int64_t in, std::int64_t planes, std::int64_t stride);

  // x [N, in, H, W] -> [N, 4 * planes, ceil(H / stride), ceil(W / stride)].
  Tensor forward(const Tensor& input) override;

  std::int64_t in_channels() const { return in_; }
  std::int64_t out_channels() const { return kExpansion * planes_; }

 protected:
  std::string describe() const override;

 private:
  std::int64_t in_;
  std::int64_t planes_;
  std::int64_t stride_;
  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::shared_ptr<Conv2d> conv2_;
  std::shared_ptr<BatchNorm2d> bn2_;
  std::shared_ptr<Conv2d> conv3_;
  std::shared_ptr<BatchNorm2d> bn3_;
  std::shared_ptr<Sequential> shortcut_;  // null when the identity fits
};

}  // namespace lockstep::nn
