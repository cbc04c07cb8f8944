// Adversarial review of the autograd engine: gradients through views, leaves used twice, retain_graph,
// higher-order gradients, grad() of unrelated inputs, hooks, misuse errors, freeing, long and wide graphs,
// and graphs built and run on several threads at once.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "src/autograd/engine.h"
#include "src/autograd/grad_mode.h"
#include "src/autograd/node.h"
#include "src/ops/elementwise.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"

namespace lockstep {
namespace {

using F64 = std::vector<double>;

Tensor leaf(const F64& values, const Shape& shape) { return from_vector(values, shape).requires_grad_(); }

TEST(ReviewAutograd, GradientsOfSeveralViewsOfOneLeafAreSummed) {
  Tensor x = arange(12, DType::f64).view({3, 4}).requires_grad_();
  const Tensor w = arange(12, DType::f64).view({4, 3}) * 0.5;
  const Tensor r = arange(12, DType::f64);
  Tensor f = sum(x.slice(0, 0, 3, 2) * 2.0) + sum(x.select(1, -1) * 3.0) + sum(x.expand({2, 3, 4})) +
             sum(x.permute({1, 0}) * w) + sum(x.reshape({12}) * r) + sum(x.transpose(0, 1).reshape({12})) +
             sum(x.unsqueeze(0).squeeze(0).slice(-1, 1, 3)) + sum(x.select(0, 1).unsqueeze(-1).expand({4, 5}));
  f.backward();
  const F64 g = x.grad().to_vector<double>();
  ASSERT_EQ(g.size(), 12u);
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 4; ++j) {
      const double expected = (i % 2 == 0 ? 2.0 : 0.0) + (j == 3 ? 3.0 : 0.0) + 2.0 + 0.5 * (3 * j + i) +
                               (4 * i + j) + 1.0 + (j == 1 || j == 2 ? 1.0 : 0.0) + (i == 1 ? 5.0 : 0.0);
      EXPECT_DOUBLE_EQ(g[static_cast<std::size_t>(i * 4 + j)], expected) << i << "," << j;
    }
  }
  EXPECT_EQ(x.grad().shape(), (Shape{3, 4}));
}

TEST(ReviewAutograd, ViewsOfZeroDimAndDtypeConvertedLeaves) {
  Tensor s = scalar_tensor(2.0, DType::f64).requires_grad_();
  sum(s.expand({3, 4}) * s.unsqueeze(0)).backward();  // 12 s^2 -> 24 s
  EXPECT_DOUBLE_EQ(s.grad().item(), 48.0);
  Tensor x = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  sum(x.transpose(0, 1).slice(0, 0, 3, 2).to(DType::f32) * 2.0).backward();
  EXPECT_EQ(x.grad().dtype(), DType::f64);
  EXPECT_EQ(x.grad().to_vector<double>(), (F64{2, 0, 2, 2, 0, 2}));
}

TEST(ReviewAutograd, LeafUsedTwiceInOneOp) {
  Tensor x = leaf({1, -2, 3}, {3});
  sum(x * x).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (F64{2, -4, 6}));
  x.set_grad(Tensor());
  sum(add(x, x, 3.0)).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (F64{4, 4, 4}));
  x.set_grad(Tensor());
  sum(x.slice(0, 0, 2) * x.slice(0, 1, 3)).backward();  // x0 x1 + x1 x2
  EXPECT_EQ(x.grad().to_vector<double>(), (F64{-2, 4, -2}));
}

TEST(ReviewAutograd, RetainGraphTwiceThenWithoutThenRefused) {
  Tensor x = scalar_tensor(3.0, DType::f64).requires_grad_();
  Tensor y = x * x * x;
  y.backward({}, RetainGraph::kYes);
  y.backward({}, RetainGraph::kYes);
  y.backward();
  EXPECT_DOUBLE_EQ(x.grad().item(), 3 * 27.0);
  try {
    y.backward();
    FAIL() << "expected AutogradError";
  } catch (const AutogradError& e) {
    EXPECT_NE(std::string(e.what()).find("RetainGraph::kYes"), std::string::npos) << e.what();
  }
}

TEST(ReviewAutograd, SecondAndThirdDerivativesOfACube) {
  Tensor x = leaf({1, 2, -3}, {3});
  Tensor y = sum(x * x * x);
  // create_graph implies retain_graph: the gradient's graph goes through the first graph's nodes.
  Tensor g = grad({y}, {x}, {}, RetainGraph::kNo, CreateGraph::kYes)[0];
  EXPECT_EQ(g.to_vector<double>(), (F64{3, 12, 27}));
  ASSERT_TRUE(g.requires_grad());
  Tensor g2 = grad({sum(g)}, {x}, {}, RetainGraph::kNo, CreateGraph::kYes)[0];
  EXPECT_EQ(g2.to_vector<double>(), (F64{6, 12, -18}));
  Tensor g3 = grad({sum(g2)}, {x})[0];
  EXPECT_EQ(g3.to_vector<double>(), (F64{6, 6, 6}));
  EXPECT_FALSE(g3.requires_grad());
  EXPECT_FALSE(x.grad().defined());
}

