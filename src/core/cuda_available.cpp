// cuda_available(): forwards to the CUDA backend's device query when it is compiled in.
#include "src/core/cuda_available.h"

#ifdef LOCKSTEP_WITH_CUDA
#include "src/backend/cuda/device.h"
#endif

namespace lockstep {

bool cuda_available() {
#ifdef LOCKSTEP_WITH_CUDA
  return cuda::cuda_is_available();
#else
  return false;
#endif
}

}  // namespace lockstep
