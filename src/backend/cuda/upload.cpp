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

}  // namespace

Uploader::Uploader(Device device, int slots) : device_(device), slots_(static_cast<std::size_t>(slots)) {
  LOCKSTEP_CHECK(device.is_cuda() && slots > 0, ValueError,
                 "Uploader: expected a CUDA device and at least one slot, but got ", device.str(), " and ",
                 slots);
  require_device("Uploader", device);
  DeviceGuard guard(device_);
  LOCKSTEP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  LOCKSTEP_CUDA_CHECK(cudaEventCreateWithFlags(&queued_, cudaEventDisableTiming));
  for (Slot& slot : slots_)
    LOCKSTEP_CUDA_CHECK(cudaEventCreateWithFlags(&slot.copied, cudaEventDisableTiming));
}

Uploader::~Uploader() {
  // Destructors never throw: the copies are waited for, failures ignored (the next CUDA call reports them).
  DeviceGuard guard(device_);
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  for (Slot& slot : slots_) {
    if (slot.pinned != nullptr) cudaFreeHost(slot.pinned);
    if (slot.copied != nullptr) cudaEventDestroy(slot.copied);
  }
  if (queued_ != nullptr) cudaEventDestroy(queued_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

Uploader::Set Uploader::start(const std::vector<Tensor>& host) {
  DeviceGuard guard(device_);
  Set set;
  set.slot = next_;
  next_ = (next_ + 1) % static_cast<int>(slots_.size());
  Slot& slot = slots_[static_cast<std::size_t>(set.slot)];
  std::size_t need = 0;
  std::vector<Tensor> sources;
  for (const Tensor& t : host) {
    LOCKSTEP_CHECK(!t.defined() || t.device().is_cpu(), ValueError,
                   "Uploader::start: expected CPU tensors, but got one on ", t.device().str());
    sources.push_back(t.defined() ? t.contiguous() : Tensor());
    if (t.defined()) need += aligned(static_cast<std::size_t>(t.numel()) * element_size(t.dtype()));
  }
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
  std::size_t offset = 0;
  for (const Tensor& t : sources) {
    if (!t.defined()) {
      set.device.emplace_back();
      continue;
    }
    const std::size_t bytes = static_cast<std::size_t>(t.numel()) * element_size(t.dtype());
    auto* staged = static_cast<std::byte*>(slot.pinned) + offset;
    if (bytes > 0) std::memcpy(staged, t.data(), bytes);
    Tensor out = empty(t.shape(), t.dtype(), device_);
    if (bytes > 0)
      LOCKSTEP_CUDA_CHECK(cudaMemcpyAsync(out.data(), staged, bytes, cudaMemcpyHostToDevice, stream_));
    set.device.push_back(std::move(out));
    offset += aligned(bytes);
  }
  LOCKSTEP_CUDA_CHECK(cudaEventRecord(slot.copied, stream_));
  slot.used = true;
  return set;
}

void Uploader::ready(const Set& set) {
  LOCKSTEP_CHECK(set.slot >= 0 && set.slot < static_cast<int>(slots_.size()), ValueError,
                 "Uploader::ready: expected a set this uploader started, but got slot ", set.slot);
  DeviceGuard guard(device_);
  LOCKSTEP_CUDA_CHECK(cudaStreamWaitEvent(nullptr, slots_[static_cast<std::size_t>(set.slot)].copied, 0));
}

}  // namespace lockstep::cuda
