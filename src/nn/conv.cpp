// Conv2d and ConvTranspose2d: option checks, PyTorch's default initialisation, forwards on src/ops/conv.h.
#include "src/nn/conv.h"

#include <cmath>
#include <utility>
#include <vector>

#include "src/core/error.h"
#include "src/ops/elementwise.h"
#include "src/tensor/factories.h"

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

Conv2d::Conv2d(Conv2dOptions options) : Conv2d("Conv2d", options) {}

Conv2d::Conv2d(std::string type_name, Conv2dOptions options) : Module(std::move(type_name)), options_(options) {
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

MaskedConv2d::MaskedConv2d(MaskType type, Conv2dOptions options)
    : Conv2d("MaskedConv2d", options), type_(type) {
  const std::int64_t k = options.kernel;
  LOCKSTEP_CHECK(k % 2 == 1 && options.stride == 1 && options.dilation == 1 && options.groups == 1, ValueError,
                 "MaskedConv2d: expected an odd kernel, stride 1, dilation 1 and one group, but got kernel ", k,
                 ", stride ", options.stride, ", dilation ", options.dilation, ", groups ", options.groups);
  std::vector<float> mask(static_cast<std::size_t>(k * k), 0.0f);
  const std::int64_t centre = k / 2 * k + k / 2;
  for (std::int64_t i = 0; i < k * k; ++i) mask[static_cast<std::size_t>(i)] = i < centre || (i == centre && type == MaskType::kB) ? 1.0f : 0.0f;
  mask_ = from_vector(mask, {1, 1, k, k});
}

Tensor MaskedConv2d::forward(const Tensor& input) {
  const Conv2dOptions& o = options();
  // The mask follows the weight to its dtype and device (it is not a buffer: model files hold no mask).
  if (mask_.dtype() != weight().dtype()) mask_ = mask_.to(weight().dtype());
  if (mask_.device() != weight().device()) mask_ = mask_.to(weight().device());
  return conv2d(input, weight() * mask_, bias(), {o.stride, o.stride}, {o.padding, o.padding}, {1, 1}, 1,
                o.padding_mode);
}

std::string MaskedConv2d::describe() const {
  return str_cat(type_ == MaskType::kA ? "mask A, " : "mask B, ", Conv2d::describe());
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