TEST(ReviewAutograd, BackwardWithCreateGraphLeavesADifferentiableGrad) {
  Tensor x = leaf({1, 2, -3}, {3});
  sum(x * x * x).backward({}, RetainGraph::kNo, CreateGraph::kYes);
  ASSERT_TRUE(x.grad().requires_grad());
  EXPECT_EQ(x.grad().to_vector<double>(), (F64{3, 12, 27}));
  Tensor g2 = grad({sum(x.grad())}, {x})[0];
  EXPECT_EQ(g2.to_vector<double>(), (F64{6, 12, -18}));
}

TEST(ReviewAutograd, SecondDerivativeThroughViews) {
  Tensor x = leaf({1, 2, 3, 4}, {4});
  Tensor v = x.view({2, 2}).select(1, 0);  // x0, x2
  Tensor y = sum(v * v * v) + sum(x.slice(0, 1, 4, 2).expand({3, 2}) * x.slice(0, 1, 4, 2));  // + 3 (x1^2 + x3^2)
  Tensor g = grad({y}, {x}, {}, RetainGraph::kNo, CreateGraph::kYes)[0];
  EXPECT_EQ(g.to_vector<double>(), (F64{3, 12, 27, 24}));
  Tensor g2 = grad({sum(g)}, {x})[0];
  EXPECT_EQ(g2.to_vector<double>(), (F64{6, 6, 18, 6}));
}

TEST(ReviewAutograd, SavedOutputsKeepTheirHistoryUnderCreateGraph) {
  // y = x^e saves its output; d/dx (dy/de) = d/dx (x^e ln x) = e x^(e-1) ln x + x^(e-1).
  Tensor x = scalar_tensor(2.0, DType::f64).requires_grad_();
  Tensor e = scalar_tensor(3.0, DType::f64).requires_grad_();
  Tensor y = pow(x, e);
  Tensor dy_de = grad({y}, {e}, {}, RetainGraph::kNo, CreateGraph::kYes)[0];
  EXPECT_NEAR(dy_de.item(), 8.0 * std::log(2.0), 1e-12);
  Tensor d2 = grad({dy_de}, {x})[0];
  EXPECT_NEAR(d2.item(), 12.0 * std::log(2.0) + 4.0, 1e-12);
  // exp saves only its output: its second derivative comes through that output's history.
  Tensor z = leaf({0.5, -1}, {2});
  Tensor dz = grad({sum(exp(z))}, {z}, {}, RetainGraph::kNo, CreateGraph::kYes)[0];
  Tensor d2z = grad({sum(dz)}, {z})[0];
  EXPECT_NEAR(d2z.to_vector<double>()[0], std::exp(0.5), 1e-12);
  EXPECT_NEAR(d2z.to_vector<double>()[1], std::exp(-1.0), 1e-12);
}

TEST(ReviewAutograd, GradOfAnInputTheOutputDoesNotDependOnIsUndefined) {
  Tensor x = leaf({1, 2}, {2}), z = leaf({5}, {1});
  Tensor unused = x * 4.0;  // a graph from x that the output does not reach
  std::vector<Tensor> g = grad({sum(x * 2.0)}, {z, x});
  ASSERT_EQ(g.size(), 2u);
  EXPECT_FALSE(g[0].defined());
  EXPECT_EQ(g[1].to_vector<double>(), (F64{2, 2}));
  EXPECT_THROW(grad({sum(x * 2.0)}, {ones({2}, DType::f64)}), AutogradError);
  EXPECT_FALSE(x.grad().defined());
  EXPECT_FALSE(z.grad().defined());
}

TEST(ReviewAutograd, NonLeafIntermediatesKeepNoGradButGradCanReachThem) {
  Tensor x = leaf({1, 2}, {2});
  Tensor h = x * 2.0;
  Tensor y = sum(h * h);  // 4 x^2
  std::vector<Tensor> gh = grad({y}, {h}, {}, RetainGraph::kYes);
  EXPECT_EQ(gh[0].to_vector<double>(), (F64{4, 8}));
  y.backward();
  EXPECT_FALSE(h.grad().defined());
  EXPECT_FALSE(h.is_leaf());
  EXPECT_EQ(x.grad().to_vector<double>(), (F64{8, 16}));
}

