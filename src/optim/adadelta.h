// AdaDelta with L2 weight decay, following torch.optim.Adadelta.
#pragma once

#include <vector>

#include "src/optim/optimizer.h"

namespace lockstep::optim {

struct AdaDeltaOptions {
  double lr = 1.0;
  double rho = 0.9;
  double eps = 1e-6;
  double weight_decay = 0.0;  // L2 penalty added to the gradient
  DecayPolicy decay = DecayPolicy::kWeightsOnly;
};

// Per parameter, with g its gradient (plus weight_decay * p when decayed):
//   s = rho s + (1 - rho) g^2;  d = sqrt(u + eps) / sqrt(s + eps) * g;  u = rho u + (1 - rho) d^2;  p -= lr d
// Slots `square_avg` (s) and `acc_delta` (u). Owns its state; not thread-safe.
class AdaDelta final : public Optimizer {
 public:
  // ValueError naming the option for lr < 0, rho outside [0, 1], eps < 0, weight_decay < 0.
  AdaDelta(std::vector<nn::NamedTensor> params, AdaDeltaOptions options = {});
  const AdaDeltaOptions& options() const { return options_; }

 protected:
  void update(const Tensor& param, const Tensor& grad, ParamState& state, Decay decay) override;

 private:
  AdaDeltaOptions options_;
};

}  // namespace lockstep::optim
