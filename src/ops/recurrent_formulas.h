// The per-unit math of the fused recurrent cells (RNN tanh/relu, LSTM, GRU), forward and backward, written
// once for the CPU kernels (src/backend/cpu/recurrent.cpp) and the CUDA kernels
// (src/backend/cuda/recurrent_kernels.cu). The formulas are generic over the lane type V: float and double
// here (__host__ __device__), and the CPU's eight-lane AVX2 type, which supplies its own overloads of the
// lane operations below (fma, clamp, round_even, exp2_int, small_select, sigmoid_v, tanh_v, relu_of,
// relu_grad), found by argument-dependent lookup. f32 runs polynomial exp and tanh (a few ulp), f64 the unary
// ops' sigmoid and tanh (libm). Products followed by an addition are rounded on their own (mul_rounded), so
// both devices give the same bits where their exp and tanh do.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

#include "src/core/host_device.h"
#include "src/ops/unary_formulas.h"

namespace lockstep::recurrent {

// ---- Lane operations on one f32 ----

LOCKSTEP_HOST_DEVICE inline float fma(float a, float b, float c) { return std::fma(a, b, c); }
// NaN propagating, as std::min(std::max(x, lo), hi).
LOCKSTEP_HOST_DEVICE inline float clamp(float x, float lo, float hi) {
  const float m = x < lo ? lo : x;
  return hi < m ? hi : m;
}
LOCKSTEP_HOST_DEVICE inline float round_even(float x) { return std::nearbyint(x); }
// 2^n for integral n in the normal range.
LOCKSTEP_HOST_DEVICE inline float exp2_int(float n) {
  if (std::isnan(n)) return n;
  const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;
#ifdef __CUDA_ARCH__
  return __int_as_float(bits);
#else
  return std::bit_cast<float>(bits);
#endif
}
// |x| < t ? x : y
LOCKSTEP_HOST_DEVICE inline float small_select(float x, float t, float y) { return std::abs(x) < t ? x : y; }

// e^x in f32 (Cephes' expf: x = n ln2 + r with ln2 in two parts, a degree-6 polynomial in r; about 1 ulp).
// The clamp keeps 2^n normal; e^x beyond it is 0 or huge to the cells' sigmoid and tanh alike.
template <class V>
LOCKSTEP_HOST_DEVICE inline V exp_f32(V x) {
  x = clamp(x, -87.0f, 88.0f);
  const V n = round_even(x * 1.44269504088896341f);
  V r = fma(n, -0.693359375f, x);
  r = fma(n, 2.12194440e-4f, r);
  V p = 1.9875691500e-4f;
  p = fma(p, r, 1.3981999507e-3f);
  p = fma(p, r, 8.3334519073e-3f);
  p = fma(p, r, 4.1665795894e-2f);
  p = fma(p, r, 1.6666665459e-1f);
  p = fma(p, r, 5.0000001201e-1f);
  p = fma(p, r * r, r) + 1.0f;
  return mul_rounded(p, exp2_int(n));  // sigmoid adds 1 to it
}

// tanh in f32: an odd 13/6 rational approximation on [-7.999, 7.999] (Eigen's generic_fast_tanh_float; about
// 4 ulp), x itself below 4e-4 where tanh(x) rounds to x.
template <class V>
LOCKSTEP_HOST_DEVICE inline V tanh_f32(V a) {
  const V x = clamp(a, -7.99881172180175781f, 7.99881172180175781f);
  const V x2 = x * x;
  V p = -2.76076847742355e-16f;
  p = fma(p, x2, 2.00018790482477e-13f);
  p = fma(p, x2, -8.60467152213735e-11f);
  p = fma(p, x2, 5.12229709037114e-08f);
  p = fma(p, x2, 1.48572235717979e-05f);
  p = fma(p, x2, 6.37261928875436e-04f);
  p = fma(p, x2, 4.89352455891786e-03f);
  V q = 1.19825839466702e-06f;
  q = fma(q, x2, 1.18534705686654e-04f);
  q = fma(q, x2, 2.26843463243900e-03f);
  q = fma(q, x2, 4.89352518554385e-03f);
  return small_select(a, 4e-4f, (p * x) / q);
}

// ---- The activations per lane type: f32 by the approximations, f64 as the unary ops ----

LOCKSTEP_HOST_DEVICE inline float sigmoid_v(float x) { return 1.0f / (1.0f + exp_f32(-x)); }
LOCKSTEP_HOST_DEVICE inline float tanh_v(float x) { return tanh_f32(x); }
LOCKSTEP_HOST_DEVICE inline double sigmoid_v(double x) {
  return unary_forward_formula<UnaryOp::kSigmoid>(x, 0.0, 0.0);
}
LOCKSTEP_HOST_DEVICE inline double tanh_v(double x) {
  return unary_forward_formula<UnaryOp::kTanh>(x, 0.0, 0.0);
}
// max(x, 0), NaN propagating (relu's contract).
LOCKSTEP_HOST_DEVICE inline float relu_of(float x) {
  return unary_forward_formula<UnaryOp::kRelu>(x, 0.0f, 0.0f);
}
LOCKSTEP_HOST_DEVICE inline double relu_of(double x) {
  return unary_forward_formula<UnaryOp::kRelu>(x, 0.0, 0.0);
}
// g where y = relu(x) > 0, else 0.
LOCKSTEP_HOST_DEVICE inline float relu_grad(float g, float y) { return y > 0.0f ? g : 0.0f; }
LOCKSTEP_HOST_DEVICE inline double relu_grad(double g, double y) { return y > 0.0 ? g : 0.0; }

// ---- RNN: h = act(gi + gh), act tanh or relu ----

template <class V>
LOCKSTEP_HOST_DEVICE inline V rnn_cell_formula(bool relu, V gi, V gh) {
  const V pre = gi + gh;
  return relu ? relu_of(pre) : tanh_v(pre);
}

// dpre = dh * act'(gi + gh), from h.
template <class V>
LOCKSTEP_HOST_DEVICE inline V rnn_cell_backward_formula(bool relu, V dh, V h) {
  return relu ? relu_grad(dh, h) : dh * (V(1) - mul_rounded(h, h));
}

// ---- LSTM: gates [i, f, g, o] ----

template <class V>
struct LstmGates {
  V i, f, g, o;
};

// The gates from the two parts (gi, gh) of each pre-activation.
template <class V>
LOCKSTEP_HOST_DEVICE inline LstmGates<V> lstm_gates(V gi_i, V gh_i, V gi_f, V gh_f, V gi_g, V gh_g, V gi_o,
                                                    V gh_o) {
  return {sigmoid_v(gi_i + gh_i), sigmoid_v(gi_f + gh_f), tanh_v(gi_g + gh_g), sigmoid_v(gi_o + gh_o)};
}

template <class V>
struct LstmStep {
  V c_new, h;
};

// c_new = f c + i g, h = o tanh(c_new).
template <class V>
LOCKSTEP_HOST_DEVICE inline LstmStep<V> lstm_cell_formula(const LstmGates<V>& gates, V c) {
  const V c_new = mul_rounded(gates.f, c) + mul_rounded(gates.i, gates.g);
  return {c_new, gates.o * tanh_v(c_new)};
}

template <class V>
struct LstmGrads {
  V di, df, dg, d_o, dc_prev;  // of the pre-activations of i, f, g, o, and of c
};

// From dh, dc (of h and c_new), the gates, c and c_new.
template <class V>
LOCKSTEP_HOST_DEVICE inline LstmGrads<V> lstm_cell_backward_formula(const LstmGates<V>& gates, V dh, V dc,
                                                                    V c, V c_new) {
  const V one = V(1);
  const V i = gates.i, f = gates.f, g = gates.g, o = gates.o;
  const V tc = tanh_v(c_new);
  // The gradient reaching c_new: directly, and through h = o tanh(c_new).
  const V dcn = dc + mul_rounded(dh * o, one - mul_rounded(tc, tc));
  return {dcn * g * i * (one - i), dcn * c * f * (one - f), dcn * i * (one - mul_rounded(g, g)),
          dh * tc * o * (one - o), dcn * f};
}

// ---- GRU: gates [r, z, n] ----

template <class V>
struct GruGates {
  V r, z, n;
};

// r, z = sigmoid(gi + gh), n = tanh(gi_n + r gh_n).
template <class V>
LOCKSTEP_HOST_DEVICE inline GruGates<V> gru_gates(V gi_r, V gh_r, V gi_z, V gh_z, V gi_n, V gh_n) {
  const V r = sigmoid_v(gi_r + gh_r);
  const V z = sigmoid_v(gi_z + gh_z);
  return {r, z, tanh_v(gi_n + mul_rounded(r, gh_n))};
}

// h_new = (1 - z) n + z h, as n + z (h - n).
template <class V>
LOCKSTEP_HOST_DEVICE inline V gru_cell_formula(const GruGates<V>& gates, V h) {
  return gates.n + mul_rounded(gates.z, h - gates.n);
}

template <class V>
struct GruGrads {
  V dr, dz, dn;  // of the pre-activations: dgi = [dr, dz, dn]
  V dn_r;        // dgh's n block, dn r (dgh = [dr, dz, dn r])
  V dh_prev;     // of h
};

// From dh (of h_new), the gates, gh_n and h: through n's pre-activation gi_n + r gh_n, then r's and z's.
template <class V>
LOCKSTEP_HOST_DEVICE inline GruGrads<V> gru_cell_backward_formula(const GruGates<V>& gates, V gh_n, V dh,
                                                                  V h) {
  const V one = V(1);
  const V r = gates.r, z = gates.z, n = gates.n;
  const V dn = dh * (one - z) * (one - mul_rounded(n, n));
  const V dr = dn * gh_n * r * (one - r);
  const V dz = dh * (h - n) * z * (one - z);
  return {dr, dz, dn, dn * r, dh * z};
}

}  // namespace lockstep::recurrent