TEST(ReviewAutograd, RootsThatAreLeavesRepeatedOrCaptured) {
  Tensor x = leaf({1, 2}, {2});
  Tensor g = full({2}, 3.0, DType::f64);
  x.backward(g);
  g.fill_(100.0);  // .grad never aliases the gradient handed in
  EXPECT_EQ(x.grad().to_vector<double>(), (F64{3, 3}));
  x.set_grad(Tensor());
  Tensor a = sum(x), b = sum(x * 2.0);
  run_backward({a, b, a}, {});
  EXPECT_EQ(x.grad().to_vector<double>(), (F64{4, 4}));
  Tensor y = x * 5.0;
  std::vector<Tensor> gy = grad({y}, {y, x}, {ones({2}, DType::f64)});
  EXPECT_EQ(gy[0].to_vector<double>(), (F64{1, 1}));
  EXPECT_EQ(gy[1].to_vector<double>(), (F64{5, 5}));
}

TEST(ReviewAutograd, InPlaceOnADetachedAliasIsCaught) {
  Tensor x = leaf({0.5, 1}, {2});
  Tensor y = exp(x);  // saves its output
  Tensor loss = sum(y * 1.0);
  y.detach().fill_(0.0);  // detach shares storage and version counter
  EXPECT_THROW(loss.backward(), AutogradError);
  Tensor w = leaf({1, 2}, {2});
  Tensor l2 = sum(w * w);
  {
    NoGradGuard no_grad;
    w.add_(ones({2}, DType::f64));  // an optimizer-style update between forward and backward
  }
  EXPECT_THROW(l2.backward(), AutogradError);
}

TEST(ReviewAutograd, HooksSeeTheAccumulatedGradient) {
  Tensor x = leaf({1}, {1});
  std::vector<double> seen;
  x.register_post_accumulate_hook([&](Tensor& t) { seen.push_back(t.grad().item()); });
  sum(x * 3.0).backward();
  sum(x * 3.0).backward();  // accumulates to 6 before the hook runs again
  (void)grad({sum(x * 3.0)}, {x});  // grad() never touches .grad nor runs hooks
  EXPECT_EQ(seen, (F64{3, 6}));
  EXPECT_DOUBLE_EQ(x.grad().item(), 6.0);
}

TEST(ReviewAutograd, AHookMayRegisterAnotherHook) {
  Tensor x = leaf({1}, {1});
  std::vector<std::string> events;
  x.register_post_accumulate_hook([&](Tensor& t) {
    events.push_back("first");
    if (events.size() == 1) {
      for (int i = 0; i < 8; ++i) t.register_post_accumulate_hook([&](Tensor&) { events.push_back("later"); });
    }
  });
  sum(x * 1.0).backward();
  sum(x * 1.0).backward();
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[0], "first");
  EXPECT_EQ(std::count(events.begin(), events.end(), "first"), 2);
}

TEST(ReviewAutograd, RequiresGradMisuseRaisesTypedErrors) {
  Tensor labels = arange(3, DType::i64);
  EXPECT_THROW(labels.requires_grad_(), TypeError);
  EXPECT_THROW(zeros({2}, DType::u8).requires_grad_(), TypeError);
  labels.requires_grad_(false);
  EXPECT_FALSE(labels.requires_grad());
  Tensor x = leaf({1, 2}, {2});
  Tensor y = x * 2.0;
  EXPECT_THROW(y.requires_grad_(), AutogradError);
  EXPECT_THROW(y.requires_grad_(false), AutogradError);
  Tensor d = y.detach();
  d.requires_grad_();
  EXPECT_TRUE(d.is_leaf());
  EXPECT_THROW(x.set_grad(ones({2}, DType::f32)), TypeError);
  EXPECT_THROW(x.set_grad(ones({3}, DType::f64)), ValueError);
  EXPECT_THROW(y.backward(ones({2}, DType::f32)), AutogradError);  // gradient dtype must match the output
  EXPECT_THROW(ones({2}).backward(), AutogradError);
}

TEST(ReviewAutograd, InPlaceThroughAViewIsCheckedAgainstSavedTensors) {
  Tensor x = leaf({1, 2, 3, 4}, {4});
  EXPECT_THROW(x.slice(0, 0, 2).fill_(0.0), AutogradError);  // a view of a leaf that requires grad
  Tensor w = ones({4}, DType::f64);
  Tensor y = sum(x * w.slice(0, 0, 4));  // saves a view of w
  w.select(0, 3).fill_(5.0);  // writes through another view of the same storage
  EXPECT_THROW(y.backward(), AutogradError);
}

