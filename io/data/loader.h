// The data loader: minibatches of one rank's shard of an ImageDataset, augmented and normalised to f32,
// assembled ahead of time on a background thread into a bounded queue.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "io/data/augment.h"
#include "io/data/dataset.h"
#include "io/data/sampler.h"
#include "src/tensor/tensor.h"

namespace lockstep::io {

// kYes drops the last, smaller batch of an epoch. With world > 1 and Pad::kNo, ranks may then see
// different batch counts: use that only where ranks do not meet in collectives per batch (evaluation).
enum class DropLast : std::uint8_t { kNo, kYes };

struct LoaderOptions {
  std::int64_t batch_size = 1;
  Shuffle shuffle = Shuffle::kYes;
  DropLast drop_last = DropLast::kNo;
  std::uint64_t seed = 0;  // drives both the epoch order and the augmentation
  Augmentation augment = {};
  std::int64_t prefetch = 2;  // batches assembled ahead on the background thread; 0 = assemble in next()
  std::int64_t rank = 0, world = 1;
  Pad pad = Pad::kYes;  // see Pad in sampler.h; evaluation uses Shuffle::kNo with Pad::kNo
  std::int64_t shard_block = 1;  // see Sampler: the batch size in deterministic mode (contiguous rank rows)
  // The data set indices the loader draws from, e.g. one side of a hold-out split (null: all of them).
  // Batches report data set indices.
  std::shared_ptr<const std::vector<std::int64_t>> subset = nullptr;
};

// One minibatch; its tensors are freshly allocated (safe to keep after the next call to next()).
struct Batch {
  Tensor images;                      // f32 [B,C,H',W'], augmented and normalised
  Tensor labels;                      // i64 [B]
  std::vector<std::int64_t> indices;  // the samples' indices in the data set (text: each row's first token)
  Tensor tokens;  // text (io/data/token_streams.h) instead of images: i64 [B, T + 1], inputs and next tokens
};

// What the training loop draws its batches from: the image loader below, or a task's own source (text
// streams). Not thread-safe.
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // Begins `epoch` (>= 0) at batch `first_batch` (0 .. batches_per_epoch()).
  virtual void start_epoch(std::int64_t epoch, std::int64_t first_batch) = 0;
  // The next batch of the epoch, or nullopt when the epoch is over. ValueError before start_epoch.
  virtual std::optional<Batch> next() = 0;
  virtual std::int64_t batches_per_epoch() const = 0;
};

// Owns the sampler, the augmenter and the prefetch thread, and shares the data set. Not thread-safe: one
// thread calls start_epoch/next; the prefetch thread is internal. Errors raised while assembling a batch
// on the thread are rethrown by next() after the batches before it. Destruction stops and joins the
// thread, also in the middle of an epoch.
class DataLoader final : public BatchSource {
 public:
  DataLoader(std::shared_ptr<ImageDataset> dataset, LoaderOptions options);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Begins `epoch` (>= 0) at batch `first_batch` (0 .. batches_per_epoch(); a run resumed mid-epoch skips
  // the batches it had trained on without assembling them), abandoning whatever remains of the current one.
  void start_epoch(std::int64_t epoch, std::int64_t first_batch = 0) override;
  // The next batch of the epoch, or nullopt when the epoch is over. ValueError before start_epoch.
  std::optional<Batch> next() override;
  std::int64_t batches_per_epoch() const override { return batches_; }
  // Samples this rank sees per epoch (after padding, before drop_last).
  std::int64_t samples_per_epoch() const { return sampler_.shard_size(); }
  const ImageDataset& dataset() const { return *dataset_; }
  const LoaderOptions& options() const { return options_; }

 private:
  Batch assemble(std::int64_t batch) const;
  void produce(std::int64_t first_batch);
  void stop_worker();

  std::shared_ptr<ImageDataset> dataset_;
  LoaderOptions options_;
  Sampler sampler_;
  Augmenter augmenter_;
  std::int64_t batches_ = 0;

  // The current epoch: set by start_epoch while no worker runs, then read-only until the next one.
  std::int64_t epoch_ = -1;
  std::vector<std::int64_t> indices_;
  std::int64_t consumed_ = 0;  // batches returned by next()

  // Shared with the prefetch thread, guarded by mutex_.
  std::mutex mutex_;
  std::condition_variable ready_;  // a batch or an error arrived
  std::condition_variable space_;  // the queue has room, or stop_ was set
  std::deque<Batch> queue_;
  std::exception_ptr error_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace lockstep::io
