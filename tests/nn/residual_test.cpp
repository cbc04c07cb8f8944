// Residual blocks: shapes, parameter layout of both shortcut kinds, the type-A shortcut's values, and the
// Bottleneck expansion.
#include "src/nn/residual.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "src/autograd/grad_mode.h"
#include "src/ops/elementwise.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"

namespace lockstep::nn {
namespace {

using test::expect_error;

std::vector<std::string> child_names(const Module& m) {
  std::vector<std::string> out;
  for (const auto& [name, child] : m.named_children()) out.push_back(name);
  return out;
}

TEST(BasicBlock, PadIdentityDoublesChannelsHalvesSizeAndAddsNoParameters) {
  BasicBlock block(16, 32, 2, Shortcut::kPadIdentity);
  EXPECT_EQ(child_names(block), (std::vector<std::string>{"conv1", "bn1", "conv2", "bn2"}));
  EXPECT_EQ(block.num_parameters(), 16 * 32 * 9 + 2 * 32 + 32 * 32 * 9 + 2 * 32);
  EXPECT_EQ(block.forward(randn({2, 16, 8, 8})).shape(), (Shape{2, 32, 4, 4}));
  EXPECT_EQ(block.forward(randn({1, 16, 7, 7})).shape(), (Shape{1, 32, 4, 4}));
}

TEST(BasicBlock, PadIdentityShortcutSubsamplesAndZeroPadsChannelsOnBothSides) {
  BasicBlock block(2, 6, 2, Shortcut::kPadIdentity);
  {
    // With zero convolutions the residual branch is bn(0) = 0, so the output is relu(shortcut(x)).
    NoGradGuard no_grad;
    for (const auto& [name, p] : block.named_parameters()) {
      if (name.find("conv") != std::string::npos) Tensor(p).zero_();
    }
  }
  const Tensor x = arange(32, DType::f32).reshape({1, 2, 4, 4}) - 10.0;
  const std::vector<float> y = block.forward(x).to_vector<float>();
  ASSERT_EQ(y.size(), 6u * 4u);
  // Channels 0, 1 and 4, 5 are the zero padding; channels 2, 3 hold relu(x[:, c, ::2, ::2]).
  const std::vector<float> want{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 8, 14, 16, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(y, want);
}

TEST(BasicBlock, ProjectionAddsA1x1ConvAndBatchNormOnlyWhenTheShapeChanges) {
  BasicBlock down(16, 32, 2, Shortcut::kProjection);
  EXPECT_EQ(child_names(down), (std::vector<std::string>{"conv1", "bn1", "conv2", "bn2", "shortcut"}));
  const StateDict state = down.state_dict();
  EXPECT_EQ(state.at("shortcut.0.weight").shape(), (Shape{32, 16, 1, 1}));
  EXPECT_TRUE(state.contains("shortcut.1.running_var"));
  EXPECT_EQ(down.num_parameters(), 16 * 32 * 9 + 64 + 32 * 32 * 9 + 64 + 16 * 32 + 64);
  EXPECT_EQ(down.forward(randn({2, 16, 8, 8})).shape(), (Shape{2, 32, 4, 4}));
  BasicBlock same(8, 8, 1, Shortcut::kProjection);
  EXPECT_EQ(child_names(same), (std::vector<std::string>{"conv1", "bn1", "conv2", "bn2"}));
  // Output after the final ReLU is never negative.
  for (float v : same.forward(randn({2, 8, 5, 5})).to_vector<float>()) EXPECT_GE(v, 0.0f);
}

TEST(BasicBlock, RejectsBadGeometryAndInputs) {
  expect_error<ValueError>([] { BasicBlock(8, 4, 1, Shortcut::kPadIdentity); },
                           {"BasicBlock", "out >= in", "in=8, out=4"});
  expect_error<ValueError>([] { BasicBlock(8, 8, 0, Shortcut::kProjection); }, {"BasicBlock", "stride=0"});
  BasicBlock block(4, 4, 1, Shortcut::kPadIdentity);
  expect_error<ValueError>(
      [&] {
        block.forward(randn({1, 3, 4, 4}));
      },
      {"BasicBlock::forward", "[N, 4, H, W]", "[1, 3, 4, 4]"});
}

TEST(Bottleneck, ExpandsFourTimesWithTorchvisionNames) {
  Bottleneck block(64, 32, 2);
  EXPECT_EQ(block.out_channels(), 128);
  EXPECT_EQ(child_names(block),
            (std::vector<std::string>{"conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "shortcut"}));
  const StateDict state = block.state_dict();
  EXPECT_EQ(state.at("conv1.weight").shape(), (Shape{32, 64, 1, 1}));
  EXPECT_EQ(state.at("conv2.weight").shape(), (Shape{32, 32, 3, 3}));
  EXPECT_EQ(state.at("conv3.weight").shape(), (Shape{128, 32, 1, 1}));
  EXPECT_EQ(state.at("shortcut.0.weight").shape(), (Shape{128, 64, 1, 1}));
  EXPECT_EQ(block.forward(randn({1, 64, 7, 7})).shape(), (Shape{1, 128, 4, 4}));
  Bottleneck identity(128, 32, 1);
  EXPECT_EQ(child_names(identity),
            (std::vector<std::string>{"conv1", "bn1", "conv2", "bn2", "conv3", "bn3"}));
  EXPECT_NE(block.summary().find("Bottleneck(in=64, planes=32, out=128, stride=2)"), std::string::npos);
}

}  // namespace
}  // namespace lockstep::nn
