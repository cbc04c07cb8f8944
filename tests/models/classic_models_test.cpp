// The classic toolkit's models: VGG-11/16 parameter counts against a count by formula from torchvision's
// published layer definitions (the formula itself checked against torchvision's documented totals),
// torchvision's parameter names, shapes at 28x28 and 32x32; pre-activation ResNets' counts by formula, and a
// pre-activation ResNet that learns.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "src/autograd/grad_mode.h"
#include "src/models/resnet.h"
#include "src/models/vgg.h"
#include "src/ops/loss.h"
#include "src/optim/sgd.h"
#include "src/tensor/factories.h"

namespace lockstep::models {
namespace {

constexpr std::int64_t M = 0;  // a max-pooling entry

// torchvision.models.vgg cfgs["A"] (vgg11) and cfgs["D"] (vgg16), copied from its published source.
const std::vector<std::int64_t> kCfgA = {64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M};
const std::vector<std::int64_t> kCfgD = {64, 64,  M,   128, 128, M,   256, 256, 256,
                                         M,  512, 512, 512, M,   512, 512, 512, M};

// torchvision's make_layers(cfg, batch_norm=True): Conv2d(in, v, 3, padding=1) (weight and bias), then
// BatchNorm2d(v) (weight and bias), for every v.
std::int64_t features_by_formula(const std::vector<std::int64_t>& cfg, std::int64_t in) {
  std::int64_t n = 0;
  for (const std::int64_t v : cfg) {
    if (v == M) continue;
    n += in * v * 9 + v + 2 * v;
    in = v;
  }
  return n;
}

std::int64_t linear_by_formula(std::int64_t in, std::int64_t out) { return in * out + out; }

TEST(VggParameterCounts, TheFormulaGivesTorchvisionsDocumentedTotals) {
  // torchvision's classifier for 224x224 ImageNet: Linear(512*7*7, 4096), Linear(4096, 4096), Linear(4096,
  // 1000). Its documentation lists vgg11_bn at 132,868,840 and vgg16_bn at 138,365,992 parameters.
  const std::int64_t imagenet_head =
      linear_by_formula(512 * 7 * 7, 4096) + linear_by_formula(4096, 4096) + linear_by_formula(4096, 1000);
  EXPECT_EQ(features_by_formula(kCfgA, 3) + imagenet_head, 132868840);
  EXPECT_EQ(features_by_formula(kCfgD, 3) + imagenet_head, 138365992);
}

TEST(VggParameterCounts, FeaturesMatchTorchvisionAndTheHeadIsTheSmallOne) {
  const std::int64_t head = linear_by_formula(512, 512) * 2 + linear_by_formula(512, 10);
  for (const std::int64_t in : {1, 3}) {
    for (const std::int64_t size : {28, 32}) {
      const VGG vgg11(VggDepth::k11, in, size, 10);
      const VGG vgg16(VggDepth::k16, in, size, 10);
      EXPECT_EQ(vgg11.num_parameters(), features_by_formula(kCfgA, in) + head) << in << " " << size;
      EXPECT_EQ(vgg16.num_parameters(), features_by_formula(kCfgD, in) + head) << in << " " << size;
    }
  }
  // The figures of the README (1-channel 28x28, 10 classes), computed offline by torch 1.13 from the same
  // layer list: 9,755,274 and 15,252,426.
  EXPECT_EQ(VGG(VggDepth::k11, 1, 28, 10).num_parameters(), 9755274);
  EXPECT_EQ(VGG(VggDepth::k16, 1, 28, 10).num_parameters(), 15252426);
}

TEST(VggNames, FeaturesUseTorchvisionsIndices) {
  std::map<std::string, Shape> shapes;
  const VGG vgg(VggDepth::k16, 3, 32, 10);
  for (const auto& [name, t] : vgg.named_parameters()) shapes.emplace(name, t.shape());
  // torchvision's vgg16_bn: conv at 3k (+ one index per max-pool before it), bn right after, ReLU after that.
  std::int64_t index = 0, in = 3;
  for (const std::int64_t v : kCfgD) {
    if (v == M) {
      ++index;
      continue;
    }
    const std::string conv = "features." + std::to_string(index),
                      bn = "features." + std::to_string(index + 1);
    EXPECT_EQ(shapes[conv + ".weight"], (Shape{v, in, 3, 3})) << conv;
    EXPECT_EQ(shapes[conv + ".bias"], (Shape{v})) << conv;
    EXPECT_EQ(shapes[bn + ".weight"], (Shape{v})) << bn;
    index += 3;
    in = v;
  }
  EXPECT_EQ(index, 44);  // torchvision's vgg16_bn features end at index 43 (the last max-pool)
  EXPECT_EQ(shapes["classifier.1.weight"], (Shape{512, 512}));
  EXPECT_EQ(shapes["classifier.4.weight"], (Shape{512, 512}));
  EXPECT_EQ(shapes["classifier.6.weight"], (Shape{10, 512}));
  EXPECT_EQ(shapes.size(), vgg.named_parameters().size());
}

TEST(VggForward, BothImageSizesReachTheHead) {
  NoGradGuard no_grad;
  for (const std::int64_t size : {28, 32}) {
    VGG vgg(VggDepth::k11, 1, size, 7);
    vgg.eval();
    const Tensor x = randn({2, 1, size, size});
    EXPECT_EQ(vgg.features(x).shape(), (Shape{2, 512}));
    EXPECT_EQ(vgg.forward(x).shape(), (Shape{2, 7}));
  }
  VGG vgg(VggDepth::k11, 1, 28, 10);
  EXPECT_THROW(vgg.forward(randn({1, 1, 32, 32})), ValueError);
  EXPECT_THROW(VGG(VggDepth::k11, 1, 64, 10), ValueError);
  EXPECT_THROW(VGG(VggDepth::k11, 1, 28, 10, 1.0), ValueError);
}

// A pre-activation CIFAR ResNet by formula: conv1, then per block bn1 (over its input), conv1, bn2, conv2
// (no bias), a final batch norm, and fc. Type-A shortcuts have no parameters.
std::int64_t preact_cifar_by_formula(std::int64_t depth, std::int64_t in_channels, std::int64_t classes) {
  const std::int64_t blocks = (depth - 2) / 6;
  std::int64_t n = in_channels * 16 * 9, in = 16;
  for (const std::int64_t width : {16, 32, 64}) {
    for (std::int64_t b = 0; b < blocks; ++b) {
      n += 2 * in + in * width * 9 + 2 * width + width * width * 9;
      in = width;
    }
  }
  return n + 2 * 64 + linear_by_formula(64, classes);
}

TEST(PreActResNet, ParameterCountsByFormula) {
  for (const std::int64_t depth : {20, 32, 56})
    EXPECT_EQ(CifarResNet(depth, 3, 10, nn::Shortcut::kPadIdentity, Block::kPreAct).num_parameters(),
              preact_cifar_by_formula(depth, 3, 10));
  // Names: no bn1 after the stem (the first block pre-activates), a final bn_final.
  const CifarResNet net(20, 1, 10, nn::Shortcut::kPadIdentity, Block::kPreAct);
  std::map<std::string, Shape> shapes;
  for (const auto& [name, t] : net.named_parameters()) shapes.emplace(name, t.shape());
  EXPECT_EQ(shapes.count("bn1.weight"), 0u);
  EXPECT_EQ(shapes["layer2.0.bn1.weight"], (Shape{16}));  // over the block's input
  EXPECT_EQ(shapes["layer2.0.bn2.weight"], (Shape{32}));
  EXPECT_EQ(shapes["bn_final.weight"], (Shape{64}));
  // ResNet-18 pre-activation, small stem: projection shortcuts are 1x1 convolutions without batch norm.
  const ResNet r18(18, 3, 10, Stem::kSmall, Block::kPreAct);
  std::map<std::string, Shape> r18_shapes;
  for (const auto& [name, t] : r18.named_parameters()) r18_shapes.emplace(name, t.shape());
  EXPECT_EQ(r18_shapes["layer2.0.shortcut.weight"], (Shape{128, 64, 1, 1}));
  EXPECT_EQ(r18_shapes["bn_final.weight"], (Shape{512}));
  EXPECT_EQ(r18_shapes.count("bn1.weight"), 0u);
  EXPECT_THROW(ResNet(50, 3, 10, Stem::kSmall, Block::kPreAct), ValueError);
}

TEST(PreActResNet, TrainingLowersTheLoss) {
  // Three classes of 8x8 images: a bright 4x4 quadrant (top-left, top-right, bottom-left) under noise.
  Generator gen(5);
  const std::int64_t n = 48;
  Tensor images = randn({n, 1, 8, 8}, 0.0, 0.5, DType::f32, kCPU, &gen);
  std::vector<std::int64_t> labels(static_cast<std::size_t>(n));
  {
    float* x = images.data<float>();
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t k = i % 3;
      labels[static_cast<std::size_t>(i)] = k;
      const std::int64_t top = k == 2 ? 4 : 0, left = k == 1 ? 4 : 0;
      for (std::int64_t y = top; y < top + 4; ++y)
        for (std::int64_t c = left; c < left + 4; ++c) x[i * 64 + y * 8 + c] += 1.5f;
    }
  }
  const Tensor target = from_vector(labels, {n});
  manual_seed(3);
  CifarResNet net(8, 1, 3, nn::Shortcut::kPadIdentity, Block::kPreAct);
  optim::SGD sgd(net.named_parameters(), {.lr = 0.05, .momentum = 0.9});
  double first = 0.0, last = 0.0;
  for (int step = 0; step < 30; ++step) {
    Tensor loss = cross_entropy(net.forward(images), target);
    sgd.zero_grad();
    loss.backward();
    sgd.step();
    (step == 0 ? first : last) = loss.item();
  }
  EXPECT_GT(first, 0.9);  // about log 3 at the start
  EXPECT_LT(last, 0.25 * first) << "first " << first << ", last " << last;
}

}  // namespace
}  // namespace lockstep::models
