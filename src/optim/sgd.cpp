// SGD's fused update: one pass over parameter, gradient and momentum buffer.
#include "src/optim/sgd.h"

#include <utility>

namespace lockstep::optim {
namespace {

std::vector<Optimizer::Slot> sgd_slots(const SGDOptions& o) {
  if (o.momentum == 0.0) return {};
  return {{"momentum_buffer", 0.0}};
}

template <class T>
void sgd_kernel(T* p, const T* g, T* buf, std::int64_t n, const SGDOptions& o, double lr, bool decay,
                bool first) {
  const T wd = static_cast<T>(o.weight_decay), mom = static_cast<T>(o.momentum);
  const T keep = static_cast<T>(1.0 - o.dampening), neg_lr = static_cast<T>(-lr);
  detail::dispatch_flag(decay && o.weight_decay != 0.0, [&](auto decay_flag) {
    constexpr bool kDecay = decltype(decay_flag)::value;
    if (buf == nullptr) {
      detail::for_each_element(n, [=](std::int64_t i) {
        T d = g[i];
        if constexpr (kDecay) d += wd * p[i];
        p[i] += neg_lr * d;
      });
      return;
    }
    detail::dispatch_flag(o.nesterov == Nesterov::kYes, [&](auto nesterov_flag) {
      constexpr bool kNesterov = decltype(nesterov_flag)::value;
      detail::for_each_element(n, [=](std::int64_t i) {
        T d = g[i];
        if constexpr (kDecay) d += wd * p[i];
        const T b = first ? d : mom * buf[i] + keep * d;
        buf[i] = b;
        if constexpr (kNesterov) {
          p[i] += neg_lr * (d + mom * b);
        } else {
          p[i] += neg_lr * b;
        }
      });
    });
  });
}

}  // namespace

SGD::SGD(std::vector<nn::NamedTensor> params, SGDOptions options)
    : Optimizer("SGD", std::move(params), options.lr, options.decay, sgd_slots(options)), options_(options) {
  check_option(options.momentum >= 0.0, "momentum", ">= 0", options.momentum);
  check_option(options.dampening >= 0.0 && options.dampening <= 1.0, "dampening", "in [0, 1]",
               options.dampening);
  check_option(options.weight_decay >= 0.0, "weight_decay", ">= 0", options.weight_decay);
  if (options.nesterov == Nesterov::kYes) {
    check_option(options.momentum > 0.0, "momentum", "> 0 with Nesterov momentum", options.momentum);
    check_option(options.dampening == 0.0, "dampening", "== 0 with Nesterov momentum", options.dampening);
  }
}

void SGD::update(const Tensor& param, const Tensor& grad, ParamState& state, Decay decay) {
  dispatch_floating("SGD::step", param.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* buf = state.slots.empty() ? nullptr : state.slots[0].data<T>();
    sgd_kernel<T>(param.data<T>(), grad.data<T>(), buf, param.numel(), options_, lr(), decay == Decay::kYes,
                  state.step == 1);
  });
}

}  // namespace lockstep::optim
