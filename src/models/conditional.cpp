// ConditionalGenerator and ConditionalDiscriminator: construction, label checks and forward passes; the
// generate/discriminate dispatch.
#include "src/models/conditional.h"

#include "src/core/error.h"
#include "src/ops/shape.h"

namespace lockstep::models {
namespace {

void check_labels(const char* where, const Tensor& labels, std::int64_t n, std::int64_t classes) {
  LOCKSTEP_CHECK(
      labels.defined() && labels.dtype() == DType::i64 && labels.dim() == 1 && labels.size(0) == n,
      ValueError, where, ": expected labels i64 [", n, "], but got ",
      labels.defined() ? str_cat(dtype_name(labels.dtype()), " ", shape_str(labels.shape())) : "none");
  for (const std::int64_t label : labels.to_vector<std::int64_t>()) {
    LOCKSTEP_CHECK(label >= 0 && label < classes, ValueError, where, ": expected labels in [0, ", classes,
                   "), but got ", label);
  }
}

}  // namespace

ConditionalGenerator::ConditionalGenerator(std::shared_ptr<nn::Module> generator, std::int64_t latent,
                                           std::int64_t classes)
    : nn::Module("ConditionalGenerator"), latent_(latent), classes_(classes) {
  LOCKSTEP_CHECK(
      generator != nullptr && latent > 0 && classes > 1, ValueError,
      "ConditionalGenerator: expected a generator, a positive latent size and at least 2 classes, but "
      "got latent=",
      latent, ", classes=", classes);
  embedding_ = register_module("embedding", std::make_shared<nn::Embedding>(classes, classes));
  generator_ = register_module("generator", std::move(generator));
}

Tensor ConditionalGenerator::forward(const Tensor& z, const Tensor& labels) {
  LOCKSTEP_CHECK(z.dim() == 2 && z.size(1) == latent_, ValueError,
                 "ConditionalGenerator::forward: expected z [N, ", latent_, "], but got ",
                 shape_str(z.shape()));
  check_labels("ConditionalGenerator::forward", labels, z.size(0), classes_);
  return generator_->forward(cat({z, embedding_->forward(labels).to(z.dtype())}, 1));
}

Tensor ConditionalGenerator::forward(const Tensor& /*z*/) {
  throw ValueError("ConditionalGenerator::forward: expected class labels with the noise, but got none");
}

std::string ConditionalGenerator::describe() const {
  return str_cat("latent=", latent_, ", classes=", classes_);
}

ConditionalDiscriminator::ConditionalDiscriminator(std::shared_ptr<nn::Module> discriminator,
                                                   std::int64_t channels, std::int64_t height,
                                                   std::int64_t width, std::int64_t classes)
    : nn::Module("ConditionalDiscriminator"),
      channels_(channels),
      height_(height),
      width_(width),
      classes_(classes) {
  LOCKSTEP_CHECK(
      discriminator != nullptr && channels > 0 && height > 0 && width > 0 && classes > 1, ValueError,
      "ConditionalDiscriminator: expected a discriminator, positive image sizes and at least 2 classes, "
      "but got ",
      channels, "x", height, "x", width, " images and ", classes, " classes");
  embedding_ = register_module("embedding", std::make_shared<nn::Embedding>(classes, height * width));
  discriminator_ = register_module("discriminator", std::move(discriminator));
}

Tensor ConditionalDiscriminator::forward(const Tensor& images, const Tensor& labels) {
  LOCKSTEP_CHECK(images.dim() == 4 && images.size(1) == channels_ && images.size(2) == height_ &&
                     images.size(3) == width_,
                 ValueError, "ConditionalDiscriminator::forward: expected [N, ", channels_, ", ", height_,
                 ", ", width_, "], but got ", shape_str(images.shape()));
  const std::int64_t n = images.size(0);
  check_labels("ConditionalDiscriminator::forward", labels, n, classes_);
  const Tensor maps = embedding_->forward(labels).to(images.dtype()).reshape({n, 1, height_, width_});
  return discriminator_->forward(cat({images, maps}, 1));
}

Tensor ConditionalDiscriminator::forward(const Tensor& /*images*/) {
  throw ValueError("ConditionalDiscriminator::forward: expected class labels with the images, but got none");
}

std::string ConditionalDiscriminator::describe() const {
  return str_cat("images ", channels_, "x", height_, "x", width_, ", classes=", classes_);
}

Tensor generate(nn::Module& generator, const Tensor& z, const Tensor& labels) {
  if (auto* conditional = dynamic_cast<ConditionalGenerator*>(&generator))
    return conditional->forward(z, labels);
  LOCKSTEP_CHECK(!labels.defined(), ValueError, "generate: expected no labels for the unconditional ",
                 generator.type_name(), ", but got some");
  return generator.forward(z);
}

Tensor discriminate(nn::Module& discriminator, const Tensor& images, const Tensor& labels) {
  if (auto* conditional = dynamic_cast<ConditionalDiscriminator*>(&discriminator))
    return conditional->forward(images, labels);
  LOCKSTEP_CHECK(!labels.defined(), ValueError, "discriminate: expected no labels for the unconditional ",
                 discriminator.type_name(), ", but got some");
  return discriminator.forward(images);
}

}  // namespace lockstep::models
