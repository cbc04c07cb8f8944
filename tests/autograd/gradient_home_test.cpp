// Gradient homes (src/autograd/node.h): the kernels of linear and convolution weight gradients write into a
// leaf's home, times its scale, when theirs is the leaf's only gradient of a plain backward; everywhere else
// the engine keeps its usual gradients.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "src/autograd/engine.h"
#include "src/autograd/node.h"
#include "src/core/precision.h"
#include "src/core/rng.h"
#include "src/ops/conv.h"
#include "src/ops/elementwise.h"
#include "src/ops/linalg.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"

namespace lockstep {
namespace {

Tensor random(const Shape& shape, std::uint64_t seed, DType dtype = DType::f32) {
  Generator gen(seed);
  return randn(shape, 0.0, 1.0, dtype, kCPU, &gen);
}

// A home inside a larger flat buffer (as a bucket slot is), open, with `scale`.
std::shared_ptr<GradientHome> attach_home(const Tensor& leaf, double scale) {
  const Tensor flat = full({leaf.numel() + 7}, -1.0, leaf.dtype());
  auto home = std::make_shared<GradientHome>(
      GradientHome{flat.slice(0, 3, 3 + leaf.numel()).view(leaf.shape()), scale, true, false});
  set_gradient_home(leaf, home);
  return home;
}

std::vector<float> values(const Tensor& t) { return t.contiguous().to_vector<float>(); }

std::vector<float> scaled(const Tensor& t, double scale) { return values(t * scale); }

// The weight's gradient with no home (a fresh leaf holding the same values).
template <class Loss>
Tensor reference_gradient(const Tensor& weight, const Loss& loss) {
  Tensor w = weight.detach().clone().requires_grad_();
  loss(w).backward();
  return w.grad();
}

TEST(GradientHome, LinearWeightGradientIsWrittenThereTimesTheScale) {
  // bf16: the GEMM's alpha is oneDNN's output scale (or sgemm's alpha on rounded copies).
  for (const MatmulPrecision precision : {MatmulPrecision::kF32, MatmulPrecision::kBf16}) {
    SCOPED_TRACE(precision_name(precision));
    MatmulPrecisionScope scope(precision);
    const Tensor x = random({5, 40}, 1), c = random({5, 30}, 2);
    Tensor w = random({30, 40}, 3).requires_grad_(), b = random({30}, 4).requires_grad_();
    const auto loss = [&](const Tensor& weight) { return sum(linear(x, weight, b) * c); };
    const Tensor expected = reference_gradient(w, loss);
    b.set_grad(Tensor());
    auto home = attach_home(w, 0.5);
    loss(w).backward();
    EXPECT_TRUE(home->filled);
    EXPECT_TRUE(w.grad().same(home->view));
    EXPECT_EQ(values(w.grad()), scaled(expected, 0.5));  // a power of two: the same bits
    EXPECT_EQ(values(b.grad()), values(sum(c, {0})));    // the bias has no home: unscaled, as usual
  }
}

TEST(GradientHome, ConvolutionWeightGradientsAreWrittenThereTimesTheScale) {
  const Tensor x = random({2, 3, 6, 6}, 5);
  for (const bool transposed : {false, true}) {
    SCOPED_TRACE(transposed ? "conv_transpose2d" : "conv2d");
    Tensor w = random(transposed ? Shape{3, 4, 3, 3} : Shape{4, 3, 3, 3}, 6).requires_grad_();
    const Tensor bias = random({4}, 7).requires_grad_();
    const auto loss = [&](const Tensor& weight) {
      const Tensor y = transposed ? conv_transpose2d(x, weight, bias, {2, 2}, {1, 1})
                                  : conv2d(x, weight, bias, {1, 1}, {1, 1});
      return sum(y * y);
    };
    const Tensor expected = reference_gradient(w, loss);
    auto home = attach_home(w, 0.25);
    loss(w).backward();
    EXPECT_TRUE(home->filled);
    EXPECT_TRUE(w.grad().same(home->view));
    EXPECT_EQ(values(w.grad()), scaled(expected, 0.25));
  }
}

TEST(GradientHome, IsOfferedOnlyForALeafsOnlyGradientInAPlainBackward) {
  const Tensor x = random({5, 4}, 8), x2 = random({5, 4}, 9);
  const auto fresh_weight = [] { return random({3, 4}, 10).requires_grad_(); };
  const auto expect_untouched = [](const Tensor& w, const GradientHome& home) {
    EXPECT_FALSE(home.filled);
    EXPECT_FALSE(w.grad().defined() && w.grad().same(home.view));
    for (float v : values(home.view)) ASSERT_EQ(v, -1.0f);
  };
  {
    SCOPED_TRACE("two gradients meet at the leaf");
    Tensor w = fresh_weight();
    auto home = attach_home(w, 0.5);
    sum(linear(x, w) + linear(x2, w)).backward();
    expect_untouched(w, *home);
    EXPECT_EQ(values(w.grad()), values(matmul(ones({3, 5}), x) + matmul(ones({3, 5}), x2)));  // unscaled
  }
  {
    SCOPED_TRACE("the leaf already has a .grad (accumulation)");
    Tensor w = fresh_weight();
    w.set_grad(ones({3, 4}));
    auto home = attach_home(w, 0.5);
    sum(linear(x, w)).backward();
    expect_untouched(w, *home);
    EXPECT_EQ(values(w.grad()), values(matmul(ones({3, 5}), x) + 1.0));
  }
  {
    SCOPED_TRACE("a closed home");
    Tensor w = fresh_weight();
    auto home = attach_home(w, 0.5);
    home->open = false;
    sum(linear(x, w)).backward();
    expect_untouched(w, *home);
  }
  {
    SCOPED_TRACE("create_graph");
    Tensor w = fresh_weight();
    auto home = attach_home(w, 0.5);
    run_backward({sum(linear(x, w))}, {}, RetainGraph::kNo, CreateGraph::kYes);
    expect_untouched(w, *home);
    EXPECT_EQ(values(w.grad()), values(matmul(ones({3, 5}), x)));
  }
  {
    SCOPED_TRACE("grad()");
    Tensor w = fresh_weight();
    auto home = attach_home(w, 0.5);
    const std::vector<Tensor> g = grad({sum(linear(x, w))}, {w});
    expect_untouched(w, *home);
    EXPECT_FALSE(w.grad().defined());
    EXPECT_EQ(values(g[0]), values(matmul(ones({3, 5}), x)));
  }
  {
    SCOPED_TRACE("detached");
    Tensor w = fresh_weight();
    auto home = attach_home(w, 0.5);
    set_gradient_home(w, nullptr);
    EXPECT_EQ(gradient_home(w), nullptr);
    sum(linear(x, w)).backward();
    expect_untouched(w, *home);
  }
}

TEST(GradientHome, RefusesAHomeOfAnotherShape) {
  Tensor w = random({3, 4}, 11).requires_grad_();
  auto home = std::make_shared<GradientHome>(GradientHome{zeros({4, 3}), 1.0, true, false});
  EXPECT_THROW(set_gradient_home(w, home), AutogradError);
  EXPECT_THROW(set_gradient_home(random({3}, 12), std::make_shared<GradientHome>(GradientHome{zeros({3})})),
               AutogradError);
}

}  // namespace
}  // namespace lockstep
