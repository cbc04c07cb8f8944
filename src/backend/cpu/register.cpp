// The CPU backend's registration entry point.
#include "src/backend/cpu/register.h"

namespace lockstep::cpu {

void register_kernels() {
  register_elementwise_kernels();
  register_unary_kernels();
  register_random_kernels();
  register_reduce_kernels();
  register_linalg_kernels();
  register_index_kernels();
  register_conv_kernels();
  register_pool_kernels();
  register_pad_kernels();
  register_upsample_kernels();
  register_softmax_kernels();
  register_norm_kernels();
  register_recurrent_kernels();
  register_optimizer_kernels();
}

}  // namespace lockstep::cpu
