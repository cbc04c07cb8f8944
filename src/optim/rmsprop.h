// RMSProp with optional momentum, centring and L2 weight decay, following torch.optim.RMSprop.
#pragma once

#include <vector>

#include "src/optim/optimizer.h"

namespace lockstep::optim {

enum class Centered { kNo, kYes };

struct RMSPropOptions {
  double lr = 1e-2;
  double alpha = 0.99;
  double eps = 1e-8;
  double momentum = 0.0;
  double weight_decay = 0.0;  // L2 penalty added to the gradient
  Centered centered = Centered::kNo;
  DecayPolicy decay = DecayPolicy::kWeightsOnly;
};

// Per parameter, with g its gradient (plus weight_decay * p when decayed):
//   s = alpha s + (1 - alpha) g^2;  centred: a = alpha a + (1 - alpha) g, avg = sqrt(s - a^2) + eps,
//   otherwise avg = sqrt(s) + eps;  momentum: b = momentum b + g / avg, p -= lr b;  else p -= lr g / avg.
// Slots `square_avg`, then `momentum_buffer` when momentum > 0, then `grad_avg` when centred.
// Owns its state; not thread-safe.
class RMSProp final : public Optimizer {
 public:
  // ValueError naming the option for lr < 0, alpha outside [0, 1], eps < 0, momentum < 0, weight_decay < 0.
  RMSProp(std::vector<nn::NamedTensor> params, RMSPropOptions options = {});
  const RMSPropOptions& options() const { return options_; }

 protected:
  void update(const Tensor& param, const Tensor& grad, ParamState& state, Decay decay) override;

 private:
  RMSPropOptions options_;
};

}  // namespace lockstep::optim
