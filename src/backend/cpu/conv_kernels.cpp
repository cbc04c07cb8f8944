// CPU 2-D convolution kernels: the geometry, its validation, and the one dispatch between the four
// mechanisms: oneDNN (conv_onednn.cpp), im2col + OpenBLAS GEMM (conv_im2col_gemm.cpp), the direct AVX-512
// input gradient (conv_direct_avx512.cpp) and the direct kernels for few output channels
// (conv_direct_narrow.cpp). Shared internals are in conv_internal.h.
#include "src/backend/cpu/conv_kernels.h"

#include <omp.h>

#include <array>
#include <atomic>
#include <type_traits>
#include <vector>

#include "src/backend/cpu/conv_internal.h"
#include "src/core/error.h"
#include "src/core/precision.h"

namespace lockstep::cpu {

namespace conv_internal {

ThreadScratch& thread_scratch() {
  thread_local ThreadScratch scratch;
  return scratch;
}

}  // namespace conv_internal

namespace {

using conv_internal::Pass;

std::atomic<Conv2dPath> g_path{Conv2dPath::kAuto};

int64_t out_size(int64_t in, int64_t pad, int64_t dil, int64_t k, int64_t stride) {
  const int64_t span = in + 2 * pad - dil * (k - 1) - 1;
  return span < 0 || stride <= 0 ? 0 : span / stride + 1;
}

// The f32 mechanisms. kOneDnn falls back to GEMM where oneDNN has no implementation; kOneDnnOnly throws
// there.
enum class Mechanism { kGemm, kDirectAvx512, kNarrow, kOneDnn, kOneDnnOnly };

// The direct kernel takes the input gradient of ungrouped convolutions with C*R*S <= 32 and K >= 32 (the
// transposed convolution down to 1-2 channels, 1x1 shortcuts), over at least one image per thread, on CPUs
// with AVX-512F. Measured on Zen 5 (1 thread): 1.2-1.4x faster than im2col + OpenBLAS and 1.5-10x faster
// than oneDNN; at C*R*S = 48 (3 channels, 4x4) it only tied OpenBLAS. Forward and weight gradient at these
// shapes stay on oneDNN, which was faster than both.
bool prefer_direct(Pass pass, const Conv2dGeometry& g) {
  static const bool has_avx512 = __builtin_cpu_supports("avx512f");
  const int64_t nthr = omp_in_parallel() ? 1 : omp_get_max_threads();
  return pass == Pass::kBackwardData && has_avx512 && g.groups == 1 && g.C * g.R * g.S <= 32 && g.K >= 32 &&
         g.N >= nthr;
}

// Cases where im2col + GEMM beats oneDNN 2-4x (measured on Zen 5): convolutions whose kernel covers the whole
// input (one GEMM), and the input gradient with fewer than 16 input channels (oneDNN pads them to 16).
bool prefer_gemm(Pass pass, const Conv2dGeometry& g) {
  if (g.groups != 1) return false;
  return conv_internal::is_dense(g) || (pass == Pass::kBackwardData && g.C < 16);
}

// The mechanism of one f32 pass: the forced path (set_conv2d_path), else the measured preferences above,
// else oneDNN. f64 always runs im2col + GEMM.
Mechanism f32_mechanism(Pass pass, const Conv2dGeometry& g) {
  switch (g_path.load(std::memory_order_relaxed)) {
    case Conv2dPath::kGemm:
      return Mechanism::kGemm;
    case Conv2dPath::kOneDnn:
      return Mechanism::kOneDnnOnly;
    case Conv2dPath::kAuto:
      break;
  }
  // oneDNN pads K to 16 channels (16x the work at K = 1); a kernel covering the whole input is one GEMM.
  if (conv_internal::narrow_applies(g) && !conv_internal::is_dense(g)) return Mechanism::kNarrow;
  if (prefer_direct(pass, g)) return Mechanism::kDirectAvx512;
  if (prefer_gemm(pass, g)) return Mechanism::kGemm;
  return Mechanism::kOneDnn;
}

// Runs an f32 pass on the mechanism the dispatch picks. Operands as conv_internal::onednn_conv2d takes them.
void run_f32(Pass pass, const Conv2dGeometry& g, const float* a, const float* b, float* out, float* bias) {
  const Mechanism m = f32_mechanism(pass, g);
  switch (m) {
    case Mechanism::kDirectAvx512:
      conv_internal::direct_backward_input(g, a, b, out);
      return;
    case Mechanism::kNarrow:
      if (pass == Pass::kForward) conv_internal::narrow_forward(g, a, b, bias, out);
      if (pass == Pass::kBackwardData) conv_internal::narrow_backward_input(g, a, b, out);
      if (pass == Pass::kBackwardWeights) conv_internal::narrow_backward_weight(g, b, a, out, bias);
      return;
    case Mechanism::kOneDnn:
    case Mechanism::kOneDnnOnly:
      if (conv_internal::onednn_conv2d(pass, g, a, b, out, bias, m == Mechanism::kOneDnnOnly, false)) return;
      break;
    case Mechanism::kGemm:
      break;
  }
  if (pass == Pass::kForward) conv_internal::forward_gemm(g, a, b, bias, out);
  if (pass == Pass::kBackwardData) conv_internal::backward_input_gemm(g, a, b, out);
  if (pass == Pass::kBackwardWeights) conv_internal::backward_weight_gemm(g, b, a, out, bias);
}

// Elements of a pass's two multiplied operands (a, b as run_f32 takes them).
std::array<int64_t, 2> operand_sizes(Pass pass, const Conv2dGeometry& g) {
  const int64_t x = g.N * g.C * g.H * g.W, y = g.N * g.K * g.P() * g.Q(),
                w = g.K * (g.C / g.groups) * g.R * g.S;
  if (pass == Pass::kForward) return {x, w};
  if (pass == Pass::kBackwardData) return {y, w};
  return {x, y};
}

// A pass at matmul_precision(): f32, or bf16 on oneDNN's bf16 primitives where it has them (unless the GEMM
// path is forced) and otherwise on the f32 mechanisms given copies of a and b rounded to bf16 (products of
// bf16 numbers are exact in f32, so both compute the same sums, up to order).
void run_float(Pass pass, const Conv2dGeometry& g, const float* a, const float* b, float* out, float* bias) {
  if (matmul_precision() != MatmulPrecision::kBf16) {
    run_f32(pass, g, a, b, out, bias);
    return;
  }
  const Conv2dPath path = g_path.load(std::memory_order_relaxed);
  if (path != Conv2dPath::kGemm &&
      conv_internal::onednn_conv2d(pass, g, a, b, out, bias, path == Conv2dPath::kOneDnn, true)) {
    return;
  }
  const auto [na, nb] = operand_sizes(pass, g);
  const std::vector<float> ra = rounded_to_bf16(a, na), rb = rounded_to_bf16(b, nb);
  run_f32(pass, g, ra.data(), rb.data(), out, bias);
}

}  // namespace

int64_t Conv2dGeometry::P() const { return out_size(H, pad_h, dil_h, R, stride_h); }
int64_t Conv2dGeometry::Q() const { return out_size(W, pad_w, dil_w, S, stride_w); }

void set_conv2d_path(Conv2dPath path) { g_path.store(path, std::memory_order_relaxed); }

void validate_conv2d_geometry(const Conv2dGeometry& g) {
  const bool positive = g.N > 0 && g.C > 0 && g.H > 0 && g.W > 0 && g.K > 0 && g.R > 0 && g.S > 0 &&
                        g.stride_h > 0 && g.stride_w > 0 && g.dil_h > 0 && g.dil_w > 0 && g.groups > 0;
  LOCKSTEP_CHECK(
      positive && g.pad_h >= 0 && g.pad_w >= 0 && g.C % g.groups == 0 && g.K % g.groups == 0 && g.P() >= 1 &&
          g.Q() >= 1,
      ValueError,
      "conv2d: expected positive sizes, non-negative padding, groups dividing C and K and a non-empty "
      "output, but got N=",
      g.N, " C=", g.C, " H=", g.H, " W=", g.W, " K=", g.K, " R=", g.R, " S=", g.S, " stride=", g.stride_h,
      "x", g.stride_w, " pad=", g.pad_h, "x", g.pad_w, " dil=", g.dil_h, "x", g.dil_w, " groups=", g.groups);
}

template <class T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  validate_conv2d_geometry(g);
  if constexpr (std::is_same_v<T, float>) {
    run_float(Pass::kForward, g, x, w, y, const_cast<float*>(bias));
  } else {
    conv_internal::forward_gemm(g, x, w, bias, y);
  }
}

