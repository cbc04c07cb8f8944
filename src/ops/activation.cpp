// Activation functions on the unary kernels; PReLU composed from where().
#include "src/ops/activation.h"

#include "src/ops/elementwise.h"
#include "src/ops/unary.h"

namespace lockstep {

Tensor sigmoid(const Tensor& x) {
  return unary_op("sigmoid", UnaryOp::kSigmoid, x, SaveForBackward::kOutput);
}

Tensor tanh(const Tensor& x) { return unary_op("tanh", UnaryOp::kTanh, x, SaveForBackward::kOutput); }

Tensor hardtanh(const Tensor& x, double min, double max) {
  LOCKSTEP_CHECK(min <= max, ValueError, "hardtanh: expected min <= max, but got ", min, " and ", max);
  return unary_op("hardtanh", UnaryOp::kHardtanh, x, SaveForBackward::kInput, min, max);
}

Tensor relu(const Tensor& x) { return unary_op("relu", UnaryOp::kRelu, x, SaveForBackward::kInput); }

Tensor leaky_relu(const Tensor& x, double negative_slope) {
  return unary_op("leaky_relu", UnaryOp::kLeakyRelu, x, SaveForBackward::kInput, negative_slope);
}

Tensor prelu(const Tensor& x, const Tensor& weight) {
  const std::int64_t channels = x.dim() >= 2 ? x.size(1) : 1;
  LOCKSTEP_CHECK(weight.dim() == 1 && (weight.numel() == 1 || weight.numel() == channels), ValueError,
                 "prelu: expected a weight of shape [1] or [", channels, "] (the channels of input ",
                 shape_str(x.shape()), "), but got ", shape_str(weight.shape()));
  Tensor slope = weight;
  if (weight.numel() > 1) {
    Shape per_channel(static_cast<std::size_t>(x.dim()), 1);
    per_channel[1] = channels;
    slope = weight.reshape(per_channel);
  }
  // x [N, C, ...], weight [C] viewed [1, C, 1, ...] -> y [N, C, ...]; where() routes the gradients.
  return where(gt(x, wrapped_scalar(0.0)), x, x * slope);
}

Tensor elu(const Tensor& x, double alpha) {
  return unary_op("elu", UnaryOp::kElu, x, SaveForBackward::kBoth, alpha);
}

Tensor softplus(const Tensor& x, double beta, double threshold) {
  LOCKSTEP_CHECK(beta != 0.0, ValueError, "softplus: expected a non-zero beta, but got ", beta);
  return unary_op("softplus", UnaryOp::kSoftplus, x, SaveForBackward::kInput, beta, threshold);
}

}  // namespace lockstep
