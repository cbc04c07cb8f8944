// Loss functions, composed from differentiable ops (so every loss has a gradient with respect to every
// floating input and double backward where its parts have it). Semantics follow PyTorch's functional losses.
#pragma once

#include <cstdint>

#include "src/tensor/tensor.h"

namespace lockstep {

// How per-element losses are combined: mean over all elements, sum, none (the per-element tensor), or the sum
// divided by the batch size (size of dimension 0; kl_div and gaussian_kl only).
enum class Reduction : std::uint8_t { kMean, kSum, kNone, kBatchMean };

// (pred - target)^2 and |pred - target|; shapes must match.
Tensor mse_loss(const Tensor& pred, const Tensor& target, Reduction reduction = Reduction::kMean);
Tensor l1_loss(const Tensor& pred, const Tensor& target, Reduction reduction = Reduction::kMean);

// Binary hinge loss max(0, 1 - y * s) for scores s and targets y in {-1, +1} of the same shape.
Tensor hinge_loss(const Tensor& scores, const Tensor& targets, Reduction reduction = Reduction::kMean);

// PyTorch's MultiMarginLoss (p = 1): per sample sum over j != y of max(0, s_j - s_y + margin) / C, for scores
// [N, C] and class indices target (i64 [N]); kNone gives [N].
Tensor multi_margin_loss(const Tensor& scores, const Tensor& target, Reduction reduction = Reduction::kMean,
                         double margin = 1.0);

// -(t log p + (1 - t) log(1 - p)) with each log clamped at -100, for probabilities p and targets t of one
// shape.
Tensor binary_cross_entropy(const Tensor& prob, const Tensor& target, Reduction reduction = Reduction::kMean);
// The same loss from logits x, computed stably as softplus(x) - x t (= max(x, 0) - x t + log(1 + exp(-|x|))).
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target,
                                        Reduction reduction = Reduction::kMean);

// -logp[n, target[n]] for log-probabilities [N, C] and class indices target (i64 [N], in [0, C)); kNone gives
// [N].
Tensor nll_loss(const Tensor& logp, const Tensor& target, Reduction reduction = Reduction::kMean);
// nll_loss(log_softmax(logits, 1), target) with label smoothing eps in [0, 1]: per sample
// (1 - eps) * nll + eps * mean_c(-logp_c), as in PyTorch.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction = Reduction::kMean,
                     double label_smoothing = 0.0);

// PyTorch's kl_div: target * (log target - input) for input log-probabilities and target probabilities of one
// shape, where target 0 contributes 0. kBatchMean is the mathematically correct KL per sample.
Tensor kl_div(const Tensor& input_logp, const Tensor& target_p, Reduction reduction = Reduction::kMean);

// KL(N(mu, exp(logvar)) || N(0, 1)) of a VAE: -0.5 * (1 + logvar - mu^2 - exp(logvar)) per element, summed
// and divided by the batch size by default.
Tensor gaussian_kl(const Tensor& mu, const Tensor& logvar, Reduction reduction = Reduction::kBatchMean);

}  // namespace lockstep
