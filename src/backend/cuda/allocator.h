// The caching CUDA allocator: cudaMalloc'd blocks are kept in per-device free lists by size class and
// reused, so a training step that allocates the same intermediates every iteration stops calling cudaMalloc.
#pragma once

#include <cstddef>

#include "src/tensor/allocator.h"

namespace lockstep::cuda {

// The process-wide instance (never destroyed: storages may be released during static destruction).
// Constructing it makes no CUDA call; the first allocation initialises CUDA and raises DeviceError
// ("... no CUDA device is available: ...") on a machine without a GPU. Thread-safe.
Allocator& cuda_allocator();

// Statistics of one device (all zero for a device never used).
AllocatorStats cuda_allocator_stats(int device);
void cuda_allocator_reset_peak(int device);
// Returns every cached block of every device to the driver (cudaFree).
void cuda_empty_cache();

// Size class of a request: a multiple of 512 bytes, 4 classes per power of two above 2 KiB. Exposed for tests.
std::size_t cuda_size_class(std::size_t bytes);

}  // namespace lockstep::cuda
