#include "src/backend/cuda/upload.h"

#include <cuda_runtime_api.h>

#include <cstring>

#include "src/backend/cuda/check.h"
#include "src/backend/cuda/device.h"
#include "src/core/error.h"
#include "src/tensor/factories.h"

namespace lockstep::cuda {
namespace {

constexpr std::size_t kAlign = 256;  // each tensor's part of a staging buffer

std::size_t aligned(std::size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }

std::size_t checked_slots(Device device, int slots) {
  LOCKSTEP_CHECK(device.is_cuda() && slots > 0, ValueError,
                 "Uploader: expected a CUDA device and at least one slot, but got ", device.str(), " and ",
                 slots);
  return static_cast<std::size_t>(slots);
}

}  // namespace

Uploader::Uploader(Device device, int slots) : device_(device), slots_(checked_slots(device, slots)) {
  require_device("Uploader", device);
  try {
    DeviceGuard guard(device_);
    LOCKSTEP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    LOCKSTEP_CUDA_CHECK(cudaEventCreateWithFlags(&queued_, cudaEventDisableTiming));
    // The host sleeps in cudaEventSynchronize on these instead of spinning a core the loader needs.
    for (Slot& slot : slots_)
      LOCKSTEP_CUDA_CHECK(
          cudaEventCreateWithFlags(&slot.copied, cudaEventDisableTiming | cudaEventBlockingSync));
  } catch (...) {
    release();
    throw;
  }
}

Uploader::~Uploader() { release(); }

void Uploader::release() noexcept {
  // Never throws: the copies are waited for, failures ignored (the run's next CUDA call reports them).
  try {
    DeviceGuard guard(device_);
    if (stream_ != nullptr) cudaStreamSynchronize(stream_);
    for (Slot& slot : slots_) {
      if (slot.pinned != nullptr) cudaFreeHost(slot.pinned);
      if (slot.copied != nullptr) cudaEventDestroy(slot.copied);
    }
    if (queued_ != nullptr) cudaEventDestroy(queued_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  } catch (...) {
  }
  for (Slot& slot : slots_) slot = Slot{};
  queued_ = nullptr;
  stream_ = nullptr;
}

Uploader::Set Uploader::start(const std::vector<Tensor>& host) {
  DeviceGuard guard(device_);
  Set set;
  std::size_t need = 0;
  std::vector<Tensor> sources;
  for (const Tensor& t : host) {
    LOCKSTEP_CHECK(!t.defined() || t.device().is_cpu(), ValueError,
                   "Uploader::start: expected CPU tensors, but got one on ", t.device().str());
    sources.push_back(t.defined() ? t.contiguous() : Tensor());
    // Every output is allocated before a copy is queued: an allocation that fails leaves none in flight.
    set.device.push_back(t.defined() ? empty(t.shape(), t.dtype(), device_) : Tensor());
    if (t.defined()) need += aligned(static_cast<std::size_t>(t.numel()) * element_size(t.dtype()));
  }
  set.slot = next_;
  next_ = (next_ + 1) % static_cast<int>(slots_.size());
  Slot& slot = slots_[static_cast<std::size_t>(set.slot)];
  // The buffer's last copy (`slots` sets ago) must have left it before it is written again.
  if (slot.used) LOCKSTEP_CUDA_CHECK(cudaEventSynchronize(slot.copied));
  if (need > slot.bytes) {
    if (slot.pinned != nullptr) LOCKSTEP_CUDA_CHECK(cudaFreeHost(slot.pinned));
    slot.pinned = nullptr;
    slot.bytes = 0;
    LOCKSTEP_CUDA_CHECK(cudaHostAlloc(&slot.pinned, need, cudaHostAllocDefault));
    slot.bytes = need;
  }
  LOCKSTEP_CUDA_CHECK(cudaEventRecord(queued_, nullptr));
  LOCKSTEP_CUDA_CHECK(cudaStreamWaitEvent(stream_, queued_, 0));
  try {
    std::size_t offset = 0;
    for (std::size_t i = 0; i < sources.size(); ++i) {
      const Tensor& t = sources[i];
      if (!t.defined()) continue;
      const std::size_t bytes = static_cast<std::size_t>(t.numel()) * element_size(t.dtype());
      auto* staged = static_cast<std::byte*>(slot.pinned) + offset;
      if (bytes > 0) {
        std::memcpy(staged, t.data(), bytes);
        LOCKSTEP_CUDA_CHECK(
            cudaMemcpyAsync(set.device[i].data(), staged, bytes, cudaMemcpyHostToDevice, stream_));
      }
      offset += aligned(bytes);
    }
    LOCKSTEP_CUDA_CHECK(cudaEventRecord(slot.copied, stream_));
    slot.used = true;
  } catch (...) {
    // Copies already queued must end before their memory (freed on the way out) or the buffer is reused.
    cudaStreamSynchronize(stream_);
    throw;
  }
  return set;
}

void Uploader::ready(const Set& set) {
  LOCKSTEP_CHECK(set.slot >= 0 && set.slot < static_cast<int>(slots_.size()), ValueError,
                 "Uploader::ready: expected a set this uploader started, but got slot ", set.slot);
  DeviceGuard guard(device_);
  LOCKSTEP_CUDA_CHECK(cudaStreamWaitEvent(nullptr, slots_[static_cast<std::size_t>(set.slot)].copied, 0));
}

}  // namespace lockstep::cuda
