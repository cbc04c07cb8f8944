// The one-time probe of the CUDA runtime, device checks and the current-device guard.
#include "src/backend/cuda/device.h"

#include <cuda_runtime_api.h>

#include "src/backend/cuda/check.h"
#include "src/core/error.h"

namespace lockstep::cuda {
namespace {

struct Probe {
  int count = 0;
  std::string reason;
};

const Probe& probe() {
  static const Probe result = [] {
    Probe p;
    const cudaError_t status = cudaGetDeviceCount(&p.count);
    if (status != cudaSuccess) {
      cudaGetLastError();
      p.count = 0;
      p.reason = str_cat("cudaGetDeviceCount: ", cudaGetErrorString(status));
    } else if (p.count == 0) {
      p.reason = "cudaGetDeviceCount reported 0 devices";
    }
    return p;
  }();
  return result;
}

}  // namespace

int cuda_device_count() { return probe().count; }
bool cuda_is_available() { return probe().count > 0; }
std::string cuda_unavailable_reason() { return probe().reason; }

void synchronize() { LOCKSTEP_CUDA_CHECK(cudaDeviceSynchronize()); }

void require_device(const char* where, Device device) {
  const Probe& p = probe();
  LOCKSTEP_CHECK(p.count > 0, DeviceError, where, ": expected a CUDA device for a ", device.str(),
                 " tensor, but no CUDA device is available: ", p.reason);
  LOCKSTEP_CHECK(device.is_cuda() && device.index >= 0 && device.index < p.count, DeviceError, where,
                 ": expected a CUDA device index in [0, ", p.count, "), but got ", device.str());
}

DeviceGuard::DeviceGuard(Device device) {
  LOCKSTEP_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device.index) {
    LOCKSTEP_CUDA_CHECK(cudaSetDevice(device.index));
    switched_ = true;
  }
}

DeviceGuard::~DeviceGuard() {
  // A destructor must not throw; restoring the device of a healthy context does not fail.
  if (switched_) cudaSetDevice(previous_);
}

}  // namespace lockstep::cuda
