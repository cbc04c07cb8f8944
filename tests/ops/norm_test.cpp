// Batch norm, layer norm and dropout beyond the op table: second derivatives of every norm-family case
// against finite differences of the first, running statistics, eval mode, typed errors, large inputs on the
// blocked parallel kernel paths, thread-count independence, and dropout mask statistics.
#include "src/ops/norm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "src/autograd/engine.h"
#include "src/autograd/grad_mode.h"
#include "src/core/threading.h"
#include "src/ops/activation.h"
#include "src/ops/dropout.h"
#include "src/ops/elementwise.h"
#include "src/ops/reduce.h"
#include "src/ops/shape.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"
#include "tests/support/gradcheck.h"
#include "tests/support/op_case.h"

namespace lockstep {
namespace {

using test::expect_error;

void expect_near_all(const Tensor& got, const Tensor& want, double tol) {
  ASSERT_EQ(got.shape(), want.shape());
  const auto g = got.to_vector<double>(), w = want.to_vector<double>();
  int bad = 0;
  for (std::size_t i = 0; i < g.size(); ++i) {
    if (!(std::abs(g[i] - w[i]) <= tol * (1.0 + std::abs(w[i]))) && bad++ < 5) {
      ADD_FAILURE() << "element " << i << ": got " << g[i] << ", want " << w[i];
    }
  }
}

// Runs `fn` on 1 and on 3 threads and restores the thread count.
template <class Fn>
std::pair<Tensor, Tensor> on_one_and_three_threads(Fn&& fn) {
  const int saved = num_threads();
  set_num_threads(1);
  Tensor a = fn();
  set_num_threads(3);
  Tensor b = fn();
  set_num_threads(saved);
  return {a, b};
}

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// The cases of tests/ops/cases_norm.cpp (the op table's "norm." family).
std::vector<const test::OpCase*> norm_cases() {
  std::vector<const test::OpCase*> cases;
  for (const auto& c : test::all_op_cases()) {
    if (c.name.rfind("norm.", 0) == 0 && c.check_grad) cases.push_back(&c);
  }
  return cases;
}

// The case's f64 inputs, the differentiable ones requiring grad.
std::vector<Tensor> case_inputs(const test::OpCase& c) {
  std::vector<Tensor> xs;
  std::vector<test::RefArray> refs;
  test::make_inputs(c, DType::f64, xs, refs);
  for (std::size_t i = 0; i < xs.size(); ++i) {
    if (c.inputs[i].differentiable) xs[i].requires_grad_();
  }
  return xs;
}

// xs -> the first derivatives of sum(f(xs) * v) (v fixed, of f's output shape) with respect to every
// differentiable input, flattened and concatenated; recorded (create_graph) when `create` says so, so that
// gradcheck can differentiate the backward itself.
Fn first_derivatives(const test::OpCase& c, CreateGraph create) {
  return [&c, create](const std::vector<Tensor>& xs) {
    GradModeGuard grad_on(true);
    std::vector<Tensor> leaves, wrt;
    for (std::size_t i = 0; i < xs.size(); ++i) {
      Tensor leaf = xs[i];
      if (c.inputs[i].differentiable && !leaf.requires_grad()) {
        leaf = xs[i].detach();
        leaf.requires_grad_();
      }
      leaves.push_back(leaf);
      if (c.inputs[i].differentiable) wrt.push_back(leaf);
    }
    const Tensor y = c.fn(leaves);
    Generator gen(77);
    const Tensor v = rand(y.shape(), -1.0, 1.0, DType::f64, kCPU, &gen);
    const std::vector<Tensor> g = grad({sum(y * v)}, wrt, {}, RetainGraph::kYes, create);
    std::vector<Tensor> flat;
    for (std::size_t k = 0; k < g.size(); ++k) {
      flat.push_back(g[k].defined() ? g[k].reshape({-1}) : zeros({wrt[k].numel()}, DType::f64));
    }
    return cat(flat);
  };
}

TEST(NormSecondDerivatives, EveryNormCaseMatchesFiniteDifferencesOfItsFirstDerivative) {
  const std::vector<const test::OpCase*> cases = norm_cases();
  ASSERT_GE(cases.size(), 20u);  // batch norm train/eval, layer norm, dropout
  int linear = 0;
  for (const test::OpCase* c : cases) {
    const Fn first = first_derivatives(*c, CreateGraph::kYes);
    const std::vector<Tensor> xs = case_inputs(*c);
    if (!first(xs).requires_grad()) {
      // A first derivative that depends on no input (dropout, eval batch norm without affine: linear ops)
      // has a zero second derivative: it must not move when every differentiable input does.
      ++linear;
      Generator gen(5);
      std::vector<Tensor> moved = xs;
      for (std::size_t i = 0; i < xs.size(); ++i) {
        if (c->inputs[i].differentiable)
          moved[i] = xs[i].detach() + rand(xs[i].shape(), -0.1, 0.1, DType::f64, kCPU, &gen);
      }
      SCOPED_TRACE(c->name);
      expect_near_all(first(moved), first(xs), 1e-12);
      continue;
    }
    const test::GradcheckResult r = test::gradcheck(first, xs);
    EXPECT_TRUE(r.ok) << c->name << ":\n" << r.message;
  }
  // The dropout cases and eval_3d_no_affine; every other case goes through gradcheck.
  EXPECT_LE(linear, 9);
}

TEST(NormSecondDerivatives, RecordedFirstDerivativesEqualTheFusedKernels) {
  // Under create_graph batch norm (training) and layer norm run their backward from differentiable ops; the
  // gradients must be those of the fused first-order kernels.
  for (const test::OpCase* c : norm_cases()) {
    const std::vector<Tensor> xs = case_inputs(*c);
    const Tensor fused = first_derivatives(*c, CreateGraph::kNo)(xs);
    const Tensor recorded = first_derivatives(*c, CreateGraph::kYes)(xs);
    SCOPED_TRACE(c->name);
    expect_near_all(recorded.detach(), fused, 1e-12);
  }
}

TEST(NormSecondDerivatives, LargeBatchNormAndLayerNormHessianVectorProducts) {
  // Beyond the table's small shapes: the gradient penalty of a critic, d/dx |d(sum(f(x) * r))/dx|^2 / 2, on
  // the kernels' blocked paths, against finite differences of the first derivative along a random direction.
  Generator gen(21);
  const auto check = [&gen](const char* what, const Shape& shape,
                            const std::function<Tensor(const Tensor&)>& f) {
    const Tensor x0 = randn(shape, 0.5, 2.0, DType::f64, kCPU, &gen);
    const Tensor r = randn(shape, 0.0, 1.0, DType::f64, kCPU, &gen);
    const Tensor u = randn(shape, 0.0, 1.0, DType::f64, kCPU, &gen);
    const auto first = [&](const Tensor& x_value, CreateGraph create) {
      Tensor x = x_value.detach().requires_grad_();
      const Tensor g = grad({sum(f(x) * r)}, {x}, {}, RetainGraph::kYes, create)[0];
      return std::pair<Tensor, Tensor>{x, g};
    };
    // Hessian-vector product H u through the recorded backward, and (g(x + h u) - g(x - h u)) / 2h.
    const auto [x, g] = first(x0, CreateGraph::kYes);
    const Tensor hu = grad({sum(g * u)}, {x})[0];
    const double h = 1e-5;
    const Tensor numeric =
        (first(x0 + u * h, CreateGraph::kNo).second - first(x0 - u * h, CreateGraph::kNo).second) / (2 * h);
    SCOPED_TRACE(what);
    expect_near_all(hu, numeric, 1e-6);
  };
  check("batch_norm [61, 8, 12, 12]", {61, 8, 12, 12}, [](const Tensor& x) {
    return batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), BatchNormMode::kTrain);
  });
  check("layer_norm [700, 96]", {700, 96}, [](const Tensor& x) { return layer_norm(x, {96}); });
}

