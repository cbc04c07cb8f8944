// Parameter initialisers (PyTorch's torch.nn.init, same formulas) and the small enums the layers share
// (Bias, Affine, FanMode). Every initialiser fills in place, outside autograd, from a counter-based Generator.
#pragma once

#include <cstdint>

#include "src/core/rng.h"
#include "src/tensor/factories.h"
#include "src/tensor/tensor.h"

namespace lockstep::nn {

// Whether a layer has an additive bias.
enum class Bias : std::uint8_t { kNo, kYes };
// Whether a normalisation layer has a learned scale and shift.
enum class Affine : std::uint8_t { kNo, kYes };
// Which fan the Kaiming initialisers preserve: the forward (fan in) or the backward (fan out) variance.
enum class FanMode : std::uint8_t { kFanIn, kFanOut };

// fan_in: size(1) * receptive field; fan_out: size(0) * receptive field (receptive field = product of the
// dimensions after the first two). ValueError for tensors with fewer than 2 dimensions.
std::int64_t fan_in(const Tensor& t);
std::int64_t fan_out(const Tensor& t);

// The random initialisers draw from `gen` (the default generator when null) and record no autograd history,
// so they apply to parameters directly. uniform_(t, lo, hi, gen) and normal_(t, mean, std, gen) are the
// fills of src/tensor/factories.h, re-exported so that nn::uniform_ and an unqualified call agree.
using lockstep::normal_;
using lockstep::uniform_;

// Fills a 2-d t [rows, cols] with a random orthogonal matrix (Saxe et al. 2014): orthonormal rows when
// rows <= cols, else orthonormal columns, by modified Gram-Schmidt in f64 on N(0, 1) draws. ValueError for
// other ranks.
void orthogonal_(const Tensor& t, Generator* gen = nullptr);
void constant_(const Tensor& t, double value);
void zeros_(const Tensor& t);
void ones_(const Tensor& t);
// U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out)).
void xavier_uniform_(const Tensor& t, double gain = 1.0, Generator* gen = nullptr);
// N(0, s) with s = gain * sqrt(2 / (fan_in + fan_out)).
void xavier_normal_(const Tensor& t, double gain = 1.0, Generator* gen = nullptr);
// U(-b, b) with b = sqrt(2 / (1 + a^2)) * sqrt(3 / fan); `a` is the negative slope of the leaky ReLU that
// follows (0 for ReLU).
void kaiming_uniform_(const Tensor& t, double a = 0.0, FanMode mode = FanMode::kFanIn,
                      Generator* gen = nullptr);
// N(0, s) with s = sqrt(2 / (1 + a^2)) / sqrt(fan).
void kaiming_normal_(const Tensor& t, double a = 0.0, FanMode mode = FanMode::kFanIn,
                     Generator* gen = nullptr);

}  // namespace lockstep::nn
