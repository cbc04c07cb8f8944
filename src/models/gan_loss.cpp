// GAN losses and the WGAN-GP gradient penalty.
#include "src/models/gan_loss.h"

#include <numeric>
#include <vector>

#include "src/autograd/engine.h"
#include "src/core/error.h"
#include "src/ops/elementwise.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"

namespace lockstep::models {

Tensor discriminator_real_term(GanLoss kind, const Tensor& real_out, double real_label) {
  if (kind == GanLoss::kWasserstein) return -mean(real_out);
  const Tensor real_target = real_label == 1.0 ? ones_like(real_out) : full_like(real_out, real_label);
  return binary_cross_entropy_with_logits(real_out, real_target);
}

Tensor discriminator_fake_term(GanLoss kind, const Tensor& fake_out) {
  if (kind == GanLoss::kWasserstein) return mean(fake_out);
  return binary_cross_entropy_with_logits(fake_out, zeros_like(fake_out));
}

Tensor discriminator_loss(GanLoss kind, const Tensor& real_out, const Tensor& fake_out, double real_label) {
  // In the order of the formula: mean D(fake) - mean D(real) is fake + (-real), bitwise.
  if (kind == GanLoss::kWasserstein)
    return discriminator_fake_term(kind, fake_out) + discriminator_real_term(kind, real_out);
  return discriminator_real_term(kind, real_out, real_label) + discriminator_fake_term(kind, fake_out);
}

Tensor generator_loss(GanLoss kind, const Tensor& fake_out) {
  switch (kind) {
    case GanLoss::kNonSaturating:  // -log D(G(z))
      return binary_cross_entropy_with_logits(fake_out, ones_like(fake_out));
    case GanLoss::kMinimax:  // log(1 - D(G(z)))
      return -binary_cross_entropy_with_logits(fake_out, zeros_like(fake_out));
    case GanLoss::kWasserstein:
      return -mean(fake_out);
  }
  return {};
}

GradientPenalty gradient_penalty(const std::function<Tensor(const Tensor&)>& critic, const Tensor& real,
                                 const Tensor& fake, const Tensor& alpha, double lambda) {
  LOCKSTEP_CHECK(real.dim() >= 2 && real.shape() == fake.shape() && alpha.dim() == 1 &&
                     alpha.size(0) == real.size(0),
                 ValueError, "gradient_penalty: expected real and fake of one shape [N, ...] and alpha [N], but got ",
                 shape_str(real.shape()), ", ", shape_str(fake.shape()), " and ", shape_str(alpha.shape()));
  Shape per_image(static_cast<std::size_t>(real.dim()), 1);
  per_image[0] = real.size(0);
  const Tensor a = alpha.to(real.dtype()).reshape(per_image);
  Tensor mixed = add(mul(a, real.detach()), mul(1.0 - a, fake.detach()));
  mixed.requires_grad_(true);
  const Tensor scores = critic(mixed);
  const Tensor g = grad({sum(scores)}, {mixed}, {}, RetainGraph::kYes, CreateGraph::kYes)[0];
  std::vector<std::int64_t> dims(static_cast<std::size_t>(real.dim() - 1));
  std::iota(dims.begin(), dims.end(), 1);
  const Tensor norms = sqrt(sum(square(g), dims) + 1e-12);
  GradientPenalty out;
  out.penalty = mean(square(norms - 1.0)) * lambda;
  out.mean_norm = mean(norms.detach());
  return out;
}

}  // namespace lockstep::models
