// PixelCNN construction, forward pass, likelihood and sampling.
#include "src/models/pixelcnn.h"

#include <algorithm>
#include <cmath>

#include "src/autograd/grad_mode.h"
#include "src/core/error.h"
#include "src/ops/activation.h"
#include "src/ops/elementwise.h"
#include "src/ops/loss.h"
#include "src/ops/softmax.h"
#include "src/tensor/factories.h"

namespace lockstep::models {
namespace {

nn::Conv2dOptions conv(std::int64_t in, std::int64_t out, std::int64_t kernel) {
  return {.in = in, .out = out, .kernel = kernel, .padding = kernel / 2};
}

}  // namespace

PixelCnnBlock::PixelCnnBlock(std::int64_t width) : nn::Module("PixelCnnBlock") {
  reduce_ = register_module("reduce", std::make_shared<nn::Conv2d>(conv(width, width / 2, 1)));
  masked_ = register_module(
      "masked", std::make_shared<nn::MaskedConv2d>(nn::MaskType::kB, conv(width / 2, width / 2, 3)));
  expand_ = register_module("expand", std::make_shared<nn::Conv2d>(conv(width / 2, width, 1)));
}

Tensor PixelCnnBlock::forward(const Tensor& x) {
  return x + expand_->forward(relu(masked_->forward(relu(reduce_->forward(relu(x))))));
}

PixelCNN::PixelCNN(std::int64_t width, std::int64_t blocks)
    : nn::Module("PixelCNN"), width_(width), blocks_(blocks) {
  LOCKSTEP_CHECK(width >= 2 && width % 2 == 0 && blocks >= 0, ValueError,
                 "PixelCNN: expected an even width >= 2 and blocks >= 0, but got width ", width, ", blocks ",
                 blocks);
  input_ = register_module("input", std::make_shared<nn::MaskedConv2d>(nn::MaskType::kA, conv(1, width, 7)));
  body_ = register_module("blocks", std::make_shared<nn::Sequential>());
  for (std::int64_t i = 0; i < blocks; ++i) body_->push_back(std::make_shared<PixelCnnBlock>(width));
  head_masked_ = register_module("head_masked",
                                 std::make_shared<nn::MaskedConv2d>(nn::MaskType::kB, conv(width, width, 1)));
  head_out_ = register_module("head_out", std::make_shared<nn::Conv2d>(conv(width, kIntensities, 1)));
}

Tensor PixelCNN::forward(const Tensor& images) {
  LOCKSTEP_CHECK(images.dim() == 4 && images.size(1) == 1, ValueError,
                 "PixelCNN::forward: expected one-channel images [N, 1, H, W], but got ",
                 shape_str(images.shape()));
  const Tensor x = body_->forward(input_->forward(images));
  return head_out_->forward(relu(head_masked_->forward(relu(x))));
}

Tensor PixelCNN::row_logits(const Tensor& images, std::int64_t i) {
  LOCKSTEP_CHECK(images.dim() == 4 && i >= 0 && i < images.size(2), ValueError,
                 "PixelCNN::row_logits: expected a row in [0, ", images.dim() == 4 ? images.size(2) : 0,
                 ") of images [N, 1, H, W], but got row ", i, " of ", shape_str(images.shape()));
  const std::int64_t top = std::max<std::int64_t>(0, i - (3 + blocks_));
  return forward(images.slice(2, top, i + 1)).select(2, i - top);
}

std::string PixelCNN::describe() const { return str_cat("width=", width_, ", blocks=", blocks_); }

Tensor intensity_levels(const Tensor& images) {
  return clamp(images.detach().to(DType::f32) * 255.0 + 0.5, 0.0, 255.0).to(DType::i64);
}

Tensor pixel_nll(const Tensor& logits, const Tensor& images) {
  LOCKSTEP_CHECK(logits.dim() == 4 && logits.size(1) == kIntensities && images.dim() == 4 &&
                     logits.size(0) == images.size(0) && logits.size(2) == images.size(2) &&
                     logits.size(3) == images.size(3),
                 ValueError, "pixel_nll: expected logits [N, 256, H, W] for images [N, 1, H, W], but got ",
                 shape_str(logits.shape()), " and ", shape_str(images.shape()));
  // [N, 256, H, W] -> [N H W, 256] rows against the levels in the same order.
  const Tensor rows = logits.permute({0, 2, 3, 1}).reshape({-1, kIntensities});
  return cross_entropy(rows, intensity_levels(images).reshape({-1}));
}

double independent_pixels_bits_per_dim(const Tensor& train, const Tensor& test) {
  LOCKSTEP_CHECK(train.dim() == 4 && test.dim() == 4 && train.size(0) > 0 && test.size(0) > 0 &&
                     train.numel() / train.size(0) == test.numel() / test.size(0),
                 ValueError,
                 "independent_pixels_bits_per_dim: expected images [N, C, H, W] of one size, but got ",
                 shape_str(train.shape()), " and ", shape_str(test.shape()));
  const std::int64_t pixels = train.numel() / train.size(0);
  std::vector<double> counts(static_cast<std::size_t>(pixels * kIntensities), 1.0);  // add-one smoothing
  const std::vector<std::int64_t> levels = intensity_levels(train).to_vector<std::int64_t>();
  for (std::size_t i = 0; i < levels.size(); ++i)
    counts[static_cast<std::size_t>(static_cast<std::int64_t>(i) % pixels * kIntensities + levels[i])] += 1.0;
  const double total = static_cast<double>(train.size(0) + kIntensities);
  const std::vector<std::int64_t> test_levels = intensity_levels(test).to_vector<std::int64_t>();
  double bits = 0.0;
  for (std::size_t i = 0; i < test_levels.size(); ++i) {
    const double c = counts[static_cast<std::size_t>(static_cast<std::int64_t>(i) % pixels * kIntensities +
                                                     test_levels[i])];
    bits -= std::log2(c / total);
  }
  return bits / static_cast<double>(std::max<std::size_t>(test_levels.size(), 1));
}

Tensor sample_pixelcnn(PixelCNN& model, std::int64_t count, std::int64_t height, std::int64_t width,
                       Generator* gen) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  // Images live where the model does; the draws (one uniform per image and pixel) are made on the host.
  const std::vector<Tensor> params = model.parameters();
  const Device device = params.empty() ? kCPU : params.front().device();
  Tensor images = zeros({count, 1, height, width}, DType::f32, device);
  std::vector<float> values(static_cast<std::size_t>(count * height * width), 0.0f);
  for (std::int64_t i = 0; i < height; ++i) {
    for (std::int64_t j = 0; j < width; ++j) {
      // The softmax at (i, j) of every image: [count, 256].
      const Tensor p = softmax(model.row_logits(images, i).select(2, j), 1);
      const std::vector<float> probs = p.to_vector<float>();
      const std::vector<double> u = rand({count}, 0.0, 1.0, DType::f64, kCPU, gen).to_vector<double>();
      for (std::int64_t n = 0; n < count; ++n) {
        // Inverse CDF in f64 against the row's own total (f32 probabilities need not sum to exactly 1), so
        // no level is drawn that has probability 0.
        const float* row = probs.data() + n * kIntensities;
        double total = 0.0;
        for (std::int64_t v = 0; v < kIntensities; ++v) total += row[v];
        const double target = u[static_cast<std::size_t>(n)] * total;
        double cumulative = 0.0;
        std::int64_t level = 0;
        for (std::int64_t v = 0; v < kIntensities; ++v) {
          if (row[v] <= 0.0f) continue;
          level = v;
          cumulative += row[v];
          if (target < cumulative) break;
        }
        values[static_cast<std::size_t>((n * height + i) * width + j)] = static_cast<float>(level) / 255.0f;
      }
      images = from_vector(values, {count, 1, height, width}, DType::f32, device);
    }
  }
  model.train(was_training);
  return images;
}

}  // namespace lockstep::models
