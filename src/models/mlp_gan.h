// The course's first GAN (Goodfellow et al. 2014) with fully connected networks: a generator from noise to
// images through hidden layers with LeakyReLU(0.2) and a tanh output, and a discriminator from flattened
// images to one logit per image.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "src/nn/linear.h"
#include "src/nn/module.h"

namespace lockstep::models {

// Owns fc1..fcK (K = hidden.size() + 1): Linear(latent, hidden[0]), LeakyReLU(0.2), ..., Linear(hidden.back(),
// channels * height * width), tanh, reshaped to images. Not thread-safe.
class MLPGenerator : public nn::Module {
 public:
  MLPGenerator(std::int64_t latent, std::vector<std::int64_t> hidden, std::int64_t channels, std::int64_t height,
               std::int64_t width);
  // z [N, latent] -> images [N, channels, height, width] in (-1, 1).
  Tensor forward(const Tensor& z) override;

 protected:
  std::string describe() const override;

 private:
  std::int64_t latent_;
  std::int64_t channels_, height_, width_;
  std::vector<std::shared_ptr<nn::Linear>> layers_;
};

// Owns fc1..fcK: Linear(channels * height * width, hidden[0]), LeakyReLU(0.2), ..., Linear(hidden.back(), 1).
// No normalisation, so it also serves as a critic under a gradient penalty. Not thread-safe.
class MLPDiscriminator : public nn::Module {
 public:
  MLPDiscriminator(std::int64_t channels, std::int64_t height, std::int64_t width, std::vector<std::int64_t> hidden);
  // images [N, channels, height, width] -> logits [N].
  Tensor forward(const Tensor& images) override;

 protected:
  std::string describe() const override;

 private:
  std::int64_t channels_, height_, width_;
  std::vector<std::shared_ptr<nn::Linear>> layers_;
};

}  // namespace lockstep::models
