// The CUDA backend's registration entry point: stores kernel pointers and the caching allocator, and makes
// no CUDA call, so it runs harmlessly in every process, with or without a GPU.
#include "src/backend/cuda/register.h"

#include "src/backend/cuda/allocator.h"

namespace lockstep::cuda {

void register_kernels() {
  set_allocator(DeviceType::CUDA, &cuda_allocator());
  register_memory_kernels();
  register_elementwise_kernels();
  register_unary_kernels();
  register_reduce_kernels();
  register_random_kernels();
  register_softmax_kernels();
  register_norm_kernels();
  register_conv_kernels();
  register_pool_kernels();
  register_resample_kernels();
  register_linalg_kernels();
  register_optimizer_kernels();
  register_index_kernels();
  register_recurrent_kernels();
}

}  // namespace lockstep::cuda
