// CPU kernels of the fused recurrent cells (RNN, LSTM, GRU): the pointwise part of one step, forward and
// backward, in one pass over the gate pre-activations, by the formulas of src/ops/recurrent_formulas.h (the
// CUDA kernels run the same). f32 runs 8 lanes of AVX2 with polynomial exp and tanh (a few ulp; libm's scalar
// calls would dominate the step otherwise), the row tails the same arithmetic on one lane; f64, the
// gradient-check dtype, calls libm. Rows are independent and split over threads by the shapes alone, so
// results never depend on the thread count.
#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "src/backend/cpu/register.h"
#include "src/core/threading.h"
#include "src/ops/kernels.h"
#include "src/ops/recurrent_formulas.h"

namespace lockstep::cpu {
namespace {

// Eight f32 lanes. Implicit from a scalar (broadcast), so the formulas read the same for both; the lane
// operations of recurrent_formulas.h for them follow (found there by argument-dependent lookup).
struct F8 {
  __m256 v;
  F8(__m256 x) : v(x) {}                 // NOLINT(google-explicit-constructor)
  F8(float s) : v(_mm256_set1_ps(s)) {}  // NOLINT(google-explicit-constructor)
};
inline F8 operator+(F8 a, F8 b) { return _mm256_add_ps(a.v, b.v); }
inline F8 operator-(F8 a, F8 b) { return _mm256_sub_ps(a.v, b.v); }
inline F8 operator*(F8 a, F8 b) { return _mm256_mul_ps(a.v, b.v); }
inline F8 operator/(F8 a, F8 b) { return _mm256_div_ps(a.v, b.v); }
inline F8 operator-(F8 a) { return _mm256_xor_ps(a.v, _mm256_set1_ps(-0.0f)); }
inline F8 fma(F8 a, F8 b, F8 c) { return _mm256_fmadd_ps(a.v, b.v, c.v); }
// NaN propagating: vmaxps and vminps return their second operand when either is NaN.
inline F8 clamp(F8 x, float lo, float hi) {
  return _mm256_min_ps(_mm256_set1_ps(hi), _mm256_max_ps(_mm256_set1_ps(lo), x.v));
}
inline F8 round_even(F8 x) { return _mm256_round_ps(x.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
// 2^n for integral n in the normal range.
inline F8 exp2_int(F8 n) {
  return _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127)), 23));
}
// |x| < t ? x : y
inline F8 small_select(F8 x, float t, F8 y) {
  const __m256 abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x.v);
  return _mm256_blendv_ps(y.v, x.v, _mm256_cmp_ps(abs, _mm256_set1_ps(t), _CMP_LT_OQ));
}
// max(x, 0), NaN propagating (relu's contract).
inline F8 relu_of(F8 x) { return _mm256_max_ps(_mm256_setzero_ps(), x.v); }
inline F8 relu_grad(F8 g, F8 y) {
  return _mm256_and_ps(g.v, _mm256_cmp_ps(y.v, _mm256_setzero_ps(), _CMP_GT_OQ));
}

// The activations of eight f32 lanes, by the approximations of recurrent_formulas.h.
inline F8 sigmoid_v(F8 x) { return F8(1.0f) / (F8(1.0f) + recurrent::exp_f32(-x)); }
inline F8 tanh_v(F8 x) { return recurrent::tanh_f32(x); }

// Loads and stores of one lane group.
inline F8 load(const float* p, F8) { return _mm256_loadu_ps(p); }
inline void store(float* p, F8 v) { _mm256_storeu_ps(p, v.v); }
template <class T>
inline T load(const T* p, T) {
  return *p;
}
template <class T>
inline void store(T* p, T v) {
  *p = v;
}

// The gates of the unit at gi, gh (its column of gate block 0 in a [B, G H] row; the blocks H apart), as
// lanes of tag's type.
template <class T, class V>
recurrent::LstmGates<V> lstm_gates_at(const T* gi, const T* gh, std::int64_t H, V tag) {
  const V gi_i = load(gi, tag), gh_i = load(gh, tag), gi_f = load(gi + H, tag), gh_f = load(gh + H, tag);
  const V gi_g = load(gi + 2 * H, tag), gh_g = load(gh + 2 * H, tag);
  const V gi_o = load(gi + 3 * H, tag), gh_o = load(gh + 3 * H, tag);
  return recurrent::lstm_gates(gi_i, gh_i, gi_f, gh_f, gi_g, gh_g, gi_o, gh_o);
}
template <class T, class V>
recurrent::GruGates<V> gru_gates_at(const T* gi, const T* gh, std::int64_t H, V tag) {
  const V gi_r = load(gi, tag), gh_r = load(gh, tag), gi_z = load(gi + H, tag), gh_z = load(gh + H, tag);
  const V gi_n = load(gi + 2 * H, tag), gh_n = load(gh + 2 * H, tag);
  return recurrent::gru_gates(gi_r, gh_r, gi_z, gh_z, gi_n, gh_n);
}

