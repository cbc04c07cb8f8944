// Storage allocation and release through the device allocator.
#include "src/tensor/storage.h"

#include "src/tensor/allocator.h"

namespace lockstep {

Storage::Storage(std::size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  data_ = allocator_for(device.type).allocate(nbytes, device);
}

Storage::Storage(void* data, std::size_t nbytes, Device device, std::shared_ptr<const void> owner)
    : data_(data), nbytes_(nbytes), device_(device), owner_(std::move(owner)) {}

Storage::~Storage() {
  if (!owner_) allocator_for(device_.type).deallocate(data_, nbytes_, device_);
}

}  // namespace lockstep
