// CUDA device queries (safe on machines without a GPU), the scoped current-device guard used by kernels and
// the wrappers' optional-tensor argument.
#pragma once

#include <string>

#include "src/core/device.h"
#include "src/tensor/tensor.h"

namespace lockstep::cuda {

// Number of devices the CUDA runtime sees; 0 when there is none or no usable driver. Never throws.
// The runtime is probed once per process, on the first call of any function here.
int cuda_device_count();
bool cuda_is_available();
// Why no device is usable (the runtime's error string), or "" when one is.
std::string cuda_unavailable_reason();

// Waits until every kernel and copy queued on the current device has finished (benchmarks time the GPU with
// it). DeviceError when one of them failed.
void synchronize();

// Throws DeviceError "<where>: ... no CUDA device is available: <reason>" when there is no device, or
// naming the device when its index is out of range. The first call initialises CUDA.
void require_device(const char* where, Device device);

// An optional tensor as a kernel argument: its data, or null when it is undefined.
inline void* data_or_null(const Tensor& t) { return t.defined() ? t.data() : nullptr; }

// Makes `device` current on this thread for the guard's scope and restores the previous one after.
// Owns nothing; one guard belongs to one thread.
class DeviceGuard {
 public:
  explicit DeviceGuard(Device device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool switched_ = false;
};

}  // namespace lockstep::cuda
