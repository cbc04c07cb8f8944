// The CPU kernels of the fused optimizer steps: one pass per parameter over it, its gradient and its slots,
// with the per-element formulas of src/optim/update_formulas.h.
#include "src/backend/cpu/register.h"
#include "src/core/threading.h"
#include "src/ops/kernels.h"

namespace lockstep::cpu {
namespace {

template <class T>
T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

void sgd_update_kernel(const std::vector<ParamUpdate>& params, const optim::SgdHyper& h) {
  for (const ParamUpdate& u : params) {
    dispatch_floating("sgd_update", u.param.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const optim::SgdCoefficients<T> c = optim::sgd_coefficients<T>(h);
      T* p = u.param.data<T>();
      const T* g = u.grad.data<T>();
      T* buf = data_or_null<T>(u.slots[0]);
      const bool first = u.step == 1;
      dispatch_flag(u.decay && h.weight_decay != 0.0, [&](auto decay_flag) {
        constexpr bool kDecay = decltype(decay_flag)::value;
        if (buf == nullptr) {
          for_each_element(u.param.numel(),
                           [=](std::int64_t i) { optim::sgd_element<kDecay>(p[i], g[i], c); });
          return;
        }
        dispatch_flag(h.nesterov, [&](auto nesterov_flag) {
          constexpr bool kNesterov = decltype(nesterov_flag)::value;
          for_each_element(u.param.numel(), [=](std::int64_t i) {
            optim::sgd_momentum_element<kDecay, kNesterov>(p[i], g[i], buf[i], first, c);
          });
        });
      });
    });
  }
}

void adam_update_kernel(const std::vector<ParamUpdate>& params, const optim::AdamHyper& h) {
  for (const ParamUpdate& u : params) {
    dispatch_floating("adam_update", u.param.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const optim::AdamCoefficients<T> c = optim::adam_coefficients<T>(h, u.step);
      T* p = u.param.data<T>();
      const T* g = u.grad.data<T>();
      T* m = u.slots[0].data<T>();
      T* v = u.slots[1].data<T>();
      T* v_max = data_or_null<T>(u.slots[2]);
      const bool decay = u.decay && h.weight_decay != 0.0;
      dispatch_flag(decay && h.decay == optim::AdamDecay::kL2, [&](auto l2_flag) {
        constexpr bool kL2 = decltype(l2_flag)::value;
        dispatch_flag(decay && h.decay == optim::AdamDecay::kDecoupled, [&](auto decoupled_flag) {
          constexpr bool kDecoupled = decltype(decoupled_flag)::value;
          dispatch_flag(v_max != nullptr, [&](auto ams_flag) {
            constexpr bool kAmsGrad = decltype(ams_flag)::value;
            for_each_element(u.param.numel(), [=](std::int64_t i) {
              optim::adam_element<kL2, kDecoupled, kAmsGrad>(p[i], g[i], m[i], v[i],
                                                             kAmsGrad ? v_max + i : nullptr, c);
            });
          });
        });
      });
    });
  }
}

}  // namespace

void register_optimizer_kernels() {
  kernels::sgd_update.set(DeviceType::CPU, sgd_update_kernel);
  kernels::adam_update.set(DeviceType::CPU, adam_update_kernel);
}

}  // namespace lockstep::cpu
