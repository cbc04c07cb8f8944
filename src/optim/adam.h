// Adam (L2 weight decay added to the gradient) and AdamW (decoupled weight decay), with optional AMSGrad,
// following torch.optim.Adam and torch.optim.AdamW.
#pragma once

#include <vector>

#include "src/optim/optimizer.h"

namespace lockstep::optim {

enum class AmsGrad { kNo, kYes };

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // L2 penalty added to the gradient
  DecayPolicy decay = DecayPolicy::kWeightsOnly;
  AmsGrad amsgrad = AmsGrad::kNo;
};

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;  // decoupled: p *= 1 - lr * weight_decay before the Adam step
  DecayPolicy decay = DecayPolicy::kWeightsOnly;
  AmsGrad amsgrad = AmsGrad::kNo;
};

// Per parameter, with g its gradient (Adam: plus weight_decay * p when decayed) and t its step:
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;  v_max = max(v_max, v) (AMSGrad)
//   p -= lr / (1 - beta1^t) * m / (sqrt(v or v_max) / sqrt(1 - beta2^t) + eps)
// Slots `exp_avg`, `exp_avg_sq` and, with AMSGrad, `max_exp_avg_sq`. Owns its state; not thread-safe.
class Adam final : public Optimizer {
 public:
  // ValueError naming the option for lr < 0, eps < 0, beta1 or beta2 outside [0, 1), weight_decay < 0.
  Adam(std::vector<nn::NamedTensor> params, AdamOptions options = {});
  // The options given at construction (lr() is the current learning rate).
  const AdamOptions& options() const { return options_; }

 protected:
  void update_all(const std::vector<Pending>& pending) override;
  bool has_cuda_kernels() const override { return true; }

 private:
  AdamOptions options_;
};

// Adam with decoupled weight decay (Loshchilov & Hutter): decayed parameters first shrink by
// 1 - lr * weight_decay, then take the Adam step on the plain gradient. Owns its state; not thread-safe.
class AdamW final : public Optimizer {
 public:
  // ValueError naming the option for lr < 0, eps < 0, beta1 or beta2 outside [0, 1), weight_decay < 0.
  AdamW(std::vector<nn::NamedTensor> params, AdamWOptions options = {});
  const AdamWOptions& options() const { return options_; }

 protected:
  void update_all(const std::vector<Pending>& pending) override;
  bool has_cuda_kernels() const override { return true; }

 private:
  AdamWOptions options_;
};

}  // namespace lockstep::optim
