// Tests of the model zoo: parameter counts against published and PyTorch-computed figures, dotted names,
// output shapes, DCGAN output range and initialisation, an f64 gradient check through a small CifarResNet,
// train versus eval behaviour, and argument errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "src/autograd/grad_mode.h"
#include "src/models/dcgan.h"
#include "src/models/lenet.h"
#include "src/models/mlp.h"
#include "src/models/resnet.h"
#include "src/models/wgan.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"
#include "tests/support/gradcheck.h"

namespace lockstep::models {
namespace {

std::map<std::string, Tensor> params_by_name(const nn::Module& m) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : m.named_parameters()) out.emplace(name, t);
  return out;
}

bool has_parameter(const nn::Module& m, const std::string& name) {
  return params_by_name(m).count(name) == 1;
}

Shape parameter_shape(const nn::Module& m, const std::string& name) {
  const auto all = params_by_name(m);
  const auto it = all.find(name);
  return it == all.end() ? Shape{} : it->second.shape();
}

template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const ValueError& e) {
    return e.what();
  }
  return "no ValueError";
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double std_of(const std::vector<double>& v) {
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size()));
}

// Published figures (He et al. 2016 Table 6 reports 0.27M, 0.46M, 0.85M, 1.7M; these exact counts were
// computed offline with /usr/bin/python3, torch 1.13, for the same architecture: 3x32x32 input, 10 classes,
// type-A shortcuts).
TEST(ModelParameterCounts, CifarResNets) {
  EXPECT_EQ(CifarResNet(20, 3, 10).num_parameters(), 269722);
  EXPECT_EQ(CifarResNet(32, 3, 10).num_parameters(), 464154);
  EXPECT_EQ(CifarResNet(56, 3, 10).num_parameters(), 853018);
  EXPECT_EQ(CifarResNet(110, 3, 10).num_parameters(), 1727962);
  // torch 1.13 offline: type-B (1x1 projection + BN) shortcuts, and one input channel.
  EXPECT_EQ(CifarResNet(20, 3, 10, nn::Shortcut::kProjection).num_parameters(), 272474);
  EXPECT_EQ(CifarResNet(20, 1, 10).num_parameters(), 269434);
}

// torchvision's documented counts for 1000 classes with the ImageNet stem, torchvision's names (with
// `shortcut` for torchvision's `downsample`), and the forward shapes (each model built once: they are big).
TEST(ModelParameterCounts, ImageNetResNets) {
  NoGradGuard no_grad;
  const ResNet r18(18, 3, 1000, Stem::kImageNet);
  EXPECT_EQ(r18.num_parameters(), 11689512);
  EXPECT_EQ(r18.named_parameters().size(), 62u);  // torch 1.13
  EXPECT_EQ(parameter_shape(r18, "conv1.weight"), (Shape{64, 3, 7, 7}));
  EXPECT_EQ(parameter_shape(r18, "layer4.1.conv2.weight"), (Shape{512, 512, 3, 3}));
  EXPECT_EQ(parameter_shape(r18, "layer2.0.shortcut.0.weight"), (Shape{128, 64, 1, 1}));
  EXPECT_FALSE(has_parameter(r18, "layer1.0.shortcut.0.weight"));
  EXPECT_EQ(parameter_shape(r18, "fc.weight"), (Shape{1000, 512}));

  EXPECT_EQ(ResNet(34, 3, 1000, Stem::kImageNet).num_parameters(), 21797672);

  ResNet r50(50, 3, 1000, Stem::kImageNet);
  EXPECT_EQ(r50.num_parameters(), 25557032);
  EXPECT_EQ(r50.named_parameters().size(), 161u);  // torch 1.13
  EXPECT_EQ(parameter_shape(r50, "layer1.0.conv3.weight"), (Shape{256, 64, 1, 1}));
  EXPECT_EQ(parameter_shape(r50, "layer1.0.shortcut.0.weight"), (Shape{256, 64, 1, 1}));
  EXPECT_EQ(parameter_shape(r50, "layer3.5.bn3.weight"), (Shape{1024}));
  EXPECT_EQ(parameter_shape(r50, "fc.weight"), (Shape{1000, 2048}));
  // 64 -> 32 (conv1) -> 16 (max-pool) -> 16, 8, 4, 2 -> global pool.
  EXPECT_EQ(r50.forward(randn({1, 3, 64, 64})).shape(), (Shape{1, 1000}));
  EXPECT_EQ(r50.features(randn({1, 3, 64, 64})).shape(), (Shape{1, 2048}));

  // torch 1.13 offline: the 3x3 stem for 32 px images, 10 classes.
  ResNet small(18, 3, 10, Stem::kSmall);
  EXPECT_EQ(small.num_parameters(), 11173962);
  EXPECT_EQ(parameter_shape(small, "conv1.weight"), (Shape{64, 3, 3, 3}));
  EXPECT_EQ(small.forward(randn({1, 3, 32, 32})).shape(), (Shape{1, 10}));
  EXPECT_EQ(ResNet(18, 1, 10, Stem::kSmall).forward(randn({1, 1, 28, 28})).shape(), (Shape{1, 10}));
}