TEST(ReviewAutograd, SavedTensorsAreReleasedByABackwardWithoutRetain) {
  Tensor x = leaf({1, 2, 3}, {3});
  Tensor h = x * 2.0;
  const std::weak_ptr<TensorImpl> saved_h = h.impl_ptr();
  const Tensor w = full({3}, 3.0, DType::f64);
  Tensor y = sum(h * h * w);  // the muls save h (twice) and w
  h = Tensor();
  EXPECT_FALSE(saved_h.expired());
  const long w_refs = w.impl_ptr().use_count();
  EXPECT_GE(w_refs, 2);
  y.backward({}, RetainGraph::kYes);
  EXPECT_FALSE(saved_h.expired());
  y.backward();
  EXPECT_TRUE(saved_h.expired());  // y and its graph are still alive; only the saved tensors went
  EXPECT_EQ(w.impl_ptr().use_count(), 1);
  EXPECT_TRUE(y.grad_fn() != nullptr);
  EXPECT_EQ(x.grad().to_vector<double>(), (F64{48, 96, 144}));
}

TEST(ReviewAutograd, HundredThousandViewsAndSlicesNeitherOverflowNorLeak) {
  Tensor x = arange(6, DType::f64).requires_grad_();
  {
    Tensor y = x;
    for (int i = 0; i < 100000; ++i) y = y.reshape(i % 2 == 0 ? Shape{2, 3} : Shape{6});
    sum(y * 2.0).backward();
  }
  EXPECT_EQ(x.grad().to_vector<double>(), F64(6, 2.0));
  x.set_grad(Tensor());
  {
    Tensor y = x;
    for (int i = 0; i < 100000; ++i) y = i % 2 == 0 ? y.slice(0, 0, 6) : y.slice(-1, -6, 100);
    sum(y.slice(0, 1, 6, 2)).backward();
  }
  EXPECT_EQ(x.grad().to_vector<double>(), (F64{0, 1, 0, 1, 0, 1}));
  x.set_grad(Tensor());
  {
    Tensor y = x;
    for (int i = 0; i < 2000; ++i) y = y.unsqueeze(0).select(0, 0).view({2, 3}).permute({1, 0}).reshape({6});
    sum(y * arange(6, DType::f64)).backward();  // y is x transposed as [2, 3] -> [3, 2] and flattened, 2000 times
  }
  EXPECT_EQ(x.grad().to_vector<double>(), (F64{0, 1, 2, 3, 4, 5}));  // an even number of transposes
  {
    Tensor y = x;
    for (int i = 0; i < 10000; ++i) y = y.slice(0, 0, 6).unsqueeze(-1).squeeze(1);
  }  // destroyed without a backward
}

TEST(ReviewAutograd, VeryWideGraphsRunAndAreDestroyed) {
  // One node with 10000 inputs, each a separate product with the same leaf.
  constexpr int kWidth = 10000;
  Tensor x = scalar_tensor(1.0, DType::f64).requires_grad_();
  {
    std::vector<Tensor> parts;
    parts.reserve(kWidth);
    for (int i = 0; i < kWidth; ++i) parts.push_back(x * static_cast<double>(i));
    Tensor total = scalar_tensor(static_cast<double>(kWidth) * (kWidth - 1) / 2, DType::f64);
    ASSERT_TRUE(record("sum_all", parts, {total}, {}, [](BackwardContext& ctx) {
      return std::vector<Tensor>(kWidth, ctx.grad());
    }));
    parts.clear();
    total.backward({}, RetainGraph::kYes);
    total.backward();
  }
  EXPECT_DOUBLE_EQ(x.grad().item(), static_cast<double>(kWidth) * (kWidth - 1));
  {
    std::vector<Tensor> fan;
    for (int i = 0; i < kWidth; ++i) fan.push_back(x.expand({1}) * 1.0);
  }  // many small graphs sharing one accumulator, destroyed together
}

TEST(ReviewAutograd, GraphsOnSeveralThreadsAtOnce) {
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([k, &wrong] {
      for (int it = 0; it < 200; ++it) {
        Tensor x = full({3}, static_cast<double>(k + 1), DType::f64).requires_grad_();
        Tensor y = sum(x.slice(0, 0, 3) * x * 0.5);  // 0.5 x^2 -> x
        y.backward();
        for (double v : x.grad().to_vector<double>()) {
          if (v != k + 1) ++wrong;
        }
        NoGradGuard no_grad;
        if (GradMode::is_enabled()) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_TRUE(GradMode::is_enabled());
}

TEST(ReviewAutograd, GraphsHeldByThreadLocalsAreDestroyedAtThreadExit) {
  // The thread_local `keep` is set up before the engine's per-thread release queue (first used by the first
  // node destroyed on the thread), so it is destroyed after that queue: the graph it holds must not use it.
  std::thread worker([] {
    thread_local std::vector<Tensor> keep;
    keep.reserve(2);
    Tensor x = ones({4}, DType::f64).requires_grad_();
    { Tensor warm = sum(x * x); }  // destroys a node: the queue is in use from here on
    keep.push_back(sum(x * 2.0 * x));
    keep.push_back(x);
  });
  worker.join();
  SUCCEED();
}

}  // namespace
}  // namespace lockstep
