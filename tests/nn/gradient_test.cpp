// Finite-difference gradient checks in f64 of whole modules: gradients with respect to the input and to
// every parameter (through tests/support/gradcheck.h).
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "src/autograd/grad_mode.h"
#include "src/nn/activation.h"
#include "src/nn/conv.h"
#include "src/nn/linear.h"
#include "src/nn/norm.h"
#include "src/nn/residual.h"
#include "src/tensor/factories.h"
#include "tests/support/gradcheck.h"

namespace lockstep::nn {
namespace {

// Checks d/dx and d/dparameters of `module` at x. The module's parameters are gradcheck's inputs 1..n:
// for each evaluation their current values (the original or gradcheck's perturbed copy) are copied in.
void expect_module_gradients(Module& module, const Shape& input_shape, std::uint64_t seed) {
  module.to(DType::f64);
  Generator gen(seed);
  Tensor x = randn(input_shape, 0.0, 1.0, DType::f64, kCPU, &gen);
  x.requires_grad_(true);
  std::vector<Tensor> params = module.parameters();
  ASSERT_FALSE(params.empty());
  std::vector<Tensor> originals;
  for (const Tensor& p : params) originals.push_back(p.detach().clone());
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

TEST(ModuleGradients, Linear) {
  Linear layer(5, 3);
  expect_module_gradients(layer, {4, 5}, 1);
}

TEST(ModuleGradients, Conv2dStridedPadded) {
  Conv2d conv({.in = 2, .out = 2, .kernel = 3, .stride = 2, .padding = 1});
  expect_module_gradients(conv, {2, 2, 4, 4}, 2);
}

TEST(ModuleGradients, ConvTranspose2d) {
  ConvTranspose2d conv({.in = 2, .out = 2, .kernel = 3, .stride = 2, .padding = 1, .output_padding = 1});
  expect_module_gradients(conv, {1, 2, 3, 3}, 3);
}

TEST(ModuleGradients, BatchNorm2dInTraining) {
  BatchNorm2d bn(3);
  {
    NoGradGuard no_grad;
    Tensor(bn.weight()).copy_(from_vector(std::vector<double>{0.5, 1.5, -1.0}, {3}, DType::f32));
    Tensor(bn.bias()).copy_(from_vector(std::vector<double>{0.1, -0.2, 0.3}, {3}, DType::f32));
  }
  expect_module_gradients(bn, {3, 3, 2, 2}, 4);
}

TEST(ModuleGradients, LayerNorm) {
  LayerNorm norm({2, 3});
  {
    NoGradGuard no_grad;
    Tensor(norm.weight())
        .copy_(from_vector(std::vector<double>{1, 2, 0.5, -1, 1.5, 0.25}, {2, 3}, DType::f32));
  }
  expect_module_gradients(norm, {4, 2, 3}, 5);
}

TEST(ModuleGradients, InstanceNorm2dAffine) {
  InstanceNorm2d norm(3, Affine::kYes);
  {
    NoGradGuard no_grad;
    Tensor(norm.weight()).copy_(from_vector(std::vector<double>{0.5, 1.5, -1.0}, {3}, DType::f32));
    Tensor(norm.bias()).copy_(from_vector(std::vector<double>{0.1, -0.2, 0.3}, {3}, DType::f32));
  }
  expect_module_gradients(norm, {2, 3, 3, 2}, 21);
}

TEST(ModuleGradients, PReLUPerChannel) {
  PReLU prelu(3, 0.2);
  expect_module_gradients(prelu, {2, 3, 4}, 6);
}

TEST(ModuleGradients, BasicBlockPadIdentityWithStride) {
  BasicBlock block(1, 2, 2, Shortcut::kPadIdentity);
  expect_module_gradients(block, {2, 1, 3, 3}, 7);
}

TEST(ModuleGradients, BasicBlockProjectionWithStride) {
  BasicBlock block(1, 2, 2, Shortcut::kProjection);
  expect_module_gradients(block, {2, 1, 3, 3}, 8);
}

TEST(ModuleGradients, BottleneckWithProjection) {
  Bottleneck block(2, 1, 2);
  expect_module_gradients(block, {2, 2, 3, 3}, 9);
}

TEST(ModuleGradients, BottleneckWithIdentity) {
  Bottleneck block(4, 1, 1);
  expect_module_gradients(block, {2, 4, 2, 2}, 10);
}

TEST(ModuleGradients, PreActBlockPadIdentityWithStride) {
  PreActBlock block(1, 2, 2, Shortcut::kPadIdentity);
  expect_module_gradients(block, {2, 1, 3, 3}, 11);
}

TEST(ModuleGradients, PreActBlockProjectionWithStride) {
  PreActBlock block(2, 3, 2, Shortcut::kProjection);
  expect_module_gradients(block, {2, 2, 3, 3}, 12);
}

TEST(ModuleGradients, PreActBlockIdentity) {
  PreActBlock block(2, 2, 1, Shortcut::kPadIdentity);
  expect_module_gradients(block, {2, 2, 3, 3}, 13);
}

}  // namespace
}  // namespace lockstep::nn
