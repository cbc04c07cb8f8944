// nn::Module behaviour: dotted names and order, parameter counts, state dicts (round trip, strict and
// non-strict loading), train/eval propagation, zero_grad, dtype conversion, summary and registration errors.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "src/autograd/grad_mode.h"
#include "src/nn/activation.h"
#include "src/nn/container.h"
#include "src/nn/conv.h"
#include "src/nn/dropout.h"
#include "src/nn/linear.h"
#include "src/nn/norm.h"
#include "src/nn/state_dict.h"
#include "src/ops/elementwise.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"

namespace lockstep::nn {
namespace {

using test::expect_error;

std::vector<std::string> names_of(const std::vector<NamedTensor>& entries) {
  std::vector<std::string> out;
  for (const auto& [name, tensor] : entries) out.push_back(name);
  return out;
}

// Linear(4, 3) -> ReLU -> Sequential(Linear(3, 2, no bias), BatchNorm1d(2)).
std::shared_ptr<Sequential> nested_model() {
  auto inner = std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{
      std::make_shared<Linear>(3, 2, Bias::kNo), std::make_shared<BatchNorm1d>(2)});
  return std::make_shared<Sequential>(
      std::vector<std::shared_ptr<Module>>{std::make_shared<Linear>(4, 3), std::make_shared<ReLU>(), inner});
}

TEST(Module, NamedParametersAndBuffersUseDottedNamesInRegistrationOrder) {
  auto model = nested_model();
  EXPECT_EQ(names_of(model->named_parameters()),
            (std::vector<std::string>{"0.weight", "0.bias", "2.0.weight", "2.1.weight", "2.1.bias"}));
  EXPECT_EQ(names_of(model->named_buffers()),
            (std::vector<std::string>{"2.1.running_mean", "2.1.running_var", "2.1.num_batches_tracked"}));
  std::vector<std::string> modules;
  for (const auto& [name, module] : model->named_modules())
    modules.push_back(name + "=" + module->type_name());
  EXPECT_EQ(modules, (std::vector<std::string>{"0=Linear", "1=ReLU", "2=Sequential", "2.0=Linear",
                                               "2.1=BatchNorm1d"}));
  std::vector<std::string> keys;
  for (const auto& [name, tensor] : model->state_dict()) keys.push_back(name);
  EXPECT_EQ(keys,
            (std::vector<std::string>{"0.weight", "0.bias", "2.0.weight", "2.1.weight", "2.1.bias",
                                      "2.1.running_mean", "2.1.running_var", "2.1.num_batches_tracked"}));
  // The named tensors are the module's own (shared storage), and parameters require grad.
  auto first = std::dynamic_pointer_cast<Linear>(model->at(0));
  ASSERT_NE(first, nullptr);
  EXPECT_TRUE(model->named_parameters()[0].second.same(first->weight()));
  for (const Tensor& p : model->parameters()) EXPECT_TRUE(p.requires_grad());
  for (const auto& [name, b] : model->named_buffers()) EXPECT_FALSE(b.requires_grad()) << name;
  EXPECT_EQ(model->num_parameters(), 4 * 3 + 3 + 3 * 2 + 2 + 2);
}

TEST(Module, ParameterCountsMatchTheLayerFormulas) {
  EXPECT_EQ(Linear(784, 512).num_parameters(), 401920);
  Conv2d conv({.in = 3, .out = 16, .kernel = 3, .padding = 1, .bias = Bias::kNo});
  EXPECT_EQ(conv.num_parameters(), 432);
  EXPECT_FALSE(conv.bias().defined());
  EXPECT_EQ(conv.weight().shape(), (Shape{16, 3, 3, 3}));
  BatchNorm2d bn(16);
  EXPECT_EQ(bn.num_parameters(), 32);
  EXPECT_EQ(bn.named_buffers().size(), 3u);
  EXPECT_EQ(bn.num_batches_tracked().dtype(), DType::i64);
  EXPECT_EQ(bn.num_batches_tracked().dim(), 0);
  EXPECT_EQ(BatchNorm2d(16, {.affine = Affine::kNo}).num_parameters(), 0);
}

TEST(Module, StateDictRoundTripCopiesValuesIntoAnotherModel) {
  manual_seed(1);
  auto source = nested_model();
  manual_seed(2);
  auto target = nested_model();
  {
    NoGradGuard no_grad;
    Tensor(source->named_buffers()[0].second).fill_(0.5);
    Tensor(source->named_buffers()[2].second).fill_(7);
  }
  ASSERT_NE(source->parameters()[0].to_vector<float>(), target->parameters()[0].to_vector<float>());
  target->load_state_dict(source->state_dict());
  const StateDict a = source->state_dict(), b = target->state_dict();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a.entries()[i].second.to_vector<double>(), b.entries()[i].second.to_vector<double>())
        << a.entries()[i].first;
    EXPECT_FALSE(a.entries()[i].second.same(b.entries()[i].second));
  }
  EXPECT_EQ(b.at("2.1.num_batches_tracked").item(), 7.0);
  // Copied, not aliased: changing the source afterwards leaves the target alone.
  {
    NoGradGuard no_grad;
    Tensor(source->parameters()[0]).fill_(3.0);
  }
  EXPECT_NE(target->parameters()[0].to_vector<float>()[0], 3.0f);
  EXPECT_TRUE(target->parameters()[0].requires_grad());
}

