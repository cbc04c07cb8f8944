// AdaGrad's fused update: one pass over parameter, gradient and the sum of squared gradients.
#include "src/optim/adagrad.h"

#include <cmath>
#include <utility>

namespace lockstep::optim {
namespace {

template <class T>
void adagrad_kernel(T* p, const T* g, T* sum, std::int64_t n, const AdaGradOptions& o, double lr,
                    std::int64_t step, bool decay) {
  const T wd = static_cast<T>(o.weight_decay), eps = static_cast<T>(o.eps);
  const T neg_clr = static_cast<T>(-lr / (1.0 + static_cast<double>(step - 1) * o.lr_decay));
  dispatch_flag(decay && o.weight_decay != 0.0, [&](auto decay_flag) {
    constexpr bool kDecay = decltype(decay_flag)::value;
    for_each_element(n, [=](std::int64_t i) {
      T gi = g[i];
      if constexpr (kDecay) gi += wd * p[i];
      const T si = sum[i] + gi * gi;
      sum[i] = si;
      p[i] += neg_clr * (gi / (std::sqrt(si) + eps));
    });
  });
}

}  // namespace

AdaGrad::AdaGrad(std::vector<nn::NamedTensor> params, AdaGradOptions options)
    : Optimizer("AdaGrad", std::move(params), options.lr, options.decay,
                {{"sum", options.initial_accumulator_value}}),
      options_(options) {
  check_option(options.lr_decay >= 0.0, "lr_decay", ">= 0", options.lr_decay);
  check_option(options.weight_decay >= 0.0, "weight_decay", ">= 0", options.weight_decay);
  check_option(options.initial_accumulator_value >= 0.0, "initial_accumulator_value", ">= 0",
               options.initial_accumulator_value);
  check_option(options.eps >= 0.0, "eps", ">= 0", options.eps);
}

void AdaGrad::update(const Tensor& param, const Tensor& grad, ParamState& state, Decay decay) {
  dispatch_floating("AdaGrad::step", param.dtype(), [&](auto tag) {
    using T = decltype(tag);
    adagrad_kernel<T>(param.data<T>(), grad.data<T>(), state.slots[0].data<T>(), param.numel(), options_,
                      lr(), state.step, decay == Decay::kYes);
  });
}

}  // namespace lockstep::optim
