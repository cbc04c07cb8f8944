// Losses composed from element-wise, unary, reduction, index and softmax ops, with PyTorch's edge cases: logs
// clamped at -100 in binary cross-entropy, 0 * log 0 = 0 in kl_div, divide-by-C in multi_margin_loss.
#include "src/ops/loss.h"

#include <limits>

#include "src/ops/elementwise.h"
#include "src/ops/index.h"
#include "src/ops/kernels.h"
#include "src/ops/reduce.h"
#include "src/ops/softmax.h"
#include "src/ops/unary.h"
#include "src/tensor/factories.h"

namespace lockstep {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

const char* reduction_name(Reduction r) {
  switch (r) {
    case Reduction::kMean:
      return "kMean";
    case Reduction::kSum:
      return "kSum";
    case Reduction::kNone:
      return "kNone";
    case Reduction::kBatchMean:
      return "kBatchMean";
  }
  return "?";
}

void check_floating(const char* op, const char* what, const Tensor& t) {
  LOCKSTEP_CHECK(is_floating(t.dtype()), TypeError, op, ": expected a floating ", what, ", but got ",
                 dtype_name(t.dtype()), " ", shape_str(t.shape()));
}

// Checks two floating operands of one shape and device.
void check_pair(const char* op, const char* a_name, const Tensor& a, const char* b_name, const Tensor& b) {
  common_device(op, {a, b});
  check_floating(op, a_name, a);
  check_floating(op, b_name, b);
  LOCKSTEP_CHECK(a.shape() == b.shape(), ValueError, op, ": expected ", a_name, " and ", b_name,
                 " of the same shape, but got ", shape_str(a.shape()), " and ", shape_str(b.shape()));
}

// Refuses kBatchMean for the losses that do not define it.
void check_elementwise_reduction(const char* op, Reduction r) {
  LOCKSTEP_CHECK(r != Reduction::kBatchMean, ValueError, op,
                 ": expected reduction kMean, kSum or kNone, but got ", reduction_name(r),
                 " (defined for kl_div and gaussian_kl only)");
}

Tensor reduce_loss(const Tensor& loss, Reduction r) {
  switch (r) {
    case Reduction::kNone:
      return loss;
    case Reduction::kSum:
      return sum(loss);
    case Reduction::kMean:
      return mean(loss);
    case Reduction::kBatchMean:
      return sum(loss) / static_cast<double>(loss.dim() > 0 ? loss.size(0) : 1);
  }
  return loss;
}

// Checks scores [N, C] (floating) and class indices target (i64 [N], every value in [0, C)).
void check_class_targets(const char* op, const char* scores_name, const Tensor& scores,
                         const Tensor& target) {
  const Device device = common_device(op, {scores, target});
  check_floating(op, scores_name, scores);
  LOCKSTEP_CHECK(scores.dim() == 2, ValueError, op, ": expected ", scores_name, " of shape [N, C], but got ",
                 shape_str(scores.shape()));
  LOCKSTEP_CHECK(target.dtype() == DType::i64, TypeError, op,
                 ": expected an i64 target of class indices, but got ", dtype_name(target.dtype()), " ",
                 shape_str(target.shape()), ". Convert it with .to(DType::i64)");
  LOCKSTEP_CHECK(target.shape() == Shape{scores.size(0)}, ValueError, op, ": expected a target of shape [",
                 scores.size(0), "] for ", scores_name, " ", shape_str(scores.shape()), ", but got ",
                 shape_str(target.shape()));
  const std::int64_t n = target.numel(), classes = scores.size(1);
  if (n == 0) return;
  const Tensor t = target.contiguous();
  const Tensor lo = empty({}, DType::i64, device), hi = empty({}, DType::i64, device);
  kernels::reduce.get(device)(ReduceOp::kMin, t, lo, 1, n, 1);
  kernels::reduce.get(device)(ReduceOp::kMax, t, hi, 1, n, 1);
  const auto low = static_cast<std::int64_t>(lo.item()), high = static_cast<std::int64_t>(hi.item());
  LOCKSTEP_CHECK(low >= 0 && high < classes, IndexError, op, ": expected class indices in [0, ", classes - 1,
                 "] for ", scores_name, " ", shape_str(scores.shape()), ", but got ",
                 high >= classes ? high : low);
}

// Each sample's score at its class: scores [N, C], target [N] -> [N].
Tensor pick(const Tensor& scores, const Tensor& target) {
  return gather(scores, 1, target.reshape({-1, 1})).reshape({-1});
}

// max(log(p), -100) with finite gradients at p = 0 (where the clamp holds, the gradient is 0).
Tensor clamped_log(const Tensor& p) {
  const Tensor positive = gt(p, wrapped_scalar(0.0));
  const Tensor safe = where(positive, p, wrapped_scalar(1.0));
  return where(positive, clamp(log(safe), -100.0, kInf), wrapped_scalar(-100.0));
}

}  // namespace

