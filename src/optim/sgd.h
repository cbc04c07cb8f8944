// Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and L2 weight decay,
// following torch.optim.SGD's update rule.
#pragma once

#include <vector>

#include "src/optim/optimizer.h"

namespace lockstep::optim {

enum class Nesterov { kNo, kYes };

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;  // L2 penalty added to the gradient
  Nesterov nesterov = Nesterov::kNo;
  DecayPolicy decay = DecayPolicy::kWeightsOnly;
};

// Per parameter, with g its gradient (plus weight_decay * p when decayed) and t its step:
//   b = g (t = 1) or momentum * b + (1 - dampening) * g;  d = g + momentum * b (Nesterov) or b;  p -= lr * d
// and without momentum p -= lr * g. Slot `momentum_buffer` exists only when momentum != 0.
// Owns its state (see Optimizer); not thread-safe.
class SGD final : public Optimizer {
 public:
  // ValueError naming the option for lr < 0, momentum < 0, dampening outside [0, 1], weight_decay < 0, or
  // Nesterov without momentum > 0 and dampening == 0.
  SGD(std::vector<nn::NamedTensor> params, SGDOptions options);
  // The options given at construction (lr() is the current learning rate).
  const SGDOptions& options() const { return options_; }

 protected:
  void update_all(const std::vector<Pending>& pending) override;
  bool has_cuda_kernels() const override { return true; }

 private:
  SGDOptions options_;
};

}  // namespace lockstep::optim