// Calls unit.template operator()<V>(row, j) over the B x H units: eight f32 lanes at a time, then the row's
// tail one at a time (every unit of an f64 row one at a time). Rows in parallel above kParallelGrain elements
// of work (units times `width`, the gate columns each unit touches).
template <class T, class Unit>
void for_units(std::int64_t rows, std::int64_t H, std::int64_t width, Unit&& unit) {
  const auto row = [&](std::int64_t b) {
    std::int64_t j = 0;
    if constexpr (std::is_same_v<T, float>) {
      for (; j + 8 <= H; j += 8) unit(F8(0.0f), b, j);
    }
    for (; j < H; ++j) unit(T(0), b, j);
  };
#pragma omp parallel for schedule(static) if (rows * H * width >= kParallelGrain)
  for (std::int64_t b = 0; b < rows; ++b) row(b);
}

// ---- RNN ----

template <class T>
void rnn_cell_typed(UnaryOp act, const Tensor& gi_t, const Tensor& gh_t, const Tensor& h_t) {
  const std::int64_t B = h_t.size(0), H = h_t.size(1);
  const T* gi = gi_t.data<T>();
  const T* gh = gh_t.data<T>();
  T* h = h_t.data<T>();
  const bool relu = act == UnaryOp::kRelu;
  for_units<T>(B, H, 1, [&](auto tag, std::int64_t b, std::int64_t j) {
    const std::int64_t k = b * H + j;
    store(h + k, recurrent::rnn_cell_formula(relu, load(gi + k, tag), load(gh + k, tag)));
  });
}

template <class T>
void rnn_cell_backward_typed(UnaryOp act, const Tensor& dh_t, const Tensor& h_t, const Tensor& dpre_t) {
  const std::int64_t B = h_t.size(0), H = h_t.size(1);
  const T* dh = dh_t.data<T>();
  const T* h = h_t.data<T>();
  T* dpre = dpre_t.data<T>();
  const bool relu = act == UnaryOp::kRelu;
  for_units<T>(B, H, 1, [&](auto tag, std::int64_t b, std::int64_t j) {
    const std::int64_t k = b * H + j;
    store(dpre + k, recurrent::rnn_cell_backward_formula(relu, load(dh + k, tag), load(h + k, tag)));
  });
}

void rnn_cell_kernel(UnaryOp act, const Tensor& gi, const Tensor& gh, const Tensor& h) {
  dispatch_floating("rnn_cell", h.dtype(), [&](auto tag) { rnn_cell_typed<decltype(tag)>(act, gi, gh, h); });
}

void rnn_cell_backward_kernel(UnaryOp act, const Tensor& dh, const Tensor& h, const Tensor& dpre) {
  dispatch_floating("rnn_cell_backward", h.dtype(),
                    [&](auto tag) { rnn_cell_backward_typed<decltype(tag)>(act, dh, h, dpre); });
}

// ---- LSTM ----

template <class T>
void lstm_cell_typed(const Tensor& gi_t, const Tensor& gh_t, const Tensor& c_t, const Tensor& h_t,
                     const Tensor& cn_t) {
  const std::int64_t B = h_t.size(0), H = h_t.size(1), G = 4 * H;
  const T* gi = gi_t.data<T>();
  const T* gh = gh_t.data<T>();
  const T* c = c_t.data<T>();
  T* h = h_t.data<T>();
  T* cn = cn_t.data<T>();
  for_units<T>(B, H, 4, [&](auto tag, std::int64_t b, std::int64_t j) {
    const std::int64_t k = b * H + j, q = b * G + j;
    const auto gates = lstm_gates_at(gi + q, gh + q, H, tag);
    const auto step = recurrent::lstm_cell_formula(gates, load(c + k, tag));
    store(cn + k, step.c_new);
    store(h + k, step.h);
  });
}

template <class T>
void lstm_cell_backward_typed(const Tensor& dh_t, const Tensor& dc_t, const Tensor& gi_t, const Tensor& gh_t,
                              const Tensor& c_t, const Tensor& cn_t, const Tensor& dgates_t,
                              const Tensor& dcp_t) {
  const std::int64_t B = dh_t.size(0), H = dh_t.size(1), G = 4 * H;
  const T* dh = dh_t.data<T>();
  const T* dc = dc_t.data<T>();
  const T* gi = gi_t.data<T>();
  const T* gh = gh_t.data<T>();
  const T* c = c_t.data<T>();
  const T* cn = cn_t.data<T>();
  T* dgates = dgates_t.data<T>();
  T* dcp = dcp_t.defined() ? dcp_t.data<T>() : nullptr;
  for_units<T>(B, H, 4, [&](auto tag, std::int64_t b, std::int64_t j) {
    const std::int64_t k = b * H + j, q = b * G + j;
    using V = decltype(tag);
    const auto gates = lstm_gates_at(gi + q, gh + q, H, tag);
    const V c_new = load(cn + k, tag), g = load(dh + k, tag), gc = load(dc + k, tag),
            c_old = load(c + k, tag);
    const auto d = recurrent::lstm_cell_backward_formula(gates, g, gc, c_old, c_new);
    store(dgates + q, d.di);
    store(dgates + q + H, d.df);
    store(dgates + q + 2 * H, d.dg);
    store(dgates + q + 3 * H, d.d_o);
    if (dcp != nullptr) store(dcp + k, d.dc_prev);
  });
}

