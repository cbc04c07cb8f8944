// CPU 2-D convolution kernels on raw contiguous NCHW pointers (f32 and f64): forward, input and weight
// gradients, on cached oneDNN primitives (f32; conv_onednn.cpp), im2col + OpenBLAS GEMM (f64, some f32;
// conv_im2col_gemm.cpp), a direct AVX-512 kernel (some f32 input gradients; conv_direct_avx512.cpp) or direct
// kernels for few output channels (f32; conv_direct_narrow.cpp), picked in one place (conv_kernels.cpp). All
// functions are thread-safe and deterministic for a given thread count; they use the shared OpenMP pool.

#pragma once

#include <cstdint>

namespace lockstep::cpu {

// Geometry of one 2-D convolution: x [N,C,H,W], w [K, C/groups, R, S], y [N,K,P,Q], all contiguous row-major.
// P = (H + 2*pad_h - dil_h*(R-1) - 1) / stride_h + 1, same for Q. Zero padding only (reflection padding is
// done by a separate pad op before the convolution).
struct Conv2dGeometry {
  int64_t N, C, H, W, K, R, S;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1, groups = 1;
  int64_t P() const;
  int64_t Q() const;
};

// Which implementation the f32 kernels use. kAuto: oneDNN, except where im2col + GEMM is measurably
// faster (kernel covering the whole input; input gradient with fewer than 16 input channels) or oneDNN has
// no kernel, except the input gradient with C*R*S <= 32 and K >= 32 on CPUs with AVX-512F (transposed
// convolutions down to 1-2 channels, 1x1 shortcuts), which runs a direct kernel, and except convolutions
// with at most 4 output channels at stride 1 (1-channel heads), which run direct kernels vectorised over
// output columns. kGemm forces im2col + GEMM;
// kOneDnn forces oneDNN (throws NotImplementedError where it has none). f64 always uses im2col + GEMM.
// Process-wide setting meant for tests and benchmarks; do not change it while kernels run on other threads.
enum class Conv2dPath { kAuto, kGemm, kOneDnn };
void set_conv2d_path(Conv2dPath path);

// Throws ValueError unless every size is positive (N, C, H, W, K, R, S, strides, dilations,
// groups), pads are non-negative, groups divides C and K, and P, Q >= 1. Each kernel below calls it first.
void validate_conv2d_geometry(const Conv2dGeometry& g);

// y [N,K,P,Q] = conv(x [N,C,H,W], w [K,C/groups,R,S]) + bias [K] (bias may be null). y is overwritten and
// must not alias x, w or bias. Every kernel throws NotImplementedError when a GEMM dimension exceeds the int
// range of BLAS, Error when out of memory and InternalError on a failure inside Lockstep or oneDNN.
template <class T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y);

// dx [N,C,H,W] = gradient of conv2d_forward with respect to x, given dy [N,K,P,Q] and w [K,C/groups,R,S].
// dx is overwritten (not accumulated) and must not alias dy or w. This is also conv_transpose2d forward with
// the roles swapped (input = dy with K channels, weight [K, C/groups, R, S], output = dx with C channels).
template <class T>
void conv2d_backward_input(const Conv2dGeometry& g, const T* dy, const T* w, T* dx);

// dw [K,C/groups,R,S] and dbias [K] (may be null) = gradients of conv2d_forward given dy [N,K,P,Q] and
// x [N,C,H,W]. Both are overwritten (not accumulated) and must not alias dy or x.
template <class T>
void conv2d_backward_weight(const Conv2dGeometry& g, const T* dy, const T* x, T* dw, T* dbias);

// dx, dw and dbias (may be null) together, as conv2d_backward_input and conv2d_backward_weight compute them
// (the same values): where both passes run on oneDNN, each chunk of dy is put in its layout once for both.
template <class T>
void conv2d_backward(const Conv2dGeometry& g, const T* dy, const T* x, const T* w, T* dx, T* dw, T* dbias);

}  // namespace lockstep::cpu