TEST(ModelParameterCounts, LeNetAndMlp) {
  // 156 + 2416 + 48120 + 10164 + 850, the classic LeNet-5 count; 28x28 inputs use C1 padding, same count.
  EXPECT_EQ(LeNet5(1, 32, 10).num_parameters(), 61706);
  EXPECT_EQ(LeNet5(1, 28, 10).num_parameters(), 61706);
  EXPECT_EQ(LeNet5(3, 32, 10).num_parameters(), 61706 + 2 * 6 * 25);
  // 784*512 + 512 + 512*256 + 256 + 256*10 + 10.
  EXPECT_EQ(MLP(784, {512, 256}, 10).num_parameters(), 535818);
}

// torch 1.13 offline, same layers (bias only on the convolutions without batch norm after them).
TEST(ModelParameterCounts, DcganAndCritic) {
  EXPECT_EQ(DCGANGenerator(100, 1, 32, 64).num_parameters(), 1066881);
  EXPECT_EQ(DCGANDiscriminator(1, 32, 64).num_parameters(), 661313);
  EXPECT_EQ(WGANCritic(1, 32, 64).num_parameters(), 660929);
  EXPECT_EQ(DCGANGenerator(100, 3, 64, 64).num_parameters(), 3576707);
  EXPECT_EQ(DCGANDiscriminator(3, 64, 64).num_parameters(), 2765633);
  EXPECT_EQ(WGANCritic(3, 64, 64).num_parameters(), 2764737);
  EXPECT_EQ(DCGANGenerator(100, 3, 32, 64).num_parameters(), 1068931);
  EXPECT_EQ(DCGANDiscriminator(3, 32, 64, DiscriminatorOutput::kSigmoid).num_parameters(), 663361);
  EXPECT_EQ(DCGANGenerator(16, 1, 32, 8).num_parameters(), 18673);
}

