// The CUDA transfer kernel: contiguous host<->device and device<->device copies through cudaMemcpy. Copies
// to the host are complete when the kernel returns; the others are ordered on the default stream.
#include <cuda_runtime_api.h>

#include "src/backend/cuda/check.h"
#include "src/backend/cuda/device.h"
#include "src/backend/cuda/register.h"
#include "src/ops/kernels.h"

namespace lockstep::cuda {
namespace {

void transfer_kernel(const Tensor& src, const Tensor& dst) {
  const std::size_t bytes = static_cast<std::size_t>(src.numel()) * element_size(src.dtype());
  LOCKSTEP_CHECK(src.is_contiguous() && dst.is_contiguous() && src.dtype() == dst.dtype() &&
                     bytes == static_cast<std::size_t>(dst.numel()) * element_size(dst.dtype()),
                 ValueError, "transfer: expected contiguous tensors of one dtype and size, but got ",
                 dtype_name(src.dtype()), " ", shape_str(src.shape()), " on ", src.device().str(), " and ",
                 dtype_name(dst.dtype()), " ", shape_str(dst.shape()), " on ", dst.device().str());
  if (bytes == 0) return;
  const Device from = src.device(), to = dst.device();
  if (from.is_cpu()) {
    // Returns once the pageable source has been staged, so the caller may free it.
    DeviceGuard guard(to);
    LOCKSTEP_CUDA_CHECK(cudaMemcpy(dst.data(), src.data(), bytes, cudaMemcpyHostToDevice));
  } else if (to.is_cpu()) {
    // The host reads the result next: wait for the copy (and all earlier work on the stream) to finish.
    DeviceGuard guard(from);
    LOCKSTEP_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDeviceToHost, nullptr));
    LOCKSTEP_CUDA_CHECK(cudaStreamSynchronize(nullptr));
  } else if (from == to) {
    DeviceGuard guard(to);
    LOCKSTEP_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDeviceToDevice, nullptr));
  } else {
    // Serialised with the pending and future work of both devices.
    DeviceGuard guard(to);
    LOCKSTEP_CUDA_CHECK(cudaMemcpyPeer(dst.data(), to.index, src.data(), from.index, bytes));
  }
}

}  // namespace

void register_memory_kernels() { kernels::transfer.set(DeviceType::CUDA, transfer_kernel); }

}  // namespace lockstep::cuda
