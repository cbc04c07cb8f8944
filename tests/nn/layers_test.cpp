// Layer forwards against hand computation: Linear, BatchNorm running statistics (train then eval),
// BatchNorm1d shapes, InstanceNorm2d, Dropout modes, pooling, upsampling, flatten, embedding, activations,
// conv shapes, and the typed errors of bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "src/autograd/grad_mode.h"
#include "src/nn/activation.h"
#include "src/nn/container.h"
#include "src/nn/conv.h"
#include "src/nn/dropout.h"
#include "src/nn/embedding.h"
#include "src/nn/linear.h"
#include "src/nn/norm.h"
#include "src/nn/pool.h"
#include "src/tensor/factories.h"
#include "tests/nn/nn_test_util.h"
#include "tests/support/expect_error.h"

namespace lockstep::nn {
namespace {

using test::expect_error;
using test_util::expect_near_values;

TEST(Linear, ForwardIsXTimesWeightTransposedPlusBias) {
  Linear layer(3, 2);
  const std::vector<float> w = layer.weight().to_vector<float>(), b = layer.bias().to_vector<float>();
  const std::vector<float> x{1, -2, 0.5f, 3, 0, -1};
  std::vector<double> want;
  for (int n = 0; n < 2; ++n) {
    for (int o = 0; o < 2; ++o) {
      double acc = b[o];
      for (int i = 0; i < 3; ++i) acc += double(x[n * 3 + i]) * w[o * 3 + i];
      want.push_back(acc);
    }
  }
  expect_near_values(layer.forward(from_vector(x, {2, 3})), want, 1e-6);
  // Default init: weights and biases within 1/sqrt(in).
  for (float v : w) EXPECT_LE(std::abs(v), 1.0 / std::sqrt(3.0));
  for (float v : b) EXPECT_LE(std::abs(v), 1.0 / std::sqrt(3.0));
}

// Per-channel mean and unbiased variance of x [N, C, L] given flat.
void channel_stats(const std::vector<double>& x, int n, int c, int l, std::vector<double>& mean,
                   std::vector<double>& unbiased) {
  mean.assign(c, 0.0);
  unbiased.assign(c, 0.0);
  for (int ch = 0; ch < c; ++ch) {
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < l; ++j) mean[ch] += x[(i * c + ch) * l + j];
    mean[ch] /= n * l;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < l; ++j) unbiased[ch] += std::pow(x[(i * c + ch) * l + j] - mean[ch], 2);
    unbiased[ch] /= n * l - 1;
  }
}

