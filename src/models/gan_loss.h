// The objectives of GAN training: the discriminator's and the generator's losses (non-saturating, minimax,
// Wasserstein) and the gradient penalty of WGAN-GP (Gulrajani et al. 2017).
#pragma once

#include <cstdint>
#include <functional>

#include "src/tensor/tensor.h"

namespace lockstep::models {

enum class GanLoss : std::uint8_t {
  kNonSaturating,  // D: BCE on real and fake; G: -log D(G(z))
  kMinimax,        // D: as above; G: log(1 - D(G(z)))
  kWasserstein,    // critic: mean D(fake) - mean D(real); G: -mean D(G(z))
};

// The discriminator's loss from its outputs (logits, or critic scores) on real and generated images;
// `real_label` < 1 is one-sided label smoothing of the real targets (not for kWasserstein).
Tensor discriminator_loss(GanLoss kind, const Tensor& real_out, const Tensor& fake_out, double real_label = 1.0);
// Its two terms, each a function of one batch's outputs (their sum is discriminator_loss): for a backward per
// batch (deterministic mode).
Tensor discriminator_real_term(GanLoss kind, const Tensor& real_out, double real_label = 1.0);
Tensor discriminator_fake_term(GanLoss kind, const Tensor& fake_out);
// The generator's loss from the discriminator's outputs on generated images.
Tensor generator_loss(GanLoss kind, const Tensor& fake_out);

struct GradientPenalty {
  Tensor penalty;        // lambda * mean_i (||g_i||_2 - 1)^2, differentiable in the critic's parameters
  Tensor mean_norm;      // mean_i ||g_i||_2 (0-d, detached), for the log
};
// WGAN-GP's penalty: x_i = alpha_i * real_i + (1 - alpha_i) * fake_i for each image i (alpha [N] in [0, 1]),
// g_i = d critic(x)_i / d x_i taken with create_graph, so that the penalty's backward reaches the critic's
// parameters through a second derivative. `critic` maps images [N, ...] to scores [N]; real and fake have
// the same shape (fake is used detached). The norm is sqrt(sum g^2 + 1e-12), smooth at g = 0.
GradientPenalty gradient_penalty(const std::function<Tensor(const Tensor&)>& critic, const Tensor& real,
                                 const Tensor& fake, const Tensor& alpha, double lambda);

}  // namespace lockstep::models
