// Batch assembly (gather, then one fused augmentation pass per sample) and the prefetch thread's
// producer/consumer protocol.
#include "io/data/loader.h"

#include <algorithm>
#include <span>

#include "src/core/error.h"

namespace lockstep::io {
namespace {

std::int64_t checked_size(const std::shared_ptr<ImageDataset>& dataset) {
  LOCKSTEP_CHECK(dataset != nullptr, ValueError, "DataLoader: expected a data set, but got a null pointer");
  return dataset->size();
}

}  // namespace

DataLoader::DataLoader(std::shared_ptr<ImageDataset> dataset, LoaderOptions options)
    : dataset_(std::move(dataset)),
      options_(std::move(options)),
      sampler_(options_.subset ? static_cast<std::int64_t>(options_.subset->size()) : checked_size(dataset_),
               options_.seed, options_.shuffle, options_.rank, options_.world, options_.pad,
               options_.shard_block),
      augmenter_(options_.augment, dataset_->channels(), dataset_->height(), dataset_->width(),
                 dataset_->mean(), dataset_->std(), options_.seed) {
  LOCKSTEP_CHECK(options_.batch_size >= 1, ValueError, "DataLoader: expected batch_size >= 1, but got ",
                 options_.batch_size);
  LOCKSTEP_CHECK(options_.prefetch >= 0, ValueError, "DataLoader: expected prefetch >= 0, but got ",
                 options_.prefetch);
  const std::int64_t samples = sampler_.shard_size();
  batches_ = options_.drop_last == DropLast::kYes ? samples / options_.batch_size
                                                  : (samples + options_.batch_size - 1) / options_.batch_size;
}

DataLoader::~DataLoader() { stop_worker(); }

void DataLoader::stop_worker() {
  if (!worker_.joinable()) return;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  space_.notify_all();
  worker_.join();
}

void DataLoader::start_epoch(std::int64_t epoch, std::int64_t first_batch) {
  LOCKSTEP_CHECK(epoch >= 0, ValueError, "DataLoader::start_epoch: expected an epoch >= 0, but got ", epoch);
  LOCKSTEP_CHECK(first_batch >= 0 && first_batch <= batches_, ValueError,
                 "DataLoader::start_epoch: expected a first batch in [0, ", batches_, "] (the batches per epoch), but got ",
                 first_batch);
  stop_worker();
  indices_ = sampler_.indices(epoch);
  if (options_.subset)
    for (std::int64_t& i : indices_) i = (*options_.subset)[static_cast<std::size_t>(i)];
  epoch_ = epoch;
  consumed_ = first_batch;
  queue_.clear();
  error_ = nullptr;
  stop_ = false;
  if (options_.prefetch > 0 && consumed_ < batches_) worker_ = std::thread(&DataLoader::produce, this, consumed_);
}

Batch DataLoader::assemble(std::int64_t batch) const {
  const std::int64_t first = batch * options_.batch_size;
  const std::int64_t count =
      std::min(options_.batch_size, static_cast<std::int64_t>(indices_.size()) - first);
  Batch out;
  out.indices.assign(indices_.begin() + first, indices_.begin() + first + count);
  std::vector<std::uint8_t> pixels(static_cast<std::size_t>(count * dataset_->image_bytes()));
  out.labels = empty({count}, DType::i64);
  dataset_->gather(out.indices, pixels.data(), out.labels.data<std::int64_t>());
  out.images =
      empty({count, augmenter_.channels(), augmenter_.out_height(), augmenter_.out_width()}, DType::f32);
  float* images = out.images.data<float>();
  const std::int64_t in_size = augmenter_.in_elements(), out_size = augmenter_.out_elements();
  for (std::int64_t k = 0; k < count; ++k) {
    augmenter_.apply(pixels.data() + k * in_size, epoch_, out.indices[static_cast<std::size_t>(k)],
                     images + k * out_size);
  }
  std::int64_t* labels = out.labels.data<std::int64_t>();
  for (std::int64_t k = 0; k < count; ++k)
    labels[k] = augmenter_.label(labels[k], out.indices[static_cast<std::size_t>(k)]);
  return out;
}

void DataLoader::produce(std::int64_t first_batch) {
  try {
    for (std::int64_t batch = first_batch; batch < batches_; ++batch) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        space_.wait(lock,
                    [&] { return stop_ || static_cast<std::int64_t>(queue_.size()) < options_.prefetch; });
        if (stop_) return;
      }
      Batch assembled = assemble(batch);
      {
        const std::lock_guard<std::mutex> lock(mutex_);
        queue_.push_back(std::move(assembled));
      }
      ready_.notify_one();
    }
  } catch (...) {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      error_ = std::current_exception();
    }
    ready_.notify_one();
  }
}

std::optional<Batch> DataLoader::next() {
  LOCKSTEP_CHECK(epoch_ >= 0, ValueError,
                 "DataLoader::next: expected start_epoch(epoch) before next(), but no epoch "
                 "was started");
  if (consumed_ == batches_) return std::nullopt;
  if (options_.prefetch == 0) {
    Batch batch = assemble(consumed_);
    ++consumed_;
    return batch;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  ready_.wait(lock, [&] { return !queue_.empty() || error_ != nullptr; });
  if (queue_.empty()) std::rethrow_exception(error_);
  Batch batch = std::move(queue_.front());
  queue_.pop_front();
  lock.unlock();
  space_.notify_one();
  ++consumed_;
  return batch;
}

}  // namespace lockstep::io
