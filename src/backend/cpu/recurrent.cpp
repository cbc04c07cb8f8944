// CPU kernels of the fused recurrent cells (RNN, LSTM, GRU): the pointwise part of one step, forward and
// backward, in one pass over the gate pre-activations. f32 runs 8 lanes of AVX2 with polynomial exp and tanh
// (a few ulp; libm's scalar calls would dominate the step otherwise); f64, the gradient-check dtype, calls
// libm. Rows are independent and split over threads by the shapes alone, so results never depend on the
// thread count.
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "src/backend/cpu/register.h"
#include "src/core/threading.h"
#include "src/ops/kernels.h"

namespace lockstep::cpu {
namespace {

// Eight f32 lanes. Implicit from a scalar (broadcast), so the formulas below read the same for both.
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

// The scalar f32 twins, lane for lane the same arithmetic (the row tails).
inline float fma(float a, float b, float c) { return std::fma(a, b, c); }
inline float clamp(float x, float lo, float hi) { return std::min(std::max(x, lo), hi); }
inline float round_even(float x) { return std::nearbyint(x); }
inline float exp2_int(float n) {
  return std::isnan(n) ? n : std::bit_cast<float>((static_cast<std::int32_t>(n) + 127) << 23);
}
inline float small_select(float x, float t, float y) { return std::abs(x) < t ? x : y; }
template <class T>
inline T relu_of(T x) {
  return x < T(0) ? T(0) : x;
}
template <class T>
inline T relu_grad(T g, T y) {
  return y > T(0) ? g : T(0);
}

// e^x in f32 (Cephes' expf: x = n ln2 + r with ln2 in two parts, a degree-6 polynomial in r; about 1 ulp).
// The clamp keeps 2^n normal; e^x beyond it is 0 or huge to the cells' sigmoid and tanh alike.
template <class V>
V exp_f32(V x) {
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
  return p * exp2_int(n);
}

// tanh in f32: an odd 13/6 rational approximation on [-7.999, 7.999] (Eigen's generic_fast_tanh_float; about
// 4 ulp), x itself below 4e-4 where tanh(x) rounds to x.
template <class V>
V tanh_f32(V a) {
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

// The activations per lane type: f32 (one or eight lanes) by the approximations, f64 by libm.
inline F8 sigmoid_v(F8 x) { return F8(1.0f) / (F8(1.0f) + exp_f32(-x)); }
inline F8 tanh_v(F8 x) { return tanh_f32(x); }
inline float sigmoid_v(float x) { return 1.0f / (1.0f + exp_f32(-x)); }
inline float tanh_v(float x) { return tanh_f32(x); }
// As the sigmoid op (ScalarMath::sigmoid): no overflow of exp on either side.
inline double sigmoid_v(double x) {
  return x >= 0.0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x));
}
inline double tanh_v(double x) { return std::tanh(x); }

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
    using V = decltype(tag);
    const std::int64_t k = b * H + j;
    const V pre = load(gi + k, tag) + load(gh + k, tag);
    store(h + k, relu ? relu_of(pre) : tanh_v(pre));
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
    using V = decltype(tag);
    const std::int64_t k = b * H + j;
    const V g = load(dh + k, tag), y = load(h + k, tag);
    store(dpre + k, relu ? relu_grad(g, y) : g * (V(T(1)) - y * y));
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
    using V = decltype(tag);
    const std::int64_t k = b * H + j, q = b * G + j;
    const V i = sigmoid_v(load(gi + q, tag) + load(gh + q, tag));
    const V f = sigmoid_v(load(gi + q + H, tag) + load(gh + q + H, tag));
    const V g = tanh_v(load(gi + q + 2 * H, tag) + load(gh + q + 2 * H, tag));
    const V o = sigmoid_v(load(gi + q + 3 * H, tag) + load(gh + q + 3 * H, tag));
    const V c_new = f * load(c + k, tag) + i * g;
    store(cn + k, c_new);
    store(h + k, o * tanh_v(c_new));
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
    using V = decltype(tag);
    const V one = V(T(1));
    const std::int64_t k = b * H + j, q = b * G + j;
    const V i = sigmoid_v(load(gi + q, tag) + load(gh + q, tag));
    const V f = sigmoid_v(load(gi + q + H, tag) + load(gh + q + H, tag));
    const V g = tanh_v(load(gi + q + 2 * H, tag) + load(gh + q + 2 * H, tag));
    const V o = sigmoid_v(load(gi + q + 3 * H, tag) + load(gh + q + 3 * H, tag));
    const V tc = tanh_v(load(cn + k, tag));
    const V gh_out = load(dh + k, tag);
    // The gradient reaching c_new: directly, and through h = o tanh(c_new).
    const V dcn = load(dc + k, tag) + gh_out * o * (one - tc * tc);
    store(dgates + q, dcn * g * i * (one - i));
    store(dgates + q + H, dcn * load(c + k, tag) * f * (one - f));
    store(dgates + q + 2 * H, dcn * i * (one - g * g));
    store(dgates + q + 3 * H, gh_out * tc * o * (one - o));
    if (dcp != nullptr) store(dcp + k, dcn * f);
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
    using V = decltype(tag);
    const std::int64_t k = b * H + j, q = b * G + j;
    const V r = sigmoid_v(load(gi + q, tag) + load(gh + q, tag));
    const V z = sigmoid_v(load(gi + q + H, tag) + load(gh + q + H, tag));
    const V n = tanh_v(load(gi + q + 2 * H, tag) + r * load(gh + q + 2 * H, tag));
    store(hn + k, n + z * (load(h + k, tag) - n));  // (1 - z) n + z h
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
    using V = decltype(tag);
    const V one = V(T(1));
    const std::int64_t k = b * H + j, q = b * G + j;
    const V r = sigmoid_v(load(gi + q, tag) + load(gh + q, tag));
    const V z = sigmoid_v(load(gi + q + H, tag) + load(gh + q + H, tag));
    const V hh_n = load(gh + q + 2 * H, tag);
    const V n = tanh_v(load(gi + q + 2 * H, tag) + r * hh_n);
    const V g = load(dh + k, tag);
    // Through n's pre-activation gi_n + r gh_n, then r's and z's.
    const V dn = g * (one - z) * (one - n * n);
    const V dr = dn * hh_n * r * (one - r);
    const V dz = g * (load(h + k, tag) - n) * z * (one - z);
    store(dgi + q, dr);
    store(dgh + q, dr);
    store(dgi + q + H, dz);
    store(dgh + q + H, dz);
    store(dgi + q + 2 * H, dn);
    store(dgh + q + 2 * H, dn * r);
    if (dhp != nullptr) store(dhp + k, g * z);
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
