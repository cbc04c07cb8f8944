// Optimizer behaviour shared by all kinds: the weight-decay policy, zero_grad, parameters without gradient,
// state-dict round trips with bit-identical continuation, load errors, option and parameter checks, and the
// parallel path on large tensors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "src/core/threading.h"
#include "src/optim/adadelta.h"
#include "src/optim/adagrad.h"
#include "src/optim/adam.h"
#include "src/optim/rmsprop.h"
#include "src/optim/sgd.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"

namespace lockstep::optim {
namespace {

using test::expect_error;
using Params = std::vector<nn::NamedTensor>;

Tensor vec(std::vector<double> v, const Shape& shape, DType dtype = DType::f64) {
  return from_vector(v, shape, dtype).requires_grad_();
}

TEST(Optimizer, WeightDecaySkipsOneDimensionalParamsByDefault) {
  for (DecayPolicy policy : {DecayPolicy::kWeightsOnly, DecayPolicy::kAll}) {
    Tensor w = vec({1.0, -2.0}, {1, 2});
    Tensor b = vec({1.0, -2.0}, {2});
    SGD sgd({{"fc.weight", w}, {"fc.bias", b}}, {.lr = 0.5, .weight_decay = 0.1, .decay = policy});
    w.set_grad(from_vector(std::vector<double>{0.2, 0.4}, {1, 2}));
    b.set_grad(from_vector(std::vector<double>{0.2, 0.4}, {2}));
    sgd.step();
    // Decayed: p - lr * (g + wd * p); not decayed: p - lr * g.
    EXPECT_EQ(w.to_vector<double>(),
              (std::vector<double>{1.0 - 0.5 * (0.2 + 0.1), -2.0 - 0.5 * (0.4 - 0.2)}));
    if (policy == DecayPolicy::kWeightsOnly) {
      EXPECT_EQ(b.to_vector<double>(), (std::vector<double>{1.0 - 0.5 * 0.2, -2.0 - 0.5 * 0.4}));
    } else {
      EXPECT_EQ(b.to_vector<double>(), w.to_vector<double>());
    }
  }
}

TEST(Optimizer, AdamWDoesNotShrinkBiasesByDefault) {
  Tensor w = vec({1.0, 1.0}, {2, 1});
  Tensor b = vec({1.0, 1.0}, {2});
  AdamW opt({{"w", w}, {"b", b}}, {.lr = 0.1, .weight_decay = 0.5});
  w.set_grad(zeros({2, 1}, DType::f64));
  b.set_grad(zeros({2}, DType::f64));
  opt.step();
  // Zero gradient: the Adam step is 0 / (0 + eps) = 0, so only the decoupled decay moves w.
  EXPECT_EQ(w.to_vector<double>(), (std::vector<double>{0.95, 0.95}));
  EXPECT_EQ(b.to_vector<double>(), (std::vector<double>{1.0, 1.0}));
}

TEST(Optimizer, ZeroGradDropsGradientsAndStepThenDoesNothing) {
  Tensor w = vec({1.0, 2.0}, {2});
  Adam opt({{"w", w}}, {.lr = 0.1});
  w.set_grad(from_vector(std::vector<double>{1.0, -1.0}, {2}));
  opt.step();
  const auto after_one = w.to_vector<double>();
  opt.zero_grad();
  EXPECT_FALSE(w.grad().defined());
  opt.step();
  EXPECT_EQ(w.to_vector<double>(), after_one);
  EXPECT_EQ(opt.step_count("w"), 1);
}

TEST(Optimizer, ParamsWithoutGradAreSkippedAndKeepNoState) {
  Tensor a = vec({1.0, 2.0}, {2});
  Tensor frozen = vec({3.0, 4.0}, {2});
  Adam opt({{"a", a}, {"frozen", frozen}}, {.lr = 0.1});
  for (int i = 0; i < 2; ++i) {
    a.set_grad(from_vector(std::vector<double>{1.0, 1.0}, {2}));
    opt.step();
  }
  EXPECT_EQ(frozen.to_vector<double>(), (std::vector<double>{3.0, 4.0}));
  EXPECT_EQ(opt.step_count("a"), 2);
  EXPECT_EQ(opt.step_count("frozen"), 0);
  const nn::StateDict state = opt.state_dict();
  EXPECT_TRUE(state.contains("a.exp_avg"));
  EXPECT_FALSE(state.contains("frozen.step"));
  EXPECT_FALSE(state.contains("frozen.exp_avg"));
  // Its first gradient later gets a first Adam step (bias corrections with t = 1): exactly lr * sign(g)
  // up to eps, as for a fresh optimizer.
  frozen.set_grad(from_vector(std::vector<double>{0.5, -0.25}, {2}));
  opt.step();
  EXPECT_NEAR(frozen.to_vector<double>()[0], 3.0 - 0.1, 1e-8);
  EXPECT_NEAR(frozen.to_vector<double>()[1], 4.0 + 0.1, 1e-8);
  EXPECT_EQ(opt.step_count("frozen"), 1);
  EXPECT_THROW(opt.step_count("nope"), IndexError);
}

// --- State dict ------------------------------------------------------------------------------------------

using Factory = std::function<std::unique_ptr<Optimizer>(Params)>;

struct Kind {
  const char* name;
  Factory make;
  std::vector<std::string> slots;
};

std::vector<Kind> all_kinds() {
  return {
      {"SGD",
       [](Params p) {
         return std::make_unique<SGD>(std::move(p),
                                      SGDOptions{.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-2});
       },
       {"momentum_buffer"}},
      {"Adam",
       [](Params p) {
         return std::make_unique<Adam>(
             std::move(p), AdamOptions{.lr = 0.01, .weight_decay = 1e-2, .amsgrad = AmsGrad::kYes});
       },
       {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}},
      {"AdamW", [](Params p) { return std::make_unique<AdamW>(std::move(p)); }, {"exp_avg", "exp_avg_sq"}},
      {"RMSProp",
       [](Params p) {
         return std::make_unique<RMSProp>(std::move(p),
                                          RMSPropOptions{.momentum = 0.5, .centered = Centered::kYes});
       },
       {"square_avg", "momentum_buffer", "grad_avg"}},
      {"AdaGrad", [](Params p) { return std::make_unique<AdaGrad>(std::move(p)); }, {"sum"}},
      {"AdaDelta",
       [](Params p) { return std::make_unique<AdaDelta>(std::move(p)); },
       {"square_avg", "acc_delta"}},
  };
}

// The gradient of 0.5 * |p - target|^2 plus a step-dependent term, set by hand.
void set_grads(const Params& params, int step) {
  for (const auto& [name, p] : params) {
    const auto v = p.to_vector<float>();
    std::vector<float> g(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
      g[i] = v[i] - 0.25f * static_cast<float>(i) +
             0.1f * std::sin(static_cast<float>(step + static_cast<int>(i)));
    }
    p.set_grad(from_vector(g, p.shape()));
  }
}

Params fresh_params() {
  Generator gen(7);
  return {{"fc.weight", randn({3, 4}, 0.0, 1.0, DType::f32, kCPU, &gen).requires_grad_()},
          {"fc.bias", randn({3}, 0.0, 1.0, DType::f32, kCPU, &gen).requires_grad_()}};
}

Params clone_params(const Params& ps) {
  Params out;
  for (const auto& [name, p] : ps) out.emplace_back(name, p.detach().clone().requires_grad_());
  return out;
}

TEST(OptimizerState, RoundTripContinuesBitIdentically) {
  for (const Kind& kind : all_kinds()) {
    SCOPED_TRACE(kind.name);
    Params pa = fresh_params();
    auto a = kind.make(pa);
    for (int s = 0; s < 3; ++s) {
      set_grads(pa, s);
      a->step();
    }
    a->set_lr(a->lr() * 0.5);
    const nn::StateDict state = a->state_dict();
    EXPECT_EQ(state.size(), 1 + 2 * (1 + kind.slots.size()));
    EXPECT_EQ(state.at("lr").dtype(), DType::f64);
    EXPECT_EQ(state.at("fc.weight.step").dtype(), DType::i64);
    EXPECT_EQ(state.at("fc.weight.step").item(), 3.0);
    for (const std::string& slot : kind.slots)
      EXPECT_EQ(state.at("fc.weight." + slot).shape(), (Shape{3, 4}));

    Params pb = clone_params(pa);
    auto b = kind.make(pb);
    b->load_state_dict(state);
    EXPECT_EQ(b->lr(), a->lr());
    for (int s = 3; s < 6; ++s) {
      set_grads(pa, s);
      set_grads(pb, s);
      a->step();
      b->step();
    }
    for (std::size_t i = 0; i < pa.size(); ++i) {
      EXPECT_EQ(pa[i].second.to_vector<float>(), pb[i].second.to_vector<float>()) << pa[i].first;
    }
  }
}

TEST(OptimizerState, LoadingAnEarlierStateRewindsAndForgetsNewerState) {
  Params ps = fresh_params();
  Adam opt(ps, {.lr = 0.01});
  const nn::StateDict empty_state = [&] {
    nn::StateDict s;
    for (const auto& [k, v] : opt.state_dict()) s.insert(k, v.clone());
    return s;
  }();
  EXPECT_EQ(empty_state.size(), 1u);
  set_grads(ps, 0);
  opt.step();
  opt.load_state_dict(empty_state);
  EXPECT_EQ(opt.step_count("fc.weight"), 0);
  EXPECT_EQ(opt.state_dict().size(), 1u);
}

TEST(OptimizerState, LoadListsEveryProblemInOneError) {
  Params ps = fresh_params();
  Adam opt(ps, {.lr = 0.01});
  set_grads(ps, 0);
  opt.step();
  const auto before = opt.state_dict().at("fc.weight.exp_avg").to_vector<float>();

  nn::StateDict bad;
  bad.insert("lr", scalar_tensor(0.5, DType::f64));
  bad.insert("fc.weight.step", scalar_tensor(4, DType::i64));
  bad.insert("fc.weight.exp_avg", zeros({4, 3}));          // wrong shape
  bad.insert("fc.bias.exp_avg", zeros({3}));               // no step for fc.bias
  bad.insert("fc.weight.momentum_buffer", zeros({3, 4}));  // not an Adam slot
  expect_error<ValueError>(
      [&] { opt.load_state_dict(bad); },
      {"Adam::load_state_dict", "'fc.weight.exp_avg' is f32 [4, 3], expected f32 [3, 4]",
       "missing key 'fc.weight.exp_avg_sq'", "'fc.bias.exp_avg' is present without 'fc.bias.step'",
       "unexpected key 'fc.weight.momentum_buffer'", "4 problem(s)"});
  // Nothing changed.
  EXPECT_EQ(opt.lr(), 0.01);
  EXPECT_EQ(opt.step_count("fc.weight"), 1);
  EXPECT_EQ(opt.state_dict().at("fc.weight.exp_avg").to_vector<float>(), before);

  nn::StateDict no_lr;
  expect_error<ValueError>([&] { opt.load_state_dict(no_lr); }, {"missing key 'lr'"});
  nn::StateDict bad_dtype;
  bad_dtype.insert("lr", scalar_tensor(0.1, DType::f64));
  bad_dtype.insert("fc.bias.step", scalar_tensor(1, DType::i64));
  bad_dtype.insert("fc.bias.exp_avg", zeros({3}, DType::f64));
  bad_dtype.insert("fc.bias.exp_avg_sq", zeros({3}));
  expect_error<ValueError>([&] { opt.load_state_dict(bad_dtype); },
                           {"'fc.bias.exp_avg' is f64 [3], expected f32 [3]"});
}

// --- Checks ----------------------------------------------------------------------------------------------

TEST(OptimizerChecks, BadOptionsNameTheOption) {
  const Params ps = fresh_params();
  expect_error<ValueError>([&] { SGD(ps, {.lr = -0.1}); }, {"SGD", "lr >= 0", "lr=-0.1"});
  expect_error<ValueError>([&] { SGD(ps, {.lr = 0.1, .momentum = -1}); },
                           {"SGD", "momentum >= 0", "momentum=-1"});
  expect_error<ValueError>([&] { SGD(ps, {.lr = 0.1, .nesterov = Nesterov::kYes}); },
                           {"SGD", "momentum > 0 with Nesterov"});
  expect_error<ValueError>(
      [&] { SGD(ps, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = Nesterov::kYes}); },
      {"dampening == 0 with Nesterov", "dampening=0.1"});
  expect_error<ValueError>([&] { SGD(ps, {.lr = 0.1, .weight_decay = -1e-4}); }, {"weight_decay >= 0"});
  expect_error<ValueError>([&] { Adam(ps, {.lr = -1e-3}); }, {"Adam", "lr >= 0", "lr=-0.001"});
  expect_error<ValueError>([&] { Adam(ps, {.beta1 = 1.0}); }, {"Adam", "beta1 in [0, 1)", "beta1=1"});
  expect_error<ValueError>([&] { Adam(ps, {.beta2 = -0.5}); }, {"Adam", "beta2 in [0, 1)", "beta2=-0.5"});
  expect_error<ValueError>([&] { AdamW(ps, {.beta2 = 1.5}); }, {"AdamW", "beta2 in [0, 1)"});
  expect_error<ValueError>([&] { Adam(ps, {.eps = -1.0}); }, {"Adam", "eps >= 0"});
  expect_error<ValueError>([&] { Adam(ps, {.beta1 = std::nan("")}); }, {"beta1 in [0, 1)", "beta1=nan"});
  expect_error<ValueError>([&] { RMSProp(ps, {.alpha = 1.5}); }, {"RMSProp", "alpha in [0, 1]"});
  expect_error<ValueError>([&] { RMSProp(ps, {.momentum = -0.5}); }, {"RMSProp", "momentum >= 0"});
  expect_error<ValueError>([&] { AdaGrad(ps, {.lr_decay = -1}); }, {"AdaGrad", "lr_decay >= 0"});
  expect_error<ValueError>([&] { AdaGrad(ps, {.initial_accumulator_value = -1}); },
                           {"initial_accumulator_value >= 0"});
  expect_error<ValueError>([&] { AdaDelta(ps, {.rho = 1.1}); }, {"AdaDelta", "rho in [0, 1]", "rho=1.1"});
  SGD sgd(ps, {.lr = 0.1});
  expect_error<ValueError>([&] { sgd.set_lr(-2.0); }, {"SGD", "lr >= 0", "lr=-2"});
  expect_error<ValueError>([&] { sgd.set_lr(std::numeric_limits<double>::infinity()); },
                           {"lr >= 0 and finite"});
  EXPECT_EQ(sgd.lr(), 0.1);
}

TEST(OptimizerChecks, BadParametersAreRejected) {
  expect_error<ValueError>([] { SGD({}, {.lr = 0.1}); }, {"SGD", "at least one parameter"});
  Tensor w = vec({1.0, 2.0}, {2});
  expect_error<ValueError>(
      [&] {
        SGD({{"w", w}, {"w", w}}, {.lr = 0.1});
      },
      {"unique parameter names", "'w'"});
  expect_error<ValueError>([&] { Adam({{"w", Tensor()}}); }, {"Adam", "'w' is undefined"});
  expect_error<TypeError>([] { Adam({{"idx", arange(3)}}); }, {"floating-point", "'idx'", "i64 [3]"});

  // A non-contiguous parameter is refused at step(), before any parameter moves.
  Tensor ok = vec({1.0, 2.0}, {2});
  Tensor base = vec({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor transposed = base.detach().transpose(0, 1);
  transposed.set_grad(zeros({3, 2}, DType::f64));
  ok.set_grad(from_vector(std::vector<double>{1.0, 1.0}, {2}));
  SGD sgd({{"ok", ok}, {"t", transposed}}, {.lr = 0.1});
  expect_error<ValueError>([&] { sgd.step(); },
                           {"SGD::step", "contiguous", "'t'", "f64 [3, 2]", "strides [1, 3]"});
  EXPECT_EQ(ok.to_vector<double>(), (std::vector<double>{1.0, 2.0}));

  // f32/f64 only at step (bf16 cannot be made on the CPU, so an f64 param with an f32 gradient stands in for
  // the gradient check).
  Tensor p64 = vec({1.0}, {1});
  Adam adam({{"p", p64}});
  p64.impl()->autograd->grad = std::make_shared<Tensor>(zeros({1}));
  expect_error<ValueError>([&] { adam.step(); }, {"Adam::step", "gradient of 'p'", "f64 [1]", "f32 [1]"});
}

TEST(OptimizerChecks, NonContiguousGradientIsAccepted) {
  Tensor w = vec({1.0, 2.0, 3.0, 4.0}, {2, 2});
  SGD sgd({{"w", w}}, {.lr = 1.0});
  Tensor g = from_vector(std::vector<double>{1.0, 2.0, 3.0, 4.0}, {2, 2}).transpose(0, 1);
  w.impl()->autograd->grad = std::make_shared<Tensor>(g);
  sgd.step();
  EXPECT_EQ(w.to_vector<double>(), (std::vector<double>{0.0, -1.0, 1.0, 0.0}));
}

// --- Large tensors: the OpenMP path ----------------------------------------------------------------------

TEST(OptimizerParallel, LargeAdamStepMatchesFormulaAndIgnoresThreadCount) {
  const std::int64_t n = 3 * kParallelGrain + 17;
  Generator gen(11);
  const Tensor start = randn({n, 1}, 0.0, 1.0, DType::f32, kCPU, &gen);
  const Tensor grad = randn({n, 1}, 0.0, 1.0, DType::f32, kCPU, &gen);
  const int threads = num_threads();
  std::vector<std::vector<float>> results;
  for (int t : {1, std::max(2, threads)}) {
    set_num_threads(t);
    Tensor p = start.clone().requires_grad_();
    Adam adam({{"p", p}}, {.lr = 0.01, .weight_decay = 0.1});
    for (int s = 0; s < 2; ++s) {
      p.set_grad(grad.clone());
      adam.step();
    }
    results.push_back(p.to_vector<float>());
  }
  set_num_threads(threads);
  EXPECT_EQ(results[0], results[1]);
  // Element-wise formula for two steps with the same gradient, in double.
  const auto p0 = start.to_vector<float>(), g = grad.to_vector<float>();
  for (std::int64_t i = 0; i < n; i += 4099) {
    double p = p0[i], m = 0, v = 0;
    for (int s = 1; s <= 2; ++s) {
      const double gi = g[i] + 0.1 * p;
      m = 0.9 * m + 0.1 * gi;
      v = 0.999 * v + 0.001 * gi * gi;
      p -= 0.01 / (1 - std::pow(0.9, s)) * m / (std::sqrt(v) / std::sqrt(1 - std::pow(0.999, s)) + 1e-8);
    }
    EXPECT_NEAR(results[0][i], p, 1e-5) << i;
  }
}

}  // namespace
}  // namespace lockstep::optim
