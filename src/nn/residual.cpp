// BasicBlock and Bottleneck: the residual branches, the projection shortcut, and the parameter-free
// type-A shortcut (strided subsampling plus zero channels).
#include "src/nn/residual.h"

#include <vector>

#include "src/core/error.h"
#include "src/ops/activation.h"
#include "src/ops/elementwise.h"
#include "src/ops/shape.h"
#include "src/tensor/factories.h"

namespace lockstep::nn {

namespace {

std::shared_ptr<Conv2d> conv(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride) {
  return std::make_shared<Conv2d>(Conv2dOptions{
      .in = in, .out = out, .kernel = kernel, .stride = stride, .padding = kernel / 2, .bias = Bias::kNo});
}

std::shared_ptr<Sequential> projection(std::int64_t in, std::int64_t out, std::int64_t stride) {
  return std::make_shared<Sequential>(
      std::vector<std::shared_ptr<Module>>{conv(in, out, 1, stride), std::make_shared<BatchNorm2d>(out)});
}

// x [N, in, H, W] -> [N, out, ceil(H / stride), ceil(W / stride)]: every stride-th pixel, the new channels
// zero, split evenly before and after the old ones (out - in odd puts the extra one after).
Tensor pad_identity(const Tensor& x, std::int64_t out, std::int64_t stride) {
  Tensor sub = stride == 1 ? x : x.slice(2, 0, x.size(2), stride).slice(3, 0, x.size(3), stride);
  const std::int64_t extra = out - x.size(1);
  if (extra == 0) return sub;
  const std::int64_t before = extra / 2;
  const std::int64_t after = extra - before;
  std::vector<Tensor> parts;
  if (before > 0)
    parts.push_back(zeros({sub.size(0), before, sub.size(2), sub.size(3)}, x.dtype(), x.device()));
  parts.push_back(sub);
  parts.push_back(zeros({sub.size(0), after, sub.size(2), sub.size(3)}, x.dtype(), x.device()));
  return cat(parts, 1);
}

void check_block_input(const char* where, const Tensor& x, std::int64_t in) {
  LOCKSTEP_CHECK(x.dim() == 4 && x.size(1) == in, ValueError, where, "::forward: expected an input [N, ", in,
                 ", H, W], but got shape ", shape_str(x.shape()));
}

}  // namespace

BasicBlock::BasicBlock(std::int64_t in, std::int64_t out, std::int64_t stride, Shortcut shortcut)
    : Module("BasicBlock"), in_(in), out_(out), stride_(stride), shortcut_kind_(shortcut) {
  LOCKSTEP_CHECK(in > 0 && out > 0 && stride > 0, ValueError,
                 "BasicBlock: expected positive in, out and stride, but got in=", in, ", out=", out,
                 ", stride=", stride);
  LOCKSTEP_CHECK(shortcut == Shortcut::kProjection || out >= in, ValueError,
                 "BasicBlock: expected out >= in for Shortcut::kPadIdentity, but got in=", in, ", out=", out,
                 ". Use Shortcut::kProjection to reduce channels");
  conv1_ = register_module("conv1", conv(in, out, 3, stride));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(out));
  conv2_ = register_module("conv2", conv(out, out, 3, 1));
  bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(out));
  if (shortcut == Shortcut::kProjection && (stride != 1 || in != out)) {
    shortcut_ = register_module("shortcut", projection(in, out, stride));
  }
}

Tensor BasicBlock::forward(const Tensor& input) {
  check_block_input("BasicBlock", input, in_);
  const Tensor y = bn1_->forward(conv1_->forward(input), then_relu());
  const Tensor identity = shortcut_ ? shortcut_->forward(input) : pad_identity(input, out_, stride_);
  return bn2_->forward(conv2_->forward(y), then_relu(identity));
}

std::string BasicBlock::describe() const {
  return str_cat("in=", in_, ", out=", out_, ", stride=", stride_,
                 ", shortcut=", shortcut_kind_ == Shortcut::kPadIdentity ? "pad_identity" : "projection");
}

PreActBlock::PreActBlock(std::int64_t in, std::int64_t out, std::int64_t stride, Shortcut shortcut)
    : Module("PreActBlock"), in_(in), out_(out), stride_(stride), shortcut_kind_(shortcut) {
  LOCKSTEP_CHECK(in > 0 && out > 0 && stride > 0, ValueError,
                 "PreActBlock: expected positive in, out and stride, but got in=", in, ", out=", out,
                 ", stride=", stride);
  LOCKSTEP_CHECK(shortcut == Shortcut::kProjection || out >= in, ValueError,
                 "PreActBlock: expected out >= in for Shortcut::kPadIdentity, but got in=", in, ", out=", out,
                 ". Use Shortcut::kProjection to reduce channels");
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(in));
  conv1_ = register_module("conv1", conv(in, out, 3, stride));
  bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(out));
  conv2_ = register_module("conv2", conv(out, out, 3, 1));
  if (shortcut == Shortcut::kProjection && (stride != 1 || in != out)) {
    shortcut_ = register_module("shortcut", conv(in, out, 1, stride));
  }
}

Tensor PreActBlock::forward(const Tensor& input) {
  check_block_input("PreActBlock", input, in_);
  const Tensor pre = bn1_->forward(input, then_relu());
  Tensor y = conv1_->forward(pre);
  y = conv2_->forward(bn2_->forward(y, then_relu()));
  return y + (shortcut_ ? shortcut_->forward(pre) : pad_identity(input, out_, stride_));
}

std::string PreActBlock::describe() const {
  return str_cat("in=", in_, ", out=", out_, ", stride=", stride_,
                 ", shortcut=", shortcut_kind_ == Shortcut::kPadIdentity ? "pad_identity" : "projection");
}

Bottleneck::Bottleneck(std::int64_t in, std::int64_t planes, std::int64_t stride)
    : Module("Bottleneck"), in_(in), planes_(planes), stride_(stride) {
  LOCKSTEP_CHECK(in > 0 && planes > 0 && stride > 0, ValueError,
                 "Bottleneck: expected positive in, planes and stride, but got in=", in, ", planes=", planes,
                 ", stride=", stride);
  const std::int64_t out = kExpansion * planes;
  conv1_ = register_module("conv1", conv(in, planes, 1, 1));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  conv2_ = register_module("conv2", conv(planes, planes, 3, stride));
  bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  conv3_ = register_module("conv3", conv(planes, out, 1, 1));
  bn3_ = register_module("bn3", std::make_shared<BatchNorm2d>(out));
  if (stride != 1 || in != out) shortcut_ = register_module("shortcut", projection(in, out, stride));
}

Tensor Bottleneck::forward(const Tensor& input) {
  check_block_input("Bottleneck", input, in_);
  Tensor y = bn1_->forward(conv1_->forward(input), then_relu());
  y = bn2_->forward(conv2_->forward(y), then_relu());
  const Tensor identity = shortcut_ ? shortcut_->forward(input) : input;
  return bn3_->forward(conv3_->forward(y), then_relu(identity));
}

std::string Bottleneck::describe() const {
  return str_cat("in=", in_, ", planes=", planes_, ", out=", kExpansion * planes_, ", stride=", stride_);
}

}  // namespace lockstep::nn
