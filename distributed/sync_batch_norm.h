// SyncBatchNorm: batch norm whose training statistics cover the union of every rank's batch. Forward
// all-gathers each rank's per-channel mean, variance and count (counts may differ; a rank with an empty
// batch still joins); backward all-reduces the two per-channel gradient sums. Running statistics are
// updated from the global statistics, so they stay identical on every rank.
#pragma once

#include <memory>

#include "distributed/process_group.h"
#include "src/nn/module.h"
#include "src/nn/norm.h"

namespace lockstep::distributed {

// The synchronised training path of an nn::BatchNorm layer (installed with BatchNorm::set_sync). Owns a
// handle to its group and nothing else, so one instance may serve every layer of a model. Each training
// forward issues one all_gather and each backward one all_reduce on the group, so it shares the group's
// rule: used from one thread, every rank running the same layers in the same order. Statistics are
// accumulated and combined in f64, matching one process on the union batch to rounding. Backward is not
// differentiable again (no create_graph through it).
class SyncBatchNorm final : public nn::BatchNormSync {
 public:
  explicit SyncBatchNorm(std::shared_ptr<ProcessGroup> group);
  Tensor forward_train(const Tensor& input, nn::BatchNorm& layer) override;
  const char* name() const override { return "sync"; }

 private:
  std::shared_ptr<ProcessGroup> group_;
};

// The model switch: every BatchNorm1d/2d below (and including) `module` normalises with statistics over
// the whole group from now on. Returns the number of layers converted. Idempotent.
int convert_sync_batchnorm(nn::Module& module, const std::shared_ptr<ProcessGroup>& group);

}  // namespace lockstep::distributed
