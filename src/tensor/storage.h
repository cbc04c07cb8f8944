// Storage: the reference-counted, device-tagged buffer that owns a tensor's bytes. Views share one Storage,
// and so share its version counter, which in-place ops bump and autograd checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "src/core/device.h"

namespace lockstep {

// Owns `nbytes` of device memory from the device's allocator, or borrows memory that `owner` keeps alive (a
// shared-memory segment, distributed/shared_memory.h). Not thread-safe for concurrent mutation.
class Storage {
 public:
  Storage(std::size_t nbytes, Device device);
  Storage(void* data, std::size_t nbytes, Device device, std::shared_ptr<const void> owner);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  std::uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  void* data_ = nullptr;
  std::size_t nbytes_;
  Device device_;
  std::uint64_t version_ = 0;
  std::shared_ptr<const void> owner_;  // set when borrowed
};

}  // namespace lockstep
