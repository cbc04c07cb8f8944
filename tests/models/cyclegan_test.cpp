// Tests of CycleGAN's networks: parameter counts against hand counts (which equal the figures the authors'
// code prints), reference-compatible names, output shapes and patch maps, the residual skip, N(0, 0.02)
// initialisation, f64 gradient checks of tiny instances, and input errors.
#include "src/models/cyclegan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "src/autograd/grad_mode.h"
#include "src/models/dcgan.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"
#include "tests/support/gradcheck.h"

namespace lockstep::models {
namespace {

using test::expect_error;

std::map<std::string, Tensor> params_by_name(const nn::Module& m) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : m.named_parameters()) out.emplace(name, t);
  return out;
}

Shape parameter_shape(const nn::Module& m, const std::string& name) {
  const auto all = params_by_name(m);
  const auto it = all.find(name);
  return it == all.end() ? Shape{} : it->second.shape();
}

// Weights and bias of a k x k convolution (plain or transposed) from `in` to `out` channels.
std::int64_t conv_count(std::int64_t in, std::int64_t out, std::int64_t k) { return k * k * in * out + out; }

TEST(CycleGANParameterCounts, MatchHandCounts) {
  // Generator: 7x7 in, two 3x3 downsamplings, blocks of two 3x3 convs at 4w, two 3x3 upsamplings, 7x7 out.
  const auto generator = [](std::int64_t c, std::int64_t w, std::int64_t blocks) {
    return conv_count(c, w, 7) + conv_count(w, 2 * w, 3) + conv_count(2 * w, 4 * w, 3) +
           blocks * 2 * conv_count(4 * w, 4 * w, 3) + conv_count(4 * w, 2 * w, 3) + conv_count(2 * w, w, 3) +
           conv_count(w, c, 7);
  };
  EXPECT_EQ(generator(1, 32, 6), 1958785);
  EXPECT_EQ(CycleGANGenerator({.channels = 1, .width = 32, .residual_blocks = 6}).num_parameters(), 1958785);
  // The paper's 256x256 generator: the authors' code prints "11.378 M" for it.
  EXPECT_EQ(generator(3, 64, 9), 11378179);
  EXPECT_EQ(CycleGANGenerator({.channels = 3, .width = 64, .residual_blocks = 9}).num_parameters(), 11378179);
  EXPECT_EQ(CycleGANGenerator({.channels = 1, .width = 4, .residual_blocks = 0}).num_parameters(),
            generator(1, 4, 0));

  // PatchGAN with 2 stride-2 stages: 4x4 convs 1->64 (s2), 64->128 (s2), 128->256 (s1), 256->1 (s1).
  const std::int64_t d2 =
      conv_count(1, 64, 4) + conv_count(64, 128, 4) + conv_count(128, 256, 4) + conv_count(256, 1, 4);
  EXPECT_EQ(d2, 660929);
  EXPECT_EQ(PatchGANDiscriminator({.channels = 1, .width = 64, .layers = 2}).num_parameters(), 660929);
  // The reference's 70x70 PatchGAN (3 stages, RGB): "2.765 M" in the authors' log.
  const std::int64_t d3 = conv_count(3, 64, 4) + conv_count(64, 128, 4) + conv_count(128, 256, 4) +
                          conv_count(256, 512, 4) + conv_count(512, 1, 4);
  EXPECT_EQ(d3, 2764737);
  EXPECT_EQ(PatchGANDiscriminator({.channels = 3, .width = 64, .layers = 3}).num_parameters(), 2764737);
  // Channels stop growing at 8 * width.
  const std::int64_t d5 = conv_count(1, 2, 4) + conv_count(2, 4, 4) + conv_count(4, 8, 4) +
                          conv_count(8, 16, 4) + conv_count(16, 16, 4) + conv_count(16, 16, 4) +
                          conv_count(16, 1, 4);
  EXPECT_EQ(PatchGANDiscriminator({.channels = 1, .width = 2, .layers = 5}).num_parameters(), d5);
}

