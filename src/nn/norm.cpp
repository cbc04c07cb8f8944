// BatchNorm1d/2d (batch statistics in training with running-statistics updates, running statistics in
// evaluation), LayerNorm and InstanceNorm2d, on the ops of src/ops/norm.h.
#include "src/nn/norm.h"

#include "src/autograd/grad_mode.h"
#include "src/core/error.h"
#include "src/ops/activation.h"
#include "src/ops/elementwise.h"
#include "src/ops/norm.h"
#include "src/tensor/factories.h"

namespace lockstep::nn {

BatchNorm::BatchNorm(std::string type_name, std::int64_t features, BatchNormOptions options,
                     std::int64_t min_rank, std::int64_t max_rank)
    : Module(std::move(type_name)),
      features_(features),
      options_(options),
      min_rank_(min_rank),
      max_rank_(max_rank) {
  LOCKSTEP_CHECK(features > 0, ValueError, this->type_name(),
                 ": expected a positive number of features, but got ", features);
  LOCKSTEP_CHECK(options.eps > 0 && options.momentum >= 0 && options.momentum <= 1, ValueError,
                 this->type_name(), ": expected eps > 0 and momentum in [0, 1], but got eps=", options.eps,
                 ", momentum=", options.momentum);
  if (options.affine == Affine::kYes) {
    weight_ = register_parameter("weight", ones({features}));
    bias_ = register_parameter("bias", zeros({features}));
  }
  running_mean_ = register_buffer("running_mean", zeros({features}));
  running_var_ = register_buffer("running_var", ones({features}));
  num_batches_tracked_ = register_buffer("num_batches_tracked", zeros({}, DType::i64));
}

Tensor BatchNorm::forward(const Tensor& input) { return forward(input, {}); }

Tensor BatchNorm::forward(const Tensor& input, const BatchNormEpilogue& epilogue) {
  LOCKSTEP_CHECK(input.dim() == min_rank_ || input.dim() == max_rank_, ValueError, type_name(),
                 "::forward: expected an input of rank ",
                 min_rank_ == max_rank_ ? "" : str_cat(min_rank_, " or "), max_rank_, ", but got shape ",
                 shape_str(input.shape()));
  LOCKSTEP_CHECK(input.size(1) == features_, ValueError, type_name(), "::forward: expected ", features_,
                 " channels in dimension 1, but got shape ", shape_str(input.shape()));
  LOCKSTEP_CHECK(!epilogue.residual.defined() || epilogue.residual.shape() == input.shape(), ValueError,
                 type_name(), "::forward: expected a residual of the input's shape ",
                 shape_str(input.shape()), ", but got ", shape_str(epilogue.residual.shape()));
  if (!is_training()) {
    Tensor out = batch_norm(input, weight_, bias_, running_mean_, running_var_, BatchNormMode::kEval,
                            options_.momentum, options_.eps);
    if (epilogue.residual.defined()) out = out + epilogue.residual;
    return epilogue.relu ? relu(out) : out;
  }
  // Plain and synchronised batch norm alike; null sync_ means this batch's statistics.
  Tensor out = batch_norm_train(input, weight_, bias_, running_mean_, running_var_, options_.momentum,
                                options_.eps, sync_, type_name(), epilogue);
  NoGradGuard no_grad;
  num_batches_tracked_.add_(wrapped_scalar(1.0));
  return out;
}

std::string BatchNorm::describe() const {
  std::string text = str_cat(features_);
  if (options_.eps != 1e-5) text += str_cat(", eps=", options_.eps);
  if (options_.momentum != 0.1) text += str_cat(", momentum=", options_.momentum);
  if (options_.affine == Affine::kNo) text += ", affine=no";
  if (sync_) text += str_cat(", ", sync_->name());
  return text;
}

BatchNorm1d::BatchNorm1d(std::int64_t features, BatchNormOptions options)
    : BatchNorm("BatchNorm1d", features, options, 2, 3) {}

BatchNorm2d::BatchNorm2d(std::int64_t features, BatchNormOptions options)
    : BatchNorm("BatchNorm2d", features, options, 4, 4) {}

LayerNorm::LayerNorm(Shape normalized_shape, double eps)
    : Module("LayerNorm"), normalized_shape_(std::move(normalized_shape)), eps_(eps) {
  LOCKSTEP_CHECK(
      !normalized_shape_.empty() && numel_of(normalized_shape_) > 0 && eps > 0, ValueError,
      "LayerNorm: expected a non-empty normalized_shape without zero extents and eps > 0, but got ",
      shape_str(normalized_shape_), ", eps=", eps);
  weight_ = register_parameter("weight", ones(normalized_shape_));
  bias_ = register_parameter("bias", zeros(normalized_shape_));
}

Tensor LayerNorm::forward(const Tensor& input) {
  return layer_norm(input, normalized_shape_, weight_, bias_, eps_);
}

std::string LayerNorm::describe() const {
  return shape_str(normalized_shape_) + (eps_ != 1e-5 ? str_cat(", eps=", eps_) : "");
}

InstanceNorm2d::InstanceNorm2d(std::int64_t features, Affine affine, double eps)
    : Module("InstanceNorm2d"), features_(features), eps_(eps) {
  LOCKSTEP_CHECK(features > 0 && eps > 0, ValueError,
                 "InstanceNorm2d: expected a positive number of features and eps > 0, but got ", features,
                 ", eps=", eps);
  if (affine == Affine::kYes) {
    weight_ = register_parameter("weight", ones({features}));
    bias_ = register_parameter("bias", zeros({features}));
  }
}

Tensor InstanceNorm2d::forward(const Tensor& input) {
  LOCKSTEP_CHECK(input.dim() == 4 && input.size(1) == features_, ValueError,
                 "InstanceNorm2d::forward: expected an input [N, ", features_, ", H, W], but got shape ",
                 shape_str(input.shape()));
  return instance_norm(input, weight_, bias_, eps_);
}

std::string InstanceNorm2d::describe() const {
  std::string text = str_cat(features_);
  if (eps_ != 1e-5) text += str_cat(", eps=", eps_);
  if (weight_.defined()) text += ", affine=yes";
  return text;
}

}  // namespace lockstep::nn
