// Registration of the CUDA kernels and the CUDA caching allocator (compiled only with LOCKSTEP_WITH_CUDA).
// Registration only stores function pointers: it never calls the CUDA driver, so it is safe without a GPU.
#pragma once

namespace lockstep::cuda {

// Called once by ensure_backends_registered(); each family file registers its own kernels.
void register_kernels();

void register_memory_kernels();
void register_elementwise_kernels();
void register_unary_kernels();
void register_reduce_kernels();
void register_random_kernels();
void register_softmax_kernels();
void register_norm_kernels();
void register_conv_kernels();
void register_pool_kernels();
void register_resample_kernels();
void register_linalg_kernels();
void register_optimizer_kernels();
void register_index_kernels();
void register_recurrent_kernels();

}  // namespace lockstep::cuda
