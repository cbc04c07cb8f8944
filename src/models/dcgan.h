// DCGAN (Radford et al. 2016) for 32x32 and 64x64 images: the generator (transposed convolutions, batch
// norm, ReLU, tanh), the discriminator (strided convolutions, batch norm, LeakyReLU 0.2) and their N(0, 0.02)
// initialisation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "src/core/rng.h"
#include "src/nn/container.h"
#include "src/nn/module.h"

namespace lockstep::models {

// What the discriminator returns per image.
enum class DiscriminatorOutput : std::uint8_t {
  kLogits,   // raw scores, for binary cross-entropy with logits
  kSigmoid,  // probabilities in (0, 1)
};

// What the discriminator's hidden stages normalise with: batch norm (DCGAN), nothing (the WGAN critic), or
// layer norm over each image's [C, H, W] (a critic under a gradient penalty, which must not mix the images
// of a batch: the penalty is per image).
enum class DiscriminatorNorm : std::uint8_t { kBatchNorm, kNone, kLayerNorm };

// Owns `main`, a Sequential laid out as PyTorch's DCGAN example: ConvTranspose2d(latent, m * width, 4, 1, 0)
// to 4x4 (m = 4 for 32x32, 8 for 64x64), then ConvTranspose2d(4, 2, 1) stages halving the channels and
// doubling the size down to `width` channels, each followed by BatchNorm2d and ReLU (those convolutions have
// no bias), then ConvTranspose2d(width, channels, 4, 2, 1) with bias and Tanh (no batch norm on the output).
// Not thread-safe.
class DCGANGenerator : public nn::Module {
 public:
  DCGANGenerator(std::int64_t latent = 100, std::int64_t channels = 1, std::int64_t image_size = 32,
                 std::int64_t width = 64);
  // z [N, latent] (or [N, latent, 1, 1]) -> images [N, channels, image_size, image_size] in (-1, 1).
  Tensor forward(const Tensor& z) override;
  std::int64_t latent() const { return latent_; }

 protected:
  std::string describe() const override;

 private:
  std::int64_t latent_;
  std::int64_t image_size_;
  std::shared_ptr<nn::Sequential> main_;
};

// The discriminator's layers: Conv2d(channels, width, 4, 2, 1) with bias and LeakyReLU(0.2) (no batch norm on
// the input layer), then Conv2d(4, 2, 1) stages doubling the channels up to m * width (m = 4 for 32x32, 8 for
// 64x64), each with LeakyReLU(0.2) and, for kBatchNorm, a BatchNorm2d before it (and no conv bias), then
// Conv2d(m * width, 1, 4, 1, 0) with bias giving [N, 1, 1, 1]. Shared by DCGANDiscriminator and WGANCritic.
std::shared_ptr<nn::Sequential> dcgan_discriminator_layers(std::int64_t channels, std::int64_t image_size,
                                                           std::int64_t width, DiscriminatorNorm norm);

// Owns `main` = dcgan_discriminator_layers(..., kBatchNorm), followed by Sigmoid for kSigmoid. Not
// thread-safe.
class DCGANDiscriminator : public nn::Module {
 public:
  DCGANDiscriminator(std::int64_t channels = 1, std::int64_t image_size = 32, std::int64_t width = 64,
                     DiscriminatorOutput output = DiscriminatorOutput::kLogits);
  // x [N, channels, image_size, image_size] -> [N] logits or probabilities.
  Tensor forward(const Tensor& input) override;

 protected:
  std::string describe() const override;

 private:
  std::int64_t channels_;
  std::int64_t image_size_;
  DiscriminatorOutput output_;
  std::shared_ptr<nn::Sequential> main_;
};

// DCGAN's initialisation over `module` and everything below it: Conv2d, ConvTranspose2d and Linear weights
// N(0, 0.02), batch-norm weights N(1, 0.02), all biases 0; draws from `gen` (the default generator when
// null).
void dcgan_init_(nn::Module& module, Generator* gen = nullptr);

}  // namespace lockstep::models
