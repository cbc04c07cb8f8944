// The autograd engine: the course's worked examples, diamonds, no-grad, detach and freezing, a 100k-node
// chain, in-place detection, retain_graph, gradients with respect to inputs, and hook order.
#include <gtest/gtest.h>

#include "src/autograd/engine.h"
#include "src/autograd/grad_mode.h"
#include "src/autograd/node.h"
#include "src/ops/elementwise.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"

namespace lockstep {
namespace {

Tensor scalar_leaf(double v) { return scalar_tensor(v, DType::f64).requires_grad_(); }

TEST(Engine, CourseExampleAddThenMultiply) {
  // f = (x + y) z at (-2, 5, -4): f = -12, df/dx = df/dy = z = -4, df/dz = x + y = 3.
  Tensor x = scalar_leaf(-2), y = scalar_leaf(5), z = scalar_leaf(-4);
  Tensor f = (x + y) * z;
  EXPECT_DOUBLE_EQ(f.item(), -12.0);
  f.backward();
  EXPECT_DOUBLE_EQ(x.grad().item(), -4.0);
  EXPECT_DOUBLE_EQ(y.grad().item(), -4.0);
  EXPECT_DOUBLE_EQ(z.grad().item(), 3.0);
}

TEST(Engine, DiamondSumsGradientsOfBothPaths) {
  Tensor x = scalar_leaf(3);
  Tensor a = x * 2.0, b = x * x;
  Tensor f = a + b;  // f = 2x + x^2, f' = 2 + 2x = 8
  f.backward();
  EXPECT_DOUBLE_EQ(x.grad().item(), 8.0);
}

TEST(Engine, GradientsAccumulateAcrossBackwards) {
  Tensor x = scalar_leaf(2);
  (x * 3.0).backward();
  (x * x).backward();
  EXPECT_DOUBLE_EQ(x.grad().item(), 3.0 + 4.0);
}

TEST(Engine, NoGradRecordsNothing) {
  Tensor x = scalar_leaf(2);
  Tensor y;
  {
    NoGradGuard guard;
    y = x * x;
  }
  EXPECT_FALSE(y.requires_grad());
  EXPECT_EQ(y.grad_fn(), nullptr);
  EXPECT_TRUE(GradMode::is_enabled());
  EXPECT_THROW(y.backward(), AutogradError);
}

TEST(Engine, DetachAndFreezingStopGradients) {
  Tensor w = scalar_leaf(3), frozen = scalar_leaf(5);
  frozen.requires_grad_(false);
  Tensor x = scalar_leaf(2);
  Tensor f = w * x.detach() + frozen * x;
  f.backward();
  EXPECT_DOUBLE_EQ(w.grad().item(), 2.0);
  EXPECT_DOUBLE_EQ(x.grad().item(), 5.0);  // only through frozen * x; the detached path gives nothing
  EXPECT_FALSE(frozen.grad().defined());
}

TEST(Engine, LongChainNeitherOverflowsOnBackwardNorOnDestruction) {
  Tensor x = scalar_leaf(1.0);
  {
    Tensor y = x;
    for (int i = 0; i < 100000; ++i) y = y * 1.0;
    y.backward();
  }
  EXPECT_DOUBLE_EQ(x.grad().item(), 1.0);
  {
    Tensor y = x;
    for (int i = 0; i < 100000; ++i) y = y + 0.0;
  }  // destroyed without a backward: still iterative
}

TEST(Engine, InPlaceModificationOfASavedTensorIsDetectedAndNamesTheOp) {
  Tensor x = ones({3}, DType::f64).requires_grad_();
  Tensor w = full({3}, 2.0, DType::f64);
  Tensor y = sum(x * w);
  w.add_(ones({3}, DType::f64));
  try {
    y.backward();
    FAIL() << "expected AutogradError";
  } catch (const AutogradError& e) {
    EXPECT_NE(std::string(e.what()).find("mul"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("modified by an in-place operation"), std::string::npos) << e.what();
  }
}

TEST(Engine, InPlaceOnALeafThatRequiresGradIsRefusedOutsideNoGrad) {
  Tensor w = ones({2}).requires_grad_();
  EXPECT_THROW(w.add_(ones({2})), AutogradError);
  NoGradGuard guard;
  w.add_(ones({2}));
  EXPECT_EQ(w.to_vector<float>(), (std::vector<float>{2, 2}));
}

TEST(Engine, SecondBackwardNeedsRetainGraph) {
  Tensor x = scalar_leaf(2);
  Tensor y = x * x;
  y.backward({}, RetainGraph::kYes);
  y.backward();
  EXPECT_DOUBLE_EQ(x.grad().item(), 8.0);
  EXPECT_THROW(y.backward(), AutogradError);
}

TEST(Engine, GradWithRespectToInputsLeavesDotGradAlone) {
  Tensor x = from_vector(std::vector<double>{1, 2, 3}, {3}).requires_grad_();
  Tensor w = from_vector(std::vector<double>{4, 5, 6}, {3}).requires_grad_();
  Tensor loss = sum(x * w);
  std::vector<Tensor> g = grad({loss}, {x});
  EXPECT_EQ(g[0].to_vector<double>(), (std::vector<double>{4, 5, 6}));
  EXPECT_FALSE(x.grad().defined());
  EXPECT_FALSE(w.grad().defined());
}

TEST(Engine, PostAccumulateHooksRunAfterAccumulationInRegistrationOrderAndLastUsedLeafFirst) {
  Tensor a = scalar_leaf(1), b = scalar_leaf(2);
  std::vector<std::string> events;
  a.register_post_accumulate_hook([&](Tensor& t) { events.push_back("a1:" + std::to_string(t.grad().item())); });
  a.register_post_accumulate_hook([&](Tensor&) { events.push_back("a2"); });
  b.register_post_accumulate_hook([&](Tensor& t) { events.push_back("b:" + std::to_string(t.grad().item())); });
  Tensor h = a * 3.0;   // a used first (like an early layer)
  Tensor f = h * b;     // b used last: its gradient is ready first
  f.backward();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0], "b:3.000000");
  EXPECT_EQ(events[1], "a1:6.000000");
  EXPECT_EQ(events[2], "a2");
}

TEST(Engine, NonScalarBackwardNeedsAGradient) {
  Tensor x = ones({2, 2}).requires_grad_();
  Tensor y = x * 2.0;
  EXPECT_THROW(y.backward(), AutogradError);
  y.backward(full({2, 2}, 0.5));
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{1, 1, 1, 1}));
}

