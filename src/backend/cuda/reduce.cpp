// CUDA reductions: validation and the call to the launcher of reduce_kernels.cu, on the tensors' device and
// the default stream.
#include "src/backend/cuda/device.h"
#include "src/backend/cuda/reduce_launch.h"
#include "src/backend/cuda/register.h"
#include "src/ops/kernels.h"

namespace lockstep::cuda {
namespace {

void reduce_kernel(ReduceOp op, const Tensor& x, const Tensor& out, std::int64_t outer, std::int64_t size,
                   std::int64_t inner) {
  LOCKSTEP_CHECK(x.device() == out.device(), DeviceError,
                 "reduce (CUDA): expected input and output on one device, but got ", x.device().str(),
                 " and ", out.device().str());
  LOCKSTEP_CHECK(x.is_contiguous() && x.numel() == outer * size * inner && out.numel() == outer * inner,
                 ValueError, "reduce (CUDA): expected a contiguous input of ", outer, " x ", size, " x ",
                 inner, " elements and an output of ", outer * inner, ", but got shapes ",
                 shape_str(x.shape()), " and ", shape_str(out.shape()));
  const bool arg = op == ReduceOp::kArgmax || op == ReduceOp::kArgmin;
  LOCKSTEP_CHECK(out.dtype() == (arg ? DType::i64 : x.dtype()), TypeError, "reduce (CUDA): expected a ",
                 dtype_name(arg ? DType::i64 : x.dtype()), " output, but got ", dtype_name(out.dtype()));
  if (op != ReduceOp::kSum && op != ReduceOp::kMean) {
    LOCKSTEP_CHECK(size > 0 || outer * inner == 0, ValueError,
                   "reduce: expected a non-empty dimension to take the max/min of, but it has size 0");
  }
  DeviceGuard guard(out.device());
  launch_reduce(op, x.dtype(), x.data(), out.data(), outer, size, inner);
}

}  // namespace

void register_reduce_kernels() { kernels::reduce.set(DeviceType::CUDA, reduce_kernel); }

}  // namespace lockstep::cuda
