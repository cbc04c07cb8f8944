// Device memory allocators. The CPU allocator caches freed blocks by size class, so a training step that
// allocates the same intermediates every iteration stops calling malloc after the first step.
#pragma once

#include <cstddef>
#include <cstdint>

#include "src/core/device.h"

namespace lockstep {

// Allocates raw device memory. Implementations are thread-safe.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(std::size_t bytes, Device device) = 0;
  virtual void deallocate(void* ptr, std::size_t bytes, Device device) = 0;
};

struct AllocatorStats {
  std::size_t allocated_bytes = 0;      // held by live storages (rounded to size classes)
  std::size_t peak_allocated_bytes = 0;
  std::size_t cached_bytes = 0;         // freed, kept for reuse
  std::uint64_t system_allocations = 0; // calls that reached the system allocator
};

// The allocator for a device type; the CUDA backend installs its own when it is compiled in.
Allocator& allocator_for(DeviceType type);
void set_allocator(DeviceType type, Allocator* allocator);

AllocatorStats cpu_allocator_stats();
void cpu_allocator_reset_peak();
// Returns every cached CPU block to the system.
void cpu_empty_cache();

// Size class used by the CPU cache: 4 classes per power of two, multiples of 64 bytes. Exposed for tests.
std::size_t cpu_size_class(std::size_t bytes);

}  // namespace lockstep
