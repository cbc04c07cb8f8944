// The autoencoders and the VAE of src/models/autoencoder.h: shapes and the mirrored decoder, the contractive
// penalty (exact by double backward, and its one-projection estimate) against the closed form of a sigmoid
// layer, its parameter gradient against central differences, the sparsity penalties against their formulas,
// the importance-weighted likelihood against the ELBO, and the linear probe of src/metrics.
#include "src/models/autoencoder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "src/autograd/grad_mode.h"
#include "src/core/rng.h"
#include "src/metrics/linear_probe.h"
#include "src/ops/elementwise.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"
#include "tests/support/gradcheck.h"

namespace lockstep {
namespace {

using models::Autoencoder;
using models::AutoencoderOptions;

TEST(Autoencoder, MlpAndConvShapesAndAMirroredDecoder) {
  manual_seed(1);
  Autoencoder mlp({.hidden = {20, 10}, .code = 4});
  const Tensor x = rand({3, 1, 28, 28});
  EXPECT_EQ(mlp.encode(x).shape(), (Shape{3, 4}));
  EXPECT_EQ(mlp(x).shape(), (Shape{3, 1, 28, 28}));
  EXPECT_EQ(mlp.num_parameters(), (784 * 20 + 20) + (20 * 10 + 10) + (10 * 4 + 4) + (4 * 10 + 10) +
                                      (10 * 20 + 20) + (20 * 784 + 784));
  Autoencoder conv({.architecture = models::AutoencoderArchitecture::kConv, .code = 8, .variational = true});
  const Autoencoder::Posterior q = conv.posterior(x);
  EXPECT_EQ(q.mean.shape(), (Shape{3, 8}));
  EXPECT_EQ(q.logvar.shape(), (Shape{3, 8}));
  EXPECT_EQ(conv.decode(q.mean).shape(), (Shape{3, 1, 28, 28}));
}

// A one-layer sigmoid encoder h = sigmoid(W x + b): ||J||_F^2 = sum_j (h_j (1 - h_j))^2 ||W_j||^2.
TEST(Autoencoder, ContractivePenaltyMatchesTheSigmoidLayersClosedForm) {
  manual_seed(2);
  Autoencoder ae({.height = 4,
                  .width = 4,
                  .hidden = {},
                  .code = 5,
                  .code_activation = models::CodeActivation::kSigmoid});
  ae.to(DType::f64);
  const Tensor x = rand({6, 1, 4, 4}, 0.0, 1.0, DType::f64);
  const Tensor w = ae.named_parameters()[0].second;  // encoder.1.weight [5, 16]
  ASSERT_EQ(w.shape(), (Shape{5, 16}));
  Tensor h;
  {
    NoGradGuard no_grad;
    h = ae.encode(x);
  }
  const std::vector<double> hv = h.to_vector<double>(), wv = w.to_vector<double>();
  double want = 0.0;
  for (int n = 0; n < 6; ++n) {
    for (int j = 0; j < 5; ++j) {
      double row = 0.0;
      for (int k = 0; k < 16; ++k)
        row += wv[static_cast<std::size_t>(j * 16 + k)] * wv[static_cast<std::size_t>(j * 16 + k)];
      const double d =
          hv[static_cast<std::size_t>(n * 5 + j)] * (1 - hv[static_cast<std::size_t>(n * 5 + j)]);
      want += d * d * row;
    }
  }
  want /= 6;
  const auto encode = [&](const Tensor& in) { return ae.encode(in); };
  EXPECT_NEAR(models::jacobian_frobenius(encode, x).item(), want, 1e-12 * want);
  // The one-projection estimate is unbiased: its mean over many draws approaches the closed form.
  Generator gen(9);
  double total = 0.0;
  constexpr int kDraws = 4000;
  for (int i = 0; i < kDraws; ++i) total += models::jacobian_frobenius_estimate(encode, x, &gen).item();
  EXPECT_NEAR(total / kDraws, want, 0.05 * want);
}

TEST(Autoencoder, ContractivePenaltyGradientMatchesFiniteDifferences) {
  manual_seed(3);
  Autoencoder ae({.height = 2,
                  .width = 3,
                  .hidden = {4},
                  .code = 3,
                  .code_activation = models::CodeActivation::kSigmoid});
  ae.to(DType::f64);
  const Tensor x = rand({2, 1, 2, 3}, 0.0, 1.0, DType::f64);
  const auto penalty = [&] {
    return models::jacobian_frobenius([&](const Tensor& in) { return ae.encode(in); }, x);
  };
  ae.zero_grad();
  penalty().backward();
  // The decoder does not enter the penalty.
  const std::int64_t checked = test::expect_weights_match_central_differences(
      ae, [&] { return penalty().item(); }, "", 1e-7, "encoder");
  EXPECT_EQ(checked, (6 * 4 + 4) + (4 * 3 + 3));
}

TEST(Autoencoder, SparsityPenaltiesFollowTheirFormulas) {
  const Tensor codes = from_vector(std::vector<double>{0.1, 0.5, 0.3, 0.7}, {2, 2});
  EXPECT_NEAR(models::l1_sparsity(codes).item(), (0.1 + 0.5 + 0.3 + 0.7) / 2, 1e-12);
  const auto kl = [](double rho, double q) {
    return rho * std::log(rho / q) + (1 - rho) * std::log((1 - rho) / (1 - q));
  };
  EXPECT_NEAR(models::kl_sparsity(codes, 0.05).item(), kl(0.05, 0.2) + kl(0.05, 0.6), 1e-12);
  // Given the global batch's mean code, the value is the KL at that mean...
  const Tensor global = from_vector(std::vector<double>{0.25, 0.4}, {2});
  EXPECT_NEAR(models::kl_sparsity(codes, 0.05, global).item(), kl(0.05, 0.25) + kl(0.05, 0.4), 1e-12);
  // ...and, when this batch is the global batch, the gradient is the plain penalty's.
  Tensor local = codes.detach();
  local.requires_grad_(true);
  models::kl_sparsity(local, 0.05).backward();
  const std::vector<double> want = local.grad().to_vector<double>();
  Tensor shared = codes.detach();
  shared.requires_grad_(true);
  models::kl_sparsity(shared, 0.05, mean(codes, {0})).backward();
  const std::vector<double> got = shared.grad().to_vector<double>();
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << i;
}

TEST(Autoencoder, GaussianNegativeLogLikelihoodIsTheUnitVarianceDensity) {
  const Tensor logits = from_vector(std::vector<double>{0.3, -1.2, 2.0, 0.0}, {2, 1, 1, 2});
  const Tensor target = from_vector(std::vector<double>{0.5, 0.1, 0.9, 0.2}, {2, 1, 1, 2});
  const std::vector<double> l = logits.to_vector<double>(), t = target.to_vector<double>();
  double nll = 0.0;  // -log N(t; sigmoid(l), 1), summed over the values, averaged over 2 images
  for (std::size_t i = 0; i < l.size(); ++i) {
    const double mu = 1.0 / (1.0 + std::exp(-l[i]));
    nll -= std::log(std::exp(-0.5 * (t[i] - mu) * (t[i] - mu)) / std::sqrt(2.0 * std::acos(-1.0))) / 2.0;
  }
  EXPECT_NEAR(models::negative_log_likelihood(models::ReconstructionLoss::kMse, logits, target).item(), nll,
              1e-12);
}

TEST(Autoencoder, ImportanceWeightingAveragesToTheElboAtKOneAndRisesWithK) {
  manual_seed(4);
  Autoencoder vae({.height = 4, .width = 4, .hidden = {8}, .code = 2, .variational = true});
  vae.to(DType::f64);
  const Tensor x = rand({5, 1, 4, 4}, 0.0, 1.0, DType::f64);
  NoGradGuard no_grad;
  // The ELBO the training objective uses: -(the decoder's negative log-likelihood of one reparameterised
  // sample + closed-form KL), averaged over many samples here, under either decoder.
  const Autoencoder::Posterior q = vae.posterior(x);
  for (const auto kind : {models::ReconstructionLoss::kBce, models::ReconstructionLoss::kMse}) {
    Generator gen(5);
    double elbo = 0.0, k1 = 0.0;
    constexpr int kDraws = 3000;
    for (int i = 0; i < kDraws; ++i) {
      const Tensor z = q.mean + exp(q.logvar * 0.5) * randn(q.mean.shape(), 0.0, 1.0, DType::f64, kCPU, &gen);
      elbo -=
          (models::negative_log_likelihood(kind, vae.decode(z), x) + gaussian_kl(q.mean, q.logvar)).item();
      k1 += mean(models::importance_weighted_log_likelihood(vae, kind, x, 1, &gen)).item();
    }
    EXPECT_NEAR(k1 / kDraws, elbo / kDraws, 0.01 * std::abs(elbo / kDraws));
    const double k50 = mean(models::importance_weighted_log_likelihood(vae, kind, x, 50, &gen)).item();
    EXPECT_GT(k50, elbo / kDraws);  // a tighter bound
  }
}

TEST(LinearProbe, SeparableFeaturesAreLearnedAndNoiseIsChance) {
  Generator gen(6);
  const std::int64_t n = 2000;
  std::vector<std::int64_t> labels;
  for (std::int64_t i = 0; i < n; ++i) labels.push_back(i % 4);
  const Tensor y = from_vector(labels, {n});
  // Class k's features centred at 3 e_k: linearly separable.
  std::vector<float> centred(static_cast<std::size_t>(n * 6));
  const std::vector<float> noise = randn({n, 6}, 0.0, 1.0, DType::f32, kCPU, &gen).to_vector<float>();
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t d = 0; d < 6; ++d)
      centred[static_cast<std::size_t>(i * 6 + d)] = 0.3f * noise[static_cast<std::size_t>(i * 6 + d)] +
                                                     (d == labels[static_cast<std::size_t>(i)] ? 3.0f : 0.0f);
  const Tensor features = from_vector(centred, {n, 6});
  const metrics::LinearProbe good = metrics::linear_probe(
      features.slice(0, 0, 1500), y.slice(0, 0, 1500), features.slice(0, 1500, n), y.slice(0, 1500, n), 4, 5);
  EXPECT_GT(good.test_accuracy, 0.99);
  const Tensor random = randn({n, 6}, 0.0, 1.0, DType::f32, kCPU, &gen);
  const metrics::LinearProbe chance = metrics::linear_probe(
      random.slice(0, 0, 1500), y.slice(0, 0, 1500), random.slice(0, 1500, n), y.slice(0, 1500, n), 4, 5);
  EXPECT_LT(chance.test_accuracy, 0.35);
}

}  // namespace
}  // namespace lockstep
