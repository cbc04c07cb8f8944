// The caching CPU allocator (64-byte aligned blocks, free lists per size class) and the per-device
// allocator table.
#include "src/tensor/allocator.h"

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "src/core/error.h"
#include "src/ops/kernels.h"

namespace lockstep {
namespace {

constexpr std::size_t kAlignment = 64;

// Owns every cached block; a mutex guards the free lists and statistics.
class CachingCpuAllocator final : public Allocator {
 public:
  ~CachingCpuAllocator() override { empty_cache(); }

  void* allocate(std::size_t bytes, Device) override {
    const std::size_t size = cpu_size_class(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        stats_.cached_bytes -= size;
        account_allocated(size);
        return p;
      }
      ++stats_.system_allocations;
      account_allocated(size);
    }
    void* p = std::aligned_alloc(kAlignment, size);
    if (!p) {
      std::lock_guard<std::mutex> lock(mutex_);
      stats_.allocated_bytes -= size;
      throw Error(str_cat("cpu allocator: out of memory allocating ", bytes, " bytes"));
    }
    return p;
  }

  void deallocate(void* ptr, std::size_t bytes, Device) override {
    if (!ptr) return;
    const std::size_t size = cpu_size_class(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.allocated_bytes -= size;
    stats_.cached_bytes += size;
    free_[size].push_back(ptr);
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, blocks] : free_) {
      for (void* p : blocks) std::free(p);
      stats_.cached_bytes -= size * blocks.size();
      blocks.clear();
    }
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_allocated_bytes = stats_.allocated_bytes;
  }

 private:
  void account_allocated(std::size_t size) {
    stats_.allocated_bytes += size;
    if (stats_.allocated_bytes > stats_.peak_allocated_bytes) stats_.peak_allocated_bytes = stats_.allocated_bytes;
  }

  std::mutex mutex_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;
  AllocatorStats stats_;
};

CachingCpuAllocator& cpu_allocator() {
  // Leaked on purpose: storages may be released during static destruction.
  static auto* allocator = new CachingCpuAllocator();
  return *allocator;
}

Allocator* g_allocators[kNumDeviceTypes] = {};

}  // namespace

std::size_t cpu_size_class(std::size_t bytes) {
  if (bytes <= kAlignment) return kAlignment;
  // A multiple of the alignment, as std::aligned_alloc requires.
  const std::size_t quarter = std::max(std::bit_floor(bytes) / 4, kAlignment);
  return (bytes + quarter - 1) / quarter * quarter;
}

Allocator& allocator_for(DeviceType type) {
  if (type == DeviceType::CPU) return cpu_allocator();
  ensure_backends_registered();  // the CUDA backend installs its allocator there
  Allocator* a = g_allocators[static_cast<int>(type)];
  LOCKSTEP_CHECK(a != nullptr, DeviceError, "allocator: expected a build with the CUDA backend and a GPU, but "
                 "this binary has no allocator for CUDA tensors");
  return *a;
}

void set_allocator(DeviceType type, Allocator* allocator) { g_allocators[static_cast<int>(type)] = allocator; }

AllocatorStats cpu_allocator_stats() { return cpu_allocator().stats(); }
void cpu_allocator_reset_peak() { cpu_allocator().reset_peak(); }
void cpu_empty_cache() { cpu_allocator().empty_cache(); }

}  // namespace lockstep