TEST(CycleGANNames, FollowTheReferenceLayout) {
  // Sequential indices count pads, norms and activations: 0 pad, 1 conv, 2 IN, 3 ReLU, 4-9 downsampling,
  // 10-15 residual blocks, 16-21 upsampling, 22 pad, 23 conv, 24 Tanh.
  const CycleGANGenerator g({.channels = 1, .width = 32, .residual_blocks = 6});
  EXPECT_EQ(g.named_parameters().size(), 2u * (1 + 2 + 6 * 2 + 2 + 1));
  EXPECT_TRUE(g.named_buffers().empty());  // instance norm keeps no running statistics
  EXPECT_EQ(parameter_shape(g, "model.1.weight"), (Shape{32, 1, 7, 7}));
  EXPECT_EQ(parameter_shape(g, "model.7.weight"), (Shape{128, 64, 3, 3}));
  EXPECT_EQ(parameter_shape(g, "model.10.conv_block.1.weight"), (Shape{128, 128, 3, 3}));
  EXPECT_EQ(parameter_shape(g, "model.15.conv_block.5.bias"), (Shape{128}));
  EXPECT_EQ(parameter_shape(g, "model.16.weight"),
            (Shape{128, 64, 3, 3}));  // ConvTranspose2d [in, out, k, k]
  EXPECT_EQ(parameter_shape(g, "model.23.weight"), (Shape{1, 32, 7, 7}));

  const PatchGANDiscriminator d({.channels = 1, .width = 64, .layers = 2});
  EXPECT_EQ(d.named_parameters().size(), 8u);
  EXPECT_EQ(parameter_shape(d, "model.0.weight"), (Shape{64, 1, 4, 4}));
  EXPECT_EQ(parameter_shape(d, "model.2.weight"), (Shape{128, 64, 4, 4}));
  EXPECT_EQ(parameter_shape(d, "model.5.weight"), (Shape{256, 128, 4, 4}));
  EXPECT_EQ(parameter_shape(d, "model.8.weight"), (Shape{1, 256, 4, 4}));
}

TEST(CycleGANForward, ShapesRangesAndPatchMaps) {
  NoGradGuard no_grad;
  CycleGANGenerator g({.channels = 1, .width = 8, .residual_blocks = 2});
  dcgan_init_(g);
  const Tensor x = randn({3, 1, 32, 32});
  const Tensor y = g.forward(x);
  ASSERT_EQ(y.shape(), x.shape());
  const auto v = y.to_vector<float>();
  EXPECT_TRUE(std::all_of(v.begin(), v.end(), [](float t) { return t > -1.0f && t < 1.0f; }));
  EXPECT_GT(*std::max_element(v.begin(), v.end()) - *std::min_element(v.begin(), v.end()), 0.01f);
  CycleGANGenerator rgb({.channels = 3, .width = 4, .residual_blocks = 1});
  EXPECT_EQ(rgb.forward(randn({2, 3, 16, 24})).shape(), (Shape{2, 3, 16, 24}));
  EXPECT_EQ(rgb.forward(randn({1, 3, 28, 28})).shape(), (Shape{1, 3, 28, 28}));  // 28 -> 14 -> 7 and back

  // 32 -> 16 -> 8 (stride 2), then 7 and 6 (the stride-1 4x4 convolutions).
  PatchGANDiscriminator d({.channels = 1, .width = 8, .layers = 2});
  EXPECT_EQ(d.forward(y).shape(), (Shape{3, 1, 6, 6}));
  EXPECT_EQ(d.patch_size(32), 6);
  PatchGANDiscriminator d3({.channels = 1, .width = 8, .layers = 3});
  EXPECT_EQ(d3.forward(y).shape(), (Shape{3, 1, 2, 2}));
  EXPECT_EQ(d3.patch_size(32), 2);
  PatchGANDiscriminator d1({.channels = 3, .width = 4, .layers = 1});
  EXPECT_EQ(d1.forward(randn({2, 3, 16, 20})).shape(), (Shape{2, 1, 6, 8}));
}

TEST(CycleGANForward, ResidualBlockWithZeroConvolutionsIsTheIdentity) {
  NoGradGuard no_grad;
  CycleGANResidualBlock block(3);
  for (const Tensor& p : block.parameters()) Tensor(p).fill_(0.0);
  // Zero weights leave each conv's bias (0 here, and cancelled by instance norm anyway): the skip alone.
  const Tensor x = randn({2, 3, 4, 4});
  EXPECT_EQ(block.forward(x).to_vector<float>(), x.to_vector<float>());
  // With its weights drawn, the block adds a non-zero residual.
  dcgan_init_(block);
  const auto y = block.forward(x).to_vector<float>(), xs = x.to_vector<float>();
  double diff = 0.0;
  for (std::size_t i = 0; i < y.size(); ++i) diff += std::fabs(y[i] - xs[i]);
  EXPECT_GT(diff, 1e-3);
}

