// RMSProp's fused update: one pass over parameter, gradient, square average and the optional buffers.
#include "src/optim/rmsprop.h"

#include <cmath>
#include <utility>

namespace lockstep::optim {
namespace {

std::vector<Optimizer::Slot> rmsprop_slots(const RMSPropOptions& o) {
  std::vector<Optimizer::Slot> slots{{"square_avg", 0.0}};
  if (o.momentum > 0.0) slots.push_back({"momentum_buffer", 0.0});
  if (o.centered == Centered::kYes) slots.push_back({"grad_avg", 0.0});
  return slots;
}

template <class T>
void rmsprop_kernel(T* p, const T* g, T* sq, T* buf, T* avg_g, std::int64_t n, const RMSPropOptions& o,
                    double lr, bool decay) {
  const T wd = static_cast<T>(o.weight_decay), alpha = static_cast<T>(o.alpha);
  const T one_alpha = static_cast<T>(1.0 - o.alpha), eps = static_cast<T>(o.eps);
  const T mom = static_cast<T>(o.momentum), neg_lr = static_cast<T>(-lr);
  dispatch_flag(decay && o.weight_decay != 0.0, [&](auto decay_flag) {
    constexpr bool kDecay = decltype(decay_flag)::value;
    dispatch_flag(buf != nullptr, [&](auto momentum_flag) {
      constexpr bool kMomentum = decltype(momentum_flag)::value;
      dispatch_flag(avg_g != nullptr, [&](auto centered_flag) {
        constexpr bool kCentered = decltype(centered_flag)::value;
        for_each_element(n, [=](std::int64_t i) {
          T gi = g[i];
          if constexpr (kDecay) gi += wd * p[i];
          const T si = alpha * sq[i] + one_alpha * gi * gi;
          sq[i] = si;
          T avg;
          if constexpr (kCentered) {
            const T ai = alpha * avg_g[i] + one_alpha * gi;
            avg_g[i] = ai;
            avg = std::sqrt(si - ai * ai) + eps;
          } else {
            avg = std::sqrt(si) + eps;
          }
          if constexpr (kMomentum) {
            const T bi = mom * buf[i] + gi / avg;
            buf[i] = bi;
            p[i] += neg_lr * bi;
          } else {
            p[i] += neg_lr * (gi / avg);
          }
        });
      });
    });
  });
}

}  // namespace

RMSProp::RMSProp(std::vector<nn::NamedTensor> params, RMSPropOptions options)
    : Optimizer("RMSProp", std::move(params), options.lr, options.decay, rmsprop_slots(options)),
      options_(options) {
  check_option(options.alpha >= 0.0 && options.alpha <= 1.0, "alpha", "in [0, 1]", options.alpha);
  check_option(options.eps >= 0.0, "eps", ">= 0", options.eps);
  check_option(options.momentum >= 0.0, "momentum", ">= 0", options.momentum);
  check_option(options.weight_decay >= 0.0, "weight_decay", ">= 0", options.weight_decay);
}

void RMSProp::update(const Tensor& param, const Tensor& grad, ParamState& state, Decay decay) {
  dispatch_floating("RMSProp::step", param.dtype(), [&](auto tag) {
    using T = decltype(tag);
    std::size_t next = 1;
    T* buf = options_.momentum > 0.0 ? state.slots[next++].data<T>() : nullptr;
    T* avg_g = options_.centered == Centered::kYes ? state.slots[next].data<T>() : nullptr;
    rmsprop_kernel<T>(param.data<T>(), grad.data<T>(), state.slots[0].data<T>(), buf, avg_g, param.numel(),
                      options_, lr(), decay == Decay::kYes);
  });
}

}  // namespace lockstep::optim