TEST(ModelNames, CifarResNetFollowsTorchvision) {
  const CifarResNet a(20, 3, 10);
  const auto names = a.named_parameters();
  // torch 1.13: 59 parameter tensors and 57 buffers (running mean, var, num_batches_tracked per BN).
  EXPECT_EQ(names.size(), 59u);
  EXPECT_EQ(a.named_buffers().size(), 57u);
  EXPECT_EQ(names.front().first, "conv1.weight");
  EXPECT_EQ(names.back().first, "fc.bias");
  EXPECT_EQ(parameter_shape(a, "layer1.0.conv1.weight"), (Shape{16, 16, 3, 3}));
  EXPECT_EQ(parameter_shape(a, "layer2.0.conv1.weight"), (Shape{32, 16, 3, 3}));
  EXPECT_EQ(parameter_shape(a, "layer3.2.bn2.bias"), (Shape{64}));
  EXPECT_EQ(parameter_shape(a, "fc.weight"), (Shape{10, 64}));
  EXPECT_FALSE(has_parameter(a, "layer2.0.shortcut.0.weight"));
  const auto buffers = a.named_buffers();
  EXPECT_TRUE(std::any_of(buffers.begin(), buffers.end(),
                          [](const auto& b) { return b.first == "layer2.0.bn1.num_batches_tracked"; }));

  const CifarResNet b(20, 3, 10, nn::Shortcut::kProjection);
  EXPECT_EQ(b.named_parameters().size(), 65u);
  EXPECT_EQ(parameter_shape(b, "layer2.0.shortcut.0.weight"), (Shape{32, 16, 1, 1}));
  EXPECT_EQ(parameter_shape(b, "layer3.0.shortcut.1.bias"), (Shape{64}));
  EXPECT_FALSE(has_parameter(b, "layer1.0.shortcut.0.weight"));
}

TEST(ModelNames, SmallModelsAndGans) {
  const MLP mlp(784, {512, 256}, 10);
  std::vector<std::string> names;
  for (const auto& [name, t] : mlp.named_parameters()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight",
                                             "fc3.bias"}));
  EXPECT_EQ(parameter_shape(mlp, "fc2.weight"), (Shape{256, 512}));

  const LeNet5 lenet(1, 28, 10);
  EXPECT_EQ(parameter_shape(lenet, "conv1.weight"), (Shape{6, 1, 5, 5}));
  EXPECT_EQ(parameter_shape(lenet, "conv2.weight"), (Shape{16, 6, 5, 5}));
  EXPECT_EQ(parameter_shape(lenet, "fc1.weight"), (Shape{120, 400}));
  EXPECT_EQ(parameter_shape(lenet, "fc3.bias"), (Shape{10}));

  // Sequential indices count the activations too: G = convT, BN, ReLU (x3), convT, Tanh.
  const DCGANGenerator g(100, 1, 32, 64);
  EXPECT_EQ(g.named_parameters().size(), 11u);  // torch 1.13
  EXPECT_EQ(parameter_shape(g, "main.0.weight"), (Shape{100, 256, 4, 4}));
  EXPECT_FALSE(has_parameter(g, "main.0.bias"));
  EXPECT_EQ(parameter_shape(g, "main.7.weight"), (Shape{64}));
  EXPECT_EQ(parameter_shape(g, "main.9.weight"), (Shape{64, 1, 4, 4}));
  EXPECT_EQ(parameter_shape(g, "main.9.bias"), (Shape{1}));

  const DCGANDiscriminator d(1, 32, 64);
  EXPECT_EQ(d.named_parameters().size(), 10u);
  EXPECT_EQ(parameter_shape(d, "main.0.bias"), (Shape{64}));
  EXPECT_FALSE(has_parameter(d, "main.2.bias"));
  EXPECT_EQ(parameter_shape(d, "main.3.weight"), (Shape{128}));
  EXPECT_EQ(parameter_shape(d, "main.8.weight"), (Shape{1, 256, 4, 4}));

  const WGANCritic c(1, 32, 64);
  EXPECT_EQ(c.named_parameters().size(), 8u);
  EXPECT_TRUE(c.named_buffers().empty());
  EXPECT_EQ(parameter_shape(c, "main.2.bias"), (Shape{128}));
  EXPECT_EQ(parameter_shape(c, "main.6.weight"), (Shape{1, 256, 4, 4}));
}

