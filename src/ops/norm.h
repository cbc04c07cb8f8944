// Normalisation ops: batch norm (one training path whose statistics come from a source: this batch, or every
// rank's batch for SyncBatchNorm; evaluation), layer norm and instance norm, plus the four raw batch-norm
// steps.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "src/tensor/tensor.h"

namespace lockstep {

enum class BatchNormMode : std::uint8_t {
  kTrain,  // normalise with the batch statistics and update the running statistics
  kEval,   // normalise with the running statistics
};

// x [N, C, *] (any number of trailing dimensions, viewed as [N, C, L]); weight, bias [C] or undefined (no
// affine); running_mean, running_var [C] or both undefined (no tracking; then kEval is an error).
// kTrain is batch_norm_train with this process's batch as the statistics source; kEval normalises with the
// running statistics. Differentiable in x, weight and bias, twice too (create_graph).
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                  const Tensor& running_var, BatchNormMode mode, double momentum = 0.1, double eps = 1e-5);

// The raw steps of batch norm, outside autograd. x and dy are [N, C, *] of one floating dtype (any strides);
// every per-channel tensor is [C] of that dtype; results are fresh contiguous tensors.
struct BatchNormStatistics {
  Tensor mean;  // [C]
  Tensor var;   // [C], biased (divided by N * L)
};
// The statistics are accumulated in f64 and returned in `stats_dtype` (x's dtype, or f64: SyncBatchNorm
// combines per-rank statistics without rounding them to f32 first).
BatchNormStatistics batch_norm_statistics(const Tensor& x);
BatchNormStatistics batch_norm_statistics(const Tensor& x, DType stats_dtype);
// y = (x - mean) * invstd * weight + bias, shape of x; weight, bias may be undefined.
Tensor batch_norm_elemt(const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& weight,
                        const Tensor& bias);
struct BatchNormGradientSums {
  Tensor sum_dy;      // [C] sum of dy
  Tensor sum_dy_xmu;  // [C] sum of dy * (x - mean)
};

// Per-channel statistics that training batch norm normalises with, and how many values they cover.
struct BatchNormBatchStatistics {
  Tensor mean;         // [C], of x's dtype or f64
  Tensor var;          // [C], biased (divided by count), of mean's dtype
  double count = 0.0;  // values per channel: N * L of this batch, or summed over every rank's batch
};

// Where training batch norm takes its statistics from: this process's batch (local_batch_norm_statistics),
// or the union of every rank's batch (distributed::SyncBatchNorm implements this; src does not depend on
// distributed). The source only gathers and combines; normalisation, gradients and the running-statistics
// update are batch_norm_train's alone. A source spanning processes issues one collective per call, so every
// rank must call it alike.
class BatchNormStatisticsSource {
 public:
  virtual ~BatchNormStatisticsSource() = default;
  // The statistics of x [N, C, *] (already validated by the caller; N may be 0 on a rank of a group) over
  // the batches this source spans. Throws ValueError when they cover at most one value per channel; `caller`
  // (the layer's type name or "batch_norm") goes into messages.
  virtual BatchNormBatchStatistics statistics(const Tensor& x, const std::string& caller) = 0;
  // This process's per-channel gradient sums (dy's dtype) to the sums over the same batches as statistics().
  // Called in backward when x needs a gradient.
  virtual BatchNormGradientSums gradient_sums(const BatchNormGradientSums& local) = 0;
  // What the first-order backward needs from dy and the saved x, mean, invstd [C]: the parameter gradients
  // of this process's batch (when asked for) and, when need_dx, the gradient sums over the batches this
  // source spans. By default: batch_norm_backward_reduce on the whole batch, gradient_sums of that.
  struct BackwardSums {
    Tensor dweight, dbias;      // [C]
    BatchNormGradientSums all;  // defined when need_dx
  };
  virtual BackwardSums backward_sums(const Tensor& dy, const Tensor& x, const Tensor& mean,
                                     const Tensor& invstd, bool need_dx, bool need_dw, bool need_db);
  // True when the statistics cover other processes' batches: then the backward cannot be recorded for a
  // second derivative (create_graph), as that would need collectives inside the recorded graph.
  virtual bool spans_processes() const = 0;
  // Shown in module summaries, e.g. "local" or "sync".
  virtual const char* name() const = 0;
};

