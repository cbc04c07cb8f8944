// CycleGAN (Zhu et al. 2017) networks: the ResNet generator (reflection padding, instance norm, residual
// blocks) and the PatchGAN discriminator, laid out as the authors' PyTorch code
// (pytorch-CycleGAN-and-pix2pix) so that state-dict names match theirs. Initialise both with dcgan_init_
// (N(0, 0.02), the reference's init_type="normal").
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "src/nn/container.h"
#include "src/nn/module.h"

namespace lockstep::models {

struct CycleGANGeneratorOptions {
  std::int64_t channels = 1;         // of the input and of the output image
  std::int64_t width = 32;           // ngf: channels after the first 7x7 convolution (the paper uses 64)
  std::int64_t residual_blocks = 6;  // 6 for 128x128 images in the paper, 9 for 256x256
};

// One residual block: `conv_block` = ReflectionPad2d(1), Conv2d(dim, dim, 3), InstanceNorm2d, ReLU,
// ReflectionPad2d(1), Conv2d(dim, dim, 3), InstanceNorm2d; forward returns x + conv_block(x). The
// convolutions have biases, as in the reference (instance norm's mean cancels them, so their gradient is 0,
// but the parameter count and the state dict stay the reference's). Not thread-safe.
class CycleGANResidualBlock : public nn::Module {
 public:
  explicit CycleGANResidualBlock(std::int64_t dim);
  Tensor forward(const Tensor& input) override;

 private:
  std::shared_ptr<nn::Sequential> conv_block_;
};

// Owns `model`, a Sequential as the reference's ResnetGenerator with instance norm (affine off) and no
// dropout: ReflectionPad2d(3), Conv2d(channels, w, 7), IN, ReLU; two Conv2d(3, stride 2, padding 1) + IN +
// ReLU doubling the channels to 4w; residual_blocks CycleGANResidualBlock(4w); two ConvTranspose2d(3,
// stride 2, padding 1, output_padding 1) + IN + ReLU halving them back to w; ReflectionPad2d(3),
// Conv2d(w, channels, 7), Tanh. Every convolution has a bias. Not thread-safe.
class CycleGANGenerator : public nn::Module {
 public:
  explicit CycleGANGenerator(CycleGANGeneratorOptions options = {});
  // x [N, channels, H, W] with H, W multiples of 4 and at least 8 -> [N, channels, H, W] in (-1, 1).
  Tensor forward(const Tensor& input) override;
  const CycleGANGeneratorOptions& options() const { return options_; }

 protected:
  std::string describe() const override;

 private:
  CycleGANGeneratorOptions options_;
  std::shared_ptr<nn::Sequential> model_;
};

struct PatchGANOptions {
  std::int64_t channels = 1;  // of the input image
  std::int64_t width = 64;    // ndf: channels of the first convolution
  // Stride-2 stages (n_layers of the reference, which uses 3 for its 70x70 patches at 256x256). For 32x32
  // images 2 gives a 6x6 patch map (each score sees 34x34 pixels); 3 would leave 2x2.
  std::int64_t layers = 2;
};

// Owns `model`, a Sequential as the reference's NLayerDiscriminator with instance norm (affine off):
// Conv2d(channels, ndf, 4, 2, 1), LeakyReLU(0.2); for n = 1 .. layers-1: Conv2d(4, 2, 1) to
// ndf * min(2^n, 8) channels, IN, LeakyReLU(0.2); Conv2d(4, 1, 1) to ndf * min(2^layers, 8) channels, IN,
// LeakyReLU(0.2); Conv2d(4, 1, 1) to 1 channel. Every convolution has a bias. Not thread-safe.
class PatchGANDiscriminator : public nn::Module {
 public:
  explicit PatchGANDiscriminator(PatchGANOptions options = {});
  // x [N, channels, H, W] -> raw scores [N, 1, P, Q], P = H / 2^layers - 2 (and Q alike), at least 1.
  Tensor forward(const Tensor& input) override;
  const PatchGANOptions& options() const { return options_; }
  // The side of the patch map for an input side `size`: size / 2^layers - 2 (the stride-2 convolutions
  // halve it, the two stride-1 ones take 1 each).
  std::int64_t patch_size(std::int64_t size) const;

 protected:
  std::string describe() const override;

 private:
  PatchGANOptions options_;
  std::shared_ptr<nn::Sequential> model_;
};

}  // namespace lockstep::models