void lstm_cell_kernel(const Tensor& gi, const Tensor& gh, const Tensor& c, const Tensor& h,
                      const Tensor& c_new) {
  dispatch_floating("lstm_cell", h.dtype(),
                    [&](auto tag) { lstm_cell_typed<decltype(tag)>(gi, gh, c, h, c_new); });
}

void lstm_cell_backward_kernel(const Tensor& dh, const Tensor& dc, const Tensor& gi, const Tensor& gh,
                               const Tensor& c, const Tensor& c_new, const Tensor& dgates,
                               const Tensor& dc_prev) {
  dispatch_floating("lstm_cell_backward", dh.dtype(), [&](auto tag) {
    lstm_cell_backward_typed<decltype(tag)>(dh, dc, gi, gh, c, c_new, dgates, dc_prev);
  });
}

// ---- GRU ----

template <class T>
void gru_cell_typed(const Tensor& gi_t, const Tensor& gh_t, const Tensor& h_t, const Tensor& hn_t) {
  const std::int64_t B = h_t.size(0), H = h_t.size(1), G = 3 * H;
  const T* gi = gi_t.data<T>();
  const T* gh = gh_t.data<T>();
  const T* h = h_t.data<T>();
  T* hn = hn_t.data<T>();
  for_units<T>(B, H, 3, [&](auto tag, std::int64_t b, std::int64_t j) {
    const std::int64_t k = b * H + j, q = b * G + j;
    const auto gates = gru_gates_at(gi + q, gh + q, H, tag);
    store(hn + k, recurrent::gru_cell_formula(gates, load(h + k, tag)));
  });
}

template <class T>
void gru_cell_backward_typed(const Tensor& dh_t, const Tensor& gi_t, const Tensor& gh_t, const Tensor& h_t,
                             const Tensor& dgi_t, const Tensor& dgh_t, const Tensor& dhp_t) {
  const std::int64_t B = h_t.size(0), H = h_t.size(1), G = 3 * H;
  const T* dh = dh_t.data<T>();
  const T* gi = gi_t.data<T>();
  const T* gh = gh_t.data<T>();
  const T* h = h_t.data<T>();
  T* dgi = dgi_t.data<T>();
  T* dgh = dgh_t.data<T>();
  T* dhp = dhp_t.defined() ? dhp_t.data<T>() : nullptr;
  for_units<T>(B, H, 3, [&](auto tag, std::int64_t b, std::int64_t j) {
    const std::int64_t k = b * H + j, q = b * G + j;
    using V = decltype(tag);
    const auto gates = gru_gates_at(gi + q, gh + q, H, tag);
    const V hh_n = load(gh + q + 2 * H, tag), g = load(dh + k, tag), h_old = load(h + k, tag);
    const auto d = recurrent::gru_cell_backward_formula(gates, hh_n, g, h_old);
    store(dgi + q, d.dr);
    store(dgh + q, d.dr);
    store(dgi + q + H, d.dz);
    store(dgh + q + H, d.dz);
    store(dgi + q + 2 * H, d.dn);
    store(dgh + q + 2 * H, d.dn_r);
    if (dhp != nullptr) store(dhp + k, d.dh_prev);
  });
}

void gru_cell_kernel(const Tensor& gi, const Tensor& gh, const Tensor& h, const Tensor& h_new) {
  dispatch_floating("gru_cell", h.dtype(),
                    [&](auto tag) { gru_cell_typed<decltype(tag)>(gi, gh, h, h_new); });
}

void gru_cell_backward_kernel(const Tensor& dh, const Tensor& gi, const Tensor& gh, const Tensor& h,
                              const Tensor& dgi, const Tensor& dgh, const Tensor& dh_prev) {
  dispatch_floating("gru_cell_backward", dh.dtype(), [&](auto tag) {
    gru_cell_backward_typed<decltype(tag)>(dh, gi, gh, h, dgi, dgh, dh_prev);
  });
}

}  // namespace

void register_recurrent_kernels() {
  kernels::rnn_cell.set(DeviceType::CPU, rnn_cell_kernel);
  kernels::rnn_cell_backward.set(DeviceType::CPU, rnn_cell_backward_kernel);
  kernels::lstm_cell.set(DeviceType::CPU, lstm_cell_kernel);
  kernels::lstm_cell_backward.set(DeviceType::CPU, lstm_cell_backward_kernel);
  kernels::gru_cell.set(DeviceType::CPU, gru_cell_kernel);
  kernels::gru_cell_backward.set(DeviceType::CPU, gru_cell_backward_kernel);
}

}  // namespace lockstep::cpu
