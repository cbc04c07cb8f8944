// CPU 2-D convolution kernels: build the geometry from the tensors' shapes and the conv parameters, then run
// the raw-pointer kernels of conv_kernels.h (oneDNN or im2col + GEMM). An empty batch computes nothing.
#include <algorithm>

#include "src/backend/cpu/conv_kernels.h"
#include "src/backend/cpu/register.h"
#include "src/ops/kernels.h"

namespace lockstep::cpu {
namespace {

// x_shape [N, C, H, W] is the convolution's input, w_shape [K, C / groups, R, S] its weight.
Conv2dGeometry geometry(const Shape& x_shape, const Shape& w_shape, const Conv2dParams& p) {
  Conv2dGeometry g{x_shape[0], x_shape[1], x_shape[2], x_shape[3], w_shape[0], w_shape[2], w_shape[3]};
  g.stride_h = p.stride[0];
  g.stride_w = p.stride[1];
  g.pad_h = p.padding[0];
  g.pad_w = p.padding[1];
  g.dil_h = p.dilation[0];
  g.dil_w = p.dilation[1];
  g.groups = p.groups;
  return g;
}

template <class T> T* optional_data(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }

void conv2d_kernel(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, const Conv2dParams& p) {
  if (x.size(0) == 0) return;
  const Conv2dGeometry g = geometry(x.shape(), w.shape(), p);
  dispatch_floating("conv2d", x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    conv2d_forward<T>(g, x.data<T>(), w.data<T>(), optional_data<T>(bias), y.data<T>());
  });
}

void conv2d_backward_input_kernel(const Tensor& dy, const Tensor& w, const Tensor& dx, const Conv2dParams& p) {
  if (dx.size(0) == 0) return;
  const Conv2dGeometry g = geometry(dx.shape(), w.shape(), p);
  dispatch_floating("conv2d_backward_input", dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    conv2d_backward_input<T>(g, dy.data<T>(), w.data<T>(), dx.data<T>());
  });
}

void conv2d_backward_weight_kernel(const Tensor& dy, const Tensor& x, const Tensor& dw, const Tensor& dbias,
                                   const Conv2dParams& p) {
  dispatch_floating("conv2d_backward_weight", dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (x.size(0) == 0) {
      std::fill_n(dw.data<T>(), dw.numel(), T(0));
      if (dbias.defined()) std::fill_n(dbias.data<T>(), dbias.numel(), T(0));
      return;
    }
    conv2d_backward_weight<T>(geometry(x.shape(), dw.shape(), p), dy.data<T>(), x.data<T>(), dw.data<T>(),
                              optional_data<T>(dbias));
  });
}

void conv2d_backward_kernel(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& dx,
                            const Tensor& dw, const Tensor& dbias, const Conv2dParams& p) {
  if (x.size(0) == 0) {
    conv2d_backward_weight_kernel(dy, x, dw, dbias, p);  // zeros
    return;
  }
  dispatch_floating("conv2d_backward", dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    conv2d_backward<T>(geometry(x.shape(), w.shape(), p), dy.data<T>(), x.data<T>(), w.data<T>(),
                       dx.data<T>(), dw.data<T>(), optional_data<T>(dbias));
  });
}

}  // namespace

void register_conv_kernels() {
  kernels::conv2d.set(DeviceType::CPU, conv2d_kernel);
  kernels::conv2d_backward_input.set(DeviceType::CPU, conv2d_backward_input_kernel);
  kernels::conv2d_backward_weight.set(DeviceType::CPU, conv2d_backward_weight_kernel);
  kernels::conv2d_backward.set(DeviceType::CPU, conv2d_backward_kernel);
}

}  // namespace lockstep::cpu
