// The per-element updates of SGD and Adam(W), written once for the CPU and the CUDA kernels
// (src/backend/cpu/optimizer.cpp, src/backend/cuda/optimizer_kernels.cu): the hyperparameters of a step, the
// coefficients each derives from them (on the host, in the parameter's dtype) and the update of one element.
// Products are rounded on their own (mul_rounded), so both devices give the same bits.
#pragma once

#include <cmath>
#include <cstdint>

#include "src/core/host_device.h"

namespace lockstep::optim {

// SGD with momentum, dampening, Nesterov momentum and L2 weight decay (torch.optim.SGD's rule).
struct SgdHyper {
  double lr = 0.0;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

template <class T>
struct SgdCoefficients {
  T neg_lr, weight_decay, momentum, keep;  // keep = 1 - dampening
};

template <class T>
SgdCoefficients<T> sgd_coefficients(const SgdHyper& h) {
  return {static_cast<T>(-h.lr), static_cast<T>(h.weight_decay), static_cast<T>(h.momentum),
          static_cast<T>(1.0 - h.dampening)};
}

// p -= lr * (g + weight_decay * p when kDecay), without a momentum buffer.
template <bool kDecay, class T>
LOCKSTEP_HOST_DEVICE inline void sgd_element(T& p, T g, const SgdCoefficients<T>& c) {
  T d = g;
  if constexpr (kDecay) d += mul_rounded(c.weight_decay, p);
  p += mul_rounded(c.neg_lr, d);
}

// With the momentum buffer b: b = d on the parameter's first step (`first`), else momentum * b + (1 -
// dampening) * d; then p -= lr * (d + momentum * b) with Nesterov momentum, or lr * b.
template <bool kDecay, bool kNesterov, class T>
LOCKSTEP_HOST_DEVICE inline void sgd_momentum_element(T& p, T g, T& buf, bool first,
                                                      const SgdCoefficients<T>& c) {
  T d = g;
  if constexpr (kDecay) d += mul_rounded(c.weight_decay, p);
  const T b = first ? d : mul_rounded(c.momentum, buf) + mul_rounded(c.keep, d);
  buf = b;
  if constexpr (kNesterov) {
    p += mul_rounded(c.neg_lr, d + mul_rounded(c.momentum, b));
  } else {
    p += mul_rounded(c.neg_lr, b);
  }
}

// How Adam's weight decay enters: none, added to the gradient (Adam's L2) or shrinking the parameter before
// the update (AdamW's decoupled decay).
enum class AdamDecay : std::uint8_t { kNone, kL2, kDecoupled };

struct AdamHyper {
  double lr = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  AdamDecay decay = AdamDecay::kNone;  // for the parameters weight decay applies to; AMSGrad: a third slot
};

// One parameter's coefficients at its step t (the bias corrections depend on it).
template <class T>
struct AdamCoefficients {
  T beta1, beta2, one_beta1, one_beta2, neg_step_size, bias2_sqrt, eps, weight_decay, shrink;
};

template <class T>
AdamCoefficients<T> adam_coefficients(const AdamHyper& h, std::int64_t step) {
  const double bias1 = 1.0 - std::pow(h.beta1, static_cast<double>(step));
  const double bias2 = 1.0 - std::pow(h.beta2, static_cast<double>(step));
  return {static_cast<T>(h.beta1),
          static_cast<T>(h.beta2),
          static_cast<T>(1.0 - h.beta1),
          static_cast<T>(1.0 - h.beta2),
          static_cast<T>(-h.lr / bias1),
          static_cast<T>(std::sqrt(bias2)),
          static_cast<T>(h.eps),
          static_cast<T>(h.weight_decay),
          static_cast<T>(1.0 - h.lr * h.weight_decay)};
}

// m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2 (v_max = max(v_max, v) with AMSGrad, used for
// v), p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps); g += weight_decay * p first (kL2),
// or p *= 1 - lr * weight_decay first (kDecoupled). v_max is ignored unless kAmsGrad.
template <bool kL2, bool kDecoupled, bool kAmsGrad, class T>
LOCKSTEP_HOST_DEVICE inline void adam_element(T& p, T g, T& m, T& v, T* v_max, const AdamCoefficients<T>& c) {
  if constexpr (kL2) g += mul_rounded(c.weight_decay, p);
  if constexpr (kDecoupled) p = mul_rounded(p, c.shrink);
  const T mi = mul_rounded(c.beta1, m) + mul_rounded(c.one_beta1, g);
  T vi = mul_rounded(c.beta2, v) + mul_rounded(mul_rounded(c.one_beta2, g), g);
  m = mi;
  v = vi;
  if constexpr (kAmsGrad) {
    vi = *v_max < vi ? vi : *v_max;  // std::max(*v_max, vi)
    *v_max = vi;
  }
  p += mul_rounded(c.neg_step_size, mi / (std::sqrt(vi) / c.bias2_sqrt + c.eps));
}

}  // namespace lockstep::optim
