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
#include "src/ops/shape.h"
#include "src/tensor/factories.h"

namespace lockstep::distributed {
namespace {

// Per-rank counts "[1, 0, 3]" for messages.
std::string counts_str(const double* gathered, std::int64_t stride, int ranks) {
  std::string text = "[";
  for (int r = 0; r < ranks; ++r) {
    if (r > 0) text += ", ";
    text += str_cat(static_cast<std::int64_t>(gathered[(r + 1) * stride - 1]));
  }
  return text + "]";
}

// Gathers every rank's [mean(C), var(C), count] in f64 and combines them with the parallel formula (Chan et
// al.): n = sum n_r, mean = sum n_r mean_r / n, var = sum n_r (var_r + (mean_r - mean)^2) / n. Variance is
// gathered rather than the inverse standard deviation (as some implementations do) so that no rank has to
// undo 1 / sqrt(var + eps) to combine, which would lose precision when var << eps. Every rank joins, even
// with an empty batch (count 0, zero statistics).
BatchNormBatchStatistics gather_statistics(ProcessGroup& group, const Tensor& x,
                                           const std::string& layer_type) {
  const std::int64_t c = x.size(1);
  const std::int64_t local_count = x.numel() / c;  // N * L, and 0 for an empty batch
  const std::int64_t stride = 2 * c + 1;
  const Tensor local = zeros({stride}, DType::f64);
  if (local_count > 0) {
    // In f64 whatever the input's dtype: rounding each rank's mean to f32 before combining would put an
    // error of about 1e-7 * |mean| / std into the combined variance (large for channels whose mean dwarfs
    // their spread), where one process on the union batch keeps it near 1e-7.
    const BatchNormStatistics stats = batch_norm_statistics(x, DType::f64);
    const std::vector<double> mean = stats.mean.to_vector<double>(), var = stats.var.to_vector<double>();
    double* p = local.data<double>();
    for (std::int64_t ch = 0; ch < c; ++ch) {
      p[ch] = mean[static_cast<std::size_t>(ch)];
      p[c + ch] = var[static_cast<std::size_t>(ch)];
    }
  }
  local.data<double>()[2 * c] = static_cast<double>(local_count);
  const int ranks = group.size();
  const Tensor all = empty({ranks * stride}, DType::f64);
  group.all_gather(local, all)->wait();

  const double* g = all.data<double>();
  double count = 0.0;
  for (int r = 0; r < ranks; ++r) count += g[(r + 1) * stride - 1];
  LOCKSTEP_CHECK(count > 1.0, ValueError,
                 "SyncBatchNorm: expected more than 1 value per channel "
                 "over all ranks when training, but got ",
                 layer_type, " input counts ", counts_str(g, stride, ranks), " per rank (",
                 static_cast<std::int64_t>(count), " in all). Use larger batches or eval mode");
  BatchNormBatchStatistics s{empty({c}, DType::f64), empty({c}, DType::f64), count};
  double* means = s.mean.data<double>();
  double* vars = s.var.data<double>();
  for (std::int64_t ch = 0; ch < c; ++ch) {
    double mean = 0.0;
    for (int r = 0; r < ranks; ++r) mean += g[r * stride + 2 * c] * g[r * stride + ch];
    mean /= count;
    double var = 0.0;
    for (int r = 0; r < ranks; ++r) {
      const double d = g[r * stride + ch] - mean;
      var += g[r * stride + 2 * c] * (g[r * stride + c + ch] + d * d);
    }
    means[ch] = mean;
    vars[ch] = var / count;
  }
  return s;
}

}  // namespace

SyncBatchNorm::SyncBatchNorm(std::shared_ptr<ProcessGroup> group) : group_(std::move(group)) {
  LOCKSTEP_CHECK(group_ != nullptr, ValueError, "SyncBatchNorm: expected a process group, but got null");
  LOCKSTEP_CHECK(
      group_->tensor_device().is_cpu(), ValueError,
      "SyncBatchNorm: expected a process group of CPU tensors (the statistics travel through the host), "
      "but got a ",
      group_->backend(), " group on ", group_->tensor_device().str());
}

BatchNormBatchStatistics SyncBatchNorm::statistics(const Tensor& x, const std::string& caller) {
  // Checked before the collective, so that a bad input fails on its own rank with a clear message rather
  // than after the other ranks have joined (batch_norm_train has checked shapes and dtypes already).
  // The statistics travel through the host: on a GPU they are copied out, gathered over the (CPU) group
  // and copied back, a few hundred bytes per layer.
  BatchNormBatchStatistics s = gather_statistics(*group_, x, caller);
  s.mean = s.mean.to(x.device());
  s.var = s.var.to(x.device());
  return s;
}

BatchNormGradientSums SyncBatchNorm::gradient_sums(const BatchNormGradientSums& local) {
  // One all_reduce of [sum_dy, sum_dy_xmu] in f64, on every rank, empty ones too.
  const std::int64_t channels = local.sum_dy.numel();
  const Tensor both = empty({2 * channels}, DType::f64);
  const std::vector<double> s1 = local.sum_dy.to_vector<double>();
  const std::vector<double> s2 = local.sum_dy_xmu.to_vector<double>();
  double* p = both.data<double>();
  for (std::int64_t ch = 0; ch < channels; ++ch) {
    p[ch] = s1[static_cast<std::size_t>(ch)];
    p[channels + ch] = s2[static_cast<std::size_t>(ch)];
  }
  group_->all_reduce(both, ReduceOp::kSum)->wait();
  const std::vector<double> summed = both.to_vector<double>();
  const DType dtype = local.sum_dy.dtype();
  const Device device = local.sum_dy.device();
  return {
      from_vector(std::vector<double>(summed.begin(), summed.begin() + channels), {channels}, dtype, device),
      from_vector(std::vector<double>(summed.begin() + channels, summed.end()), {channels}, dtype, device)};
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

int convert_sync_batchnorm(nn::Module& module, const std::shared_ptr<ProcessGroup>& group,
                           BatchNormSync mode) {
  LOCKSTEP_CHECK(group != nullptr, ValueError,
                 "convert_sync_batchnorm: expected a process group, but got null");
  // One shared implementation: it holds only the group.
  const std::shared_ptr<BatchNormStatisticsSource> sync =
      mode == BatchNormSync::kDeterministic
          ? std::shared_ptr<BatchNormStatisticsSource>(std::make_shared<DeterministicBatchNorm>(group))
          : std::make_shared<SyncBatchNorm>(group);
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
