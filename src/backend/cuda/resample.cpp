// CUDA padding and nearest and bilinear upsampling: validation and the calls to the launchers of
// pad_kernels.cu and upsample_kernels.cu, on the tensors' device and the default stream.
#include "src/backend/cuda/device.h"
#include "src/backend/cuda/register.h"
#include "src/backend/cuda/resample_launch.h"
#include "src/ops/kernels.h"

namespace lockstep::cuda {
namespace {

void check_operands(const char* where, const Tensor& a, const Tensor& b, std::int64_t dims) {
  LOCKSTEP_CHECK(a.device() == b.device() && a.dtype() == b.dtype() && a.is_contiguous() &&
                     b.is_contiguous() && a.dim() == dims && b.dim() == dims,
                 ValueError, where, ": expected contiguous ", dims,
                 "-d tensors of one dtype on one device, but got ", dtype_name(a.dtype()), " ",
                 shape_str(a.shape()), " on ", a.device().str(), " and ", dtype_name(b.dtype()), " ",
                 shape_str(b.shape()), " on ", b.device().str());
}

void pad2d_kernel(PadMode mode, const Tensor& x, const Tensor& y, Pads2d pads, double value) {
  check_operands("pad2d (CUDA)", x, y, 3);
  DeviceGuard guard(y.device());
  launch_pad2d(mode == PadMode::kReflect, x.dtype(), x.data(), y.data(), x.size(0), x.size(1), x.size(2),
               y.size(1), y.size(2), pads[0], pads[2], value);
}

void pad2d_backward_kernel(PadMode mode, const Tensor& dy, const Tensor& dx, Pads2d pads) {
  check_operands("pad2d_backward (CUDA)", dy, dx, 3);
  DeviceGuard guard(dx.device());
  launch_pad2d_backward(mode == PadMode::kReflect, dx.dtype(), dy.data(), dx.data(), dx.size(0), dx.size(1),
                        dx.size(2), dy.size(1), dy.size(2), pads[0], pads[2], pads[3]);
}

void upsample_nearest2d_kernel(const Tensor& x, const Tensor& y) {
  check_operands("upsample_nearest2d (CUDA)", x, y, 4);
  DeviceGuard guard(y.device());
  launch_upsample_nearest2d(x.dtype(), x.data(), y.data(), x.size(0) * x.size(1), x.size(2), x.size(3),
                            y.size(2), y.size(3));
}

void upsample_nearest2d_backward_kernel(const Tensor& dy, const Tensor& dx) {
  check_operands("upsample_nearest2d_backward (CUDA)", dy, dx, 4);
  DeviceGuard guard(dx.device());
  launch_upsample_nearest2d_backward(dx.dtype(), dy.data(), dx.data(), dx.size(0) * dx.size(1), dx.size(2),
                                     dx.size(3), dy.size(2), dy.size(3));
}

void upsample_bilinear2d_kernel(const Tensor& x, const Tensor& y, AlignCorners align) {
  check_operands("upsample_bilinear2d (CUDA)", x, y, 4);
  DeviceGuard guard(y.device());
  launch_upsample_bilinear2d(align == AlignCorners::kYes, x.dtype(), x.data(), y.data(),
                             x.size(0) * x.size(1), x.size(2), x.size(3), y.size(2), y.size(3));
}

void upsample_bilinear2d_backward_kernel(const Tensor& dy, const Tensor& dx, AlignCorners align) {
  check_operands("upsample_bilinear2d_backward (CUDA)", dy, dx, 4);
  DeviceGuard guard(dx.device());
  launch_upsample_bilinear2d_backward(align == AlignCorners::kYes, dx.dtype(), dy.data(), dx.data(),
                                      dx.size(0) * dx.size(1), dx.size(2), dx.size(3), dy.size(2),
                                      dy.size(3));
}

}  // namespace

void register_resample_kernels() {
  kernels::pad2d.set(DeviceType::CUDA, pad2d_kernel);
  kernels::pad2d_backward.set(DeviceType::CUDA, pad2d_backward_kernel);
  kernels::upsample_nearest2d.set(DeviceType::CUDA, upsample_nearest2d_kernel);
  kernels::upsample_nearest2d_backward.set(DeviceType::CUDA, upsample_nearest2d_backward_kernel);
  kernels::upsample_bilinear2d.set(DeviceType::CUDA, upsample_bilinear2d_kernel);
  kernels::upsample_bilinear2d_backward.set(DeviceType::CUDA, upsample_bilinear2d_backward_kernel);
}

}  // namespace lockstep::cuda