// The statistics of this process's batch (batch_norm_statistics in x's dtype, count N * L); stateless.
const std::shared_ptr<BatchNormStatisticsSource>& local_batch_norm_statistics();

// What batch norm does to its output y before returning it: z = relu(y + residual), each step optional
// (residual: y's shape and dtype, or undefined). In training on the CPU both run inside batch norm's own
// element-wise pass (bit for bit the separate ops' result, without writing y; the ReLU's gradient mask comes
// from z); elsewhere they are the separate ops.
struct BatchNormEpilogue {
  Tensor residual;
  bool relu = false;
};
// relu(y), or relu(y + residual) when residual is defined.
inline BatchNormEpilogue then_relu(const Tensor& residual = {}) { return {residual, true}; }

// Training batch norm, the one path of plain and synchronised batch norm: statistics from `source` (null
// means local_batch_norm_statistics()), y = (x - mean) / sqrt(var + eps) * weight + bias, and, when
// running_mean/running_var are defined, their update in place and outside autograd with the source's count n:
//   running_mean = (1 - momentum) * running_mean + momentum * mean
//   running_var  = (1 - momentum) * running_var  + momentum * var * n / (n - 1)
// Arguments as batch_norm; every argument is checked before the source is asked (so that a bad input fails
// on its own rank, before any collective). The first-order backward runs the fused kernels (and the source's
// gradient_sums); under create_graph it is recorded from differentiable ops instead (local sources only), so
// second derivatives work. `caller` names the op or layer in messages; `epilogue` follows the normalisation.
Tensor batch_norm_train(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& running_mean,
                        const Tensor& running_var, double momentum, double eps,
                        const std::shared_ptr<BatchNormStatisticsSource>& source,
                        const std::string& caller = "batch_norm", const BatchNormEpilogue& epilogue = {});
BatchNormGradientSums batch_norm_backward_reduce(const Tensor& dy, const Tensor& x, const Tensor& mean);
// dx = weight * invstd * (dy - sum_dy / count - (x - mean) * invstd^2 * sum_dy_xmu / count), shape of x;
// count is the number of values per channel the sums cover (all ranks' N * L for SyncBatchNorm).
Tensor batch_norm_backward_elemt(const Tensor& dy, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                                 const Tensor& weight, const Tensor& sum_dy, const Tensor& sum_dy_xmu,
                                 double count);

// Normalises over the last normalized_shape.size() dimensions of x, which must equal normalized_shape, with
// the biased variance; weight, bias of normalized_shape or undefined. Differentiable in x, weight and bias,
// twice too: the first-order backward is one fused kernel, recorded from differentiable ops under
// create_graph.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = {},
                  const Tensor& bias = {}, double eps = 1e-5);

// Instance norm (PyTorch's InstanceNorm1d/2d/3d without running statistics): x [N, C, *] normalised per
// (sample, channel) over its trailing (spatial) values with the biased variance,
//   y = (x - mean_nc) / sqrt(var_nc + eps) * weight[c] + bias[c]
// weight, bias [C] of x's dtype or undefined (no affine). Needs more than one spatial value per channel.
// Differentiable in x, weight and bias, twice too: forward and first-order backward run the fused layer-norm
// kernels on x viewed as [N * C, L]; under create_graph the backward is recorded from differentiable ops.
Tensor instance_norm(const Tensor& x, const Tensor& weight = {}, const Tensor& bias = {}, double eps = 1e-5);

}  // namespace lockstep
