// MaskedConv2d and the PixelCNN built from it: each output pixel depends only on the input pixels before it
// in raster order (type A) or before and at it (type B), checked through gradients of one output pixel; the
// masked weights get no gradient; the likelihood, the independent-pixels baseline and sampling against
// direct computations.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "src/autograd/engine.h"
#include "src/autograd/grad_mode.h"
#include "src/core/rng.h"
#include "src/models/pixelcnn.h"
#include "src/nn/conv.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/ops/softmax.h"
#include "src/tensor/factories.h"

namespace lockstep {
namespace {

// Which input pixels (raster index) output pixel (i, j) of `f` depends on: nonzero gradients of one output
// pixel summed over channels.
std::vector<bool> receptive(const std::function<Tensor(const Tensor&)>& f, std::int64_t h, std::int64_t w,
                            std::int64_t i, std::int64_t j) {
  Tensor x = rand({1, 1, h, w}, 0.0, 1.0, DType::f64);
  x.requires_grad_(true);
  const Tensor y = f(x);
  const Tensor g = grad({sum(y.select(3, j).select(2, i))}, {x})[0];
  std::vector<bool> seen;
  for (const double v : g.to_vector<double>()) seen.push_back(v != 0.0);
  return seen;
}

TEST(MaskedConv2d, TypeASeesOnlyEarlierPixelsTypeBAlsoItsOwn) {
  manual_seed(1);
  for (const nn::MaskType type : {nn::MaskType::kA, nn::MaskType::kB}) {
    nn::MaskedConv2d conv(type, {.in = 1, .out = 3, .kernel = 5, .padding = 2});
    conv.to(DType::f64);
    const std::int64_t i = 3, j = 2, w = 6;
    const std::vector<bool> seen = receptive([&](const Tensor& x) { return conv(x); }, 6, w, i, j);
    for (std::int64_t p = 0; p < 36; ++p) {
      const std::int64_t r = p / w, c = p % w;
      const bool in_kernel = std::abs(r - i) <= 2 && std::abs(c - j) <= 2;
      const bool before = p < i * w + j, own = p == i * w + j;
      EXPECT_EQ(seen[static_cast<std::size_t>(p)], in_kernel && (before || (own && type == nn::MaskType::kB)))
          << (type == nn::MaskType::kA ? "A" : "B") << " pixel " << r << "," << c;
    }
    // The masked weights get no gradient.
    conv.zero_grad();
    sum(conv(rand({2, 1, 6, 6}, 0.0, 1.0, DType::f64))).backward();
    const std::vector<double> g = conv.weight().grad().to_vector<double>();
    for (std::int64_t o = 0; o < 3; ++o) {
      for (std::int64_t k = 0; k < 25; ++k) {
        const bool kept = k < 12 || (k == 12 && type == nn::MaskType::kB);
        EXPECT_EQ(g[static_cast<std::size_t>(o * 25 + k)] != 0.0, kept) << "weight " << o << "," << k;
      }
    }
  }
}

TEST(PixelCnn, EveryLogitSeesOnlyThePixelsBeforeIt) {
  manual_seed(2);
  models::PixelCNN model(4, 2);
  model.to(DType::f64);
  const std::int64_t h = 9, w = 9;
  for (const auto& [i, j] : {std::pair<std::int64_t, std::int64_t>{0, 0}, {4, 4}, {8, 3}, {2, 8}}) {
    const std::vector<bool> seen = receptive([&](const Tensor& x) { return model(x); }, h, w, i, j);
    for (std::int64_t p = i * w + j; p < h * w; ++p) {
      EXPECT_FALSE(seen[static_cast<std::size_t>(p)]) << i << "," << j << " sees " << p;
    }
    if (i * w + j > 0) {
      EXPECT_TRUE(seen[static_cast<std::size_t>(i * w + j - 1)]) << "the pixel just before " << i << "," << j;
    }
  }
}

TEST(PixelCnn, ARowFromItsBandOfRowsEqualsTheWholeImagesRow) {
  manual_seed(4);
  models::PixelCNN model(6, 3);  // reaches 6 rows up
  const Tensor x = rand({2, 1, 14, 9});
  NoGradGuard no_grad;
  const Tensor whole = model(x);
  for (const std::int64_t i : {0, 3, 6, 7, 13}) {
    const std::vector<float> band = model.row_logits(x, i).to_vector<float>();
    const std::vector<float> row = whole.select(2, i).to_vector<float>();
    ASSERT_EQ(band.size(), row.size());
    for (std::size_t k = 0; k < row.size(); ++k) ASSERT_NEAR(band[k], row[k], 1e-4f) << "row " << i << " value " << k;
  }
}

TEST(PixelCnn, LikelihoodBaselineAndSamplingMatchDirectComputations) {
  manual_seed(3);
  models::PixelCNN model(4, 1);
  const Tensor x = from_vector(std::vector<float>{0.0f, 1.0f, 0.5f, 128.0f / 255.0f}, {1, 1, 2, 2});
  const Tensor logits = model(x);
  // Cross-entropy per pixel by hand from log_softmax over the 256 levels 0, 255, 128 (0.5 rounds up), 128.
  const std::vector<float> logp = log_softmax(logits, 1).to_vector<float>();
  const std::int64_t levels[] = {0, 255, 128, 128};
  double want = 0.0;
  for (std::int64_t p = 0; p < 4; ++p) want -= logp[static_cast<std::size_t>(levels[p] * 4 + p)];
  EXPECT_NEAR(models::pixel_nll(logits, x).item(), want / 4, 1e-5);

  // Two training images of two pixels: pixel 0 is always level 0, pixel 1 is 255 then 0; smoothed counts give
  // p(0 at pixel 0) = 3 / 258, p(255 at pixel 1) = 2 / 258.
  const Tensor train = from_vector(std::vector<float>{0.0f, 1.0f, 0.0f, 0.0f}, {2, 1, 1, 2});
  const Tensor test = from_vector(std::vector<float>{0.0f, 1.0f}, {1, 1, 1, 2});
  EXPECT_NEAR(models::independent_pixels_bits_per_dim(train, test),
              -(std::log2(3.0 / 258.0) + std::log2(2.0 / 258.0)) / 2, 1e-12);

  // Sampling is seeded and gives intensities on the 256 levels.
  Generator a(7), b(7);
  const Tensor s1 = models::sample_pixelcnn(model, 3, 4, 4, &a), s2 = models::sample_pixelcnn(model, 3, 4, 4, &b);
  EXPECT_EQ(s1.to_vector<float>(), s2.to_vector<float>());
  for (const float v : s1.to_vector<float>()) EXPECT_NEAR(v * 255.0f, std::round(v * 255.0f), 1e-3f);
}

}  // namespace
}  // namespace lockstep
