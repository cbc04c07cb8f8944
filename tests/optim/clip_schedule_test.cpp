// Gradient and parameter clipping against hand-computed norms, and every learning-rate schedule against its
// closed form, the warm-up composition, the scheduler driving an optimizer, and its state round trip.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include "src/core/threading.h"
#include "src/optim/clip.h"
#include "src/optim/schedule.h"
#include "src/optim/sgd.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"

namespace lockstep::optim {
namespace {

using test::expect_error;

Tensor param_with_grad(std::vector<float> grad, const Shape& shape) {
  Tensor p = zeros(shape).requires_grad_();
  p.set_grad(from_vector(grad, shape));
  return p;
}

// --- Clipping --------------------------------------------------------------------------------------------

TEST(Clip, GradNormScalesAllGradientsTogether) {
  Tensor a = param_with_grad({3.0f, 4.0f}, {2});
  Tensor b = param_with_grad({12.0f}, {1, 1});
  Tensor no_grad = zeros({5}).requires_grad_();
  // Total norm sqrt(9 + 16 + 144) = 13; scale 6.5 / (13 + 1e-6).
  const double norm = clip_grad_norm_({a, b, no_grad}, 6.5).item();
  EXPECT_DOUBLE_EQ(norm, 13.0);
  const float scale = static_cast<float>(6.5 / (13.0 + 1e-6));
  EXPECT_EQ(a.grad().to_vector<float>(), (std::vector<float>{3.0f * scale, 4.0f * scale}));
  EXPECT_EQ(b.grad().to_vector<float>(), (std::vector<float>{12.0f * scale}));
  EXPECT_FALSE(no_grad.grad().defined());
  // The clipped norm is just under max_norm.
  EXPECT_NEAR(clip_grad_norm_({a, b}, 100.0).item(), 6.5, 1e-5);
}

TEST(Clip, GradNormBelowTheLimitLeavesGradientsExactly) {
  Tensor a = param_with_grad({0.3f, -0.4f}, {2});
  EXPECT_NEAR(clip_grad_norm_({a}, 1.0).item(), 0.5, 1e-7);
  EXPECT_EQ(a.grad().to_vector<float>(), (std::vector<float>{0.3f, -0.4f}));
}

TEST(Clip, GradNormOfLargeTensorsIsExactAndIgnoresThreadCount) {
  const std::int64_t n = 5 * kParallelGrain + 3;
  Tensor a = param_with_grad(std::vector<float>(static_cast<std::size_t>(n), 0.5f), {n});
  Tensor b = param_with_grad(std::vector<float>(static_cast<std::size_t>(n), -0.25f), {n});
  // sqrt(n * 0.25 + n * 0.0625), exact in f64 sums of these dyadic values.
  const double want = std::sqrt(static_cast<double>(n) * 0.3125);
  const int threads = num_threads();
  set_num_threads(1);
  const double one = clip_grad_norm_({a, b}, 1e9).item();
  set_num_threads(std::max(2, threads));
  const double many = clip_grad_norm_({a, b}, 1e9).item();
  set_num_threads(threads);
  EXPECT_EQ(one, many);
  EXPECT_DOUBLE_EQ(one, want);
}

TEST(Clip, NonFiniteNormLeavesGradientsAlone) {
  Tensor a = param_with_grad({std::numeric_limits<float>::infinity(), 1.0f}, {2});
  EXPECT_TRUE(std::isinf(clip_grad_norm_({a}, 1.0).item()));
  EXPECT_EQ(a.grad().to_vector<float>()[1], 1.0f);
}

TEST(Clip, GradValueClampsEachElement) {
  Tensor a = param_with_grad({-3.0f, 0.5f, 2.0f}, {3});
  Tensor b = param_with_grad({-0.75f, 7.0f}, {1, 2});
  clip_grad_value_({a, b, zeros({2}).requires_grad_()}, 1.0);
  EXPECT_EQ(a.grad().to_vector<float>(), (std::vector<float>{-1.0f, 0.5f, 1.0f}));
  EXPECT_EQ(b.grad().to_vector<float>(), (std::vector<float>{-0.75f, 1.0f}));
}

TEST(Clip, ParametersAreClampedInPlace) {
  Tensor w = from_vector(std::vector<float>{-0.5f, 0.001f, 0.02f, -0.011f}, {2, 2}).requires_grad_();
  clip_parameters_({w}, 0.01);
  EXPECT_EQ(w.to_vector<float>(), (std::vector<float>{-0.01f, 0.001f, 0.01f, -0.01f}));
  EXPECT_TRUE(w.requires_grad());
}

TEST(Clip, BadArgumentsAreNamed) {
  Tensor a = param_with_grad({1.0f}, {1});
  expect_error<ValueError>([&] { clip_grad_norm_({a}, -1.0); },
                           {"clip_grad_norm_", "max_norm >= 0", "max_norm=-1"});
  expect_error<ValueError>([&] { clip_grad_value_({a}, -0.1); }, {"clip_grad_value_", "value >= 0"});
  expect_error<ValueError>([&] { clip_parameters_({a}, -0.1); }, {"clip_parameters_", "c >= 0", "c=-0.1"});
  expect_error<ValueError>([&] { clip_grad_norm_({a, Tensor()}, 1.0); }, {"parameter 1 is undefined"});
}

// --- Schedules -------------------------------------------------------------------------------------------

constexpr double kBase = 0.1;
constexpr double kTol = 1e-15;

TEST(Schedule, ConstantAndStepDecay) {
  EXPECT_EQ(Schedule::constant().lr(kBase, 1000), kBase);
  const Schedule s = Schedule::step_decay(3, 0.5);
  EXPECT_NEAR(s.lr(kBase, 0), 0.1, kTol);
  EXPECT_NEAR(s.lr(kBase, 2), 0.1, kTol);
  EXPECT_NEAR(s.lr(kBase, 3), 0.05, kTol);
  EXPECT_NEAR(s.lr(kBase, 8), 0.025, kTol);
  EXPECT_NEAR(s.lr(kBase, 9), 0.0125, kTol);
}

TEST(Schedule, MultiStepCountsPassedMilestones) {
  const Schedule s = Schedule::multi_step({2, 5}, 0.1);
  EXPECT_NEAR(s.lr(kBase, 1), 0.1, kTol);
  EXPECT_NEAR(s.lr(kBase, 2), 0.01, kTol);
  EXPECT_NEAR(s.lr(kBase, 4), 0.01, kTol);
  EXPECT_NEAR(s.lr(kBase, 5), 0.001, kTol);
  EXPECT_NEAR(s.lr(kBase, 50), 0.001, kTol);
}

TEST(Schedule, ExponentialLinearAndCosine) {
  EXPECT_NEAR(Schedule::exponential(0.9).lr(kBase, 3), 0.1 * 0.729, kTol);
  const Schedule lin = Schedule::linear_decay(4, 0.25);
  EXPECT_NEAR(lin.lr(kBase, 0), 0.1, kTol);
  EXPECT_NEAR(lin.lr(kBase, 2), 0.1 * (1.0 - 0.75 * 0.5), kTol);
  EXPECT_NEAR(lin.lr(kBase, 4), 0.025, kTol);
  EXPECT_NEAR(lin.lr(kBase, 40), 0.025, kTol);
  const Schedule cos = Schedule::cosine(10, 0.001);
  EXPECT_NEAR(cos.lr(kBase, 0), 0.1, kTol);
  EXPECT_NEAR(cos.lr(kBase, 5), 0.001 + 0.099 * 0.5, kTol);
  EXPECT_NEAR(cos.lr(kBase, 3), 0.001 + 0.099 * (1.0 + std::cos(std::numbers::pi * 0.3)) / 2.0, kTol);
  EXPECT_NEAR(cos.lr(kBase, 10), 0.001, kTol);
  EXPECT_NEAR(cos.lr(kBase, 25), 0.001, kTol);
}

TEST(Schedule, WarmupRampsLinearlyThenHandsOver) {
  const Schedule s = Schedule::cosine(10, 0.0).with_warmup(4, 0.25);
  EXPECT_NEAR(s.lr(kBase, 0), 0.025, kTol);
  EXPECT_NEAR(s.lr(kBase, 2), 0.1 * (0.25 + 0.75 * 0.5), kTol);
  EXPECT_NEAR(s.lr(kBase, 3), 0.1 * (0.25 + 0.75 * 0.75), kTol);
  // From step 4 on: the cosine at step t - 4.
  EXPECT_NEAR(s.lr(kBase, 4), 0.1, kTol);
  EXPECT_NEAR(s.lr(kBase, 9), 0.05, kTol);
  EXPECT_NEAR(s.lr(kBase, 14), 0.0, kTol);
  // Large-batch rule (Goyal et al.): from base / k to base over the warm-up, then step decay.
  const Schedule goyal = Schedule::step_decay(30, 0.1).with_warmup(5, 1.0 / 8.0);
  EXPECT_NEAR(goyal.lr(0.8, 0), 0.1, kTol);
  EXPECT_NEAR(goyal.lr(0.8, 5), 0.8, kTol);
  EXPECT_NEAR(goyal.lr(0.8, 35), 0.08, kTol);
}

TEST(Schedule, BadArgumentsAreNamed) {
  expect_error<ValueError>([] { Schedule::step_decay(0, 0.1); },
                           {"Schedule::step_decay", "step_size > 0", "step_size=0"});
  expect_error<ValueError>([] { Schedule::exponential(0.0); }, {"Schedule::exponential", "gamma > 0"});
  expect_error<ValueError>([] { Schedule::cosine(10, -1.0); }, {"Schedule::cosine", "min_lr >= 0"});
  expect_error<ValueError>([] { Schedule::linear_decay(0, 0.5); }, {"total_steps > 0"});
  expect_error<ValueError>(
      [] {
        Schedule::multi_step({5, 5}, 0.1);
      },
      {"strictly increasing", "milestone 5 at index 1"});
  expect_error<ValueError>([] { Schedule::constant().with_warmup(5, 1.5); },
                           {"start_factor in [0, 1]", "start_factor=1.5"});
  expect_error<ValueError>([] { Schedule::constant().with_warmup(0, 0.5); }, {"warmup_steps > 0"});
  expect_error<ValueError>([] { Schedule::constant().with_warmup(5, 0.5).with_warmup(5, 0.5); },
                           {"already has 5 warm-up steps"});
}

Tensor tiny_param() { return ones({2}).requires_grad_(); }

TEST(LRScheduler, DrivesTheOptimizerLr) {
  Tensor p = tiny_param();
  SGD sgd({{"p", p}}, {.lr = 0.4});
  LRScheduler sched(sgd, Schedule::step_decay(2, 0.5).with_warmup(2, 0.5));
  EXPECT_EQ(sched.last_step(), 0);
  EXPECT_DOUBLE_EQ(sched.base_lr(), 0.4);
  EXPECT_DOUBLE_EQ(sgd.lr(), 0.2);  // step 0 of the warm-up
  const std::vector<double> want{0.3, 0.4, 0.4, 0.2, 0.2, 0.1};
  for (double w : want) {
    sched.step();
    EXPECT_NEAR(sgd.lr(), w, kTol) << "step " << sched.last_step();
    EXPECT_EQ(sched.lr(), sgd.lr());
  }
  EXPECT_EQ(sched.last_step(), 6);
}

TEST(LRScheduler, StateRoundTripResumesTheSchedule) {
  Tensor pa = tiny_param(), pb = tiny_param();
  SGD a({{"p", pa}}, {.lr = 0.1});
  SGD b({{"p", pb}}, {.lr = 7.0});  // the base lr comes back from the state
  const Schedule s = Schedule::cosine(20, 0.001).with_warmup(3, 0.1);
  LRScheduler sa(a, s), sb(b, s);
  for (int i = 0; i < 7; ++i) sa.step();
  const nn::StateDict state = sa.state_dict();
  EXPECT_EQ(state.at("step").dtype(), DType::i64);
  EXPECT_EQ(state.at("step").item(), 7.0);
  sb.load_state_dict(state);
  EXPECT_EQ(sb.last_step(), 7);
  EXPECT_EQ(sb.base_lr(), 0.1);
  EXPECT_EQ(b.lr(), a.lr());
  for (int i = 0; i < 5; ++i) {
    sa.step();
    sb.step();
    EXPECT_EQ(b.lr(), a.lr());
  }
  nn::StateDict bad;
  bad.insert("step", scalar_tensor(3.0, DType::f32));
  bad.insert("extra", scalar_tensor(1.0));
  expect_error<ValueError>([&] { sb.load_state_dict(bad); },
                           {"LRScheduler::load_state_dict", "'step' is f32 []", "missing key 'base_lr'",
                            "unexpected key 'extra'"});
  EXPECT_EQ(sb.last_step(), 12);
}

}  // namespace
}  // namespace lockstep::optim
