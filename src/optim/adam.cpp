// Adam and AdamW: their options and slots; the update is the fused adam_update kernel
// (src/optim/update_formulas.h).
#include "src/optim/adam.h"

#include <utility>

namespace lockstep::optim {
namespace {

std::vector<Optimizer::Slot> adam_slots(AmsGrad amsgrad) {
  std::vector<Optimizer::Slot> slots{{"exp_avg", 0.0}, {"exp_avg_sq", 0.0}};
  if (amsgrad == AmsGrad::kYes) slots.push_back({"max_exp_avg_sq", 0.0});
  return slots;
}

// Checks the options shared by Adam and AdamW through `check(ok, option, condition, value)`.
template <class Options, class Check>
void check_adam_options(const Options& o, Check check) {
  check(o.eps >= 0.0, "eps", ">= 0", o.eps);
  check(o.beta1 >= 0.0 && o.beta1 < 1.0, "beta1", "in [0, 1)", o.beta1);
  check(o.beta2 >= 0.0 && o.beta2 < 1.0, "beta2", "in [0, 1)", o.beta2);
  check(o.weight_decay >= 0.0, "weight_decay", ">= 0", o.weight_decay);
}

// The options shared by Adam and AdamW as the fused kernel's hyperparameters.
template <class Options>
AdamHyper adam_hyper(double lr, const Options& o, AdamDecay decay) {
  return {lr, o.beta1, o.beta2, o.eps, o.weight_decay, decay};
}

}  // namespace

Adam::Adam(std::vector<nn::NamedTensor> params, AdamOptions options)
    : Optimizer("Adam", std::move(params), options.lr, options.decay, adam_slots(options.amsgrad)),
      options_(options) {
  check_adam_options(options, [this](bool ok, const char* option, const char* condition, double value) {
    check_option(ok, option, condition, value);
  });
}

void Adam::update_all(const std::vector<Pending>& pending) {
  const AdamHyper hyper = adam_hyper(lr(), options_, AdamDecay::kL2);
  for (const auto& [device, updates] : updates_by_device(pending))
    kernels::adam_update.get(device)(updates, hyper);
}

AdamW::AdamW(std::vector<nn::NamedTensor> params, AdamWOptions options)
    : Optimizer("AdamW", std::move(params), options.lr, options.decay, adam_slots(options.amsgrad)),
      options_(options) {
  check_adam_options(options, [this](bool ok, const char* option, const char* condition, double value) {
    check_option(ok, option, condition, value);
  });
}

void AdamW::update_all(const std::vector<Pending>& pending) {
  const AdamHyper hyper = adam_hyper(lr(), options_, AdamDecay::kDecoupled);
  for (const auto& [device, updates] : updates_by_device(pending))
    kernels::adam_update.get(device)(updates, hyper);
}

}  // namespace lockstep::optim