TEST(ModelForward, ClassifierShapes) {
  NoGradGuard no_grad;
  const Tensor mnist = randn({2, 1, 28, 28});
  const Tensor cifar = randn({2, 3, 32, 32});
  EXPECT_EQ(MLP(784, {32}, 10).forward(mnist).shape(), (Shape{2, 10}));
  EXPECT_EQ(MLP(3072, {32, 16}, 7).forward(cifar).shape(), (Shape{2, 7}));
  EXPECT_EQ(LeNet5(1, 28, 10).forward(mnist).shape(), (Shape{2, 10}));
  EXPECT_EQ(LeNet5(3, 32, 10).forward(cifar).shape(), (Shape{2, 10}));
  EXPECT_EQ(CifarResNet(20, 1, 10).forward(mnist).shape(), (Shape{2, 10}));
  EXPECT_EQ(CifarResNet(20, 3, 100).forward(cifar).shape(), (Shape{2, 100}));
  EXPECT_EQ(CifarResNet(20, 1, 10, nn::Shortcut::kProjection).forward(mnist).shape(), (Shape{2, 10}));
}

TEST(ModelForward, ClassifierFeaturesFeedTheHead) {
  NoGradGuard no_grad;
  const Tensor mnist = randn({2, 1, 28, 28});
  MLP mlp(784, {32, 16}, 10);
  LeNet5 lenet(1, 28, 10);
  CifarResNet resnet(8, 1, 10);
  const std::vector<std::pair<Classifier*, std::int64_t>> cases = {{&mlp, 16}, {&lenet, 84}, {&resnet, 64}};
  for (const auto& [model, width] : cases) {
    model->eval();
    const Tensor f = model->features(mnist);
    EXPECT_EQ(f.shape(), (Shape{2, width})) << model->type_name();
    EXPECT_EQ(model->head(f).to_vector<float>(), model->forward(mnist).to_vector<float>())
        << model->type_name();
  }
}

TEST(ModelForward, DcganShapesAndRanges) {
  NoGradGuard no_grad;
  DCGANGenerator g32(100, 1, 32, 16);
  const Tensor images = g32.forward(randn({3, 100}));
  ASSERT_EQ(images.shape(), (Shape{3, 1, 32, 32}));
  const auto v = images.to_vector<float>();
  EXPECT_TRUE(std::all_of(v.begin(), v.end(), [](float x) { return x > -1.0f && x < 1.0f; }));
  EXPECT_GT(*std::max_element(v.begin(), v.end()) - *std::min_element(v.begin(), v.end()), 0.1f);
  EXPECT_EQ(g32.forward(randn({2, 100, 1, 1})).shape(), (Shape{2, 1, 32, 32}));

  DCGANGenerator g64(16, 3, 64, 8);
  EXPECT_EQ(g64.forward(randn({2, 16})).shape(), (Shape{2, 3, 64, 64}));

  EXPECT_EQ(DCGANDiscriminator(1, 32, 16).forward(images).shape(), (Shape{3}));
  const Tensor p = DCGANDiscriminator(3, 64, 8, DiscriminatorOutput::kSigmoid).forward(randn({2, 3, 64, 64}));
  ASSERT_EQ(p.shape(), (Shape{2}));
  for (const float x : p.to_vector<float>()) {
    EXPECT_GT(x, 0.0f);
    EXPECT_LT(x, 1.0f);
  }
  EXPECT_EQ(WGANCritic(1, 32, 16).forward(images).shape(), (Shape{3}));
  EXPECT_EQ(WGANCritic(3, 64, 8).forward(randn({2, 3, 64, 64})).shape(), (Shape{2}));
}