TEST(Module, StrictLoadListsEveryMismatchAndCopiesNothing) {
  auto model = nested_model();
  const std::vector<float> before = model->parameters()[0].to_vector<float>();
  StateDict state;
  state.insert("0.weight", zeros({3, 4}));                // fine, but must not be copied
  state.insert("0.bias", zeros({5}));                     // shape mismatch
  state.insert("2.0.weight", zeros({2, 3}, DType::f64));  // dtype mismatch
  for (const auto& [name, t] : model->state_dict()) {
    if (name != "0.weight" && name != "0.bias" && name != "2.0.weight" && name != "2.1.running_var")
      state.insert(name, t.clone());
  }
  state.insert("2.1.extra", zeros({1}));  // unexpected
  expect_error<ValueError>(
      [&] { model->load_state_dict(state); },
      {"Module::load_state_dict", "missing key '2.1.running_var'", "unexpected key '2.1.extra'",
       "'0.bias' has shape [5] in the state dict but [3] in the module",
       "'2.0.weight' has dtype f64 in the state dict but f32", "1 missing, 1 unexpected and 2 mismatched"});
  EXPECT_EQ(model->parameters()[0].to_vector<float>(), before);
}

TEST(Module, NonStrictLoadSkipsMissingAndUnexpectedButNotShapes) {
  auto model = nested_model();
  StateDict state;
  state.insert("0.weight", full({3, 4}, 2.0));
  state.insert("not.a.key", zeros({2}));
  model->load_state_dict(state, Strict::kNo);
  EXPECT_EQ(model->parameters()[0].to_vector<float>(), std::vector<float>(12, 2.0f));
  StateDict bad;
  bad.insert("0.bias", zeros({4}));
  expect_error<ValueError>([&] { model->load_state_dict(bad, Strict::kNo); }, {"'0.bias' has shape [4]"});
}

TEST(Module, TrainAndEvalReachEveryModule) {
  auto model = nested_model();
  EXPECT_TRUE(model->is_training());
  model->eval();
  EXPECT_FALSE(model->is_training());
  for (const auto& [name, m] : model->named_modules()) EXPECT_FALSE(m->is_training()) << name;
  model->train();
  for (const auto& [name, m] : model->named_modules()) EXPECT_TRUE(m->is_training()) << name;
  // A child switched alone does not affect its parent.
  model->at(2)->eval();
  EXPECT_TRUE(model->is_training());
  EXPECT_FALSE(std::dynamic_pointer_cast<Sequential>(model->at(2))->at(1)->is_training());
}

TEST(Module, ZeroGradDropsEveryGradient) {
  auto model = nested_model();
  sum(model->forward(randn({4, 4}))).backward();
  for (const Tensor& p : model->parameters()) EXPECT_TRUE(p.grad().defined());
  model->zero_grad();
  for (const Tensor& p : model->parameters()) EXPECT_FALSE(p.grad().defined());
}

TEST(Module, ToDTypeConvertsInPlaceKeepingHandlesAndRequiresGrad) {
  auto linear = std::make_shared<Linear>(3, 2);
  const Tensor weight = linear->weight();
  const std::vector<float> values = weight.to_vector<float>();
  BatchNorm1d bn(2);
  linear->to(DType::f64);
  bn.to(DType::f64);
  EXPECT_EQ(linear->weight().dtype(), DType::f64);
  EXPECT_EQ(weight.dtype(), DType::f64);  // the handle taken before sees the conversion
  EXPECT_TRUE(linear->weight().requires_grad());
  EXPECT_TRUE(linear->weight().is_leaf());
  const std::vector<double> converted = weight.to_vector<double>();
  for (std::size_t i = 0; i < values.size(); ++i) EXPECT_EQ(converted[i], static_cast<double>(values[i]));
  EXPECT_EQ(bn.running_mean().dtype(), DType::f64);
  EXPECT_EQ(bn.num_batches_tracked().dtype(), DType::i64);
  const Tensor out = linear->forward(ones({1, 3}, DType::f64));
  EXPECT_EQ(out.dtype(), DType::f64);
  sum(out).backward();
  EXPECT_EQ(linear->weight().grad().dtype(), DType::f64);
  expect_error<TypeError>([&] { linear->to(DType::i64); }, {"Linear::to", "i64"});
}

