// AdaGrad with optional learning-rate decay and L2 weight decay, following torch.optim.Adagrad.
#pragma once

#include <vector>

#include "src/optim/optimizer.h"

namespace lockstep::optim {

struct AdaGradOptions {
  double lr = 1e-2;
  double lr_decay = 0.0;
  double weight_decay = 0.0;  // L2 penalty added to the gradient
  double initial_accumulator_value = 0.0;
  double eps = 1e-10;
  DecayPolicy decay = DecayPolicy::kWeightsOnly;
};

// Per parameter, with g its gradient (plus weight_decay * p when decayed) and t its step:
//   s += g^2;  p -= lr / (1 + (t - 1) lr_decay) * g / (sqrt(s) + eps)
// Slot `sum`, starting at initial_accumulator_value. Owns its state; not thread-safe.
class AdaGrad final : public Optimizer {
 public:
  // ValueError naming the option for lr < 0, lr_decay < 0, weight_decay < 0, initial_accumulator_value < 0,
  // eps < 0.
  AdaGrad(std::vector<nn::NamedTensor> params, AdaGradOptions options = {});
  const AdaGradOptions& options() const { return options_; }

 protected:
  void update(const Tensor& param, const Tensor& grad, ParamState& state, Decay decay) override;

 private:
  AdaGradOptions options_;
};

}  // namespace lockstep::optim
