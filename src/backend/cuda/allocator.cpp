// The caching CUDA allocator. Freed blocks go back to their device's free list without any CUDA call; the
// default stream orders their reuse after the kernels that used them. Out of memory releases the cache
// of that device and retries once.
#include "src/backend/cuda/allocator.h"

#include <cuda_runtime_api.h>

#include <bit>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "src/backend/cuda/check.h"
#include "src/backend/cuda/device.h"
#include "src/core/error.h"

namespace lockstep::cuda {
namespace {

constexpr std::size_t kGranule = 512;

// Owns every cached block of every device; one mutex guards the free lists and statistics.
class CachingCudaAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes, Device device) override {
    require_device("cuda allocator", device);
    if (bytes == 0) return nullptr;
    const std::size_t size = cuda_size_class(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      DeviceCache& cache = caches_[device.index];
      auto it = cache.free.find(size);
      if (it != cache.free.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cache.stats.cached_bytes -= size;
        account_allocated(cache.stats, size);
        return p;
      }
    }
    DeviceGuard guard(device);
    void* p = nullptr;
    cudaError_t status = cudaMalloc(&p, size);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      release_cached(device.index);
      status = cudaMalloc(&p, size);
    }
    if (status != cudaSuccess) {
      cudaGetLastError();
      throw DeviceError(str_cat("cuda allocator: expected ", bytes, " bytes of free memory on ", device.str(),
                            ", but cudaMalloc(", size, ") failed: ", cudaGetErrorString(status), " (",
                            cuda_allocator_stats(device.index).allocated_bytes, " bytes held by tensors)"));
    }
    std::lock_guard<std::mutex> lock(mutex_);
    DeviceCache& cache = caches_[device.index];
    ++cache.stats.system_allocations;
    account_allocated(cache.stats, size);
    return p;
  }

  void deallocate(void* ptr, std::size_t bytes, Device device) override {
    if (!ptr) return;
    const std::size_t size = cuda_size_class(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    DeviceCache& cache = caches_[device.index];
    cache.stats.allocated_bytes -= size;
    cache.stats.cached_bytes += size;
    cache.free[size].push_back(ptr);
  }

  // cudaFree's every cached block of `index`; the blocks leave the lists before the (synchronising) frees.
  void release_cached(int index) {
    std::unordered_map<std::size_t, std::vector<void*>> blocks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      DeviceCache& cache = caches_[index];
      blocks.swap(cache.free);
      for (const auto& [size, list] : blocks) cache.stats.cached_bytes -= size * list.size();
    }
    DeviceGuard guard(Device{DeviceType::CUDA, index});
    for (const auto& [size, list] : blocks) {
      for (void* p : list) LOCKSTEP_CUDA_CHECK(cudaFree(p));
    }
  }

  void empty_cache() {
    std::vector<int> devices;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const auto& [index, cache] : caches_) devices.push_back(index);
    }
    for (int index : devices) release_cached(index);
  }

  AllocatorStats stats(int index) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = caches_.find(index);
    return it == caches_.end() ? AllocatorStats{} : it->second.stats;
  }

  void reset_peak(int index) {
    std::lock_guard<std::mutex> lock(mutex_);
    AllocatorStats& s = caches_[index].stats;
    s.peak_allocated_bytes = s.allocated_bytes;
  }

 private:
  struct DeviceCache {
    std::unordered_map<std::size_t, std::vector<void*>> free;
    AllocatorStats stats;
  };

  static void account_allocated(AllocatorStats& s, std::size_t size) {
    s.allocated_bytes += size;
    if (s.allocated_bytes > s.peak_allocated_bytes) s.peak_allocated_bytes = s.allocated_bytes;
  }

  std::mutex mutex_;
  std::unordered_map<int, DeviceCache> caches_;
};

CachingCudaAllocator& instance() {
  static auto* allocator = new CachingCudaAllocator();
  return *allocator;
}

}  // namespace

Allocator& cuda_allocator() { return instance(); }
AllocatorStats cuda_allocator_stats(int device) { return instance().stats(device); }
void cuda_allocator_reset_peak(int device) { instance().reset_peak(device); }
void cuda_empty_cache() { instance().empty_cache(); }

std::size_t cuda_size_class(std::size_t bytes) {
  if (bytes <= kGranule) return kGranule;
  const std::size_t quarter = std::bit_floor(bytes) / 4;
  const std::size_t step = quarter < kGranule ? kGranule : quarter;
  return (bytes + step - 1) / step * step;
}

}  // namespace lockstep::cuda
