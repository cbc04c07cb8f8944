// SyncBatchNorm: batch norm whose training statistics cover the union of every rank's batch. Forward
// all-gathers each rank's per-channel mean, variance and count (counts may differ; a rank with an empty
// batch still joins); backward all-reduces the two per-channel gradient sums. Running statistics are
// updated (by batch_norm_train, as for plain batch norm) from the global statistics, so they stay identical
// on every rank.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "distributed/process_group.h"
#include "src/nn/module.h"
#include "src/nn/norm.h"
#include "src/ops/norm.h"

namespace lockstep::distributed {

// The statistics source of a synchronised batch-norm layer (installed with BatchNorm::set_sync): the union of
// every rank's batch for batch_norm_train, which does the rest (normalisation, gradients, running statistics)
// as for plain batch norm. Owns a handle to its group and nothing else, so one instance may serve every layer
// of a model. Each training forward issues one all_gather and each backward that needs the input's gradient
// one all_reduce on the group, so it shares the group's rule: used from one thread, every rank running the
// same layers in the same order. Statistics are accumulated and combined in f64, matching one process on the
// union batch to rounding. The backward cannot be recorded for second derivatives (create_graph).
class SyncBatchNorm final : public BatchNormStatisticsSource {
 public:
  // `group` carries the statistics on its tensors' device (NCCL: the GPU, nothing read back); `host_group`, a
  // CPU group of the same ranks, carries the batch counts for the check when `group`'s tensors are not on the
  // CPU (with a CPU group it may be null).
  explicit SyncBatchNorm(std::shared_ptr<ProcessGroup> group,
                         std::shared_ptr<ProcessGroup> host_group = nullptr);
  // Gathers every rank's [mean, var, count] (an empty batch joins with count 0) and combines them on the
  // group's device; the result lives on x's device.
  BatchNormBatchStatistics statistics(const Tensor& x, const std::string& caller) override;
  // All-reduces [sum_dy, sum_dy_xmu] in f64 on the group's device.
  BatchNormGradientSums gradient_sums(const BatchNormGradientSums& local) override;
  bool spans_processes() const override { return true; }
  const char* name() const override { return "sync"; }

 private:
  std::shared_ptr<ProcessGroup> group_;
  std::shared_ptr<ProcessGroup> host_group_;
};

// Deterministic mode's batch norm (src/core/micro_shards.h): statistics over the union of every rank's batch,
// combined from per-micro-shard statistics (Chan's pairwise formula, f64) in the fixed binary tree over the
// micro-shard index, inside the rank and then across ranks (an all_gather of each rank's subtree, combined in
// rank order: the same tree on every rank); the backward's gradient sums likewise (in dy's dtype), and the
// parameter gradients as tree sums of per-micro-shard gradients. So the normalisation, the running statistics
// and every gradient are bitwise the same on 1, 2 or 4 ranks. Needs a MicroShardScope whose batch is x's
// leading dimension (ValueError otherwise); one all_gather per forward and per backward, on every rank.
class DeterministicBatchNorm final : public BatchNormStatisticsSource {
 public:
  explicit DeterministicBatchNorm(std::shared_ptr<ProcessGroup> group);
  BatchNormBatchStatistics statistics(const Tensor& x, const std::string& caller) override;
  BatchNormGradientSums gradient_sums(const BatchNormGradientSums& local) override;
  BackwardSums backward_sums(const Tensor& dy, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                             bool need_dx, bool need_dw, bool need_db) override;
  bool spans_processes() const override { return true; }
  const char* name() const override { return "deterministic"; }

 private:
  std::shared_ptr<ProcessGroup> group_;
};

enum class BatchNormSync : std::uint8_t { kFast, kDeterministic };

// The model switch: every BatchNorm1d/2d below (and including) `module` normalises with statistics over
// the whole group from now on (SyncBatchNorm, with `host_group` as its, or DeterministicBatchNorm). Returns
// the number of layers converted. Idempotent.
int convert_sync_batchnorm(nn::Module& module, const std::shared_ptr<ProcessGroup>& group,
                           BatchNormSync mode = BatchNormSync::kFast,
                           const std::shared_ptr<ProcessGroup>& host_group = nullptr);

}  // namespace lockstep::distributed
