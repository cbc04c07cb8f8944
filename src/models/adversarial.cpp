// FGSM adversarial examples.
#include "src/models/adversarial.h"

#include "src/autograd/engine.h"
#include "src/autograd/grad_mode.h"
#include "src/core/error.h"
#include "src/ops/elementwise.h"
#include "src/ops/loss.h"
#include "src/ops/shape.h"
#include "src/tensor/factories.h"

namespace lockstep::models {

Tensor fgsm(nn::Module& model, const Tensor& input, const Tensor& labels, double epsilon,
            const InputNormalization& normalization) {
  LOCKSTEP_CHECK(input.dim() == 4, ValueError, "fgsm: expected images [N, C, H, W], but got shape ",
                 shape_str(input.shape()));
  const std::int64_t c = input.size(1);
  LOCKSTEP_CHECK(epsilon >= 0.0, ValueError, "fgsm: expected epsilon >= 0 (pixel units), but got ", epsilon);
  LOCKSTEP_CHECK(static_cast<std::int64_t>(normalization.mean.size()) == c &&
                     static_cast<std::int64_t>(normalization.std.size()) == c,
                 ValueError, "fgsm: expected ", c, " channel means and stds, but got ",
                 normalization.mean.size(), " and ", normalization.std.size());
  std::vector<double> step(static_cast<std::size_t>(c)), lo(step.size()), hi(step.size());
  for (std::size_t i = 0; i < step.size(); ++i) {
    const double s = normalization.std[i];
    LOCKSTEP_CHECK(s > 0.0, ValueError, "fgsm: expected positive channel stds, but channel ", i, " has ", s);
    step[i] = epsilon / s;
    lo[i] = -normalization.mean[i] / s;
    hi[i] = (1.0 - normalization.mean[i]) / s;
  }
  // Filled on the input's device, channel by channel: no copy from the host, which a GPU would wait for.
  const auto per_channel = [&](const std::vector<double>& v) {
    std::vector<Tensor> channels;
    for (const double x : v) channels.push_back(full({1, 1, 1, 1}, x, input.dtype(), input.device()));
    return cat(channels, 1);
  };

  Tensor gradient;
  {
    GradModeGuard grad_on(true);
    const bool was_training = model.is_training();
    model.eval();
    Tensor x = input.detach();
    x.requires_grad_(true);
    const Tensor loss = cross_entropy(model(x), labels, Reduction::kSum);
    gradient = grad({loss}, {x})[0];
    model.train(was_training);
  }
  NoGradGuard no_grad;
  LOCKSTEP_CHECK(gradient.defined(), ValueError, "fgsm: the model's loss does not depend on its input");
  const Tensor zero = zeros({1}, gradient.dtype(), gradient.device());
  const Tensor sign = gt(gradient, zero).to(input.dtype()) - lt(gradient, zero).to(input.dtype());
  const Tensor moved = input.detach() + sign * per_channel(step);
  return minimum(maximum(moved, per_channel(lo)), per_channel(hi));
}

}  // namespace lockstep::models