TEST(BatchNorm, RunningStatisticsAfterTwoTrainStepsAndEvalUsesThem) {
  BatchNorm2d bn(2, {.momentum = 0.2});
  const std::vector<double> x1{1, 2, 3, 4, -1, 0, 5, 2, 0, 0, 1, 7, 3, 3, -2, 4};
  const std::vector<double> x2{2, -1, 0, 6, 1, 1, 3, 3, 4, 0, 2, 2, -3, 5, 1, 0};
  std::vector<double> rm{0, 0}, rv{1, 1};
  for (const auto* x : {&x1, &x2}) {
    std::vector<double> mean, unbiased;
    channel_stats(*x, 2, 2, 4, mean, unbiased);
    for (int c = 0; c < 2; ++c) {
      rm[c] = 0.8 * rm[c] + 0.2 * mean[c];
      rv[c] = 0.8 * rv[c] + 0.2 * unbiased[c];
    }
    const Tensor y = bn.forward(from_vector(*x, {2, 2, 2, 2}, DType::f32));
    // Training output is normalised with the biased batch variance.
    const std::vector<float> got = y.to_vector<float>();
    for (int i = 0; i < 16; ++i) {
      const int c = (i / 4) % 2;
      const double biased = unbiased[c] * 7.0 / 8.0;
      EXPECT_NEAR(got[i], ((*x)[i] - mean[c]) / std::sqrt(biased + 1e-5), 1e-4) << i;
    }
  }
  expect_near_values(bn.running_mean(), rm, 1e-6);
  expect_near_values(bn.running_var(), rv, 1e-6);
  EXPECT_EQ(bn.num_batches_tracked().item(), 2.0);

  bn.eval();
  const std::vector<double> x3{1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<double> want;
  for (int i = 0; i < 8; ++i) {
    const int c = (i / 2) % 2;
    want.push_back((x3[i] - rm[c]) / std::sqrt(rv[c] + 1e-5));
  }
  expect_near_values(bn.forward(from_vector(x3, {2, 2, 1, 2}, DType::f32)), want, 1e-5);
  expect_near_values(bn.running_mean(), rm, 1e-6);  // evaluation leaves the statistics alone
  EXPECT_EQ(bn.num_batches_tracked().item(), 2.0);
}

TEST(BatchNorm, OneDimensionalAcceptsNCAndNCLAndRejectsOtherRanks) {
  BatchNorm1d bn(3);
  const Tensor x = from_vector(std::vector<double>{1, 2, 3, 3, 6, 9}, {2, 3}, DType::f32);
  expect_near_values(bn.forward(x), {-1, -1, -1, 1, 1, 1}, 1e-4);
  expect_near_values(bn.running_mean(), {0.2, 0.4, 0.6}, 1e-6);
  // Unbiased variances 2, 8, 18.
  expect_near_values(bn.running_var(), {0.9 + 0.2, 0.9 + 0.8, 0.9 + 1.8}, 1e-6);
  EXPECT_EQ(bn.forward(randn({4, 3, 5})).shape(), (Shape{4, 3, 5}));
  expect_error<ValueError>(
      [&] {
        bn.forward(randn({2, 3, 4, 4}));
      },
      {"BatchNorm1d::forward", "rank 2 or 3", "[2, 3, 4, 4]"});
  expect_error<ValueError>([&] { bn.forward(randn({2, 4})); }, {"3 channels", "[2, 4]"});
  BatchNorm2d bn2(3);
  expect_error<ValueError>(
      [&] {
        bn2.forward(randn({2, 3, 4}));
      },
      {"BatchNorm2d::forward", "rank 4", "[2, 3, 4]"});
}

TEST(InstanceNorm2d, NormalisesEachSampleAndChannelAloneInTrainingAndEvaluation) {
  InstanceNorm2d plain(2);
  EXPECT_TRUE(plain.parameters().empty());  // affine off by default, as in PyTorch and CycleGAN
  EXPECT_TRUE(plain.state_dict().empty());
  // x [2, 2, 1, 3]: rows (1, 2, 3), (2, 4, 9), (0, 0, 3), (-1, 1, 6), each normalised alone.
  const std::vector<double> x{1, 2, 3, 2, 4, 9, 0, 0, 3, -1, 1, 6};
  std::vector<double> want;
  for (int r = 0; r < 4; ++r) {
    const double m = (x[3 * r] + x[3 * r + 1] + x[3 * r + 2]) / 3.0;
    double v = 0.0;
    for (int j = 0; j < 3; ++j) v += std::pow(x[3 * r + j] - m, 2) / 3.0;  // biased
    for (int j = 0; j < 3; ++j) want.push_back((x[3 * r + j] - m) / std::sqrt(v + 1e-5));
  }
  const Tensor input = from_vector(x, {2, 2, 1, 3}, DType::f32);
  expect_near_values(plain.forward(input), want, 1e-5);
  plain.eval();  // no running statistics: evaluation normalises alike
  expect_near_values(plain.forward(input), want, 1e-5);

  InstanceNorm2d affine(2, Affine::kYes);
  const StateDict state = affine.state_dict();
  ASSERT_EQ(state.size(), 2u);
  EXPECT_TRUE(state.contains("weight"));
  EXPECT_TRUE(state.contains("bias"));
  {
    NoGradGuard no_grad;
    Tensor(affine.weight()).copy_(from_vector(std::vector<double>{2.0, -1.0}, {2}, DType::f32));
    Tensor(affine.bias()).copy_(from_vector(std::vector<double>{0.5, 3.0}, {2}, DType::f32));
  }
  std::vector<double> scaled;
  for (std::size_t i = 0; i < want.size(); ++i)
    scaled.push_back((i / 3) % 2 == 0 ? 2.0 * want[i] + 0.5 : -want[i] + 3.0);
  expect_near_values(affine.forward(input), scaled, 1e-5);

  expect_error<ValueError>(
      [&] {
        plain.forward(randn({2, 2, 4}));
      },
      {"InstanceNorm2d::forward", "[2, 2, 4]"});
  expect_error<ValueError>([&] { plain.forward(randn({2, 3, 4, 4})); }, {"[N, 2, H, W]", "[2, 3, 4, 4]"});
  expect_error<ValueError>(
      [&] {
        plain.forward(randn({2, 2, 1, 1}));
      },
      {"instance_norm", "more than 1 spatial"});
}

TEST(Dropout, IdentityInEvalAndInvertedScalingInTraining) {
  Dropout drop(0.5);
  const Tensor x = full({64, 64}, 3.0);
  drop.eval();
  EXPECT_EQ(drop.forward(x).to_vector<float>(), x.to_vector<float>());
  drop.train();
  const std::vector<float> y = drop.forward(x).to_vector<float>();
  int zeros_seen = 0;
  for (float v : y) {
    EXPECT_TRUE(v == 0.0f || v == 6.0f) << v;
    zeros_seen += v == 0.0f;
  }
  EXPECT_NEAR(zeros_seen / 4096.0, 0.5, 0.05);
  expect_error<ValueError>([] { Dropout(1.5); }, {"Dropout", "1.5"});
}

TEST(Pooling, MaxAvgGlobalAndUpsampleOnAKnownPlane) {
  // One 4x4 plane 0..15.
  const Tensor x = arange(16, DType::f32).reshape({1, 1, 4, 4});
  expect_near_values(MaxPool2d(2).forward(x), {5, 7, 13, 15}, 0);
  expect_near_values(AvgPool2d(2).forward(x), {2.5, 4.5, 10.5, 12.5}, 1e-6);
  expect_near_values(MaxPool2d(3, 1).forward(x), {10, 11, 14, 15}, 0);
  expect_near_values(GlobalAvgPool2d().forward(x), {7.5}, 1e-6);
  EXPECT_EQ(GlobalAvgPool2d().forward(randn({2, 3, 5, 5})).shape(), (Shape{2, 3, 1, 1}));
  const Tensor small = from_vector(std::vector<float>{1, 2, 3, 4}, {1, 1, 2, 2});
  expect_near_values(Upsample(2).forward(small), {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}, 0);
  // Bilinear without aligned corners: row 0 of the 4x4 result is 1, 1.25, 1.75, 2.
  const std::vector<float> bilinear = Upsample(2, UpsampleMode::kBilinear).forward(small).to_vector<float>();
  EXPECT_NEAR(bilinear[0], 1.0, 1e-6);
  EXPECT_NEAR(bilinear[1], 1.25, 1e-6);
  EXPECT_NEAR(bilinear[2], 1.75, 1e-6);
  EXPECT_NEAR(bilinear[3], 2.0, 1e-6);
  expect_error<ValueError>([] { MaxPool2d(2, 1, 2); }, {"MaxPool2d", "padding=2"});
  expect_error<ValueError>([&] { Upsample(2).forward(zeros({4, 4})); }, {"Upsample::forward", "[4, 4]"});
}

TEST(Layers, FlattenEmbeddingAndActivationsGiveHandValues) {
  EXPECT_EQ(Flatten().forward(zeros({2, 3, 4, 5})).shape(), (Shape{2, 60}));
  EXPECT_EQ(Flatten(2).forward(zeros({2, 3, 4, 5})).shape(), (Shape{2, 3, 20}));

  Embedding table(5, 3);
  const std::vector<float> w = table.weight().to_vector<float>();
  const Tensor rows = table.forward(from_vector(std::vector<std::int64_t>{4, 0, 4}, {3}));
  EXPECT_EQ(rows.shape(), (Shape{3, 3}));
  const std::vector<float> r = rows.to_vector<float>();
  for (int j = 0; j < 3; ++j) {
    EXPECT_EQ(r[j], w[12 + j]);
    EXPECT_EQ(r[3 + j], w[j]);
  }

  const Tensor x = from_vector(std::vector<double>{-2, -0.5, 0.5, 3}, {4}, DType::f32);
  expect_near_values(ReLU().forward(x), {0, 0, 0.5, 3}, 1e-7);
  expect_near_values(LeakyReLU(0.1).forward(x), {-0.2, -0.05, 0.5, 3}, 1e-6);
  expect_near_values(ELU(2.0).forward(x), {2 * (std::exp(-2.0) - 1), 2 * (std::exp(-0.5) - 1), 0.5, 3}, 1e-6);
  expect_near_values(Hardtanh(-1, 2).forward(x), {-1, -0.5, 0.5, 2}, 1e-7);
  expect_near_values(
      Sigmoid().forward(x),
      {1 / (1 + std::exp(2.0)), 1 / (1 + std::exp(0.5)), 1 / (1 + std::exp(-0.5)), 1 / (1 + std::exp(-3.0))},
      1e-6);
  expect_near_values(Tanh().forward(x), {std::tanh(-2.0), std::tanh(-0.5), std::tanh(0.5), std::tanh(3.0)},
                     1e-6);
  expect_near_values(Softplus().forward(x),
                     {std::log1p(std::exp(-2.0)), std::log1p(std::exp(-0.5)), std::log1p(std::exp(0.5)),
                      std::log1p(std::exp(3.0))},
                     1e-6);
  // PReLU with one slope per channel of [1, 2, 2].
  PReLU prelu(2, 0.25);
  EXPECT_EQ(prelu.weight().to_vector<float>(), (std::vector<float>{0.25f, 0.25f}));
  expect_near_values(prelu.forward(x.reshape({1, 2, 2})), {-0.5, -0.125, 0.5, 3}, 1e-7);
  expect_error<ValueError>([] { Hardtanh(1, -1); }, {"Hardtanh", "lo=1"});
}

TEST(Conv, OutputShapesAndGeometryErrors) {
  Conv2d same({.in = 3, .out = 8, .kernel = 3, .padding = 1});
  EXPECT_EQ(same.forward(randn({2, 3, 7, 7})).shape(), (Shape{2, 8, 7, 7}));
  Conv2d strided({.in = 3, .out = 4, .kernel = 3, .stride = 2, .padding = 1, .groups = 1});
  EXPECT_EQ(strided.forward(randn({1, 3, 8, 8})).shape(), (Shape{1, 4, 4, 4}));
  Conv2d reflect({.in = 2, .out = 2, .kernel = 3, .padding = 1, .padding_mode = PaddingMode::kReflect});
  EXPECT_EQ(reflect.forward(randn({1, 2, 5, 5})).shape(), (Shape{1, 2, 5, 5}));
  // A DCGAN generator step: kernel 4, stride 2, padding 1 doubles the size.
  ConvTranspose2d up({.in = 8, .out = 4, .kernel = 4, .stride = 2, .padding = 1, .bias = Bias::kNo});
  EXPECT_EQ(up.weight().shape(), (Shape{8, 4, 4, 4}));
  EXPECT_EQ(up.forward(randn({2, 8, 5, 5})).shape(), (Shape{2, 4, 10, 10}));
  // PyTorch's fan_in for transposed weights is size(1) * k * k = 64.
  for (float v : up.weight().to_vector<float>()) EXPECT_LE(std::abs(v), 1.0 / 8.0);
  Conv2d grouped({.in = 4, .out = 6, .kernel = 1, .groups = 2});
  EXPECT_EQ(grouped.weight().shape(), (Shape{6, 2, 1, 1}));
  expect_error<ValueError>([] { Conv2d({.in = 3, .out = 4, .kernel = 3, .groups = 2}); },
                           {"Conv2d", "groups dividing", "in=3", "groups=2"});
  expect_error<ValueError>([] { Conv2d({.in = 3, .out = 0, .kernel = 3}); }, {"Conv2d", "out=0"});
  expect_error<ValueError>(
      [] { ConvTranspose2d({.in = 2, .out = 2, .kernel = 3, .stride = 2, .output_padding = 2}); },
      {"ConvTranspose2d", "output_padding=2"});
}

}  // namespace
}  // namespace lockstep::nn
