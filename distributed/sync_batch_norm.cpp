// SyncBatchNorm: the statistics source of batch_norm_train over the union of every rank's batch (one
// all_gather of per-rank statistics in forward, one all_reduce of the gradient sums in backward), and
// convert_sync_batchnorm, which installs it on a model's BatchNorm layers.
#include "distributed/sync_batch_norm.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "src/core/error.h"
#include "src/ops/elementwise.h"
#include "src/ops/micro_shards.h"
#include "src/ops/norm.h"
#include "src/ops/reduce.h"
#include "src/ops/shape.h"
#include "src/tensor/factories.h"

namespace lockstep::distributed {
namespace {

// Per-rank counts "[1, 0, 3]" for messages.
std::string counts_str(const std::vector<double>& counts) {
  std::string text = "[";
  for (std::size_t r = 0; r < counts.size(); ++r)
    text += str_cat(r > 0 ? ", " : "", static_cast<std::int64_t>(counts[r]));
  return text + "]";
}

}  // namespace

SyncBatchNorm::SyncBatchNorm(std::shared_ptr<ProcessGroup> group, std::shared_ptr<ProcessGroup> host_group)
    : group_(std::move(group)), host_group_(std::move(host_group)) {
  LOCKSTEP_CHECK(group_ != nullptr, ValueError, "SyncBatchNorm: expected a process group, but got null");
  if (host_group_ == nullptr && group_->tensor_device().is_cpu()) host_group_ = group_;
  LOCKSTEP_CHECK(
      host_group_ != nullptr && host_group_->tensor_device().is_cpu() &&
          host_group_->size() == group_->size() && host_group_->rank() == group_->rank(),
      ValueError,
      "SyncBatchNorm: expected a group of CPU tensors with the same ranks for the batch counts beside the ",
      group_->backend(), " group on ", group_->tensor_device().str(), ", but got ",
      host_group_ == nullptr ? std::string("none") : str_cat("a ", host_group_->backend(), " group"));
}

// Gathers every rank's [mean(C), var(C), count] in f64 on the group's device and combines them with the
// parallel formula (Chan et al.): n = sum n_r, mean = sum n_r mean_r / n, var = sum n_r (var_r + (mean_r -
// mean)^2) / n. Variance is gathered rather than the inverse standard deviation (as some implementations do)
// so that no rank has to undo 1 / sqrt(var + eps) to combine, which would lose precision when var << eps.
// Every rank joins, even with an empty batch (count 0, zero statistics). Checked before anything is
// normalised: more than one value per channel over all ranks (the counts read from the gathered values on
// the CPU; on a GPU gathered over the host group, since reading the device's would make the step wait).
BatchNormBatchStatistics SyncBatchNorm::statistics(const Tensor& x, const std::string& caller) {
  const std::int64_t c = x.size(1);
  const std::int64_t local_count = x.numel() / c;  // N * L, and 0 for an empty batch
  const std::int64_t stride = 2 * c + 1;
  const Device device = group_->tensor_device();
  Tensor local;
  if (local_count > 0) {
    // In f64 whatever the input's dtype: rounding each rank's mean to f32 before combining would put an
    // error of about 1e-7 * |mean| / std into the combined variance (large for channels whose mean dwarfs
    // their spread), where one process on the union batch keeps it near 1e-7.
    const BatchNormStatistics stats = batch_norm_statistics(x, DType::f64);
    local = cat({stats.mean.to(device), stats.var.to(device),
                 full({1}, static_cast<double>(local_count), DType::f64, device)},
                0);
  } else {
    local = zeros({stride}, DType::f64, device);
  }
  const int ranks = group_->size();
  const Tensor all = empty({ranks * stride}, DType::f64, device);
  group_->all_gather(local, all)->wait();
  const Tensor table = all.view({ranks, stride});
  std::vector<double> counts;
  if (device.is_cpu()) {
    counts = table.slice(1, 2 * c, stride).contiguous().to_vector<double>();
  } else {
    const Tensor gathered = empty({ranks}, DType::f64);
    host_group_->all_gather(full({1}, static_cast<double>(local_count), DType::f64), gathered)->wait();
    counts = gathered.to_vector<double>();
  }
  double count = 0.0;
  for (const double n : counts) count += n;
  LOCKSTEP_CHECK(
      count > 1.0, ValueError,
      "SyncBatchNorm: expected more than 1 value per channel over all ranks when training, but got ", caller,
      " input counts ", counts_str(counts), " per rank (", static_cast<std::int64_t>(count),
      " in all). Use larger batches or eval mode");
  const Tensor n = table.slice(1, 2 * c, stride);  // [ranks, 1]
  const Tensor means = table.slice(1, 0, c), vars = table.slice(1, c, 2 * c);
  const Tensor mean = sum(n * means, {0}) / count;
  const Tensor d = means - mean;
  const Tensor var = sum(n * (vars + d * d), {0}) / count;
  return {mean.to(x.device()), var.to(x.device()), count};
}

BatchNormGradientSums SyncBatchNorm::gradient_sums(const BatchNormGradientSums& local) {
  // One all_reduce of [sum_dy, sum_dy_xmu] in f64 on the group's device, on every rank, empty ones too.
  const std::int64_t channels = local.sum_dy.numel();
  const Tensor both = cat({local.sum_dy.to(DType::f64), local.sum_dy_xmu.to(DType::f64)}, 0)
                          .to(group_->tensor_device())
                          .contiguous();
  group_->all_reduce(both, ReduceOp::kSum)->wait();
  const DType dtype = local.sum_dy.dtype();
  const Device device = local.sum_dy.device();
  return {both.slice(0, 0, channels).to(dtype).to(device).contiguous(),
          both.slice(0, channels, 2 * channels).to(dtype).to(device).contiguous()};
}

namespace {

// Per-channel statistics of some micro-shards: count, mean and sum of squared deviations (M2), f64.
struct Moments {
  double n = 0.0;
  std::vector<double> mean, m2;
};

// Chan et al.'s pairwise combination, in one fixed order of operations.
Moments combine(const Moments& a, const Moments& b) {
  Moments r;
  r.n = a.n + b.n;
  r.mean.resize(a.mean.size());
  r.m2.resize(a.mean.size());
  const double wb = b.n / r.n, wab = a.n * b.n / r.n;
  for (std::size_t c = 0; c < a.mean.size(); ++c) {
    const double d = b.mean[c] - a.mean[c];
    r.mean[c] = a.mean[c] + d * wb;
    r.m2[c] = a.m2[c] + b.m2[c] + d * d * wab;
  }
  return r;
}

std::int64_t require_shards(const Tensor& x, const std::string& caller) {
  const std::int64_t shards = micro_shard_count(x);
  const MicroShards* m = current_micro_shards();
  LOCKSTEP_CHECK(shards > 0, ValueError, caller,
                 " (deterministic batch norm): expected an input whose batch is ",
                 m ? str_cat("this rank's ", m->local_rows, " rows of micro-shards")
                   : std::string("cut into micro-shards"),
                 " (inside a deterministic training step), but got ", shape_str(x.shape()));
  return shards;
}

// Gathers every rank's [count] values of `local` and returns them per rank, in rank order.
std::vector<Tensor> gather_ranks(ProcessGroup& group, const Tensor& local) {
  const Tensor all = empty({group.size() * local.numel()}, local.dtype());
  group.all_gather(local.contiguous(), all)->wait();
  std::vector<Tensor> parts;
  for (int r = 0; r < group.size(); ++r)
    parts.push_back(all.slice(0, r * local.numel(), (r + 1) * local.numel()));
  return parts;
}

}  // namespace

DeterministicBatchNorm::DeterministicBatchNorm(std::shared_ptr<ProcessGroup> group)
    : group_(std::move(group)) {
  LOCKSTEP_CHECK(group_ != nullptr, ValueError,
                 "DeterministicBatchNorm: expected a process group, but got null");
}

BatchNormBatchStatistics DeterministicBatchNorm::statistics(const Tensor& x, const std::string& caller) {
  LOCKSTEP_CHECK(x.device().is_cpu(), DeviceError, "DeterministicBatchNorm: expected a CPU input to ", caller,
                 ", but got one on ", x.device().str());
  const std::int64_t shards = require_shards(x, caller);
  const std::int64_t c = x.size(1);
  std::vector<Moments> parts(static_cast<std::size_t>(shards));
  for_each_micro_shard(shards, [&](std::int64_t k) {
    const Tensor xk = micro_shard(x, k, shards);
    const BatchNormStatistics st = batch_norm_statistics(xk, DType::f64);
    Moments& m = parts[static_cast<std::size_t>(k)];
    m.n = static_cast<double>(xk.numel() / c);
    m.mean = st.mean.to_vector<double>();
    m.m2 = st.var.to_vector<double>();
    for (double& v : m.m2) v *= m.n;
  });
  const Moments mine = tree_reduce(std::move(parts), combine);
  // Across ranks: [n, mean(C), m2(C)] gathered, unpacked, combined in rank order.
  std::vector<double> packed{mine.n};
  packed.insert(packed.end(), mine.mean.begin(), mine.mean.end());
  packed.insert(packed.end(), mine.m2.begin(), mine.m2.end());
  std::vector<Moments> ranks;
  for (const Tensor& t : gather_ranks(*group_, from_vector(packed, {2 * c + 1}, DType::f64))) {
    const std::vector<double> v = t.to_vector<double>();
    ranks.push_back({v[0], std::vector<double>(v.begin() + 1, v.begin() + 1 + c),
                     std::vector<double>(v.begin() + 1 + c, v.end())});
  }
  Moments all = tree_reduce(std::move(ranks), combine);
  LOCKSTEP_CHECK(all.n > 1.0, ValueError, caller,
                 ": expected more than 1 value per channel over all ranks, but got ", all.n);
  for (double& v : all.m2) v /= all.n;
  return {from_vector(all.mean, {c}, DType::f64), from_vector(all.m2, {c}, DType::f64), all.n};
}

BatchNormGradientSums DeterministicBatchNorm::gradient_sums(const BatchNormGradientSums& /*local*/) {
  throw InternalError(
      "DeterministicBatchNorm::gradient_sums: the backward asks backward_sums, which needs dy and x");
}

BatchNormStatisticsSource::BackwardSums DeterministicBatchNorm::backward_sums(
    const Tensor& dy, const Tensor& x, const Tensor& mean, const Tensor& invstd, bool need_dx, bool need_dw,
    bool need_db) {
  const std::int64_t shards = require_shards(x, "batch_norm backward");
  std::vector<BatchNormGradientSums> parts(static_cast<std::size_t>(shards));
  for_each_micro_shard(shards, [&](std::int64_t k) {
    parts[static_cast<std::size_t>(k)] =
        batch_norm_backward_reduce(micro_shard(dy, k, shards), micro_shard(x, k, shards), mean);
  });
  BackwardSums sums;
  std::vector<Tensor> dws, dbs, dys, xmus;
  for (const BatchNormGradientSums& p : parts) {
    if (need_dw) dws.push_back(p.sum_dy_xmu * invstd);  // each micro-shard's own gradient, then the tree
    dbs.push_back(p.sum_dy);
    xmus.push_back(p.sum_dy_xmu);
  }
  if (need_dw) sums.dweight = tree_sum(dws);
  const Tensor sum_dy = tree_sum(std::move(dbs));
  if (need_db) sums.dbias = sum_dy;
  if (need_dx) {
    // [sum_dy, sum_dy_xmu] of this rank's subtree, gathered in dy's dtype and summed in rank order.
    const std::int64_t c = sum_dy.numel();
    const Tensor local = cat({sum_dy, tree_sum(std::move(xmus))}, 0);
    const Tensor all = tree_sum(gather_ranks(*group_, local));
    sums.all = {all.slice(0, 0, c).contiguous(), all.slice(0, c, 2 * c).contiguous()};
  }
  return sums;
}

int convert_sync_batchnorm(nn::Module& module, const std::shared_ptr<ProcessGroup>& group, BatchNormSync mode,
                           const std::shared_ptr<ProcessGroup>& host_group) {
  LOCKSTEP_CHECK(group != nullptr, ValueError,
                 "convert_sync_batchnorm: expected a process group, but got null");
  // One shared implementation: it holds only the group.
  const std::shared_ptr<BatchNormStatisticsSource> sync =
      mode == BatchNormSync::kDeterministic
          ? std::shared_ptr<BatchNormStatisticsSource>(std::make_shared<DeterministicBatchNorm>(group))
          : std::make_shared<SyncBatchNorm>(group, host_group);
  int converted = 0;
  const auto convert = [&](nn::Module& m) {
    if (auto* bn = dynamic_cast<nn::BatchNorm*>(&m)) {
      bn->set_sync(sync);
      ++converted;
    }
  };
  convert(module);
  for (const auto& [name, child] : module.named_modules()) convert(*child);
  return converted;
}

}  // namespace lockstep::distributed
