// The GAN objectives of src/models/gan_loss.h: the WGAN-GP gradient penalty against its closed form for a
// linear critic and, through real critics (layer-norm WGAN critic, MLP, conditional), its gradient with
// respect to every parameter tensor against central differences in f64; the losses against their formulas.
#include "src/models/gan_loss.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "src/autograd/grad_mode.h"
#include "src/core/rng.h"
#include "src/models/conditional.h"
#include "src/models/mlp_gan.h"
#include "src/models/wgan.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"

namespace lockstep {
namespace {

TEST(GradientPenalty, LinearCriticHasTheClosedFormLambdaTimesNormMinusOneSquared) {
  // D(x) = w . x + b: the gradient at every interpolate is w, so the penalty is lambda (||w|| - 1)^2.
  manual_seed(3);
  models::MLPDiscriminator critic(1, 3, 3, {});
  critic.to(DType::f64);
  const Tensor real = rand({5, 1, 3, 3}, -1.0, 1.0, DType::f64),
               fake = rand({5, 1, 3, 3}, -1.0, 1.0, DType::f64);
  const auto w = critic.named_parameters()[0].second.to_vector<double>();
  double norm = 0.0;
  for (double v : w) norm += v * v;
  norm = std::sqrt(norm);
  const models::GradientPenalty gp = models::gradient_penalty(
      [&](const Tensor& x) { return critic(x); }, real, fake, rand({5}, 0.0, 1.0, DType::f64), 7.0);
  EXPECT_NEAR(gp.penalty.item(), 7.0 * (norm - 1.0) * (norm - 1.0), 1e-9);
  EXPECT_NEAR(gp.mean_norm.item(), norm, 1e-9);
}

// Checks d penalty / d parameter from backward (a double backward) against central differences, for up to
// `per_tensor` elements spread over each parameter tensor of the f64 critic.
void expect_penalty_gradient_matches_finite_differences(nn::Module& critic,
                                                        const std::function<Tensor(const Tensor&)>& score,
                                                        const Shape& image_shape, int per_tensor) {
  Generator gen(17);
  const Tensor real = rand(image_shape, -1.0, 1.0, DType::f64, kCPU, &gen);
  const Tensor fake = rand(image_shape, -1.0, 1.0, DType::f64, kCPU, &gen);
  const Tensor alpha = rand({image_shape[0]}, 0.0, 1.0, DType::f64, kCPU, &gen);
  const auto penalty = [&] { return models::gradient_penalty(score, real, fake, alpha, 10.0).penalty; };
  critic.zero_grad();
  penalty().backward();
  const double eps = 1e-6;
  int checked = 0;
  double largest = 0.0;  // the penalty does move the parameters
  for (const auto& [name, p] : critic.named_parameters()) {
    const std::vector<double> analytic = p.grad().defined()
                                             ? p.grad().to_vector<double>()
                                             : std::vector<double>(static_cast<std::size_t>(p.numel()));
    const std::int64_t stride = std::max<std::int64_t>(p.numel() / per_tensor, 1);
    for (std::int64_t e = 0; e < p.numel(); e += stride) {
      Tensor flat = p.detach().reshape({p.numel()});
      const double original = flat.select(0, e).item();
      const auto at = [&](double v) {
        {
          NoGradGuard no_grad;
          flat.select(0, e).fill_(v);
        }
        return penalty().item();
      };
      const double numeric = (at(original + eps) - at(original - eps)) / (2 * eps);
      at(original);
      EXPECT_NEAR(analytic[static_cast<std::size_t>(e)], numeric, 1e-6 + 1e-4 * std::abs(numeric))
          << name << " element " << e;
      largest = std::max(largest, std::abs(numeric));
      ++checked;
    }
  }
  EXPECT_GT(checked, 10);
  EXPECT_GT(largest, 1e-3);
}

TEST(GradientPenalty, GradientThroughALayerNormCriticMatchesFiniteDifferences) {
  manual_seed(5);
  models::WGANCritic critic(1, 32, 2, models::DiscriminatorNorm::kLayerNorm);
  critic.to(DType::f64);
  expect_penalty_gradient_matches_finite_differences(
      critic, [&](const Tensor& x) { return critic(x); }, {3, 1, 32, 32}, 6);
}

TEST(GradientPenalty, GradientThroughAnMlpAndAConditionalCriticMatchesFiniteDifferences) {
  manual_seed(6);
  auto mlp = std::make_shared<models::MLPDiscriminator>(1, 4, 4, std::vector<std::int64_t>{6, 5});
  mlp->to(DType::f64);
  expect_penalty_gradient_matches_finite_differences(
      *mlp, [&](const Tensor& x) { return (*mlp)(x); }, {4, 1, 4, 4}, 8);
  // The label's map joins the images as a channel: the penalty reaches the embedding too.
  models::ConditionalDiscriminator conditional(
      std::make_shared<models::MLPDiscriminator>(2, 4, 4, std::vector<std::int64_t>{6}), 1, 4, 4, 3);
  conditional.to(DType::f64);
  const Tensor labels = from_vector(std::vector<std::int64_t>{0, 2, 1, 2}, {4});
  expect_penalty_gradient_matches_finite_differences(
      conditional, [&](const Tensor& x) { return conditional.forward(x, labels); }, {4, 1, 4, 4}, 8);
}

TEST(GanLoss, LossesFollowTheirFormulas) {
  const Tensor real = from_vector(std::vector<double>{0.5, -1.0}, {2});
  const Tensor fake = from_vector(std::vector<double>{2.0, 0.25}, {2});
  const auto softplus = [](double x) { return std::log1p(std::exp(x)); };
  // BCE with logits: real target 1 -> softplus(-x); fake target 0 -> softplus(x).
  const double d_ns = (softplus(-0.5) + softplus(1.0)) / 2 + (softplus(2.0) + softplus(0.25)) / 2;
  EXPECT_NEAR(models::discriminator_loss(models::GanLoss::kNonSaturating, real, fake).item(), d_ns, 1e-12);
  EXPECT_NEAR(models::discriminator_loss(models::GanLoss::kWasserstein, real, fake).item(), 1.125 - (-0.25),
              1e-12);
  EXPECT_NEAR(models::generator_loss(models::GanLoss::kNonSaturating, fake).item(),
              (softplus(-2.0) + softplus(-0.25)) / 2, 1e-12);
  EXPECT_NEAR(models::generator_loss(models::GanLoss::kMinimax, fake).item(),
              -(softplus(2.0) + softplus(0.25)) / 2, 1e-12);
  EXPECT_NEAR(models::generator_loss(models::GanLoss::kWasserstein, fake).item(), -1.125, 1e-12);
}

}  // namespace
}  // namespace lockstep
