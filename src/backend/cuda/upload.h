// Host-to-device copies that run beside the compute: the training loop's batches reach the GPU one step
// ahead (io/data/device_batches.h) through pinned host memory, on a stream of their own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "src/core/device.h"
#include "src/tensor/tensor.h"

typedef struct CUstream_st* cudaStream_t;  // NOLINT: the CUDA runtime's own declarations
typedef struct CUevent_st* cudaEvent_t;    // NOLINT

namespace lockstep::cuda {

// Copies sets of CPU tensors to one device. Each set goes through one of a few pinned staging buffers (host
// memcpy), then one cudaMemcpyAsync per tensor on the uploader's non-blocking stream, which first waits for
// the compute already queued on the default stream (the caching allocator's new blocks may still be read
// by it). The copies' device tensors may be used only after ready() has ordered the default stream after
// them. Not thread-safe; owns its stream, events and pinned buffers.
class Uploader {
 public:
  // `slots`: sets in flight at once (a set's buffer is reused `slots` sets later, after its copy ended).
  explicit Uploader(Device device, int slots = 2);
  ~Uploader();
  Uploader(const Uploader&) = delete;
  Uploader& operator=(const Uploader&) = delete;

  struct Set {
    std::vector<Tensor> device;  // as the host tensors given (undefined ones stay undefined)
    int slot = -1;
  };
  // Starts copying `host` (CPU tensors, any layout) to the device; returns at once.
  Set start(const std::vector<Tensor>& host);
  // Orders the default stream's next work after `set`'s copies (call before its tensors are used or
  // dropped). Does not wait on the host.
  void ready(const Set& set);

 private:
  void release() noexcept;  // waits for the copies, frees everything; also after a failed construction

  struct Slot {
    void* pinned = nullptr;
    std::size_t bytes = 0;
    cudaEvent_t copied = nullptr;  // recorded on the stream after the slot's copies
    bool used = false;
  };
  Device device_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t queued_ = nullptr;  // the default stream's work before a set's copies
  std::vector<Slot> slots_;
  int next_ = 0;
};

}  // namespace lockstep::cuda
