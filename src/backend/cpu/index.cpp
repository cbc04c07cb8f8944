// CPU index kernels.
#include "src/backend/cpu/register.h"
#include "src/ops/kernels.h"

namespace lockstep::cpu {

void register_index_kernels() {}

}  // namespace lockstep::cpu
