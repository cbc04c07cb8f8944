// CUDA batch-norm and layer-norm kernels: validation and the calls to the launchers of norm_kernels.cu, on
// the tensors' device and the default stream.
#include "src/backend/cuda/device.h"
#include "src/backend/cuda/norm_launch.h"
#include "src/backend/cuda/register.h"
#include "src/ops/kernels.h"

namespace lockstep::cuda {
namespace {

// x as [N, C, L]: checks that it is a contiguous 3-d tensor and that every other defined tensor is on its
// device, contiguous and of its dtype (statistics may also be f64, for SyncBatchNorm), `per_channel` ones of
// C elements.
void check_operands(const char* where, const Tensor& x, std::initializer_list<const Tensor*> same_shape,
                    std::initializer_list<const Tensor*> per_channel, bool stats_may_be_f64 = false) {
  LOCKSTEP_CHECK(x.dim() == 3 && x.is_contiguous(), ValueError, where,
                 ": expected a contiguous [N, C, L] input, but got shape ", shape_str(x.shape()));
  for (const Tensor* t : same_shape) {
    LOCKSTEP_CHECK(
        t->device() == x.device() && t->dtype() == x.dtype() && t->shape() == x.shape() && t->is_contiguous(),
        ValueError, where, ": expected contiguous ", dtype_name(x.dtype()), " tensors of shape ",
        shape_str(x.shape()), " on ", x.device().str(), ", but got ", dtype_name(t->dtype()), " ",
        shape_str(t->shape()), " on ", t->device().str());
  }
  for (const Tensor* t : per_channel) {
    if (!t->defined()) continue;
    LOCKSTEP_CHECK(t->device() == x.device() && t->numel() == x.size(1) && t->is_contiguous() &&
                       (t->dtype() == x.dtype() || (stats_may_be_f64 && t->dtype() == DType::f64)),
                   ValueError, where, ": expected contiguous per-channel ", dtype_name(x.dtype()),
                   " tensors of ", x.size(1), " elements on ", x.device().str(), ", but got ",
                   dtype_name(t->dtype()), " ", shape_str(t->shape()), " on ", t->device().str());
  }
}

void batch_norm_stats_kernel(const Tensor& x, const Tensor& mean, const Tensor& var) {
  check_operands("batch_norm_stats (CUDA)", x, {}, {&mean, &var}, true);
  LOCKSTEP_CHECK(mean.dtype() == var.dtype() && (mean.dtype() == x.dtype() || mean.dtype() == DType::f64),
                 TypeError,
                 "batch_norm_stats (CUDA): expected statistics of the input's dtype or f64, but got ",
                 dtype_name(mean.dtype()), " and ", dtype_name(var.dtype()));
  DeviceGuard guard(x.device());
  launch_batch_norm_stats(x.dtype(), mean.dtype(), x.data(), mean.data(), var.data(), x.size(0), x.size(1),
                          x.size(2));
}

void batch_norm_apply_kernel(const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& weight,
                             const Tensor& bias, const Tensor& y) {
  check_operands("batch_norm_apply (CUDA)", x, {&y}, {&mean, &invstd, &weight, &bias});
  DeviceGuard guard(x.device());
  launch_batch_norm_apply(x.dtype(), x.data(), mean.data(), invstd.data(), data_or_null(weight),
                          data_or_null(bias), y.data(), x.size(0), x.size(1), x.size(2));
}

void batch_norm_backward_reduce_kernel(const Tensor& dy, const Tensor& x, const Tensor& mean,
                                       const Tensor& sum_dy, const Tensor& sum_dy_xmu) {
  check_operands("batch_norm_backward_reduce (CUDA)", x, {&dy}, {&mean, &sum_dy, &sum_dy_xmu});
  DeviceGuard guard(x.device());
  launch_batch_norm_backward_reduce(x.dtype(), dy.data(), x.data(), mean.data(), sum_dy.data(),
                                    sum_dy_xmu.data(), x.size(0), x.size(1), x.size(2));
}

void batch_norm_backward_apply_kernel(const Tensor& dy, const Tensor& x, const Tensor& mean,
                                      const Tensor& invstd, const Tensor& weight, const Tensor& sum_dy,
                                      const Tensor& sum_dy_xmu, double count, const Tensor& dx) {
  check_operands("batch_norm_backward_apply (CUDA)", x, {&dy, &dx},
                 {&mean, &invstd, &weight, &sum_dy, &sum_dy_xmu});
  DeviceGuard guard(x.device());
  launch_batch_norm_backward_apply(x.dtype(), dy.data(), x.data(), mean.data(), invstd.data(),
                                   data_or_null(weight), sum_dy.data(), sum_dy_xmu.data(), count, dx.data(),
                                   x.size(0), x.size(1), x.size(2));
}

// x, y, dy, dx [rows, cols], mean and rstd [rows], weight, bias and their gradients [cols]: contiguous, on
// x's device, of its dtype; the optional ones may be undefined.
void check_layer_norm_operands(const char* where, const Tensor& x,
                               std::initializer_list<const Tensor*> same_shape,
                               std::initializer_list<const Tensor*> per_row,
                               std::initializer_list<const Tensor*> per_column) {
  LOCKSTEP_CHECK(x.dim() == 2 && x.is_contiguous(), ValueError, where,
                 ": expected a contiguous [rows, cols] input, but got shape ", shape_str(x.shape()));
  const auto check = [&](std::initializer_list<const Tensor*> tensors, const Shape& shape) {
    for (const Tensor* t : tensors) {
      if (!t->defined()) continue;
      LOCKSTEP_CHECK(
          t->device() == x.device() && t->dtype() == x.dtype() && t->shape() == shape && t->is_contiguous(),
          ValueError, where, ": expected contiguous ", dtype_name(x.dtype()), " tensors of shape ",
          shape_str(shape), " on ", x.device().str(), ", but got ", dtype_name(t->dtype()), " ",
          shape_str(t->shape()), " on ", t->device().str());
    }
  };
  check(same_shape, x.shape());
  check(per_row, Shape{x.size(0)});
  check(per_column, Shape{x.size(1)});
}

void layer_norm_kernel(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps, const Tensor& y,
                       const Tensor& mean, const Tensor& rstd) {
  check_layer_norm_operands("layer_norm (CUDA)", x, {&y}, {&mean, &rstd}, {&weight, &bias});
  DeviceGuard guard(x.device());
  launch_layer_norm(x.dtype(), x.data(), data_or_null(weight), data_or_null(bias), eps, y.data(), mean.data(),
                    rstd.data(), x.size(0), x.size(1));
}

void layer_norm_backward_kernel(const Tensor& dy, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                                const Tensor& weight, const Tensor& dx, const Tensor& dweight,
                                const Tensor& dbias) {
  check_layer_norm_operands("layer_norm_backward (CUDA)", x, {&dy, &dx}, {&mean, &rstd},
                            {&weight, &dweight, &dbias});
  DeviceGuard guard(x.device());
  launch_layer_norm_backward(x.dtype(), dy.data(), x.data(), mean.data(), rstd.data(), data_or_null(weight),
                             data_or_null(dx), data_or_null(dweight), data_or_null(dbias), x.size(0),
                             x.size(1));
}

}  // namespace

void register_norm_kernels() {
  kernels::batch_norm_stats.set(DeviceType::CUDA, batch_norm_stats_kernel);
  kernels::batch_norm_apply.set(DeviceType::CUDA, batch_norm_apply_kernel);
  kernels::batch_norm_backward_reduce.set(DeviceType::CUDA, batch_norm_backward_reduce_kernel);
  kernels::batch_norm_backward_apply.set(DeviceType::CUDA, batch_norm_backward_apply_kernel);
  kernels::layer_norm.set(DeviceType::CUDA, layer_norm_kernel);
  kernels::layer_norm_backward.set(DeviceType::CUDA, layer_norm_backward_kernel);
}

}  // namespace lockstep::cuda
