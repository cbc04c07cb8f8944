// The WGAN critic: the DCGAN discriminator without batch norm (nothing, or layer norm for a gradient
// penalty) and without a sigmoid, returning one unbounded score per image.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "src/models/dcgan.h"
#include "src/nn/container.h"
#include "src/nn/module.h"

namespace lockstep::models {

// Owns `main` = dcgan_discriminator_layers(channels, image_size, width, norm) with norm kNone or kLayerNorm
// (every convolution with bias). Not thread-safe.
class WGANCritic : public nn::Module {
 public:
  WGANCritic(std::int64_t channels = 1, std::int64_t image_size = 32, std::int64_t width = 64,
             DiscriminatorNorm norm = DiscriminatorNorm::kNone);
  // x [N, channels, image_size, image_size] -> scores [N].
  Tensor forward(const Tensor& input) override;

 protected:
  std::string describe() const override;

 private:
  std::int64_t channels_;
  std::int64_t image_size_;
  DiscriminatorNorm norm_;
  std::shared_ptr<nn::Sequential> main_;
};

}  // namespace lockstep::models
