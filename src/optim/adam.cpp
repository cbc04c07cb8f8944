// Adam's and AdamW's fused update: one pass over parameter, gradient and moment estimates.
#include "src/optim/adam.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace lockstep::optim {
namespace {

enum class DecayMode { kNone, kL2, kDecoupled };

// The hyperparameters of one update of one parameter.
struct AdamStep {
  double lr, beta1, beta2, eps, weight_decay;
  std::int64_t step;
  DecayMode decay;
};

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

template <class T>
void adam_kernel(T* p, const T* g, T* m, T* v, T* v_max, std::int64_t n, const AdamStep& s) {
  const double bias1 = 1.0 - std::pow(s.beta1, static_cast<double>(s.step));
  const double bias2 = 1.0 - std::pow(s.beta2, static_cast<double>(s.step));
  const T b1 = static_cast<T>(s.beta1), b2 = static_cast<T>(s.beta2);
  const T one_b1 = static_cast<T>(1.0 - s.beta1), one_b2 = static_cast<T>(1.0 - s.beta2);
  const T neg_step_size = static_cast<T>(-s.lr / bias1);
  const T bias2_sqrt = static_cast<T>(std::sqrt(bias2));
  const T eps = static_cast<T>(s.eps), wd = static_cast<T>(s.weight_decay);
  const T shrink = static_cast<T>(1.0 - s.lr * s.weight_decay);
  detail::dispatch_flag(s.decay == DecayMode::kL2, [&](auto l2_flag) {
    constexpr bool kL2 = decltype(l2_flag)::value;
    detail::dispatch_flag(s.decay == DecayMode::kDecoupled, [&](auto decoupled_flag) {
      constexpr bool kDecoupled = decltype(decoupled_flag)::value;
      detail::dispatch_flag(v_max != nullptr, [&](auto ams_flag) {
        constexpr bool kAmsGrad = decltype(ams_flag)::value;
        detail::for_each_element(n, [=](std::int64_t i) {
          T gi = g[i];
          if constexpr (kL2) gi += wd * p[i];
          if constexpr (kDecoupled) p[i] *= shrink;
          const T mi = b1 * m[i] + one_b1 * gi;
          T vi = b2 * v[i] + one_b2 * gi * gi;
          m[i] = mi;
          v[i] = vi;
          if constexpr (kAmsGrad) {
            vi = std::max(v_max[i], vi);
            v_max[i] = vi;
          }
          p[i] += neg_step_size * (mi / (std::sqrt(vi) / bias2_sqrt + eps));
        });
      });
    });
  });
}

void adam_update(const char* where, const Tensor& param, const Tensor& grad, Optimizer::ParamState& state,
                 const AdamStep& s) {
  dispatch_floating(where, param.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* v_max = state.slots.size() > 2 ? state.slots[2].data<T>() : nullptr;
    adam_kernel<T>(param.data<T>(), grad.data<T>(), state.slots[0].data<T>(), state.slots[1].data<T>(), v_max,
                   param.numel(), s);
  });
}

}  // namespace

Adam::Adam(std::vector<nn::NamedTensor> params, AdamOptions options)
    : Optimizer("Adam", std::move(params), options.lr, options.decay, adam_slots(options.amsgrad)),
      options_(options) {
  check_adam_options(options, [this](bool ok, const char* option, const char* condition, double value) {
    check_option(ok, option, condition, value);
  });
}

void Adam::update(const Tensor& param, const Tensor& grad, ParamState& state, Decay decay) {
  const bool l2 = decay == Decay::kYes && options_.weight_decay != 0.0;
  adam_update("Adam::step", param, grad, state,
              {lr(), options_.beta1, options_.beta2, options_.eps, options_.weight_decay, state.step,
               l2 ? DecayMode::kL2 : DecayMode::kNone});
}

AdamW::AdamW(std::vector<nn::NamedTensor> params, AdamWOptions options)
    : Optimizer("AdamW", std::move(params), options.lr, options.decay, adam_slots(options.amsgrad)),
      options_(options) {
  check_adam_options(options, [this](bool ok, const char* option, const char* condition, double value) {
    check_option(ok, option, condition, value);
  });
}

void AdamW::update(const Tensor& param, const Tensor& grad, ParamState& state, Decay decay) {
  const bool decoupled = decay == Decay::kYes && options_.weight_decay != 0.0;
  adam_update("AdamW::step", param, grad, state,
              {lr(), options_.beta1, options_.beta2, options_.eps, options_.weight_decay, state.step,
               decoupled ? DecayMode::kDecoupled : DecayMode::kNone});
}

}  // namespace lockstep::optim
