// Autoencoder construction and passes, and the autoencoder objectives.
#include "src/models/autoencoder.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <utility>

#include "src/autograd/engine.h"
#include "src/autograd/grad_mode.h"
#include "src/core/error.h"
#include "src/nn/activation.h"
#include "src/nn/conv.h"
#include "src/nn/linear.h"
#include "src/ops/activation.h"
#include "src/ops/elementwise.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"

namespace lockstep::models {
namespace {

// ||J^T v||^2 averaged over the images, for codes computed from x (which requires grad).
Tensor projection_norm(const Tensor& x, const Tensor& codes, const Tensor& v) {
  LOCKSTEP_CHECK(v.shape() == codes.shape(), ValueError, "jacobian_frobenius_projection: expected a probe ",
                 shape_str(codes.shape()), " like the codes, but got ", shape_str(v.shape()));
  const Tensor g = grad({sum(codes * v)}, {x}, {}, RetainGraph::kYes, CreateGraph::kYes)[0];
  return sum(square(g)) / static_cast<double>(std::max<std::int64_t>(x.size(0), 1));
}

constexpr std::int64_t kConv1 = 32, kConv2 = 64;  // the convolutional stages' channels

std::shared_ptr<nn::Conv2d> conv_down(std::int64_t in, std::int64_t out) {
  return std::make_shared<nn::Conv2d>(
      nn::Conv2dOptions{.in = in, .out = out, .kernel = 4, .stride = 2, .padding = 1});
}

std::shared_ptr<nn::ConvTranspose2d> conv_up(std::int64_t in, std::int64_t out) {
  return std::make_shared<nn::ConvTranspose2d>(
      nn::ConvTranspose2dOptions{.in = in, .out = out, .kernel = 4, .stride = 2, .padding = 1});
}

}  // namespace

Autoencoder::Autoencoder(AutoencoderOptions options)
    : nn::Module("Autoencoder"), options_(std::move(options)) {
  const AutoencoderOptions& o = options_;
  LOCKSTEP_CHECK(o.channels > 0 && o.height > 0 && o.width > 0 && o.code > 0, ValueError,
                 "Autoencoder: expected positive image sizes and code size, but got ", o.channels, "x",
                 o.height, "x", o.width, " images and a code of ", o.code);
  LOCKSTEP_CHECK(
      !o.variational || o.code_activation == CodeActivation::kLinear, ValueError,
      "Autoencoder: expected a linear code for a VAE (its encoder gives a mean and a log-variance), but "
      "got a sigmoid code");
  const std::int64_t outputs = o.variational ? 2 * o.code : o.code;
  encoder_ = register_module("encoder", std::make_shared<nn::Sequential>());
  decoder_ = register_module("decoder", std::make_shared<nn::Sequential>());
  std::int64_t features = o.channels * o.height * o.width;
  if (o.architecture == AutoencoderArchitecture::kConv) {
    LOCKSTEP_CHECK(
        o.height % 4 == 0 && o.width % 4 == 0, ValueError,
        "Autoencoder: expected a height and width divisible by 4 for the convolutional architecture, "
        "but got ",
        o.height, "x", o.width);
    encoder_->push_back(conv_down(o.channels, kConv1));
    encoder_->push_back(std::make_shared<nn::ReLU>());
    encoder_->push_back(conv_down(kConv1, kConv2));
    encoder_->push_back(std::make_shared<nn::ReLU>());
    features = kConv2 * (o.height / 4) * (o.width / 4);
  }
  encoder_->push_back(std::make_shared<nn::Flatten>());
  const std::vector<std::int64_t>& hidden = o.hidden;
  std::int64_t in = features;
  for (const std::int64_t h : hidden) {
    LOCKSTEP_CHECK(h > 0, ValueError, "Autoencoder: expected positive hidden sizes, but got ", h);
    encoder_->push_back(std::make_shared<nn::Linear>(in, h));
    encoder_->push_back(std::make_shared<nn::ReLU>());
    in = h;
  }
  encoder_->push_back(std::make_shared<nn::Linear>(in, outputs));
  if (o.code_activation == CodeActivation::kSigmoid) encoder_->push_back(std::make_shared<nn::Sigmoid>());

  // The decoder mirrors the encoder: the hidden widths reversed, then the pixels (or the conv stages).
  in = o.code;
  for (auto h = hidden.rbegin(); h != hidden.rend(); ++h) {
    decoder_->push_back(std::make_shared<nn::Linear>(in, *h));
    decoder_->push_back(std::make_shared<nn::ReLU>());
    in = *h;
  }
  decoder_->push_back(std::make_shared<nn::Linear>(in, features));
  if (o.architecture == AutoencoderArchitecture::kConv) {
    decoder_->push_back(std::make_shared<nn::ReLU>());
    decoder_->push_back(std::make_shared<nn::Unflatten>(Shape{kConv2, o.height / 4, o.width / 4}));
    decoder_->push_back(conv_up(kConv2, kConv1));
    decoder_->push_back(std::make_shared<nn::ReLU>());
    decoder_->push_back(conv_up(kConv1, o.channels));
  }
}

void Autoencoder::check_images(const char* where, const Tensor& images) const {
  LOCKSTEP_CHECK(images.dim() == 4 && images.size(1) == options_.channels &&
                     images.size(2) == options_.height && images.size(3) == options_.width,
                 ValueError, where, ": expected images [N, ", options_.channels, ", ", options_.height, ", ",
                 options_.width, "], but got ", shape_str(images.shape()));
}

Tensor Autoencoder::encode(const Tensor& images) {
  if (options_.variational) return posterior(images).mean;
  check_images("Autoencoder::encode", images);
  return encoder_->forward(images);
}

Autoencoder::Posterior Autoencoder::posterior(const Tensor& images) {
  LOCKSTEP_CHECK(options_.variational, ValueError,
                 "Autoencoder::posterior: expected a variational autoencoder, but this one is deterministic");
  check_images("Autoencoder::posterior", images);
  const Tensor out = encoder_->forward(images);
  return {out.slice(1, 0, options_.code), out.slice(1, options_.code, 2 * options_.code)};
}

Tensor Autoencoder::decode(const Tensor& codes) {
  LOCKSTEP_CHECK(codes.dim() == 2 && codes.size(1) == options_.code, ValueError,
                 "Autoencoder::decode: expected codes [N, ", options_.code, "], but got ",
                 shape_str(codes.shape()));
  return decoder_->forward(codes).reshape(
      {codes.size(0), options_.channels, options_.height, options_.width});
}

Tensor Autoencoder::forward(const Tensor& images) { return sigmoid(decode(encode(images))); }

std::string Autoencoder::describe() const {
  return str_cat(options_.architecture == AutoencoderArchitecture::kMlp ? "mlp" : "conv",
                 ", code=", options_.code, options_.variational ? ", variational" : "",
                 options_.code_activation == CodeActivation::kSigmoid ? ", sigmoid code" : "");
}

Tensor reconstruction_loss(ReconstructionLoss kind, const Tensor& logits, const Tensor& target) {
  const double n = static_cast<double>(std::max<std::int64_t>(logits.size(0), 1));
  if (kind == ReconstructionLoss::kBce)
    return binary_cross_entropy_with_logits(logits, target, Reduction::kSum) / n;
  return mse_loss(sigmoid(logits), target, Reduction::kSum) / n;
}

Tensor negative_log_likelihood(ReconstructionLoss kind, const Tensor& logits, const Tensor& target) {
  if (kind == ReconstructionLoss::kBce) return reconstruction_loss(kind, logits, target);
  const double values = static_cast<double>(target.numel() / std::max<std::int64_t>(target.size(0), 1));
  return reconstruction_loss(kind, logits, target) * 0.5 + 0.5 * values * std::log(2.0 * std::numbers::pi);
}

Tensor l1_sparsity(const Tensor& codes) {
  return sum(abs(codes)) / static_cast<double>(std::max<std::int64_t>(codes.size(0), 1));
}

Tensor kl_sparsity(const Tensor& codes, double rho, const Tensor& global_mean) {
  LOCKSTEP_CHECK(rho > 0.0 && rho < 1.0, ValueError, "kl_sparsity: expected a target rho in (0, 1), but got ",
                 rho);
  const auto kl = [rho](const Tensor& rho_hat) {
    return sum(rho * log(rho / rho_hat) + (1.0 - rho) * log((1.0 - rho) / (1.0 - rho_hat)));
  };
  if (!global_mean.defined()) return kl(clamp(mean(codes, {0}), 1e-6, 1.0 - 1e-6));
  LOCKSTEP_CHECK(global_mean.shape() == Shape{codes.size(1)}, ValueError,
                 "kl_sparsity: expected a global mean [", codes.size(1), "], but got ",
                 shape_str(global_mean.shape()));
  const Tensor rho_hat = clamp(global_mean.detach().to(codes.dtype()), 1e-6, 1.0 - 1e-6);
  // d KL / d rho_hat_j, times this rank's mean codes: averaged over the ranks, the chain rule through the
  // global mean. The value is replaced by the KL itself.
  const Tensor slope = (1.0 - rho) / (1.0 - rho_hat) - rho / rho_hat;
  const Tensor surrogate = sum(slope * mean(codes, {0}));
  return surrogate + (kl(rho_hat) - surrogate.detach());
}

Tensor jacobian_frobenius(const std::function<Tensor(const Tensor&)>& encode, const Tensor& images) {
  Tensor x = images.detach();
  x.requires_grad_(true);
  const Tensor codes = encode(x);
  Tensor total;
  for (std::int64_t j = 0; j < codes.size(1); ++j) {
    const Tensor g = grad({sum(codes.select(1, j))}, {x}, {}, RetainGraph::kYes, CreateGraph::kYes)[0];
    total = total.defined() ? total + sum(square(g)) : sum(square(g));
  }
  return total / static_cast<double>(std::max<std::int64_t>(images.size(0), 1));
}

Tensor jacobian_frobenius_estimate(const std::function<Tensor(const Tensor&)>& encode, const Tensor& images,
                                   Generator* gen) {
  Tensor x = images.detach();
  x.requires_grad_(true);
  const Tensor codes = encode(x);
  return projection_norm(x, codes, randn(codes.shape(), 0.0, 1.0, codes.dtype(), kCPU, gen));
}

Tensor jacobian_frobenius_projection(const std::function<Tensor(const Tensor&)>& encode, const Tensor& images,
                                     const Tensor& v) {
  Tensor x = images.detach();
  x.requires_grad_(true);
  return projection_norm(x, encode(x), v);
}

Tensor importance_weighted_log_likelihood(Autoencoder& vae, ReconstructionLoss kind, const Tensor& images,
                                          std::int64_t k, Generator* gen) {
  LOCKSTEP_CHECK(k >= 1, ValueError, "importance_weighted_log_likelihood: expected k >= 1, but got ", k);
  NoGradGuard no_grad;
  const std::int64_t n = images.size(0);
  const Autoencoder::Posterior q = vae.posterior(images);
  const Tensor mean = q.mean.to(DType::f64), logvar = q.logvar.to(DType::f64);
  const Tensor std = exp(logvar * 0.5);
  const std::vector<std::int64_t> pixels = {1, 2, 3};
  const double log_2pi = std::log(2.0 * std::acos(-1.0));
  const double d = static_cast<double>(images.numel() / std::max<std::int64_t>(n, 1));  // values per image
  std::vector<std::vector<double>> weights(static_cast<std::size_t>(n));  // log weights per image
  for (std::int64_t i = 0; i < k; ++i) {
    const Tensor eps = randn(mean.shape(), 0.0, 1.0, DType::f64, kCPU, gen);
    const Tensor z = mean + std * eps;
    const Tensor logits = vae.decode(z.to(images.dtype())).to(DType::f64);
    const Tensor x = images.to(DType::f64);
    // log p(x | z) per image.
    Tensor log_px;
    if (kind == ReconstructionLoss::kBce) {
      log_px = -sum(binary_cross_entropy_with_logits(logits, x, Reduction::kNone), pixels);
    } else {
      log_px = sum(square(sigmoid(logits) - x), pixels) * -0.5 - 0.5 * d * log_2pi;
    }
    // log p(z) - log q(z | x) per image: the normalising constants cancel.
    const Tensor log_pz = sum(square(z), {1}) * -0.5;
    const Tensor log_qz = sum(square(eps) + logvar, {1}) * -0.5;
    const std::vector<double> w = (log_px + log_pz - log_qz).to_vector<double>();
    for (std::int64_t j = 0; j < n; ++j)
      weights[static_cast<std::size_t>(j)].push_back(w[static_cast<std::size_t>(j)]);
  }
  std::vector<double> out;
  for (const std::vector<double>& w : weights) {  // log mean exp, stably
    const double top = *std::max_element(w.begin(), w.end());
    double total = 0.0;
    for (const double v : w) total += std::exp(v - top);
    out.push_back(top + std::log(total / static_cast<double>(k)));
  }
  return from_vector(out, {n});
}

Tensor gaussian_noise(const Tensor& images, double sigma, Generator* gen) {
  return images + randn(images.shape(), 0.0, sigma, images.dtype(), kCPU, gen);
}

Tensor masking_noise(const Tensor& images, double p, Generator* gen) {
  const Tensor keep =
      gt(rand(images.shape(), 0.0, 1.0, images.dtype(), kCPU, gen), full(images.shape(), p, images.dtype()));
  return images * keep.to(images.dtype());
}

}  // namespace lockstep::models
