// cuda_available() and friends: forward to the CUDA backend's device queries when it is compiled in.
#include "src/core/cuda_available.h"

#ifdef LOCKSTEP_WITH_CUDA
#include "src/backend/cuda/device.h"
#endif

namespace lockstep {

bool cuda_available() { return cuda_devices() > 0; }

int cuda_devices() {
#ifdef LOCKSTEP_WITH_CUDA
  return cuda::cuda_device_count();
#else
  return 0;
#endif
}

std::string cuda_unavailable_why() {
#ifdef LOCKSTEP_WITH_CUDA
  return cuda::cuda_unavailable_reason();
#else
  return "this binary was built without CUDA (configure with nvcc and cuDNN present)";
#endif
}

void cuda_synchronize() {
#ifdef LOCKSTEP_WITH_CUDA
  if (cuda_available()) cuda::synchronize();
#endif
}

}  // namespace lockstep
