// AdaDelta's fused update: one pass over parameter, gradient and the two running averages.
#include "src/optim/adadelta.h"

#include <cmath>
#include <utility>

namespace lockstep::optim {
namespace {

template <class T>
void adadelta_kernel(T* p, const T* g, T* sq, T* acc, std::int64_t n, const AdaDeltaOptions& o, double lr,
                     bool decay) {
  const T wd = static_cast<T>(o.weight_decay), rho = static_cast<T>(o.rho);
  const T one_rho = static_cast<T>(1.0 - o.rho), eps = static_cast<T>(o.eps), neg_lr = static_cast<T>(-lr);
  dispatch_flag(decay && o.weight_decay != 0.0, [&](auto decay_flag) {
    constexpr bool kDecay = decltype(decay_flag)::value;
    for_each_element(n, [=](std::int64_t i) {
      T gi = g[i];
      if constexpr (kDecay) gi += wd * p[i];
      const T si = rho * sq[i] + one_rho * gi * gi;
      sq[i] = si;
      const T delta = std::sqrt(acc[i] + eps) / std::sqrt(si + eps) * gi;
      acc[i] = rho * acc[i] + one_rho * delta * delta;
      p[i] += neg_lr * delta;
    });
  });
}

}  // namespace

AdaDelta::AdaDelta(std::vector<nn::NamedTensor> params, AdaDeltaOptions options)
    : Optimizer("AdaDelta", std::move(params), options.lr, options.decay,
                {{"square_avg", 0.0}, {"acc_delta", 0.0}}),
      options_(options) {
  check_option(options.rho >= 0.0 && options.rho <= 1.0, "rho", "in [0, 1]", options.rho);
  check_option(options.eps >= 0.0, "eps", ">= 0", options.eps);
  check_option(options.weight_decay >= 0.0, "weight_decay", ">= 0", options.weight_decay);
}

void AdaDelta::update(const Tensor& param, const Tensor& grad, ParamState& state, Decay decay) {
  dispatch_floating("AdaDelta::step", param.dtype(), [&](auto tag) {
    using T = decltype(tag);
    adadelta_kernel<T>(param.data<T>(), grad.data<T>(), state.slots[0].data<T>(), state.slots[1].data<T>(),
                       param.numel(), options_, lr(), decay == Decay::kYes);
  });
}

}  // namespace lockstep::optim