TEST(NormSecondDerivatives, GradientPenaltyThroughABatchNormAndLayerNormCritic) {
  // WGAN-GP: a critic D(x) = sum(layer_norm(tanh(batch_norm(x))) * r) and its penalty sum((dD/dx)^2), whose
  // gradient with respect to x and both layers' weights and biases is a second derivative of each norm.
  Generator gen(31);
  const Tensor r = rand({6, 4}, -1.0, 1.0, DType::f64, kCPU, &gen);
  const Fn penalty = [r](const std::vector<Tensor>& in) {
    GradModeGuard grad_on(true);
    Tensor x = in[0];
    if (!x.requires_grad()) x = in[0].detach().requires_grad_();
    const Tensor h = tanh(batch_norm(x, in[1], in[2], Tensor(), Tensor(), BatchNormMode::kTrain));
    const Tensor critic = sum(layer_norm(h, {4}, in[3], in[4]) * r);
    const Tensor g = grad({critic}, {x}, {}, RetainGraph::kYes, CreateGraph::kYes)[0];
    return sum(g * g);
  };
  std::vector<Tensor> inputs{
      randn({6, 4}, 0.5, 2.0, DType::f64, kCPU, &gen), rand({4}, 0.5, 1.5, DType::f64, kCPU, &gen),
      rand({4}, -1.0, 1.0, DType::f64, kCPU, &gen), rand({4}, 0.5, 1.5, DType::f64, kCPU, &gen),
      rand({4}, -1.0, 1.0, DType::f64, kCPU, &gen)};
  for (Tensor& t : inputs) t.requires_grad_();
  const test::GradcheckResult result = test::gradcheck(penalty, inputs);
  EXPECT_TRUE(result.ok) << result.message;
}

