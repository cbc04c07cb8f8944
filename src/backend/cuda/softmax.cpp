// CUDA softmax and log-softmax, forward and backward: validation and the calls to the launchers of
// softmax_kernels.cu, on the tensors' device and the default stream.
#include "src/backend/cuda/device.h"
#include "src/backend/cuda/register.h"
#include "src/backend/cuda/softmax_launch.h"
#include "src/ops/kernels.h"

namespace lockstep::cuda {
namespace {

// Checks that every tensor is a contiguous [outer, size, inner] of one dtype on one device.
void check_operands(const char* where, std::initializer_list<const Tensor*> tensors, std::int64_t outer,
                    std::int64_t size, std::int64_t inner) {
  const Tensor& first = **tensors.begin();
  for (const Tensor* t : tensors) {
    LOCKSTEP_CHECK(t->device() == first.device() && t->dtype() == first.dtype() && t->is_contiguous() &&
                       t->numel() == outer * size * inner,
                   ValueError, where, ": expected contiguous ", dtype_name(first.dtype()), " tensors of ",
                   outer, " x ", size, " x ", inner, " elements on ", first.device().str(), ", but got ",
                   dtype_name(t->dtype()), " ", shape_str(t->shape()), " on ", t->device().str());
  }
}

void softmax_kernel(SoftmaxKind kind, const Tensor& x, const Tensor& y, std::int64_t outer, std::int64_t size,
                    std::int64_t inner) {
  check_operands("softmax (CUDA)", {&x, &y}, outer, size, inner);
  DeviceGuard guard(y.device());
  launch_softmax(kind, x.dtype(), x.data(), y.data(), outer, size, inner);
}

void softmax_backward_kernel(SoftmaxKind kind, const Tensor& dy, const Tensor& y, const Tensor& dx,
                             std::int64_t outer, std::int64_t size, std::int64_t inner) {
  check_operands("softmax_backward (CUDA)", {&dy, &y, &dx}, outer, size, inner);
  DeviceGuard guard(dx.device());
  launch_softmax_backward(kind, dx.dtype(), dy.data(), y.data(), dx.data(), outer, size, inner);
}

}  // namespace

void register_softmax_kernels() {
  kernels::softmax.set(DeviceType::CUDA, softmax_kernel);
  kernels::softmax_backward.set(DeviceType::CUDA, softmax_backward_kernel);
}

}  // namespace lockstep::cuda
