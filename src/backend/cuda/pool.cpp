// CUDA pooling kernels: validation and the calls to the launchers of pool_kernels.cu, on the tensors' device
// and the default stream.
#include "src/backend/cuda/device.h"
#include "src/backend/cuda/pool_launch.h"
#include "src/backend/cuda/register.h"
#include "src/ops/kernels.h"

namespace lockstep::cuda {
namespace {

PoolGeometry geometry(const Pool2dParams& p) {
  return {{p.kernel[0], p.kernel[1]},
          {p.stride[0], p.stride[1]},
          {p.padding[0], p.padding[1]},
          p.count_include_pad == CountIncludePad::kYes};
}

// Every tensor contiguous, on one device, of `dims` dimensions and of the first one's dtype, except `indices`
// (i64).
void check_operands(const char* where, std::initializer_list<const Tensor*> tensors, std::int64_t dims,
                    const Tensor* indices = nullptr) {
  const Tensor& first = **tensors.begin();
  for (const Tensor* t : tensors) {
    LOCKSTEP_CHECK(t->device() == first.device() && t->is_contiguous() && t->dim() == dims &&
                       t->dtype() == (t == indices ? DType::i64 : first.dtype()),
                   ValueError, where, ": expected contiguous ", dims, "-d tensors on ", first.device().str(),
                   ", but got ", dtype_name(t->dtype()), " ", shape_str(t->shape()), " on ",
                   t->device().str());
  }
}

void max_pool2d_kernel(const Tensor& x, const Tensor& y, const Tensor& indices, const Pool2dParams& p) {
  check_operands("max_pool2d (CUDA)", {&x, &y, &indices}, 4, &indices);
  DeviceGuard guard(x.device());
  launch_max_pool2d(x.dtype(), x.data(), y.data(), indices.data<std::int64_t>(), x.size(0) * x.size(1),
                    x.size(2), x.size(3), y.size(2), y.size(3), geometry(p));
}

void avg_pool2d_kernel(const Tensor& x, const Tensor& y, const Pool2dParams& p) {
  check_operands("avg_pool2d (CUDA)", {&x, &y}, 4);
  DeviceGuard guard(x.device());
  launch_avg_pool2d(x.dtype(), x.data(), y.data(), x.size(0) * x.size(1), x.size(2), x.size(3), y.size(2),
                    y.size(3), geometry(p));
}

void avg_pool2d_backward_kernel(const Tensor& dy, const Tensor& dx, const Pool2dParams& p) {
  check_operands("avg_pool2d_backward (CUDA)", {&dy, &dx}, 4);
  DeviceGuard guard(dx.device());
  launch_avg_pool2d_backward(dx.dtype(), dy.data(), dx.data(), dx.size(0) * dx.size(1), dx.size(2),
                             dx.size(3), dy.size(2), dy.size(3), geometry(p));
}

void plane_scatter_add_kernel(const Tensor& src, const Tensor& indices, const Tensor& out) {
  check_operands("plane_scatter_add (CUDA)", {&src, &indices, &out}, 2, &indices);
  DeviceGuard guard(out.device());
  launch_plane_scatter_add(out.dtype(), src.data(), indices.data<std::int64_t>(), out.data(), src.size(0),
                           src.size(1), out.size(1));
}

void plane_gather_kernel(const Tensor& src, const Tensor& indices, const Tensor& out) {
  check_operands("plane_gather (CUDA)", {&src, &indices, &out}, 2, &indices);
  DeviceGuard guard(out.device());
  launch_plane_gather(out.dtype(), src.data(), indices.data<std::int64_t>(), out.data(), out.size(0),
                      out.size(1), src.size(1));
}

}  // namespace

void register_pool_kernels() {
  kernels::max_pool2d.set(DeviceType::CUDA, max_pool2d_kernel);
  kernels::avg_pool2d.set(DeviceType::CUDA, avg_pool2d_kernel);
  kernels::avg_pool2d_backward.set(DeviceType::CUDA, avg_pool2d_backward_kernel);
  kernels::plane_scatter_add.set(DeviceType::CUDA, plane_scatter_add_kernel);
  kernels::plane_gather.set(DeviceType::CUDA, plane_gather_kernel);
}

}  // namespace lockstep::cuda