TEST(DcganInit, WeightStatisticsAndDeterminism) {
  DCGANGenerator g(100, 3, 64, 64);
  Generator gen(7);
  dcgan_init_(g, &gen);
  const auto p = params_by_name(g);
  // main.0: ConvTranspose2d weight [100, 512, 4, 4], 819200 draws of N(0, 0.02).
  const auto w = p.at("main.0.weight").to_vector<double>();
  EXPECT_NEAR(mean_of(w), 0.0, 2e-4);
  EXPECT_NEAR(std_of(w), 0.02, 2e-4);
  // main.1: BatchNorm2d(512) weight N(1, 0.02), bias 0.
  const auto bn = p.at("main.1.weight").to_vector<double>();
  EXPECT_NEAR(mean_of(bn), 1.0, 4e-3);
  EXPECT_NEAR(std_of(bn), 0.02, 3e-3);
  for (const double b : p.at("main.1.bias").to_vector<double>()) EXPECT_EQ(b, 0.0);
  // The output ConvTranspose2d has a bias, zeroed.
  for (const double b : p.at("main.12.bias").to_vector<double>()) EXPECT_EQ(b, 0.0);

  DCGANDiscriminator d(3, 64, 64);
  dcgan_init_(d, &gen);
  const auto dw = params_by_name(d).at("main.5.weight").to_vector<double>();  // Conv2d(128, 256, 4)
  EXPECT_NEAR(std_of(dw), 0.02, 2e-4);
  for (const double b : params_by_name(d).at("main.0.bias").to_vector<double>()) EXPECT_EQ(b, 0.0);

  // Same seed, same weights; the default generator is not touched.
  DCGANGenerator again(100, 3, 64, 64);
  Generator gen2(7);
  dcgan_init_(again, &gen2);
  EXPECT_EQ(params_by_name(again).at("main.3.weight").to_vector<float>(),
            p.at("main.3.weight").to_vector<float>());
  Generator other(8);
  dcgan_init_(again, &other);
  EXPECT_NE(params_by_name(again).at("main.3.weight").to_vector<float>(),
            p.at("main.3.weight").to_vector<float>());
}