template <class T>
void conv2d_backward_input(const Conv2dGeometry& g, const T* dy, const T* w, T* dx) {
  validate_conv2d_geometry(g);
  if constexpr (std::is_same_v<T, float>) {
    run_float(Pass::kBackwardData, g, dy, w, dx, nullptr);
  } else {
    conv_internal::backward_input_gemm(g, dy, w, dx);
  }
}

template <class T>
void conv2d_backward_weight(const Conv2dGeometry& g, const T* dy, const T* x, T* dw, T* dbias) {
  validate_conv2d_geometry(g);
  if constexpr (std::is_same_v<T, float>) {
    run_float(Pass::kBackwardWeights, g, x, dy, dw, dbias);
  } else {
    conv_internal::backward_weight_gemm(g, dy, x, dw, dbias);
  }
}

template <class T>
void conv2d_backward(const Conv2dGeometry& g, const T* dy, const T* x, const T* w, T* dx, T* dw, T* dbias) {
  validate_conv2d_geometry(g);
  if constexpr (std::is_same_v<T, float>) {
    const auto on_onednn = [&g](Pass pass) {
      const Mechanism m = f32_mechanism(pass, g);
      return m == Mechanism::kOneDnn || m == Mechanism::kOneDnnOnly;
    };
    if (matmul_precision() != MatmulPrecision::kBf16 && on_onednn(Pass::kBackwardData) &&
        on_onednn(Pass::kBackwardWeights) &&
        conv_internal::onednn_conv2d_backward(g, dy, x, w, dx, dw, dbias)) {
      return;
    }
  }
  conv2d_backward_input(g, dy, w, dx);
  conv2d_backward_weight(g, dy, x, dw, dbias);
}

template void conv2d_forward<float>(const Conv2dGeometry&, const float*, const float*, const float*, float*);
template void conv2d_forward<double>(const Conv2dGeometry&, const double*, const double*, const double*,
                                     double*);
template void conv2d_backward_input<float>(const Conv2dGeometry&, const float*, const float*, float*);
template void conv2d_backward_input<double>(const Conv2dGeometry&, const double*, const double*, double*);
template void conv2d_backward_weight<float>(const Conv2dGeometry&, const float*, const float*, float*,
                                            float*);
template void conv2d_backward_weight<double>(const Conv2dGeometry&, const double*, const double*, double*,
                                             double*);
template void conv2d_backward<float>(const Conv2dGeometry&, const float*, const float*, const float*, float*,
                                     float*, float*);
template void conv2d_backward<double>(const Conv2dGeometry&, const double*, const double*, const double*,
                                      double*, double*, double*);

}  // namespace lockstep::cpu