TEST(BatchNorm, TrainStepUpdatesRunningStatisticsWithUnbiasedVariance) {
  Generator gen(3);
  const Tensor x = randn({4, 3, 2}, 1.0, 2.0, DType::f64, kCPU, &gen);
  Tensor rm = from_vector<double>({0.5, -1.0, 2.0}, {3});
  Tensor rv = from_vector<double>({1.0, 2.0, 0.5}, {3});
  const double momentum = 0.2;
  batch_norm(x, Tensor(), Tensor(), rm, rv, BatchNormMode::kTrain, momentum);
  const auto xs = x.to_vector<double>();
  const auto rms = rm.to_vector<double>(), rvs = rv.to_vector<double>();
  const double old_m[3] = {0.5, -1.0, 2.0}, old_v[3] = {1.0, 2.0, 0.5};
  for (int c = 0; c < 3; ++c) {
    double m = 0.0, ss = 0.0;
    for (int n = 0; n < 4; ++n)
      for (int l = 0; l < 2; ++l) m += xs[static_cast<std::size_t>((n * 3 + c) * 2 + l)];
    m /= 8.0;
    for (int n = 0; n < 4; ++n)
      for (int l = 0; l < 2; ++l) ss += std::pow(xs[static_cast<std::size_t>((n * 3 + c) * 2 + l)] - m, 2.0);
    EXPECT_NEAR(rms[static_cast<std::size_t>(c)], (1.0 - momentum) * old_m[c] + momentum * m, 1e-12);
    EXPECT_NEAR(rvs[static_cast<std::size_t>(c)], (1.0 - momentum) * old_v[c] + momentum * ss / 7.0, 1e-12);
  }
}

