// MLPGenerator and MLPDiscriminator: construction (argument checks, fc1..fcK) and forward passes.
#include "src/models/mlp_gan.h"

#include <utility>

#include "src/core/error.h"
#include "src/ops/activation.h"

namespace lockstep::models {
namespace {

constexpr double kLeakySlope = 0.2;

// Linear layers from `in` features through `sizes`, checked; the caller registers them as fc1..fcK.
std::vector<std::shared_ptr<nn::Linear>> linear_stack(const char* where, std::int64_t in,
                                                       const std::vector<std::int64_t>& sizes) {
  std::vector<std::shared_ptr<nn::Linear>> layers;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    LOCKSTEP_CHECK(sizes[i] > 0, ValueError, where, ": expected positive layer sizes, but layer ", i + 1, " has ",
                   sizes[i], " units");
    layers.push_back(std::make_shared<nn::Linear>(in, sizes[i]));
    in = sizes[i];
  }
  return layers;
}

Tensor hidden_layers(const std::vector<std::shared_ptr<nn::Linear>>& layers, Tensor x) {
  for (std::size_t i = 0; i + 1 < layers.size(); ++i) x = leaky_relu(layers[i]->forward(x), kLeakySlope);
  return layers.back()->forward(x);
}

}  // namespace

MLPGenerator::MLPGenerator(std::int64_t latent, std::vector<std::int64_t> hidden, std::int64_t channels,
                           std::int64_t height, std::int64_t width)
    : nn::Module("MLPGenerator"), latent_(latent), channels_(channels), height_(height), width_(width) {
  LOCKSTEP_CHECK(latent > 0 && channels > 0 && height > 0 && width > 0, ValueError,
                 "MLPGenerator: expected positive latent, channels, height and width, but got latent=", latent,
                 ", channels=", channels, ", height=", height, ", width=", width);
  hidden.push_back(channels * height * width);
  layers_ = linear_stack("MLPGenerator", latent, hidden);
  for (std::size_t i = 0; i < layers_.size(); ++i) register_module("fc" + std::to_string(i + 1), layers_[i]);
}

Tensor MLPGenerator::forward(const Tensor& z) {
  LOCKSTEP_CHECK(z.dim() == 2 && z.size(1) == latent_, ValueError, "MLPGenerator::forward: expected z [N, ",
                 latent_, "], but got ", shape_str(z.shape()));
  return tanh(hidden_layers(layers_, z)).reshape({z.size(0), channels_, height_, width_});
}

std::string MLPGenerator::describe() const {
  return str_cat("latent=", latent_, ", layers=", layers_.size(), ", images ", channels_, "x", height_, "x", width_);
}

MLPDiscriminator::MLPDiscriminator(std::int64_t channels, std::int64_t height, std::int64_t width,
                                   std::vector<std::int64_t> hidden)
    : nn::Module("MLPDiscriminator"), channels_(channels), height_(height), width_(width) {
  LOCKSTEP_CHECK(channels > 0 && height > 0 && width > 0, ValueError,
                 "MLPDiscriminator: expected positive channels, height and width, but got channels=", channels,
                 ", height=", height, ", width=", width);
  hidden.push_back(1);
  layers_ = linear_stack("MLPDiscriminator", channels * height * width, hidden);
  for (std::size_t i = 0; i < layers_.size(); ++i) register_module("fc" + std::to_string(i + 1), layers_[i]);
}

Tensor MLPDiscriminator::forward(const Tensor& images) {
  LOCKSTEP_CHECK(images.dim() == 4 && images.size(1) == channels_ && images.size(2) == height_ &&
                     images.size(3) == width_,
                 ValueError, "MLPDiscriminator::forward: expected [N, ", channels_, ", ", height_, ", ", width_,
                 "], but got ", shape_str(images.shape()));
  const std::int64_t n = images.size(0);
  return hidden_layers(layers_, images.reshape({n, channels_ * height_ * width_})).reshape({n});
}

std::string MLPDiscriminator::describe() const {
  return str_cat("images ", channels_, "x", height_, "x", width_, ", layers=", layers_.size());
}

}  // namespace lockstep::models
