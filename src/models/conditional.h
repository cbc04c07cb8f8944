// Class-conditional GANs (Mirza and Osindero 2014): wrappers that give any generator and discriminator the
// class label. The generator sees a learned embedding of the label joined to z; the discriminator sees a
// learned embedding of the label as one extra input channel (an H x W map per class). The extra channel is
// chosen over a projection discriminator because it conditions every discriminator Lockstep has (MLP, DCGAN,
// WGAN critic) from its first layer without touching its architecture; with Fashion-MNIST's 10 classes it
// costs 10 * H * W parameters.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "src/nn/embedding.h"
#include "src/nn/module.h"

namespace lockstep::models {

// Owns `embedding` (classes x classes, N(0, 1)) and `generator`, which takes z of latent + classes features.
// Not thread-safe.
class ConditionalGenerator : public nn::Module {
 public:
  ConditionalGenerator(std::shared_ptr<nn::Module> generator, std::int64_t latent, std::int64_t classes);
  // z [N, latent], labels i64 [N] in [0, classes) -> the generator's images for [z, embedding(labels)].
  Tensor forward(const Tensor& z, const Tensor& labels);
  // Throws ValueError: a conditional generator needs labels.
  Tensor forward(const Tensor& z) override;
  std::int64_t classes() const { return classes_; }

 protected:
  std::string describe() const override;

 private:
  std::int64_t latent_;
  std::int64_t classes_;
  std::shared_ptr<nn::Embedding> embedding_;
  std::shared_ptr<nn::Module> generator_;
};

// Owns `embedding` (classes x height * width, N(0, 1)) and `discriminator`, which takes images of
// channels + 1 channels. Not thread-safe.
class ConditionalDiscriminator : public nn::Module {
 public:
  ConditionalDiscriminator(std::shared_ptr<nn::Module> discriminator, std::int64_t channels,
                           std::int64_t height, std::int64_t width, std::int64_t classes);
  // images [N, channels, height, width], labels i64 [N] -> the discriminator's scores of the images with the
  // label's map as channel `channels`.
  Tensor forward(const Tensor& images, const Tensor& labels);
  // Throws ValueError: a conditional discriminator needs labels.
  Tensor forward(const Tensor& images) override;

 protected:
  std::string describe() const override;

 private:
  std::int64_t channels_, height_, width_, classes_;
  std::shared_ptr<nn::Embedding> embedding_;
  std::shared_ptr<nn::Module> discriminator_;
};

// A generator's images for noise z: a ConditionalGenerator takes the labels (defined, i64 [N]); any other
// generator takes none (labels undefined). ValueError otherwise.
Tensor generate(nn::Module& generator, const Tensor& z, const Tensor& labels = {});
// A discriminator's scores, with the same rule for labels.
Tensor discriminate(nn::Module& discriminator, const Tensor& images, const Tensor& labels = {});

}  // namespace lockstep::models
