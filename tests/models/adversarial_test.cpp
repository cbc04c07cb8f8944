// FGSM examples (src/models/adversarial.h) against an independent computation: the sign of each input
// element's central-difference derivative of that sample's own loss, the step of epsilon in pixel units, and
// the clip to pixels in [0, 1], in f64 on a tiny MLP.
#include "src/models/adversarial.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "src/autograd/grad_mode.h"
#include "src/core/rng.h"
#include "src/models/mlp.h"
#include "src/ops/loss.h"
#include "src/tensor/factories.h"

namespace lockstep {
namespace {

TEST(Fgsm, EveryElementIsTheClippedSignStepOfTheFiniteDifferenceGradient) {
  manual_seed(3);
  constexpr std::int64_t kN = 5, kC = 2, kH = 3, kW = 3, kClasses = 4;
  models::MLP model(kC * kH * kW, {8}, kClasses);
  model.to(DType::f64);
  const models::InputNormalization norm{{0.3, 0.5}, {0.2, 0.4}};
  const double epsilon = 0.05;
  // Pixels in [0, 1], some on the bounds so that the clip matters.
  std::vector<double> pixels = rand({kN, kC, kH, kW}, 0.0, 1.0, DType::f64).to_vector<double>();
  for (std::size_t i = 0; i < pixels.size(); i += 7) pixels[i] = (i / 7) % 2 == 0 ? 0.0 : 1.0;
  std::vector<double> input(pixels.size());
  const std::int64_t plane = kH * kW;
  const auto channel = [&](std::size_t i) {
    return static_cast<std::size_t>((static_cast<std::int64_t>(i) / plane) % kC);
  };
  for (std::size_t i = 0; i < pixels.size(); ++i)
    input[i] = (pixels[i] - norm.mean[channel(i)]) / norm.std[channel(i)];
  const std::vector<std::int64_t> labels = {0, 3, 1, 2, 1};
  model.train();

  const Tensor adv =
      models::fgsm(model, from_vector(input, {kN, kC, kH, kW}), from_vector(labels, {kN}), epsilon, norm);
  EXPECT_TRUE(model.is_training());  // mode restored
  EXPECT_FALSE(adv.requires_grad());
  for (const auto& [name, p] : model.named_parameters()) EXPECT_FALSE(p.grad().defined()) << name;
  const std::vector<double> got = adv.to_vector<double>();

  // Independent: each sample alone, its loss by central differences per input element.
  NoGradGuard no_grad;
  const std::size_t per_sample = static_cast<std::size_t>(kC * plane);
  const auto sample_loss = [&](std::size_t n, const std::vector<double>& x) {
    return cross_entropy(model(from_vector(x, {1, kC, kH, kW})),
                         from_vector(std::vector<std::int64_t>{labels[n]}, {1}))
        .item();
  };
  int checked = 0, clipped = 0;
  for (std::size_t n = 0; n < static_cast<std::size_t>(kN); ++n) {
    std::vector<double> x(input.begin() + static_cast<std::ptrdiff_t>(n * per_sample),
                          input.begin() + static_cast<std::ptrdiff_t>((n + 1) * per_sample));
    for (std::size_t j = 0; j < per_sample; ++j) {
      const std::size_t i = n * per_sample + j;
      const double h = 1e-6, saved = x[j];
      x[j] = saved + h;
      const double up = sample_loss(n, x);
      x[j] = saved - h;
      const double down = sample_loss(n, x);
      x[j] = saved;
      const double derivative = (up - down) / (2 * h);
      if (std::abs(derivative) < 1e-7) continue;  // sign not decided by differences
      const double s = norm.std[channel(i)], m = norm.mean[channel(i)];
      const double pixel = std::clamp(pixels[i] + epsilon * (derivative > 0 ? 1.0 : -1.0), 0.0, 1.0);
      clipped += pixel == 0.0 || pixel == 1.0;
      EXPECT_NEAR(got[i], (pixel - m) / s, 1e-12) << "sample " << n << " element " << j;
      ++checked;
    }
  }
  EXPECT_GT(checked, static_cast<int>(pixels.size()) * 9 / 10);
  EXPECT_GT(clipped, 3);
  // The examples raise the loss.
  const Tensor y = from_vector(labels, {kN});
  EXPECT_GT(cross_entropy(model(adv), y).item(),
            cross_entropy(model(from_vector(input, {kN, kC, kH, kW})), y).item());
}

TEST(Fgsm, RejectsANegativeEpsilonAndMissingChannelStatistics) {
  models::MLP model(4, {}, 2);
  const Tensor x = zeros({1, 1, 2, 2});
  const Tensor y = from_vector(std::vector<std::int64_t>{1}, {1});
  EXPECT_THROW(models::fgsm(model, x, y, -0.1, {{0.0}, {1.0}}), ValueError);
  EXPECT_THROW(models::fgsm(model, x, y, 0.1, {{}, {}}), ValueError);
  EXPECT_THROW(models::fgsm(model, x, y, 0.1, {{0.0}, {0.0}}), ValueError);
}

}  // namespace
}  // namespace lockstep