TEST(Module, SummaryHasOneIndentedLinePerModuleWithCounts) {
  const std::string text = nested_model()->summary();
  EXPECT_NE(text.find("Sequential  25 params\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\n  0: Linear(in=4, out=3)  15 params\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\n    0: Linear(in=3, out=2, bias=no)  6 params\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\n    1: BatchNorm1d(2)  4 params\n"), std::string::npos) << text;
  EXPECT_NE(Linear(784, 512).summary().find("401,920 params"), std::string::npos);
}

// A module that registers names it should not, to exercise the registration checks.
class Misnamed : public Module {
 public:
  Misnamed() : Module("Misnamed") { register_parameter("w", zeros({2})); }
  void add_parameter(const std::string& name) { register_parameter(name, zeros({1})); }
  void add_buffer(const std::string& name) { register_buffer(name, zeros({1})); }
};

TEST(Module, RegistrationRejectsDuplicateAndDottedNames) {
  Misnamed m;
  expect_error<ValueError>([&] { m.add_buffer("w"); }, {"Misnamed", "'w' is already"});
  expect_error<ValueError>([&] { m.add_parameter("a.b"); }, {"without '.'", "'a.b'"});
  expect_error<NotImplementedError>([&] { m.forward(zeros({1})); }, {"Misnamed::forward"});
}

TEST(StateDict, RejectsDuplicatesAndNamesTheClosestKey) {
  StateDict state;
  state.insert("layer1.0.conv1.weight", zeros({1}));
  state.insert("fc.bias", zeros({1}));
  expect_error<ValueError>([&] { state.insert("fc.bias", zeros({1})); }, {"'fc.bias' is already present"});
  expect_error<IndexError>([&] { state.at("layer1.0.conv2.weight"); },
                           {"'layer1.0.conv2.weight'", "Did you mean 'layer1.0.conv1.weight'"});
  EXPECT_EQ(state.find("nope"), nullptr);
  EXPECT_TRUE(state.contains("fc.bias"));
}

TEST(Sequential, AtChecksTheIndexAndForwardChains) {
  auto model = nested_model();
  expect_error<IndexError>([&] { model->at(3); }, {"Sequential::at", "below 3", "got 3"});
  EXPECT_EQ(model->size(), 3u);
  EXPECT_EQ(model->forward(zeros({5, 4})).shape(), (Shape{5, 2}));
}

// A batch norm followed by a ReLU runs as one fused op: the same bits as the two modules called one after the
// other (output, input and parameter gradients, running statistics), in training and in evaluation.
TEST(Sequential, BatchNormThenReluGivesTheBitsOfTheTwoModules) {
  Generator gen(5);
  const Tensor x0 = randn({6, 8, 5, 5}, 0.3, 1.5, DType::f32, kCPU, &gen);
  const Tensor up = randn({6, 8, 5, 5}, 0.0, 1.0, DType::f32, kCPU, &gen);
  const Tensor w0 = rand({8}, 0.5, 1.5, DType::f32, kCPU, &gen),
               b0 = randn({8}, 0.0, 0.5, DType::f32, kCPU, &gen);
  for (const bool training : {true, false}) {
    std::vector<Tensor> results[2];
    for (int fused = 0; fused < 2; ++fused) {
      auto norm = std::make_shared<BatchNorm2d>(8);
      auto relu = std::make_shared<ReLU>();
      auto model = std::make_shared<Sequential>(std::vector<std::shared_ptr<Module>>{norm, relu});
      {
        NoGradGuard no_grad;
        Tensor w = norm->weight(), b = norm->bias(), var = norm->running_var();
        w.copy_(w0);
        b.copy_(b0);
        var.fill_(2.0);
      }
      model->train(training);
      const Tensor x = x0.clone().requires_grad_();
      const Tensor y = fused == 1 ? model->forward(x) : relu->forward(norm->forward(x));
      sum(y * up).backward();
      results[fused] = {y.detach(),           x.grad(),           norm->weight().grad(), norm->bias().grad(),
                        norm->running_mean(), norm->running_var()};
    }
    for (std::size_t i = 0; i < results[0].size(); ++i) {
      EXPECT_EQ(results[0][i].to_vector<float>(), results[1][i].to_vector<float>())
          << (training ? "training" : "evaluation") << ", tensor " << i;
    }
  }
}

}  // namespace
}  // namespace lockstep::nn
