// What the CycleGAN task (launch/train/cyclegan.cpp) shares with `lockstep sample` and the tests: its
// networks from settings, its losses, the image pools (history buffers) of generated images, and the
// translation grid input | translation | reconstruction.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "launch/config/settings.h"
#include "launch/train/factory.h"
#include "src/models/cyclegan.h"
#include "src/nn/module.h"
#include "src/tensor/tensor.h"

namespace lockstep::launch {

// generator.name = "cyclegan-resnet" (width, residual_blocks) and discriminator.name = "patchgan" (width,
// layers) for images of `data`, initialised N(0, 0.02) from the default generator. ConfigError at the
// model's name when the images do not fit (generator: sides multiples of 4 and at least 8; PatchGAN: at
// least 3 * 2^layers).
std::shared_ptr<models::CycleGANGenerator> make_cyclegan_generator(const ModelSection& model,
                                                                   const DataGeometry& data);
std::shared_ptr<models::PatchGANDiscriminator> make_patchgan(const ModelSection& model,
                                                             const DataGeometry& data);

// The generators' objective on one batch of each domain, with G: A -> B and F: B -> A, D_A judging domain A
// and D_B domain B (least squares, as the paper):
//   adversarial = mean((D_B(G(a)) - 1)^2) + mean((D_A(F(b)) - 1)^2)
//   cycle       = lambda_cycle * (mean|F(G(a)) - a| + mean|G(F(b)) - b|)
//   identity    = lambda_cycle * lambda_identity * (mean|G(b) - b| + mean|F(a) - a|)   (skipped when 0)
// `g`, `f` are the generators' forward passes (a DataParallel wrapper's, or a module's), `d_a`, `d_b` the
// discriminators'. The translations G(a), F(b) are returned for the discriminators' step.
struct CycleGanLosses {
  Tensor adversarial, cycle, identity, total;  // identity undefined when lambda_identity is 0
  Tensor fake_b, fake_a;                       // G(a), F(b)
};
using Network = std::function<Tensor(const Tensor&)>;
CycleGanLosses cyclegan_generator_losses(const Network& g, const Network& f, const Network& d_a,
                                         const Network& d_b, const Tensor& real_a, const Tensor& real_b,
                                         double lambda_cycle, double lambda_identity);

// The discriminator's least-squares loss: 0.5 * (mean((D(real) - 1)^2) + mean(D(fake)^2)).
Tensor lsgan_discriminator_loss(const Tensor& real_scores, const Tensor& fake_scores);

// A history of up to `capacity` generated images (Shrivastava et al. 2017, as CycleGAN's ImagePool): buffers
// images [capacity, C, H, W] (f32) and count (i64, the slots filled). Not thread-safe.
class ImagePool : public nn::Module {
 public:
  ImagePool(std::int64_t capacity, std::int64_t channels, std::int64_t height, std::int64_t width);
  std::int64_t capacity() const { return capacity_; }
  std::int64_t count() const;
  const Tensor& images() const { return images_; }
  // CycleGAN's query for one image: while the pool is not full, stores it and returns it; then, with
  // probability 1/2 (coin >= 2^31), returns the stored image in slot `slot` mod capacity and stores the new
  // one in its place, else returns the new one. image [C, H, W]; the result is a fresh tensor.
  Tensor query_one(const Tensor& image, std::uint32_t coin, std::uint32_t slot);

 private:
  std::int64_t capacity_;
  Tensor images_;
  Tensor count_;
};

// The pools of both domains' generated images and the random stream that drives them, as buffers (saved
// with the trainer state, so that a resumed run draws as a straight one): children "a" (images F(b), shown
// to D_A) and "b" (images G(a), shown to D_B), buffer "stream" (i64 [2]: Philox seed and next counter).
// Every rank holds the same pools: the task queries them with the generated images of the whole job (every
// rank's, in the order of the global batch), so N ranks with batch B draw as one process with batch N * B.
// Not thread-safe.
class ImagePools : public nn::Module {
 public:
  ImagePools(std::int64_t capacity, std::int64_t channels, std::int64_t height, std::int64_t width,
             std::uint64_t seed);
  enum class Domain { kA, kB };
  // The images [N, C, H, W] to show the discriminator of `domain` in place of `generated` (no gradient),
  // query_one over the images in order, each full-pool decision taking one Philox counter of the stream.
  Tensor query(Domain domain, const Tensor& generated);
  ImagePool& pool(Domain domain) { return domain == Domain::kA ? *a_ : *b_; }

 private:
  std::shared_ptr<ImagePool> a_, b_;
  Tensor stream_;
};

// input | forward(input) | backward(forward(input)) for each image of `inputs` [N, C, H, W] (eval mode, no
// gradients): [3N, C, H, W], three consecutive images per input, for a grid of 3 (or 6) columns.
Tensor translation_rows(nn::Module& forward, nn::Module& backward, const Tensor& inputs);

}  // namespace lockstep::launch
