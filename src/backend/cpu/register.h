// Registration of the CPU kernels into the kernel slots of src/ops/kernels.h.
#pragma once

namespace lockstep::cpu {

// Called once by ensure_backends_registered(); each family file registers its own kernels.
void register_kernels();

void register_elementwise_kernels();
void register_unary_kernels();
void register_random_kernels();
void register_reduce_kernels();
void register_linalg_kernels();
void register_index_kernels();
void register_conv_kernels();
void register_pool_kernels();
void register_pad_kernels();
void register_upsample_kernels();
void register_softmax_kernels();
void register_norm_kernels();
void register_recurrent_kernels();
void register_optimizer_kernels();

}  // namespace lockstep::cpu