TEST(BatchNorm, EvalUsesRunningStatisticsAndIgnoresTheBatch) {
  const Tensor rm = from_vector<double>({0.5, -1.0}, {2});
  const Tensor rv = from_vector<double>({4.0, 0.25}, {2});
  const Tensor w = from_vector<double>({2.0, 3.0}, {2});
  const Tensor b = from_vector<double>({1.0, -1.0}, {2});
  const Tensor x = from_vector<double>({1.0, 0.0, 3.0, -2.0, -1.0, 5.0}, {3, 2});
  const Tensor y = batch_norm(x, w, b, rm, rv, BatchNormMode::kEval, 0.1, 0.0);
  // y = (x - rm) / sqrt(rv) * w + b per column.
  const std::vector<double> want{(1.0 - 0.5) / 2.0 * 2.0 + 1.0,  (0.0 + 1.0) / 0.5 * 3.0 - 1.0,
                                 (3.0 - 0.5) / 2.0 * 2.0 + 1.0,  (-2.0 + 1.0) / 0.5 * 3.0 - 1.0,
                                 (-1.0 - 0.5) / 2.0 * 2.0 + 1.0, (5.0 + 1.0) / 0.5 * 3.0 - 1.0};
  const auto got = y.to_vector<double>();
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12);
  // Each row is normalised on its own: a batch of one row gives that row's values.
  const Tensor y1 = batch_norm(x.slice(0, 1, 2), w, b, rm, rv, BatchNormMode::kEval, 0.1, 0.0);
  EXPECT_NEAR(y1.to_vector<double>()[0], want[2], 1e-12);
  EXPECT_EQ(rm.to_vector<double>(), (std::vector<double>{0.5, -1.0}));  // untouched in eval
  EXPECT_EQ(rv.to_vector<double>(), (std::vector<double>{4.0, 0.25}));
}

TEST(BatchNorm, EvalBackwardUsesRunningStatistics) {
  const Tensor rm = from_vector<double>({0.5, -1.0}, {2});
  const Tensor rv = from_vector<double>({4.0, 0.25}, {2});
  Tensor w = from_vector<double>({2.0, 3.0}, {2}).requires_grad_();
  Tensor b = from_vector<double>({1.0, -1.0}, {2}).requires_grad_();
  Tensor x = from_vector<double>({1.0, 0.0, 3.0, -2.0}, {2, 2}).requires_grad_();
  sum(batch_norm(x, w, b, rm, rv, BatchNormMode::kEval, 0.1, 0.0)).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{1.0, 6.0, 1.0, 6.0}));
  EXPECT_EQ(b.grad().to_vector<double>(), (std::vector<double>{2.0, 2.0}));
  const auto dw = w.grad().to_vector<double>();
  EXPECT_NEAR(dw[0], ((1.0 - 0.5) + (3.0 - 0.5)) / 2.0, 1e-12);
  EXPECT_NEAR(dw[1], ((0.0 + 1.0) + (-2.0 + 1.0)) / 0.5, 1e-12);
}

TEST(BatchNorm, ShapeErrorsNameTheShapes) {
  const Tensor x = zeros({4, 3, 5});
  const Tensor c3 = ones({3});
  expect_error<ValueError>([&] { batch_norm(x, c3, c3, ones({4}), c3, BatchNormMode::kTrain); },
                           {"batch_norm", "running_mean", "[3]", "[4]", "[4, 3, 5]"});
  expect_error<ValueError>(
      [&] {
        batch_norm(x, ones({3, 1}), c3, c3, c3, BatchNormMode::kTrain);
      },
      {"weight", "[3, 1]", "[4, 3, 5]"});
  expect_error<ValueError>(
      [&] { batch_norm(zeros({5}), Tensor(), Tensor(), Tensor(), Tensor(), BatchNormMode::kTrain); },
      {"batch_norm", "[N, C, *]", "[5]"});
  expect_error<TypeError>([&] { batch_norm(x, ones({3}, DType::f64), c3, c3, c3, BatchNormMode::kTrain); },
                          {"weight", "f64", "f32"});
  expect_error<TypeError>(
      [&] {
        batch_norm(zeros({4, 3}, DType::i64), Tensor(), Tensor(), Tensor(), Tensor(), BatchNormMode::kTrain);
      },
      {"batch_norm", "i64", "[4, 3]"});
  expect_error<ValueError>([&] { batch_norm(x, c3, c3, c3, Tensor(), BatchNormMode::kTrain); },
                           {"running_mean and running_var", "only running_mean"});
  expect_error<ValueError>([&] { batch_norm(x, c3, c3, Tensor(), Tensor(), BatchNormMode::kEval); },
                           {"eval mode", "[4, 3, 5]"});
}

