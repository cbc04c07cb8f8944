// Normalisation layers: BatchNorm1d ([N, C] or [N, C, L]), BatchNorm2d ([N, C, H, W]) with running
// statistics, LayerNorm over the trailing dimensions, and InstanceNorm2d ([N, C, H, W], per sample and
// channel).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "src/nn/init.h"
#include "src/nn/module.h"
#include "src/ops/norm.h"

namespace lockstep::nn {

struct BatchNormOptions {
  double eps = 1e-5;
  double momentum = 0.1;
  Affine affine = Affine::kYes;
};

// The shared body of BatchNorm1d/2d. Owns parameters weight [C] (ones) and bias [C] (zeros), undefined with
// Affine::kNo, and buffers running_mean [C] (zeros), running_var [C] (ones), num_batches_tracked (i64 0-dim).
// In training it runs batch_norm_train (statistics from this batch, or from the source set with set_sync),
// which updates the running statistics with `momentum` (unbiased variance), and increments
// num_batches_tracked; in evaluation it uses the running statistics.
// Not thread-safe.
class BatchNorm : public Module {
 public:
  Tensor forward(const Tensor& input) override;
  // relu(forward(input) + residual), each step as `epilogue` asks; fused into batch norm's element-wise pass
  // in training on the CPU (src/ops/norm.h).
  Tensor forward(const Tensor& input, const BatchNormEpilogue& epilogue);

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  const Tensor& running_mean() const { return running_mean_; }
  const Tensor& running_var() const { return running_var_; }
  const Tensor& num_batches_tracked() const { return num_batches_tracked_; }
  std::int64_t num_features() const { return features_; }
  const BatchNormOptions& options() const { return options_; }
  // Training-mode statistics from `sync` (distributed::SyncBatchNorm: every rank's batch) instead of this
  // batch; null restores this batch's.
  void set_sync(std::shared_ptr<BatchNormStatisticsSource> sync) { sync_ = std::move(sync); }
  const std::shared_ptr<BatchNormStatisticsSource>& sync() const { return sync_; }

 protected:
  // Accepts inputs whose rank is min_rank or max_rank.
  BatchNorm(std::string type_name, std::int64_t features, BatchNormOptions options, std::int64_t min_rank,
            std::int64_t max_rank);
  std::string describe() const override;

 private:
  std::int64_t features_;
  BatchNormOptions options_;
  std::int64_t min_rank_;
  std::int64_t max_rank_;
  Tensor weight_;
  Tensor bias_;
  Tensor running_mean_;
  Tensor running_var_;
  Tensor num_batches_tracked_;
  std::shared_ptr<BatchNormStatisticsSource> sync_;
};

// Batch norm over [N, C] or [N, C, L] (statistics per C over N and L).
class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(std::int64_t features, BatchNormOptions options = {});
};

// Batch norm over [N, C, H, W] (statistics per C over N, H and W).
class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(std::int64_t features, BatchNormOptions options = {});
};

// Normalises over the trailing dimensions equal to normalized_shape (biased variance), then scales and
// shifts. Owns weight (ones) and bias (zeros) of normalized_shape. Not thread-safe.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5);

  Tensor forward(const Tensor& input) override;

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  const Shape& normalized_shape() const { return normalized_shape_; }

 protected:
  std::string describe() const override;

 private:
  Shape normalized_shape_;
  double eps_;
  Tensor weight_;
  Tensor bias_;
};

// Instance norm over [N, C, H, W]: each (sample, channel) normalised over H, W with the biased variance, in
// training and evaluation alike (no running statistics, like PyTorch's default track_running_stats=False).
// Affine::kNo by default, as in PyTorch and in CycleGAN's reference code; with Affine::kYes it owns weight
// [C] (ones) and bias [C] (zeros), PyTorch's state-dict names. Not thread-safe.
class InstanceNorm2d : public Module {
 public:
  explicit InstanceNorm2d(std::int64_t features, Affine affine = Affine::kNo, double eps = 1e-5);

  Tensor forward(const Tensor& input) override;

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  std::int64_t num_features() const { return features_; }

 protected:
  std::string describe() const override;

 private:
  std::int64_t features_;
  double eps_;
  Tensor weight_;
  Tensor bias_;
};

}  // namespace lockstep::nn
