#include "io/data/device_batches.h"

#include <utility>
#include <vector>

#include "src/core/error.h"

#ifdef LOCKSTEP_WITH_CUDA
#include "src/backend/cuda/upload.h"
#endif

namespace lockstep::io {

#ifdef LOCKSTEP_WITH_CUDA
namespace {

class GpuBatches final : public BatchSource {
 public:
  GpuBatches(std::unique_ptr<BatchSource> source, Device device)
      : source_(std::move(source)), uploader_(device) {}
  // A batch still being copied is ordered before the default stream's later work, so that its device
  // memory, once dropped, is reused only after the copy.
  ~GpuBatches() override {
    try {
      drop_ahead();
    } catch (const Error&) {  // the device failed: the next CUDA call of the run reports it
    }
  }

  void start_epoch(std::int64_t epoch, std::int64_t first_batch) override {
    drop_ahead();
    source_->start_epoch(epoch, first_batch);
    ahead_ = upload(source_->next());
  }

  std::optional<Batch> next() override {
    std::optional<Pending> current = std::move(ahead_);
    ahead_.reset();
    if (!current) return std::nullopt;
    uploader_.ready(current->set);     // first: if what follows throws, its memory is safe to reuse
    ahead_ = upload(source_->next());  // copied while this batch's step computes
    return std::move(current->batch);
  }

  std::int64_t batches_per_epoch() const override { return source_->batches_per_epoch(); }

 private:
  struct Pending {
    Batch batch;  // its tensors on the device
    cuda::Uploader::Set set;
  };

  std::optional<Pending> upload(std::optional<Batch> host) {
    if (!host) return std::nullopt;
    Pending p;
    p.set = uploader_.start({host->images, host->labels, host->tokens});
    p.batch.images = p.set.device[0];
    p.batch.labels = p.set.device[1];
    p.batch.tokens = p.set.device[2];
    p.batch.indices = std::move(host->indices);
    return p;
  }

  void drop_ahead() {
    if (ahead_) uploader_.ready(ahead_->set);
    ahead_.reset();
  }

  std::unique_ptr<BatchSource> source_;
  cuda::Uploader uploader_;
  std::optional<Pending> ahead_;
};

}  // namespace
#endif

std::unique_ptr<BatchSource> on_device(std::unique_ptr<BatchSource> source, Device device) {
  LOCKSTEP_CHECK(source != nullptr, ValueError, "on_device: expected a batch source, but got a null pointer");
  if (device.is_cpu()) return source;
#ifdef LOCKSTEP_WITH_CUDA
  return std::make_unique<GpuBatches>(std::move(source), device);
#else
  throw DeviceError(str_cat("on_device: batches for ", device.str(), " need a build with CUDA"));
#endif
}

}  // namespace lockstep::io
