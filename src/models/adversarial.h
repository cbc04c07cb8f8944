// Adversarial examples by the fast gradient sign method (FGSM, Goodfellow et al. 2015): one step of size
// epsilon along the sign of the loss gradient with respect to the input, clipped to the valid pixel range.
#pragma once

#include <vector>

#include "src/nn/module.h"
#include "src/tensor/tensor.h"

namespace lockstep::models {

// How a classifier's input is made from pixels in [0, 1]: input = (pixel - mean[c]) / std[c] per channel.
struct InputNormalization {
  std::vector<double> mean;
  std::vector<double> std;
};

// FGSM examples of `input` (normalised images [N, C, H, W], f32 or f64) with true `labels` (i64 [N]):
// x_adv = clip(x + epsilon / std[c] * sign(d loss / d x)), where loss is the summed cross-entropy of
// model(x) and the clip keeps every pixel in [0, 1], i.e. x_adv in [-mean[c] / std[c], (1 - mean[c]) /
// std[c]]. `epsilon` is in pixel units (0.1 = a tenth of the pixel range). The gradient is a sample's own
// (the model runs in eval mode: batch norm with its running statistics, no dropout; the mode is restored
// afterwards), so each example depends only on its image, label and the model, not on the batch.
// Only d loss / d x is computed (autograd grad()): no parameter's .grad is touched and no gradient hook of a
// data-parallel reducer fires. Returns a tensor without autograd history. ValueError for epsilon < 0 or a
// normalisation without one positive std per channel.
Tensor fgsm(nn::Module& model, const Tensor& input, const Tensor& labels, double epsilon,
            const InputNormalization& normalization);

}  // namespace lockstep::models