TEST(BatchNorm, TrainingNeedsMoreThanOneValuePerChannel) {
  expect_error<ValueError>(
      [] {
        batch_norm(ones({1, 3}), Tensor(), Tensor(), Tensor(), Tensor(), BatchNormMode::kTrain);
      },
      {"expected more than 1 value per channel", "[1, 3]"});
  expect_error<ValueError>(
      [] {
        batch_norm(ones({1, 2, 1, 1}), Tensor(), Tensor(), Tensor(), Tensor(), BatchNormMode::kTrain);
      },
      {"expected more than 1 value per channel", "[1, 2, 1, 1]"});
  // One sample with several positions per channel is fine.
  EXPECT_NO_THROW(
      batch_norm(randn({1, 2, 3}), Tensor(), Tensor(), Tensor(), Tensor(), BatchNormMode::kTrain));
}

TEST(BatchNorm, RawStepsValidateTheirInputs) {
  const Tensor x = zeros({2, 3, 4});
  expect_error<ValueError>([&] { batch_norm_elemt(x, ones({3}), ones({2}), Tensor(), Tensor()); },
                           {"batch_norm_elemt", "invstd", "[2]", "[3]"});
  expect_error<ValueError>(
      [&] {
        batch_norm_backward_reduce(zeros({2, 3, 5}), x, ones({3}));
      },
      {"batch_norm_backward_reduce", "dy", "[2, 3, 5]", "[2, 3, 4]"});
  expect_error<ValueError>(
      [&] { batch_norm_backward_elemt(x, x, ones({3}), ones({3}), Tensor(), ones({3}), ones({3}), 0.0); },
      {"batch_norm_backward_elemt", "count"});
}