TEST(Engine, WrongGradientShapeIsATypedError) {
  Tensor x = ones({2, 2}).requires_grad_();
  Tensor y = x * 2.0;
  EXPECT_THROW(y.backward(ones({3})), AutogradError);
}

// grad() runs only what leads to the requested inputs: a branch that reaches only w is never applied, and a
// node feeding both is asked for x's gradient alone (as PyTorch's engine does), which is what makes the
// gradient penalty's inner grad() skip every weight gradient.
TEST(Engine, GradComputesOnlyThePathsToTheRequestedInputs) {
  Tensor x = full({3}, 2.0, DType::f64).requires_grad_();
  Tensor w = full({3}, 3.0, DType::f64).requires_grad_();
  int w_only_runs = 0;
  std::vector<bool> asked;  // what the shared node was asked for, per input
  const Tensor w_only = w * 1.0;
  Tensor branch = zeros({3}, DType::f64);
  ASSERT_TRUE(record("w_only", {w_only}, {branch}, {}, [&](BackwardContext& ctx) {
    ++w_only_runs;
    return std::vector<Tensor>{ctx.grad()};
  }));
  Tensor shared = x * w;  // a real product, to check the values
  Tensor both = zeros({3}, DType::f64);
  ASSERT_TRUE(record("both", {shared, w}, {both}, {}, [&](BackwardContext& ctx) {
    asked = {ctx.needs_input_grad(0), ctx.needs_input_grad(1)};
    return std::vector<Tensor>{ctx.needs_input_grad(0) ? ctx.grad() : Tensor(),
                               ctx.needs_input_grad(1) ? ctx.grad() : Tensor()};
  }));
  const Tensor y = sum(both + branch);
  const Tensor gx = grad({y}, {x}, {}, RetainGraph::kYes)[0];
  EXPECT_EQ(gx.to_vector<double>(), (std::vector<double>{3, 3, 3}));  // d (x w) / dx = w
  EXPECT_EQ(w_only_runs, 0);
  EXPECT_EQ(asked, (std::vector<bool>{true, false}));
  // A backward into every leaf runs everything.
  y.backward();
  EXPECT_EQ(w_only_runs, 1);
  EXPECT_EQ(asked, (std::vector<bool>{true, true}));
  EXPECT_EQ(w.grad().to_vector<double>(), (std::vector<double>{4, 4, 4}));  // x + 1 (both) + 1 (w_only)
}

}  // namespace
}  // namespace lockstep