TEST(CycleGANInit, DcganInitDrawsConvolutionWeightsFromN0002) {
  CycleGANGenerator g({.channels = 1, .width = 32, .residual_blocks = 6});
  Generator gen(7);
  dcgan_init_(g, &gen);
  const auto p = params_by_name(g);
  for (const char* name : {"model.10.conv_block.1.weight", "model.16.weight"}) {
    const auto w = p.at(name).to_vector<float>();
    double m = 0.0, s = 0.0;
    for (float t : w) m += t;
    m /= static_cast<double>(w.size());
    for (float t : w) s += (t - m) * (t - m);
    s = std::sqrt(s / static_cast<double>(w.size()));
    EXPECT_NEAR(m, 0.0, 0.002) << name;
    EXPECT_NEAR(s, 0.02, 0.001) << name;
  }
  for (const char* name : {"model.1.bias", "model.23.bias"})
    for (float t : p.at(name).to_vector<float>()) EXPECT_EQ(t, 0.0f) << name;
}

// d/dx and d/dparameters of `module` in f64 for the named parameters (the others stay fixed).
void expect_gradients(nn::Module& module, const Shape& input_shape, const std::vector<std::string>& names) {
  module.to(DType::f64);
  Generator gen(3);
  dcgan_init_(module, &gen);
  const auto all = params_by_name(module);
  std::vector<Tensor> params, originals;
  for (const auto& name : names) {
    params.push_back(all.at(name));
    // Larger weights than N(0, 0.02), so that every layer's contribution is well above rounding.
    NoGradGuard no_grad;
    params.back().mul_(20.0);
    originals.push_back(params.back().detach().clone());
  }
  Tensor x = randn(input_shape, 0.0, 1.0, DType::f64, kCPU, &gen);
  x.requires_grad_(true);
  std::vector<Tensor> inputs{x};
  inputs.insert(inputs.end(), params.begin(), params.end());
  const auto fn = [&](const std::vector<Tensor>& xs) {
    {
      NoGradGuard no_grad;
      for (std::size_t k = 0; k < params.size(); ++k)
        params[k].copy_(xs[k + 1].same(params[k]) ? originals[k] : xs[k + 1]);
    }
    return module.forward(xs[0]);
  };
  const test::GradcheckResult r = test::gradcheck(fn, inputs, 1e-5, 1e-6);
  EXPECT_TRUE(r.ok) << module.type_name() << ": " << r.message;
}

TEST(CycleGANGradient, TinyGeneratorMatchesFiniteDifferencesInF64) {
  CycleGANGenerator g({.channels = 1, .width = 2, .residual_blocks = 1});
  expect_gradients(g, {1, 1, 8, 8},
                   {"model.1.weight", "model.4.weight", "model.10.conv_block.5.weight", "model.11.weight",
                    "model.18.bias"});
}

TEST(CycleGANGradient, TinyPatchGANMatchesFiniteDifferencesInF64) {
  PatchGANDiscriminator d({.channels = 1, .width = 2, .layers = 2});
  expect_gradients(d, {1, 1, 12, 12}, {"model.0.weight", "model.5.weight", "model.8.weight", "model.8.bias"});
}

TEST(CycleGANErrors, BadOptionsAndInputsNameTheProblem) {
  expect_error<ValueError>([] { CycleGANGenerator({.channels = 1, .width = 0}); }, {"width=0"});
  expect_error<ValueError>([] { PatchGANDiscriminator({.layers = 0}); }, {"layers=0"});
  NoGradGuard no_grad;
  CycleGANGenerator g({.channels = 1, .width = 2, .residual_blocks = 1});
  expect_error<ValueError>([&] { g.forward(zeros({2, 1, 30, 30})); }, {"multiples of 4", "[2, 1, 30, 30]"});
  expect_error<ValueError>([&] { g.forward(zeros({2, 3, 32, 32})); }, {"[N, 1, H, W]", "[2, 3, 32, 32]"});
  PatchGANDiscriminator d({.channels = 1, .width = 2, .layers = 3});
  expect_error<ValueError>([&] { d.forward(zeros({2, 1, 16, 16})); }, {"H, W >= 24", "[2, 1, 16, 16]"});
  EXPECT_EQ(d.forward(zeros({2, 1, 24, 24})).shape(), (Shape{2, 1, 1, 1}));
}

}  // namespace
}  // namespace lockstep::models