Tensor mse_loss(const Tensor& pred, const Tensor& target, Reduction reduction) {
  check_pair("mse_loss", "pred", pred, "target", target);
  check_elementwise_reduction("mse_loss", reduction);
  return reduce_loss(square(pred - target), reduction);
}

Tensor l1_loss(const Tensor& pred, const Tensor& target, Reduction reduction) {
  check_pair("l1_loss", "pred", pred, "target", target);
  check_elementwise_reduction("l1_loss", reduction);
  return reduce_loss(abs(pred - target), reduction);
}

Tensor hinge_loss(const Tensor& scores, const Tensor& targets, Reduction reduction) {
  check_pair("hinge_loss", "scores", scores, "targets", targets);
  check_elementwise_reduction("hinge_loss", reduction);
  return reduce_loss(clamp(1.0 - targets * scores, 0.0, kInf), reduction);
}

Tensor multi_margin_loss(const Tensor& scores, const Tensor& target, Reduction reduction, double margin) {
  check_class_targets("multi_margin_loss", "scores", scores, target);
  check_elementwise_reduction("multi_margin_loss", reduction);
  const std::int64_t classes = scores.size(1);
  // scores [N, C], s_y [N, 1]; the j == y terms are masked out
  const Tensor s_y = pick(scores, target).reshape({-1, 1});
  const Tensor others =
      ne(arange(classes, DType::i64, scores.device()).reshape({1, classes}), target.reshape({-1, 1}));
  const Tensor hinge = clamp(scores - s_y + margin, 0.0, kInf) * others.to(scores.dtype());
  return reduce_loss(sum(hinge, {1}) / static_cast<double>(classes), reduction);
}

Tensor binary_cross_entropy(const Tensor& prob, const Tensor& target, Reduction reduction) {
  check_pair("binary_cross_entropy", "prob", prob, "target", target);
  check_elementwise_reduction("binary_cross_entropy", reduction);
  return reduce_loss(-(target * clamped_log(prob) + (1.0 - target) * clamped_log(1.0 - prob)), reduction);
}

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target, Reduction reduction) {
  check_pair("binary_cross_entropy_with_logits", "logits", logits, "target", target);
  check_elementwise_reduction("binary_cross_entropy_with_logits", reduction);
  // softplus(x) = log(1 + exp(x)), linear above 20 (beta 1): stable, and smooth at x = 0 unlike the max/abs
  // form
  const Tensor softplus =
      unary_op("softplus", UnaryOp::kSoftplus, logits, SaveForBackward::kInput, 1.0, 20.0);
  return reduce_loss(softplus - logits * target, reduction);
}

Tensor nll_loss(const Tensor& logp, const Tensor& target, Reduction reduction) {
  check_class_targets("nll_loss", "logp", logp, target);
  check_elementwise_reduction("nll_loss", reduction);
  return reduce_loss(-pick(logp, target), reduction);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction,
                     double label_smoothing) {
  check_class_targets("cross_entropy", "logits", logits, target);
  check_elementwise_reduction("cross_entropy", reduction);
  LOCKSTEP_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, ValueError,
                 "cross_entropy: expected label_smoothing in [0, 1], but got ", label_smoothing);
  const Tensor logp = log_softmax(logits, 1);
  Tensor per_sample = -pick(logp, target);
  if (label_smoothing > 0.0) {
    per_sample = (1.0 - label_smoothing) * per_sample - label_smoothing * mean(logp, {1});
  }
  return reduce_loss(per_sample, reduction);
}

Tensor kl_div(const Tensor& input_logp, const Tensor& target_p, Reduction reduction) {
  check_pair("kl_div", "input", input_logp, "target", target_p);
  // t log t with log taken of 1 where t == 0, so both the value and its gradient are 0 there
  const Tensor safe = where(gt(target_p, wrapped_scalar(0.0)), target_p, wrapped_scalar(1.0));
  return reduce_loss(target_p * log(safe) - target_p * input_logp, reduction);
}

Tensor gaussian_kl(const Tensor& mu, const Tensor& logvar, Reduction reduction) {
  check_pair("gaussian_kl", "mu", mu, "logvar", logvar);
  return reduce_loss(-0.5 * (1.0 + logvar - square(mu) - exp(logvar)), reduction);
}

}  // namespace lockstep
