// PixelCNN (van den Oord et al. 2016) for one-channel images: a type-A masked 7x7 convolution, residual
// blocks around type-B masked 3x3 convolutions, and a 256-way softmax per pixel over the intensities; trained
// by cross-entropy (the log-likelihood in bits per dimension), sampled pixel by pixel.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "src/core/rng.h"
#include "src/nn/container.h"
#include "src/nn/conv.h"
#include "src/nn/module.h"

namespace lockstep::models {

constexpr std::int64_t kIntensities = 256;

// A PixelCNN residual block: ReLU, `reduce` (1x1, width -> width / 2), ReLU, `masked` (type B 3x3), ReLU,
// `expand` (1x1 back to width), plus the block's input. Not thread-safe.
class PixelCnnBlock : public nn::Module {
 public:
  explicit PixelCnnBlock(std::int64_t width);
  Tensor forward(const Tensor& x) override;

 private:
  std::shared_ptr<nn::Conv2d> reduce_, expand_;
  std::shared_ptr<nn::MaskedConv2d> masked_;
};

// Owns `input` (MaskedConv2d A, 7x7, 1 -> width), `blocks` (a Sequential of PixelCnnBlocks), `head_masked`
// (ReLU, then masked B 1x1) and `head_out` (ReLU, then 1x1 to 256 logits). Not thread-safe.
class PixelCNN : public nn::Module {
 public:
  PixelCNN(std::int64_t width = 64, std::int64_t blocks = 5);
  // images [N, 1, H, W] with intensities in [0, 1] -> logits [N, 256, H, W]: position (i, j) sees only the
  // pixels before it in raster order.
  Tensor forward(const Tensor& images) override;
  // The logits of row i only, [N, 256, W], from the rows that can reach it: the 7x7 type-A input layer looks
  // 3 rows up and each block's 3x3 type-B convolution 1 more, so rows i - (3 + blocks) .. i suffice (a band
  // of at most 4 + blocks rows instead of the whole image; equal to forward(images)[:, :, i]).
  Tensor row_logits(const Tensor& images, std::int64_t i);

 protected:
  std::string describe() const override;

 private:
  std::int64_t width_, blocks_;
  std::shared_ptr<nn::MaskedConv2d> input_, head_masked_;
  std::shared_ptr<nn::Sequential> body_;
  std::shared_ptr<nn::Conv2d> head_out_;
};

// Intensities in [0, 1] -> their 256 levels (round(255 x)), i64 of the same shape.
Tensor intensity_levels(const Tensor& images);
// The mean negative log-likelihood of the images under the logits, in nats per pixel (cross-entropy).
Tensor pixel_nll(const Tensor& logits, const Tensor& images);

// The baseline PixelCNN is judged against: each pixel an independent categorical over the 256 levels, fitted
// on `train` images with add-one smoothing; returns the mean negative log-likelihood of `test` images in bits
// per dimension. Images [N, 1, H, W] with intensities in [0, 1], of one size.
double independent_pixels_bits_per_dim(const Tensor& train, const Tensor& test);

// `count` images of height x width drawn pixel by pixel in raster order (per pixel one forward of the band of
// rows that can reach it, PixelCNN::row_logits), each level sampled from the softmax at that pixel with `gen`
// (the default generator when null). Eval mode, no gradients. Returns intensities in [0, 1], [count, 1,
// height, width].
Tensor sample_pixelcnn(PixelCNN& model, std::int64_t count, std::int64_t height, std::int64_t width,
                       Generator* gen = nullptr);

}  // namespace lockstep::models
