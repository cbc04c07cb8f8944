// The course's autoencoders (undercomplete, sparse, denoising, contractive) and the variational autoencoder
// (Kingma and Welling 2014): an MLP or convolutional encoder to a code, a mirrored decoder back to pixel
// logits, and the objectives: reconstruction (BCE or MSE, summed per image), sparsity (L1 or KL to rho),
// the contractive penalty and the VAE's KL to N(0, I).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "src/core/rng.h"
#include "src/nn/container.h"
#include "src/nn/module.h"

namespace lockstep::models {

enum class AutoencoderArchitecture : std::uint8_t {
  kMlp,   // flatten, Linear + ReLU per hidden layer, Linear to the code; the decoder mirrors it
  kConv,  // Conv(4, 2, 1) to 32 then 64 channels + ReLU, then as kMlp from the flattened features; the
          // decoder mirrors it with transposed convolutions (height and width divisible by 4)
};

// What the code goes through after the encoder's last linear layer: nothing, or a sigmoid (codes in (0, 1),
// which the KL sparsity penalty needs).
enum class CodeActivation : std::uint8_t { kLinear, kSigmoid };

struct AutoencoderOptions {
  AutoencoderArchitecture architecture = AutoencoderArchitecture::kMlp;
  std::int64_t channels = 1, height = 28, width = 28;
  std::vector<std::int64_t> hidden = {512, 256};  // fully connected layers before the code
  std::int64_t code = 32;
  CodeActivation code_activation = CodeActivation::kLinear;
  // A VAE: the encoder gives the mean and log-variance of a Gaussian code (2 x code outputs, linear).
  bool variational = false;
};

// Owns `encoder` and `decoder` (Sequentials). Not thread-safe.
class Autoencoder : public nn::Module {
 public:
  explicit Autoencoder(AutoencoderOptions options);

  // images [N, C, H, W] -> codes [N, code] (a VAE: the posterior mean).
  Tensor encode(const Tensor& images);
  // A VAE's posterior N(mean, exp(logvar)) of the code: each [N, code].
  struct Posterior {
    Tensor mean, logvar;
  };
  Posterior posterior(const Tensor& images);
  // codes [N, code] -> logits [N, C, H, W] of the pixel intensities (sigmoid gives the image in [0, 1]).
  Tensor decode(const Tensor& codes);
  // images -> reconstructions sigmoid(decode(encode(images))) in [0, 1].
  Tensor forward(const Tensor& images) override;

  const AutoencoderOptions& options() const { return options_; }

 protected:
  std::string describe() const override;

 private:
  void check_images(const char* where, const Tensor& images) const;

  AutoencoderOptions options_;
  std::shared_ptr<nn::Sequential> encoder_, decoder_;
};

enum class ReconstructionLoss : std::uint8_t {
  kBce,  // Bernoulli likelihood of the intensities in [0, 1]: BCE with the logits
  kMse,  // Gaussian: squared error of sigmoid(logits)
};
// The reconstruction loss summed over each image's pixels, averaged over the images (nats per image for
// kBce).
Tensor reconstruction_loss(ReconstructionLoss kind, const Tensor& logits, const Tensor& target);
// -log p(target | logits) in nats, summed over each image's pixels and averaged over the images: the VAE's
// reconstruction term. kBce: as reconstruction_loss; kMse: a unit-variance Gaussian decoder,
// 0.5 * squared error + 0.5 * log(2 pi) per value, so that the ELBO (and the importance-weighted bound) are
// log-likelihoods in nats whichever decoder is chosen.
Tensor negative_log_likelihood(ReconstructionLoss kind, const Tensor& logits, const Tensor& target);

// Sparsity penalties on codes [N, code]: mean over images of sum |code| (L1), or sum over units of
// KL(rho || rho_hat_j) with rho_hat_j the unit's mean activation over the batch (codes in (0, 1)).
// Data-parallel, rho_hat is the mean over the global batch: pass `global_mean` [code] (every rank's codes
// averaged, no gradient). The result then has that KL as its value and, as its gradient on this rank's codes,
// the share of the global penalty's gradient that averaging the ranks' gradients sums back to the whole.
Tensor l1_sparsity(const Tensor& codes);
Tensor kl_sparsity(const Tensor& codes, double rho, const Tensor& global_mean = {});

// ||J||_F^2 of the map images -> codes, averaged over the images, by double backward: one gradient per code
// unit (exact; cost grows with the code size). Differentiable (create_graph) in the encoder's parameters.
Tensor jacobian_frobenius(const std::function<Tensor(const Tensor&)>& encode, const Tensor& images);
// An unbiased estimate of the same: ||J^T v||^2 with v ~ N(0, I) over the code (E[v^T J J^T v] = tr(J J^T)),
// one extra backward whatever the code size; v drawn from `gen` (the default generator when null).
Tensor jacobian_frobenius_estimate(const std::function<Tensor(const Tensor&)>& encode, const Tensor& images,
                                   Generator* gen = nullptr);
// The estimate for a given probe v [N, code]: ||J^T v||^2 averaged over the images.
Tensor jacobian_frobenius_projection(const std::function<Tensor(const Tensor&)>& encode, const Tensor& images,
                                     const Tensor& v);

// A VAE's importance-weighted estimate (Burda et al. 2016) of log p(x) for each image, in nats: with k codes
// z_i ~ q(z | x), log (1/k) sum_i p(x | z_i) p(z_i) / q(z_i | x), under the Bernoulli decoder (BCE) or a
// unit-variance Gaussian one (MSE). k = 1 gives the ELBO of one sample; the estimate rises towards log p(x)
// with k. Returns f64 [N]; draws from `gen` (the default generator when null). No gradients.
Tensor importance_weighted_log_likelihood(Autoencoder& vae, ReconstructionLoss kind, const Tensor& images,
                                          std::int64_t k, Generator* gen = nullptr);

// The denoising autoencoder's corruptions of images in [0, 1]: additive N(0, sigma^2) noise, or masking
// each value to 0 with probability p; drawn from `gen` (the default generator when null).
Tensor gaussian_noise(const Tensor& images, double sigma, Generator* gen = nullptr);
Tensor masking_noise(const Tensor& images, double p, Generator* gen = nullptr);

}  // namespace lockstep::models