// y = (x - mean) / sqrt(var + eps) * w + b over every dimension but 1, composed of differentiable ops.
Tensor composed_batch_norm(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  std::vector<std::int64_t> dims{0};
  Shape channel(static_cast<std::size_t>(x.dim()), 1);
  channel[1] = x.size(1);
  for (std::int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  const Tensor m = mean(x, dims, KeepDim::kYes);
  const Tensor v = mean(square(x - m), dims, KeepDim::kYes);
  return (x - m) / sqrt(v + eps) * w.view(channel) + b.view(channel);
}

// Forward and backward of batch norm on a large input (blocked, parallel paths) against composed ops.
void check_large_batch_norm(const Shape& shape) {
  Generator gen(11);
  const std::int64_t c = shape[1];
  Tensor x = randn(shape, 0.5, 2.0, DType::f64, kCPU, &gen).requires_grad_();
  Tensor w = rand({c}, 0.5, 1.5, DType::f64, kCPU, &gen).requires_grad_();
  Tensor b = rand({c}, -1.0, 1.0, DType::f64, kCPU, &gen).requires_grad_();
  const Tensor r = randn(shape, 0.0, 1.0, DType::f64, kCPU, &gen);
  const Tensor y = batch_norm(x, w, b, Tensor(), Tensor(), BatchNormMode::kTrain);
  sum(y * r).backward();
  const Tensor dx = x.grad(), dw = w.grad(), db = b.grad();
  x.set_grad(Tensor());
  w.set_grad(Tensor());
  b.set_grad(Tensor());
  const Tensor y_ref = composed_batch_norm(x, w, b, 1e-5);
  sum(y_ref * r).backward();
  expect_near_all(y, y_ref, 1e-10);
  expect_near_all(dx, x.grad(), 1e-9);
  expect_near_all(dw, w.grad(), 1e-9);
  expect_near_all(db, b.grad(), 1e-9);
}

TEST(BatchNorm, LargeInputsMatchComposedOps) {
  check_large_batch_norm({61, 8, 12, 12});  // 70272 elements: parallel, two row blocks (31 + 30 rows)
  check_large_batch_norm({22001, 3});       // the [N, C] path, two row blocks
}

TEST(BatchNorm, ResultsDoNotDependOnTheThreadCount) {
  Generator gen(5);
  const Tensor x = randn({32, 4, 30, 20}, 1.0, 3.0, DType::f32, kCPU, &gen);
  const Tensor r = randn({32, 4, 30, 20}, 0.0, 1.0, DType::f32, kCPU, &gen);
  auto [a, b] = on_one_and_three_threads([&] {
    Tensor xi = x.clone().requires_grad_();
    const Tensor y = batch_norm(xi, Tensor(), Tensor(), Tensor(), Tensor(), BatchNormMode::kTrain);
    sum(y * r).backward();
    return xi.grad();
  });
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
}

// The fused epilogue (src/ops/norm.h) against batch norm, add and relu as separate ops: the output, every
// gradient and the running statistics bit for bit, on the channel-row path (L > 1) and the L = 1 path.
TEST(BatchNorm, FusedEpilogueMatchesTheSeparateOpsBitForBit) {
  Generator gen(11);
  for (const Shape& shape : {Shape{6, 16, 7, 9}, Shape{40, 24}}) {
    const std::int64_t c = shape[1];
    const Tensor x0 = randn(shape, 0.5, 2.0, DType::f32, kCPU, &gen);
    const Tensor w0 = rand({c}, 0.5, 1.5, DType::f32, kCPU, &gen),
                 b0 = randn({c}, 0.0, 1.0, DType::f32, kCPU, &gen);
    const Tensor r0 = randn(shape, 0.0, 1.0, DType::f32, kCPU, &gen),
                 up = randn(shape, 0.0, 1.0, DType::f32, kCPU, &gen);
    for (const bool residual : {false, true}) {
      for (const bool relu_after : {false, true}) {
        if (!residual && !relu_after) continue;
        SCOPED_TRACE(shape_str(shape) + (residual ? " residual" : "") + (relu_after ? " relu" : ""));
        std::vector<Tensor> grads[2], outputs[2], stats[2];
        for (int fused = 0; fused < 2; ++fused) {
          const Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(),
                       b = b0.clone().requires_grad_(), r = r0.clone().requires_grad_();
          const Tensor rm = zeros({c}), rv = ones({c});
          Tensor z;
          if (fused == 1) {
            z = batch_norm_train(x, w, b, rm, rv, 0.1, 1e-5, nullptr, "batch_norm",
                                 {residual ? r : Tensor(), relu_after});
          } else {
            z = batch_norm_train(x, w, b, rm, rv, 0.1, 1e-5, nullptr);
            if (residual) z = z + r;
            if (relu_after) z = relu(z);
          }
          sum(z * up).backward();
          outputs[fused] = {z.detach()};
          grads[fused] = {x.grad(), w.grad(), b.grad()};
          if (residual) grads[fused].push_back(r.grad());
          stats[fused] = {rm, rv};
        }
        for (int k = 0; k < 3; ++k) {
          const std::vector<Tensor>& a = k == 0 ? outputs[0] : k == 1 ? grads[0] : stats[0];
          const std::vector<Tensor>& f = k == 0 ? outputs[1] : k == 1 ? grads[1] : stats[1];
          ASSERT_EQ(a.size(), f.size());
          for (std::size_t i = 0; i < a.size(); ++i) {
            EXPECT_EQ(a[i].to_vector<float>(), f[i].to_vector<float>()) << "kind " << k << ", tensor " << i;
          }
        }
      }
    }
  }
}

TEST(BatchNorm, EpilogueResidualMustMatchTheInput) {
  const Tensor x = zeros({4, 3, 2});
  expect_error<ValueError>(
      [&] {
        batch_norm_train(x, {}, {}, {}, {}, 0.1, 1e-5, nullptr, "batch_norm", then_relu(zeros({4, 3})));
      },
      {"batch_norm", "residual", "[4, 3, 2]", "[4, 3]"});
  expect_error<TypeError>(
      [&] {
        batch_norm_train(x, {}, {}, {}, {}, 0.1, 1e-5, nullptr, "batch_norm",
                         then_relu(zeros({4, 3, 2}, DType::f64)));
      },
      {"batch_norm", "residual", "f64"});
}

TEST(BatchNorm, F32StatisticsAreAccurateWithALargeMean) {
  Generator gen(9);
  const Tensor x64 = randn({4096, 2}, 1000.0, 0.01, DType::f64, kCPU, &gen);
  const BatchNormStatistics s32 = batch_norm_statistics(x64.to(DType::f32));
  const BatchNormStatistics s64 = batch_norm_statistics(x64.to(DType::f32).to(DType::f64));
  expect_near_all(s32.mean, s64.mean, 1e-7);
  expect_near_all(s32.var.to(DType::f64) / s64.var, ones({2}, DType::f64), 1e-4);
}

TEST(LayerNorm, ShapeErrorsNameTheShapes) {
  const Tensor x = zeros({2, 3, 4});
  expect_error<ValueError>([&] { layer_norm(x, {3}); }, {"layer_norm", "[3]", "[2, 3, 4]"});
  expect_error<ValueError>([&] { layer_norm(x, {}); }, {"layer_norm", "[]"});
  expect_error<ValueError>([&] { layer_norm(x, {1, 2, 3, 4}); }, {"[1, 2, 3, 4]"});
  expect_error<ValueError>([&] { layer_norm(x, {3, 4}, ones({12})); }, {"weight", "[3, 4]", "[12]"});
  expect_error<TypeError>([&] { layer_norm(x, {4}, ones({4}, DType::f64)); }, {"weight", "f64", "f32"});
}

TEST(LayerNorm, LargeInputsMatchComposedOps) {
  Generator gen(13);
  Tensor x = randn({700, 96}, 0.3, 2.0, DType::f64, kCPU, &gen).requires_grad_();
  Tensor w = rand({96}, 0.5, 1.5, DType::f64, kCPU, &gen).requires_grad_();
  Tensor b = rand({96}, -1.0, 1.0, DType::f64, kCPU, &gen).requires_grad_();
  const Tensor r = randn({700, 96}, 0.0, 1.0, DType::f64, kCPU, &gen);
  const Tensor y = layer_norm(x, {96}, w, b);
  sum(y * r).backward();
  const Tensor dx = x.grad(), dw = w.grad(), db = b.grad();
  x.set_grad(Tensor());
  w.set_grad(Tensor());
  b.set_grad(Tensor());
  const Tensor m = mean(x, {1}, KeepDim::kYes);
  const Tensor v = mean(square(x - m), {1}, KeepDim::kYes);
  const Tensor y_ref = (x - m) / sqrt(v + 1e-5) * w + b;
  sum(y_ref * r).backward();
  expect_near_all(y, y_ref, 1e-10);
  expect_near_all(dx, x.grad(), 1e-9);
  expect_near_all(dw, w.grad(), 1e-9);
  expect_near_all(db, b.grad(), 1e-9);
}

TEST(LayerNorm, ResultsDoNotDependOnTheThreadCount) {
  Generator gen(17);
  const Tensor x = randn({3000, 64}, 0.0, 1.0, DType::f32, kCPU, &gen);
  Tensor w = ones({64});
  auto [a, b] = on_one_and_three_threads([&] {
    Tensor wi = w.clone().requires_grad_();
    sum(square(layer_norm(x, {64}, wi))).backward();
    return wi.grad();
  });
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
}

// The mask dropout applied to x = ones.
Tensor dropout_mask(std::int64_t n, double p, std::uint64_t seed, DType dtype = DType::f32) {
  Generator gen(seed);
  return dropout(ones({n}, dtype), p, DropoutMode::kTrain, &gen);
}

TEST(Dropout, SameSeedGivesTheSameMaskAndDifferentSeedsDiffer) {
  const auto a = dropout_mask(1000, 0.5, 21).to_vector<float>();
  const auto b = dropout_mask(1000, 0.5, 21).to_vector<float>();
  const auto c = dropout_mask(1000, 0.5, 22).to_vector<float>();
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(Dropout, ConsecutiveCallsDrawFreshCounters) {
  Generator gen(4);
  const auto first = dropout(ones({10}), 0.5, DropoutMode::kTrain, &gen).to_vector<float>();
  EXPECT_EQ(gen.offset(), 3u);  // (10 + 3) / 4 counters
  const auto second = dropout(ones({10}), 0.5, DropoutMode::kTrain, &gen).to_vector<float>();
  EXPECT_EQ(gen.offset(), 6u);
  EXPECT_NE(first, second);
}

TEST(Dropout, MaskDoesNotDependOnTheThreadCount) {
  auto [a, b] = on_one_and_three_threads([] { return dropout_mask(200003, 0.3, 8); });
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
}

TEST(Dropout, KeptFractionAndMeanMatchTheProbability) {
  const std::int64_t n = 1 << 20;
  for (double p : {0.1, 0.5, 0.8}) {
    Generator gen(31);
    const Tensor x = rand({n}, 0.0, 2.0, DType::f32, kCPU, &gen);
    const Tensor y = dropout(x, p, DropoutMode::kTrain, &gen);
    const auto ys = y.to_vector<float>();
    std::int64_t kept = 0;
    for (float v : ys) kept += v != 0.0f;
    EXPECT_NEAR(static_cast<double>(kept) / static_cast<double>(n), 1.0 - p, 0.01) << "p = " << p;
    EXPECT_NEAR(mean(y).item(), mean(x).item(), 0.01) << "p = " << p;
    // Survivors are scaled by 1 / (1 - p).
    const auto xs = x.to_vector<float>();
    for (std::size_t i = 0; i < 1000; ++i) {
      if (ys[i] != 0.0f) {
        EXPECT_NEAR(ys[i], xs[i] / (1.0 - p), 1e-5);
      }
    }
  }
}

TEST(Dropout, IdentityForEvalAndZeroProbability) {
  const Tensor x = randn({5, 7});
  EXPECT_TRUE(dropout(x, 0.0, DropoutMode::kTrain).same(x));
  EXPECT_TRUE(dropout(x, 0.7, DropoutMode::kEval).same(x));
  const Generator before = default_generator();
  dropout(x, 0.0, DropoutMode::kTrain);
  EXPECT_EQ(default_generator().offset(), before.offset());  // no counters drawn
}

TEST(Dropout, BackwardMultipliesByTheMask) {
  Generator gen(77);
  Tensor x = randn({6, 5}, 0.0, 1.0, DType::f64).requires_grad_();
  const Tensor y = dropout(x, 0.4, DropoutMode::kTrain, &gen);
  sum(y).backward();
  const Tensor mask = dropout_mask(30, 0.4, 77, DType::f64).view({6, 5});
  EXPECT_EQ(x.grad().to_vector<double>(), mask.to_vector<double>());
}

TEST(Dropout, ProbabilityOutsideTheUnitIntervalIsAValueError) {
  const Tensor x = ones({2, 3});
  expect_error<ValueError>([&] { dropout(x, -0.1, DropoutMode::kTrain); },
                           {"dropout", "[0, 1]", "-0.1", "[2, 3]"});
  expect_error<ValueError>([&] { dropout(x, 1.5, DropoutMode::kEval); }, {"dropout", "1.5"});
  expect_error<ValueError>([&] { dropout(x, std::nan(""), DropoutMode::kTrain); }, {"dropout"});
  expect_error<TypeError>([&] { dropout(zeros({3}, DType::i64), 0.5, DropoutMode::kTrain); },
                          {"dropout", "i64"});
}

}  // namespace
}  // namespace lockstep
