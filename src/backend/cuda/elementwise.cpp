// CUDA copy, fill, binary and where kernels: validation, merging of dimensions into a Layout and the
// calls to the launchers of elementwise_kernels.cu. All run on the tensors' device and the default stream.
#include <cuda_runtime_api.h>

#include "src/backend/cuda/check.h"
#include "src/backend/cuda/device.h"
#include "src/backend/cuda/elementwise_launch.h"
#include "src/backend/cuda/make_layout.h"
#include "src/backend/cuda/register.h"
#include "src/ops/kernels.h"

namespace lockstep::cuda {
namespace {

void check_same_device(const char* where, const Tensor& a, const Tensor& b) {
  LOCKSTEP_CHECK(a.device() == b.device(), DeviceError, where, ": expected tensors on one device, but got ",
                 a.device().str(), " ", shape_str(a.shape()), " and ", b.device().str(), " ", shape_str(b.shape()));
}

void copy_kernel(const Tensor& src, const Tensor& dst) {
  check_same_device("copy (CUDA)", src, dst);
  DeviceGuard guard(dst.device());
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    const std::size_t bytes = static_cast<std::size_t>(dst.numel()) * element_size(dst.dtype());
    if (bytes > 0) {
      LOCKSTEP_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDeviceToDevice, nullptr));
    }
    return;
  }
  launch_copy(dst.dtype(), dst.data(), src.dtype(), src.data(), make_layout<2>("copy (CUDA)", {&dst, &src}),
              dst.numel());
}

void fill_kernel(const Tensor& dst, double value) {
  DeviceGuard guard(dst.device());
  launch_fill(dst.dtype(), dst.data(), make_layout<1>("fill (CUDA)", {&dst}), dst.numel(), value);
}

void binary_kernel(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out, double alpha) {
  check_same_device("binary (CUDA)", a, out);
  check_same_device("binary (CUDA)", b, out);
  const DType want = binary_is_comparison(op) ? DType::u8 : a.dtype();
  LOCKSTEP_CHECK(a.dtype() == b.dtype() && out.dtype() == want, TypeError,
                 "binary (CUDA): expected operands of one dtype and a ", dtype_name(want),
                 " output, but got ", dtype_name(a.dtype()), ", ", dtype_name(b.dtype()), " -> ",
                 dtype_name(out.dtype()));
  DeviceGuard guard(out.device());
  launch_binary(op, a.dtype(), out.data(), a.data(), b.data(),
                make_layout<3>("binary (CUDA)", {&out, &a, &b}), out.numel(), alpha);
}

void where_kernel(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  check_same_device("where (CUDA)", cond, out);
  check_same_device("where (CUDA)", a, out);
  check_same_device("where (CUDA)", b, out);
  LOCKSTEP_CHECK(cond.dtype() == DType::u8 && a.dtype() == out.dtype() && b.dtype() == out.dtype(), TypeError,
                 "where (CUDA): expected a u8 condition and branches of the output's dtype, but got ",
                 dtype_name(cond.dtype()), ", ", dtype_name(a.dtype()), ", ", dtype_name(b.dtype()), " -> ",
                 dtype_name(out.dtype()));
  DeviceGuard guard(out.device());
  launch_where(out.dtype(), out.data(), cond.data(), a.data(), b.data(),
               make_layout<4>("where (CUDA)", {&out, &cond, &a, &b}), out.numel());
}

}  // namespace

void register_elementwise_kernels() {
  kernels::copy.set(DeviceType::CUDA, copy_kernel);
  kernels::fill.set(DeviceType::CUDA, fill_kernel);
  kernels::binary.set(DeviceType::CUDA, binary_kernel);
  kernels::where.set(DeviceType::CUDA, where_kernel);
}

}  // namespace lockstep::cuda
