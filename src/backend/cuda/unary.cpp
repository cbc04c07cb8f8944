// CUDA unary kernels and their fused backward: validation and the calls to the launchers of unary_kernels.cu.
// All run on the tensors' device and the default stream.
#include "src/backend/cuda/check.h"
#include "src/backend/cuda/device.h"
#include "src/backend/cuda/make_layout.h"
#include "src/backend/cuda/register.h"
#include "src/backend/cuda/unary_launch.h"
#include "src/ops/kernels.h"

namespace lockstep::cuda {
namespace {

// Checks that `t` (when defined) matches `like` in device, dtype and, for backward operands, shape and
// contiguity.
void check_operand(const char* where, const char* role, const Tensor& t, const Tensor& like,
                   bool contiguous) {
  if (!t.defined()) return;
  LOCKSTEP_CHECK(t.device() == like.device() && t.dtype() == like.dtype(), ValueError, where, ": expected ",
                 role, " on ", like.device().str(), " as ", dtype_name(like.dtype()), ", but got ",
                 t.device().str(), " ", dtype_name(t.dtype()));
  if (!contiguous) return;
  LOCKSTEP_CHECK(t.shape() == like.shape() && t.is_contiguous(), ValueError, where,
                 ": expected a contiguous ", role, " of shape ", shape_str(like.shape()), ", but got shape ",
                 shape_str(t.shape()), t.is_contiguous() ? "" : " (not contiguous)");
}

void unary_kernel(UnaryOp op, const Tensor& x, const Tensor& out, double a, double b) {
  check_operand("unary (CUDA)", "the input", x, out, false);
  DeviceGuard guard(out.device());
  launch_unary(op, out.dtype(), out.data(), x.data(), make_layout<2>("unary (CUDA)", {&out, &x}), out.numel(),
               a, b);
}

void unary_backward_kernel(UnaryOp op, const Tensor& grad, const Tensor& x, const Tensor& y, const Tensor& dx,
                           double a, double b) {
  LOCKSTEP_CHECK(!unary_backward_reads_x(op) || x.defined(), ValueError,
                 "unary_backward (CUDA): this op's gradient reads its input, but the input was not saved");
  LOCKSTEP_CHECK(!unary_backward_reads_y(op) || y.defined(), ValueError,
                 "unary_backward (CUDA): this op's gradient reads its output, but the output was not saved");
  check_operand("unary_backward (CUDA)", "the gradient", grad, dx, true);
  check_operand("unary_backward (CUDA)", "the saved input", x, dx, true);
  check_operand("unary_backward (CUDA)", "the saved output", y, dx, true);
  LOCKSTEP_CHECK(dx.is_contiguous(), ValueError,
                 "unary_backward (CUDA): expected a contiguous result tensor");
  DeviceGuard guard(dx.device());
  launch_unary_backward(op, dx.dtype(), grad.data(), data_or_null(x), data_or_null(y), dx.data(), dx.numel(),
                        a, b);
}

}  // namespace

void register_unary_kernels() {
  kernels::unary.set(DeviceType::CUDA, unary_kernel);
  kernels::unary_backward.set(DeviceType::CUDA, unary_backward_kernel);
}

}  // namespace lockstep::cuda
