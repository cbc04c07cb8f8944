// WGANCritic: construction from the shared DCGAN discriminator layers and the forward pass.
#include "src/models/wgan.h"

#include "src/core/error.h"

namespace lockstep::models {

WGANCritic::WGANCritic(std::int64_t channels, std::int64_t image_size, std::int64_t width,
                       DiscriminatorNorm norm)
    : nn::Module("WGANCritic"), channels_(channels), image_size_(image_size), norm_(norm) {
  LOCKSTEP_CHECK(norm != DiscriminatorNorm::kBatchNorm, ValueError,
                 "WGANCritic: expected no normalisation or layer norm, but got batch norm (a critic under a "
                 "gradient penalty must treat each image on its own; use DCGANDiscriminator for batch norm)");
  main_ = register_module("main", dcgan_discriminator_layers(channels, image_size, width, norm));
}

Tensor WGANCritic::forward(const Tensor& input) {
  LOCKSTEP_CHECK(input.dim() == 4 && input.size(1) == channels_ && input.size(2) == image_size_ &&
                     input.size(3) == image_size_,
                 ValueError, "WGANCritic::forward: expected [N, ", channels_, ", ", image_size_, ", ",
                 image_size_, "], but got ", shape_str(input.shape()));
  return main_->forward(input).reshape({input.size(0)});
}

std::string WGANCritic::describe() const {
  return "channels=" + std::to_string(channels_) + ", image_size=" + std::to_string(image_size_) +
         (norm_ == DiscriminatorNorm::kLayerNorm ? ", norm=layer" : "");
}

}  // namespace lockstep::models
