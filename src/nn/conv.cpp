// Conv2d and ConvTranspose2d: option checks, PyTorch's default initialisation, forwards on src/ops/conv.h.
#include "src/nn/conv.h"

#include <cmath>

#include "src/core/error.h"

namespace lockstep::nn {

namespace {

void check_geometry(const char* where, std::int64_t in, std::int64_t out, std::int64_t kernel,
                    std::int64_t stride, std::int64_t padding, std::int64_t dilation, std::int64_t groups) {
  LOCKSTEP_CHECK(in > 0 && out > 0 && kernel > 0, ValueError, where,
                 ": expected positive in, out and kernel, but got in=", in, ", out=", out,
                 ", kernel=", kernel);
  LOCKSTEP_CHECK(stride > 0 && dilation > 0 && padding >= 0, ValueError, where,
                 ": expected stride > 0, dilation > 0 and padding >= 0, but got stride=", stride,
                 ", dilation=", dilation, ", padding=", padding);
  LOCKSTEP_CHECK(groups > 0 && in % groups == 0 && out % groups == 0, ValueError, where,
                 ": expected groups dividing in and out, but got in=", in, ", out=", out,
                 ", groups=", groups);
}

// Weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as PyTorch's reset_parameters.
void default_init(const Tensor& weight, const Tensor& bias) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in(weight)));
  nn::uniform_(weight, -bound, bound);
  if (bias.defined()) nn::uniform_(bias, -bound, bound);
}

std::string geometry_text(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride,
                          std::int64_t padding, std::int64_t dilation, std::int64_t groups, Bias bias) {
  std::string text = str_cat("in=", in, ", out=", out, ", kernel=", kernel);
  if (stride != 1) text += str_cat(", stride=", stride);
  if (padding != 0) text += str_cat(", padding=", padding);
  if (dilation != 1) text += str_cat(", dilation=", dilation);
  if (groups != 1) text += str_cat(", groups=", groups);
  if (bias == Bias::kNo) text += ", bias=no";
  return text;
}

}  // namespace

Conv2d::Conv2d(Conv2dOptions options) : Module("Conv2d"), options_(options) {
  const Conv2dOptions& o = options_;
  check_geometry("Conv2d", o.in, o.out, o.kernel, o.stride, o.padding, o.dilation, o.groups);
  weight_ = register_parameter("weight", empty({o.out, o.in / o.groups, o.kernel, o.kernel}));
  if (o.bias == Bias::kYes) bias_ = register_parameter("bias", empty({o.out}));
  default_init(weight_, bias_);
}

Tensor Conv2d::forward(const Tensor& input) {
  const Conv2dOptions& o = options_;
  return conv2d(input, weight_, bias_, {o.stride, o.stride}, {o.padding, o.padding}, {o.dilation, o.dilation},
                o.groups, o.padding_mode);
}

std::string Conv2d::describe() const {
  const Conv2dOptions& o = options_;
  return geometry_text(o.in, o.out, o.kernel, o.stride, o.padding, o.dilation, o.groups, o.bias) +
         (o.padding_mode == PaddingMode::kReflect ? ", padding_mode=reflect" : "");
}

ConvTranspose2d::ConvTranspose2d(ConvTranspose2dOptions options)
    : Module("ConvTranspose2d"), options_(options) {
  const ConvTranspose2dOptions& o = options_;
  check_geometry("ConvTranspose2d", o.in, o.out, o.kernel, o.stride, o.padding, o.dilation, o.groups);
  LOCKSTEP_CHECK(
      o.output_padding >= 0 && (o.output_padding < o.stride || o.output_padding < o.dilation), ValueError,
      "ConvTranspose2d: expected 0 <= output_padding < stride or dilation, but got output_padding=",
      o.output_padding, ", stride=", o.stride, ", dilation=", o.dilation);
  weight_ = register_parameter("weight", empty({o.in, o.out / o.groups, o.kernel, o.kernel}));
  if (o.bias == Bias::kYes) bias_ = register_parameter("bias", empty({o.out}));
  default_init(weight_, bias_);
}

Tensor ConvTranspose2d::forward(const Tensor& input) {
  const ConvTranspose2dOptions& o = options_;
  return conv_transpose2d(input, weight_, bias_, {o.stride, o.stride}, {o.padding, o.padding},
                          {o.output_padding, o.output_padding}, {o.dilation, o.dilation}, o.groups);
}

std::string ConvTranspose2d::describe() const {
  const ConvTranspose2dOptions& o = options_;
  return geometry_text(o.in, o.out, o.kernel, o.stride, o.padding, o.dilation, o.groups, o.bias) +
         (o.output_padding != 0 ? str_cat(", output_padding=", o.output_padding) : "");
}

}  // namespace lockstep::nn
