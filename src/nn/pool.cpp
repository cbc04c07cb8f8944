// Pooling and upsampling layers on the ops of src/ops/pool.h.
#include "src/nn/pool.h"

#include "src/core/error.h"
#include "src/ops/pool.h"

namespace lockstep::nn {

namespace {

void check_pool(const char* where, std::int64_t kernel, std::int64_t stride, std::int64_t padding) {
  LOCKSTEP_CHECK(
      kernel > 0 && stride >= 0 && padding >= 0 && 2 * padding <= kernel, ValueError, where,
      ": expected kernel > 0, stride >= 0 (0 = kernel) and 0 <= padding <= kernel / 2, but got kernel=",
      kernel, ", stride=", stride, ", padding=", padding);
}

std::string pool_text(std::int64_t kernel, std::int64_t stride, std::int64_t padding) {
  std::string text = str_cat("kernel=", kernel);
  if (stride != kernel) text += str_cat(", stride=", stride);
  if (padding != 0) text += str_cat(", padding=", padding);
  return text;
}

}  // namespace

MaxPool2d::MaxPool2d(std::int64_t kernel, std::int64_t stride, std::int64_t padding)
    : Module("MaxPool2d"), kernel_(kernel), stride_(stride == 0 ? kernel : stride), padding_(padding) {
  check_pool("MaxPool2d", kernel, stride, padding);
}

Tensor MaxPool2d::forward(const Tensor& input) {
  return max_pool2d(input, {kernel_, kernel_}, {stride_, stride_}, {padding_, padding_}).values;
}

std::string MaxPool2d::describe() const { return pool_text(kernel_, stride_, padding_); }

AvgPool2d::AvgPool2d(std::int64_t kernel, std::int64_t stride, std::int64_t padding)
    : Module("AvgPool2d"), kernel_(kernel), stride_(stride == 0 ? kernel : stride), padding_(padding) {
  check_pool("AvgPool2d", kernel, stride, padding);
}

Tensor AvgPool2d::forward(const Tensor& input) {
  return avg_pool2d(input, {kernel_, kernel_}, {stride_, stride_}, {padding_, padding_},
                    CountIncludePad::kYes);
}

std::string AvgPool2d::describe() const { return pool_text(kernel_, stride_, padding_); }

GlobalAvgPool2d::GlobalAvgPool2d() : Module("GlobalAvgPool2d") {}

Tensor GlobalAvgPool2d::forward(const Tensor& input) { return global_avg_pool2d(input); }

Upsample::Upsample(std::int64_t scale, UpsampleMode mode) : Module("Upsample"), scale_(scale), mode_(mode) {
  LOCKSTEP_CHECK(scale > 0, ValueError, "Upsample: expected a positive integer scale, but got ", scale);
}

Tensor Upsample::forward(const Tensor& input) {
  LOCKSTEP_CHECK(input.dim() == 4, ValueError,
                 "Upsample::forward: expected an input [N, C, H, W], but got shape ",
                 shape_str(input.shape()));
  const Size2d size{input.size(2) * scale_, input.size(3) * scale_};
  return mode_ == UpsampleMode::kNearest ? upsample_nearest2d(input, size) : upsample_bilinear2d(input, size);
}

std::string Upsample::describe() const {
  return str_cat("scale=", scale_, ", mode=", mode_ == UpsampleMode::kNearest ? "nearest" : "bilinear");
}

}  // namespace lockstep::nn
