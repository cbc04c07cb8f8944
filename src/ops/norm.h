// Normalisation ops: batch norm (training with running-statistics updates, evaluation) and layer norm, plus
// the four raw batch-norm steps that SyncBatchNorm reuses with all-reduced statistics in between.
#pragma once

#include <cstdint>

#include "src/tensor/tensor.h"

namespace lockstep {

enum class BatchNormMode : std::uint8_t {
  kTrain,  // normalise with the batch statistics and update the running statistics
  kEval,   // normalise with the running statistics
};

// x [N, C, *] (any number of trailing dimensions, viewed as [N, C, L]); weight, bias [C] or undefined (no
// affine); running_mean, running_var [C] or both undefined (no tracking; then kEval is an error).
// kTrain normalises with the biased batch variance and updates, in place and outside autograd,
//   running_mean = (1 - momentum) * running_mean + momentum * mean
//   running_var  = (1 - momentum) * running_var  + momentum * var * n / (n - 1)   (n = N * L)
// kTrain needs n > 1. Differentiable in x, weight and bias.
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
BatchNormGradientSums batch_norm_backward_reduce(const Tensor& dy, const Tensor& x, const Tensor& mean);
// dx = weight * invstd * (dy - sum_dy / count - (x - mean) * invstd^2 * sum_dy_xmu / count), shape of x;
// count is the number of values per channel the sums cover (all ranks' N * L for SyncBatchNorm).
Tensor batch_norm_backward_elemt(const Tensor& dy, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                                 const Tensor& weight, const Tensor& sum_dy, const Tensor& sum_dy_xmu,
                                 double count);

// Normalises over the last normalized_shape.size() dimensions of x, which must equal normalized_shape, with
// the biased variance; weight, bias of normalized_shape or undefined. Differentiable in x, weight and bias.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = {},
                  const Tensor& bias = {}, double eps = 1e-5);

}  // namespace lockstep
