// DCGAN generator and discriminator construction, forward passes, and dcgan_init_.
#include "src/models/dcgan.h"

#include "src/core/error.h"
#include "src/nn/activation.h"
#include "src/nn/conv.h"
#include "src/nn/init.h"
#include "src/nn/linear.h"
#include "src/nn/norm.h"

namespace lockstep::models {
namespace {

constexpr double kLeakySlope = 0.2;
constexpr double kInitStd = 0.02;

// Channel multiplier of the 4x4 stage: 4 for 32x32 images, 8 for 64x64.
std::int64_t top_multiplier(const char* where, std::int64_t image_size, std::int64_t channels,
                            std::int64_t width) {
  LOCKSTEP_CHECK(image_size == 32 || image_size == 64, ValueError, where,
                 ": expected image_size 32 or 64, but got ", image_size, ". Pad 28x28 images to 32x32.");
  LOCKSTEP_CHECK(channels > 0 && width > 0, ValueError, where,
                 ": expected positive channels and width, but got channels=", channels, ", width=", width);
  return image_size / 8;
}

void init_weight_and_bias(const Tensor& weight, const Tensor& bias, double mean, Generator* gen) {
  nn::normal_(weight, mean, kInitStd, gen);
  if (bias.defined()) nn::zeros_(bias);
}

void init_one(nn::Module& module, Generator* gen) {
  if (const auto* conv = dynamic_cast<nn::Conv2d*>(&module)) {
    init_weight_and_bias(conv->weight(), conv->bias(), 0.0, gen);
  } else if (const auto* deconv = dynamic_cast<nn::ConvTranspose2d*>(&module)) {
    init_weight_and_bias(deconv->weight(), deconv->bias(), 0.0, gen);
  } else if (const auto* linear = dynamic_cast<nn::Linear*>(&module)) {
    init_weight_and_bias(linear->weight(), linear->bias(), 0.0, gen);
  } else if (const auto* norm = dynamic_cast<nn::BatchNorm*>(&module)) {
    if (norm->weight().defined()) init_weight_and_bias(norm->weight(), norm->bias(), 1.0, gen);
  }  // layer norm keeps its ones and zeros
}

}  // namespace

DCGANGenerator::DCGANGenerator(std::int64_t latent, std::int64_t channels, std::int64_t image_size,
                               std::int64_t width)
    : nn::Module("DCGANGenerator"), latent_(latent), image_size_(image_size) {
  std::int64_t mult = top_multiplier("DCGANGenerator", image_size, channels, width);
  LOCKSTEP_CHECK(latent > 0, ValueError, "DCGANGenerator: expected a positive latent size, but got ", latent);
  main_ = register_module("main", std::make_shared<nn::Sequential>());
  main_->push_back(std::make_shared<nn::ConvTranspose2d>(nn::ConvTranspose2dOptions{
      .in = latent, .out = mult * width, .kernel = 4, .stride = 1, .padding = 0, .bias = nn::Bias::kNo}));
  main_->push_back(std::make_shared<nn::BatchNorm2d>(mult * width));
  main_->push_back(std::make_shared<nn::ReLU>());
  for (; mult > 1; mult /= 2) {
    main_->push_back(
        std::make_shared<nn::ConvTranspose2d>(nn::ConvTranspose2dOptions{.in = mult * width,
                                                                         .out = mult / 2 * width,
                                                                         .kernel = 4,
                                                                         .stride = 2,
                                                                         .padding = 1,
                                                                         .bias = nn::Bias::kNo}));
    main_->push_back(std::make_shared<nn::BatchNorm2d>(mult / 2 * width));
    main_->push_back(std::make_shared<nn::ReLU>());
  }
  main_->push_back(std::make_shared<nn::ConvTranspose2d>(
      nn::ConvTranspose2dOptions{.in = width, .out = channels, .kernel = 4, .stride = 2, .padding = 1}));
  main_->push_back(std::make_shared<nn::Tanh>());
}

Tensor DCGANGenerator::forward(const Tensor& z) {
  const bool flat = z.dim() == 2 && z.size(1) == latent_;
  const bool image = z.dim() == 4 && z.size(1) == latent_ && z.size(2) == 1 && z.size(3) == 1;
  LOCKSTEP_CHECK(flat || image, ValueError, "DCGANGenerator::forward: expected z [N, ", latent_, "] or [N, ",
                 latent_, ", 1, 1], but got ", shape_str(z.shape()));
  return main_->forward(flat ? z.reshape({z.size(0), latent_, 1, 1}) : z);
}

std::string DCGANGenerator::describe() const {
  return "latent=" + std::to_string(latent_) + ", image_size=" + std::to_string(image_size_);
}

std::shared_ptr<nn::Sequential> dcgan_discriminator_layers(std::int64_t channels, std::int64_t image_size,
                                                           std::int64_t width, DiscriminatorNorm norm) {
  const std::int64_t top = top_multiplier("dcgan_discriminator_layers", image_size, channels, width);
  const bool batch_norm = norm == DiscriminatorNorm::kBatchNorm;
  auto layers = std::make_shared<nn::Sequential>();
  layers->push_back(std::make_shared<nn::Conv2d>(
      nn::Conv2dOptions{.in = channels, .out = width, .kernel = 4, .stride = 2, .padding = 1}));
  layers->push_back(std::make_shared<nn::LeakyReLU>(kLeakySlope));
  std::int64_t size = image_size / 2;
  for (std::int64_t mult = 1; mult < top; mult *= 2) {
    size /= 2;
    layers->push_back(std::make_shared<nn::Conv2d>(nn::Conv2dOptions{
        .in = mult * width,
        .out = 2 * mult * width,
        .kernel = 4,
        .stride = 2,
        .padding = 1,
        .bias = batch_norm ? nn::Bias::kNo : nn::Bias::kYes,
    }));
    if (batch_norm) layers->push_back(std::make_shared<nn::BatchNorm2d>(2 * mult * width));
    if (norm == DiscriminatorNorm::kLayerNorm)
      layers->push_back(std::make_shared<nn::LayerNorm>(Shape{2 * mult * width, size, size}));
    layers->push_back(std::make_shared<nn::LeakyReLU>(kLeakySlope));
  }
  layers->push_back(
      std::make_shared<nn::Conv2d>(nn::Conv2dOptions{.in = top * width, .out = 1, .kernel = 4, .stride = 1}));
  return layers;
}

DCGANDiscriminator::DCGANDiscriminator(std::int64_t channels, std::int64_t image_size, std::int64_t width,
                                       DiscriminatorOutput output)
    : nn::Module("DCGANDiscriminator"), channels_(channels), image_size_(image_size), output_(output) {
  main_ = register_module(
      "main", dcgan_discriminator_layers(channels, image_size, width, DiscriminatorNorm::kBatchNorm));
  if (output == DiscriminatorOutput::kSigmoid) main_->push_back(std::make_shared<nn::Sigmoid>());
}

Tensor DCGANDiscriminator::forward(const Tensor& input) {
  LOCKSTEP_CHECK(input.dim() == 4 && input.size(1) == channels_ && input.size(2) == image_size_ &&
                     input.size(3) == image_size_,
                 ValueError, "DCGANDiscriminator::forward: expected [N, ", channels_, ", ", image_size_, ", ",
                 image_size_, "], but got ", shape_str(input.shape()));
  return main_->forward(input).reshape({input.size(0)});
}

std::string DCGANDiscriminator::describe() const {
  return "channels=" + std::to_string(channels_) + ", image_size=" + std::to_string(image_size_) +
         (output_ == DiscriminatorOutput::kSigmoid ? ", output=sigmoid" : ", output=logits");
}

void dcgan_init_(nn::Module& module, Generator* gen) {
  init_one(module, gen);
  for (const auto& [name, child] : module.named_modules()) init_one(*child, gen);
}

}  // namespace lockstep::models
