// SyncBatchNorm: the training path of a batch-norm layer over the union of every rank's batch (one
// all_gather of per-rank statistics in forward, one all_reduce of the gradient sums in backward), and
// convert_sync_batchnorm, which installs it on a model's BatchNorm layers.
#include "distributed/sync_batch_norm.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "src/autograd/grad_mode.h"
#include "src/autograd/node.h"
#include "src/core/error.h"
#include "src/ops/elementwise.h"
#include "src/ops/norm.h"
#include "src/tensor/factories.h"

namespace lockstep::distributed {
namespace {

// The union-batch statistics of one layer's input, identical on every rank.
struct GlobalStatistics {
  std::vector<double> mean;  // [C]
  std::vector<double> var;   // [C], biased (divided by count)
  double count = 0.0;        // values per channel over all ranks
};

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
GlobalStatistics gather_statistics(ProcessGroup& group, const Tensor& x, const std::string& layer_type) {
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
  GlobalStatistics s;
  for (int r = 0; r < ranks; ++r) s.count += g[(r + 1) * stride - 1];
  LOCKSTEP_CHECK(s.count > 1.0, ValueError,
                 "SyncBatchNorm::forward_train: expected more than 1 value per channel "
                 "over all ranks when training, but got ",
                 layer_type, " input counts ", counts_str(g, stride, ranks), " per rank (",
                 static_cast<std::int64_t>(s.count), " in all). Use larger batches or eval mode");
  s.mean.assign(static_cast<std::size_t>(c), 0.0);
  s.var.assign(static_cast<std::size_t>(c), 0.0);
  for (std::int64_t ch = 0; ch < c; ++ch) {
    double mean = 0.0;
    for (int r = 0; r < ranks; ++r) mean += g[r * stride + 2 * c] * g[r * stride + ch];
    mean /= s.count;
    double var = 0.0;
    for (int r = 0; r < ranks; ++r) {
      const double d = g[r * stride + ch] - mean;
      var += g[r * stride + 2 * c] * (g[r * stride + c + ch] + d * d);
    }
    s.mean[static_cast<std::size_t>(ch)] = mean;
    s.var[static_cast<std::size_t>(ch)] = var / s.count;
  }
  return s;
}

// Checks, before any collective, what batch_norm would check later, so that a bad input fails on its own
// rank with a clear message rather than after the other ranks have joined a collective.
void check_layer_input(const Tensor& x, const nn::BatchNorm& layer) {
  const char* op = "SyncBatchNorm::forward_train";
  LOCKSTEP_CHECK(x.device().is_cpu(), DeviceError, op,
                 ": expected a CPU input (process groups move CPU tensors), "
                 "but got one on ",
                 x.device().str());
  LOCKSTEP_CHECK(is_floating(x.dtype()), TypeError, op, ": expected a floating input, but got ",
                 dtype_name(x.dtype()), " ", shape_str(x.shape()));
  for (const Tensor* t : {&layer.weight(), &layer.running_mean(), &layer.running_var()}) {
    if (!t->defined()) continue;
    LOCKSTEP_CHECK(t->dtype() == x.dtype(), TypeError, op, ": expected the ", layer.type_name(),
                   "'s parameters and buffers of the input's dtype ", dtype_name(x.dtype()), ", but got ",
                   dtype_name(t->dtype()), ". Convert the model with Module::to");
  }
}

}  // namespace

SyncBatchNorm::SyncBatchNorm(std::shared_ptr<ProcessGroup> group) : group_(std::move(group)) {
  LOCKSTEP_CHECK(group_ != nullptr, ValueError, "SyncBatchNorm: expected a process group, but got null");
}

Tensor SyncBatchNorm::forward_train(const Tensor& input, nn::BatchNorm& layer) {
  check_layer_input(input, layer);
  const GlobalStatistics stats = gather_statistics(*group_, input, layer.type_name());
  const std::int64_t c = input.size(1);
  const DType dtype = input.dtype();
  const double eps = layer.options().eps;
  std::vector<double> invstd(stats.var.size());
  for (std::size_t k = 0; k < invstd.size(); ++k) invstd[k] = 1.0 / std::sqrt(stats.var[k] + eps);
  const Tensor mean = from_vector(stats.mean, {c}, dtype);
  const Tensor var = from_vector(stats.var, {c}, dtype);
  const Tensor inv = from_vector(invstd, {c}, dtype);
  {
    // As batch_norm kTrain: running statistics (unbiased variance) and the step count, outside autograd.
    NoGradGuard no_grad;
    const double momentum = layer.options().momentum;
    const double n = stats.count;
    Tensor rm = layer.running_mean(), rv = layer.running_var(), steps = layer.num_batches_tracked();
    rm.mul_(1.0 - momentum).add_(mean, momentum);
    rv.mul_(1.0 - momentum).add_(var, momentum * n / (n - 1.0));
    steps.add_(wrapped_scalar(1.0));
  }
  const Tensor& weight = layer.weight();
  const Tensor& bias = layer.bias();
  Tensor y = batch_norm_elemt(input, mean, inv, weight, bias);
  const double count = stats.count;
  record("sync_batch_norm", {input, weight, bias}, {y}, {input, weight, mean, inv},
         [group = group_, count](BackwardContext& ctx) {
           // dy [N,C,*], x [N,C,*], weight/mean/invstd [C] -> dx [N,C,*], dweight [C], dbias [C]
           const Tensor& dy = ctx.grad();
           const Tensor xs = ctx.saved(0), w = ctx.saved(1), m = ctx.saved(2), is = ctx.saved(3);
           const BatchNormGradientSums local = batch_norm_backward_reduce(dy, xs, m);
           Tensor dx, dw, db;
           if (ctx.needs_input_grad(0)) {
             // The input gradient needs the sums over every rank's batch: one all_reduce of [sum_dy,
             // sum_dy_xmu] in f64, on every rank, empty ones too. It is skipped only when the input needs no
             // gradient, which is so on every rank alike (their graphs are the same). The parameter
             // gradients below stay local: the reducer's average over ranks then makes them the union
             // batch's gradients (divided by the world size, like every other parameter).
             const std::int64_t channels = m.numel();
             const Tensor both = empty({2 * channels}, DType::f64);
             const std::vector<double> s1 = local.sum_dy.to_vector<double>();
             const std::vector<double> s2 = local.sum_dy_xmu.to_vector<double>();
             double* p = both.data<double>();
             for (std::int64_t ch = 0; ch < channels; ++ch) {
               p[ch] = s1[static_cast<std::size_t>(ch)];
               p[channels + ch] = s2[static_cast<std::size_t>(ch)];
             }
             group->all_reduce(both, ReduceOp::kSum)->wait();
             const std::vector<double> summed = both.to_vector<double>();
             const Tensor sum_dy = from_vector(std::vector<double>(summed.begin(), summed.begin() + channels),
                                               {channels}, dy.dtype());
             const Tensor sum_dy_xmu = from_vector(
                 std::vector<double>(summed.begin() + channels, summed.end()), {channels}, dy.dtype());
             dx = batch_norm_backward_elemt(dy, xs, m, is, w, sum_dy, sum_dy_xmu, count);
           }
           if (ctx.needs_input_grad(1)) dw = local.sum_dy_xmu * is;
           if (ctx.needs_input_grad(2)) db = local.sum_dy;
           return std::vector<Tensor>{dx, dw, db};
         });
  return y;
}

int convert_sync_batchnorm(nn::Module& module, const std::shared_ptr<ProcessGroup>& group) {
  LOCKSTEP_CHECK(group != nullptr, ValueError,
                 "convert_sync_batchnorm: expected a process group, but got null");
  // One shared implementation: it holds only the group.
  const auto sync = std::make_shared<SyncBatchNorm>(group);
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