TEST(ModelGradient, SmallCifarResNetMatchesFiniteDifferencesInF64) {
  // Depth 8: one type-A block per stage (stride 2 with zero-padded channels into stages 2 and 3), batch
  // norm in training mode.
  CifarResNet net(8, 1, 3);
  net.to(DType::f64);
  const auto p = params_by_name(net);
  std::vector<Tensor> params;
  for (const char* name : {"conv1.weight", "layer2.0.bn1.weight", "fc.bias"}) params.push_back(p.at(name));
  std::vector<Tensor> originals;
  for (const auto& t : params) originals.push_back(t.detach().clone());

  Tensor x = randn({2, 1, 6, 6}, 0.0, 1.0, DType::f64);
  x.requires_grad_(true);
  std::vector<Tensor> inputs = {x};
  inputs.insert(inputs.end(), params.begin(), params.end());
  // inputs[1..] are the module's own parameters for the analytic pass; the finite-difference passes hand
  // in perturbed copies, which are written into the module (and the others restored) before the forward.
  auto fn = [&](const std::vector<Tensor>& xs) {
    {
      NoGradGuard no_grad;
      for (std::size_t k = 0; k < params.size(); ++k) {
        params[k].copy_(xs[k + 1].same(params[k]) ? originals[k] : xs[k + 1]);
      }
    }
    return net.forward(xs[0]);
  };
  const test::GradcheckResult r = test::gradcheck(fn, inputs, 1e-5, 1e-7);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(ModelModes, BatchNormUsesBatchStatisticsOnlyInTraining) {
  CifarResNet net(8, 1, 3);
  const Tensor batch = randn({4, 1, 8, 8});
  const Tensor first = batch.slice(0, 0, 1);
  Tensor running_mean;
  Tensor tracked;
  for (const auto& [name, t] : net.named_buffers()) {
    if (name == "bn1.running_mean") running_mean = t;
    if (name == "bn1.num_batches_tracked") tracked = t;
  }
  ASSERT_TRUE(running_mean.defined() && tracked.defined());

  NoGradGuard no_grad;
  // Training: sample 0's output depends on the rest of the batch, and the running statistics move.
  const auto train_full = net.forward(batch).slice(0, 0, 1).to_vector<float>();
  const auto train_single = net.forward(first).to_vector<float>();
  EXPECT_EQ(tracked.item(), 2.0);
  float diff = 0;
  for (std::size_t i = 0; i < train_full.size(); ++i)
    diff = std::max(diff, std::abs(train_full[i] - train_single[i]));
  EXPECT_GT(diff, 1e-3f);
  const auto mean_after_train = running_mean.to_vector<float>();
  EXPECT_TRUE(
      std::any_of(mean_after_train.begin(), mean_after_train.end(), [](float m) { return m != 0.0f; }));

  // Evaluation: per-sample, deterministic, and the running statistics stay put.
  net.eval();
  const auto eval_full = net.forward(batch).slice(0, 0, 1).to_vector<float>();
  const auto eval_single = net.forward(first).to_vector<float>();
  for (std::size_t i = 0; i < eval_full.size(); ++i) EXPECT_NEAR(eval_full[i], eval_single[i], 1e-5f);
  EXPECT_EQ(running_mean.to_vector<float>(), mean_after_train);
  EXPECT_EQ(tracked.item(), 2.0);
  diff = 0;
  for (std::size_t i = 0; i < eval_full.size(); ++i)
    diff = std::max(diff, std::abs(eval_full[i] - train_full[i]));
  EXPECT_GT(diff, 1e-3f);
}

TEST(ModelModes, MlpDropoutOnlyInTraining) {
  MLP with(20, {64}, 5, 0.5);
  MLP without(20, {64}, 5);
  without.load_state_dict(with.state_dict());
  const Tensor x = randn({3, 20});
  NoGradGuard no_grad;
  const auto reference = without.forward(x).to_vector<float>();
  EXPECT_NE(with.forward(x).to_vector<float>(), reference);
  with.eval();
  EXPECT_EQ(with.forward(x).to_vector<float>(), reference);
}

TEST(ModelErrors, BadArgumentsAndInputsNameTheProblem) {
  EXPECT_NE(error_of([] { CifarResNet(21, 3, 10); }).find("21"), std::string::npos);
  EXPECT_NE(error_of([] { ResNet(101, 3, 10); }).find("101"), std::string::npos);
  EXPECT_NE(error_of([] { LeNet5(1, 30, 10); }).find("30"), std::string::npos);
  EXPECT_NE(error_of([] { DCGANGenerator(100, 1, 28); }).find("28"), std::string::npos);
  EXPECT_NE(error_of([] { WGANCritic(1, 48); }).find("48"), std::string::npos);
  EXPECT_NE(error_of([] { MLP(10, {0}, 3); }).find("hidden"), std::string::npos);
  EXPECT_NE(error_of([] { MLP(10, {5}, 3, 1.0); }).find("dropout"), std::string::npos);

  NoGradGuard no_grad;
  CifarResNet resnet(8, 1, 10);
  EXPECT_NE(error_of([&] {
              resnet.forward(zeros({2, 3, 32, 32}));
            }).find("[2, 3, 32, 32]"),
            std::string::npos);
  MLP mlp(784, {8}, 10);
  EXPECT_NE(error_of([&] { mlp.forward(zeros({2, 3, 32, 32})); }).find("784"), std::string::npos);
  LeNet5 lenet(1, 32, 10);
  EXPECT_NE(error_of([&] {
              lenet.forward(zeros({2, 1, 28, 28}));
            }).find("[2, 1, 28, 28]"),
            std::string::npos);
  DCGANGenerator g(64, 1, 32, 8);
  EXPECT_NE(error_of([&] { g.forward(zeros({2, 100})); }).find("[2, 100]"), std::string::npos);
  DCGANDiscriminator d(1, 32, 8);
  EXPECT_NE(error_of([&] { d.forward(zeros({2, 1, 28, 28})); }).find("[2, 1, 28, 28]"), std::string::npos);
}

}  // namespace
}  // namespace lockstep::models
