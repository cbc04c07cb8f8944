// CycleGAN's ResNet generator and PatchGAN discriminator: construction, shape checks and forward passes.
#include "src/models/cyclegan.h"

#include <algorithm>

#include "src/core/error.h"
#include "src/nn/activation.h"
#include "src/nn/conv.h"
#include "src/nn/norm.h"
#include "src/nn/pad.h"
#include "src/ops/elementwise.h"

namespace lockstep::models {
namespace {

constexpr double kLeakySlope = 0.2;

std::shared_ptr<nn::Conv2d> conv(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride,
                                 std::int64_t padding) {
  return std::make_shared<nn::Conv2d>(
      nn::Conv2dOptions{.in = in, .out = out, .kernel = kernel, .stride = stride, .padding = padding});
}

std::shared_ptr<nn::InstanceNorm2d> instance_norm(std::int64_t channels) {
  return std::make_shared<nn::InstanceNorm2d>(channels);
}

}  // namespace

CycleGANResidualBlock::CycleGANResidualBlock(std::int64_t dim) : nn::Module("CycleGANResidualBlock") {
  conv_block_ = register_module("conv_block", std::make_shared<nn::Sequential>());
  for (int half = 0; half < 2; ++half) {
    conv_block_->push_back(std::make_shared<nn::ReflectionPad2d>(1));
    conv_block_->push_back(conv(dim, dim, 3, 1, 0));
    conv_block_->push_back(instance_norm(dim));
    if (half == 0) conv_block_->push_back(std::make_shared<nn::ReLU>());
  }
}

Tensor CycleGANResidualBlock::forward(const Tensor& input) { return input + conv_block_->forward(input); }

CycleGANGenerator::CycleGANGenerator(CycleGANGeneratorOptions options)
    : nn::Module("CycleGANGenerator"), options_(options) {
  const std::int64_t c = options.channels, w = options.width;
  LOCKSTEP_CHECK(c > 0 && w > 0 && options.residual_blocks >= 0, ValueError,
                 "CycleGANGenerator: expected positive channels and width and residual_blocks >= 0, but got "
                 "channels=",
                 c, ", width=", w, ", residual_blocks=", options.residual_blocks);
  model_ = register_module("model", std::make_shared<nn::Sequential>());
  model_->push_back(std::make_shared<nn::ReflectionPad2d>(3));
  model_->push_back(conv(c, w, 7, 1, 0));
  model_->push_back(instance_norm(w));
  model_->push_back(std::make_shared<nn::ReLU>());
  for (std::int64_t mult = 1; mult <= 2; mult *= 2) {
    model_->push_back(conv(mult * w, 2 * mult * w, 3, 2, 1));
    model_->push_back(instance_norm(2 * mult * w));
    model_->push_back(std::make_shared<nn::ReLU>());
  }
  for (std::int64_t i = 0; i < options.residual_blocks; ++i)
    model_->push_back(std::make_shared<CycleGANResidualBlock>(4 * w));
  for (std::int64_t mult = 4; mult >= 2; mult /= 2) {
    model_->push_back(std::make_shared<nn::ConvTranspose2d>(nn::ConvTranspose2dOptions{
        .in = mult * w, .out = mult / 2 * w, .kernel = 3, .stride = 2, .padding = 1, .output_padding = 1}));
    model_->push_back(instance_norm(mult / 2 * w));
    model_->push_back(std::make_shared<nn::ReLU>());
  }
  model_->push_back(std::make_shared<nn::ReflectionPad2d>(3));
  model_->push_back(conv(w, c, 7, 1, 0));
  model_->push_back(std::make_shared<nn::Tanh>());
}

Tensor CycleGANGenerator::forward(const Tensor& input) {
  const bool ok = input.dim() == 4 && input.size(1) == options_.channels && input.size(2) >= 8 &&
                  input.size(3) >= 8 && input.size(2) % 4 == 0 && input.size(3) % 4 == 0;
  LOCKSTEP_CHECK(ok, ValueError, "CycleGANGenerator::forward: expected images [N, ", options_.channels,
                 ", H, W] with H and W multiples of 4 and at least 8, but got ", shape_str(input.shape()));
  return model_->forward(input);
}

std::string CycleGANGenerator::describe() const {
  return str_cat("channels=", options_.channels, ", width=", options_.width,
                 ", residual_blocks=", options_.residual_blocks);
}

PatchGANDiscriminator::PatchGANDiscriminator(PatchGANOptions options)
    : nn::Module("PatchGANDiscriminator"), options_(options) {
  const std::int64_t c = options.channels, w = options.width;
  LOCKSTEP_CHECK(c > 0 && w > 0 && options.layers >= 1, ValueError,
                 "PatchGANDiscriminator: expected positive channels and width and layers >= 1, but got "
                 "channels=",
                 c, ", width=", w, ", layers=", options.layers);
  model_ = register_module("model", std::make_shared<nn::Sequential>());
  model_->push_back(conv(c, w, 4, 2, 1));
  model_->push_back(std::make_shared<nn::LeakyReLU>(kLeakySlope));
  std::int64_t mult = 1;
  for (std::int64_t n = 1; n <= options.layers; ++n) {
    const std::int64_t prev = mult;
    mult = std::min<std::int64_t>(std::int64_t{1} << std::min<std::int64_t>(n, 3), 8);
    // The last of these stages keeps the size (stride 1), as the reference's.
    model_->push_back(conv(prev * w, mult * w, 4, n < options.layers ? 2 : 1, 1));
    model_->push_back(instance_norm(mult * w));
    model_->push_back(std::make_shared<nn::LeakyReLU>(kLeakySlope));
  }
  model_->push_back(conv(mult * w, 1, 4, 1, 1));
}

std::int64_t PatchGANDiscriminator::patch_size(std::int64_t size) const {
  for (std::int64_t n = 0; n < options_.layers; ++n) size = (size + 2 - 4) / 2 + 1;
  return size - 2;
}

Tensor PatchGANDiscriminator::forward(const Tensor& input) {
  // The last instance norm sees a (patch + 1)-sided map: it needs more than one value.
  const bool ok = input.dim() == 4 && input.size(1) == options_.channels && input.size(2) >= 4 &&
                  input.size(3) >= 4 && patch_size(input.size(2)) >= 1 && patch_size(input.size(3)) >= 1;
  LOCKSTEP_CHECK(ok, ValueError, "PatchGANDiscriminator::forward: expected images [N, ", options_.channels,
                 ", H, W] large enough for ", options_.layers,
                 " stride-2 stages (H, W >= ", std::int64_t{3} << options_.layers, "), but got ",
                 shape_str(input.shape()));
  return model_->forward(input);
}

std::string PatchGANDiscriminator::describe() const {
  return str_cat("channels=", options_.channels, ", width=", options_.width, ", layers=", options_.layers);
}

}  // namespace lockstep::models
