// Differentiable 2-D convolution and transposed convolution of NCHW tensors (grouped, strided, dilated,
// zero or reflection padded), and the output-size formulas they follow.
#pragma once

#include "src/ops/pad.h"

namespace lockstep {

enum class PaddingMode : std::uint8_t { kZeros, kReflect };

// Output extent of a convolution along one axis: floor((in + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1,
// i.e. floor((W - F + 2P) / S) + 1 without dilation.
std::int64_t conv_output_size(std::int64_t in, std::int64_t kernel, std::int64_t padding, std::int64_t stride,
                              std::int64_t dilation = 1);
// Output extent of a transposed convolution: stride * (in - 1) + dilation * (kernel - 1) + 1 - 2 * padding + output_padding.
std::int64_t conv_transpose_output_size(std::int64_t in, std::int64_t kernel, std::int64_t padding, std::int64_t stride,
                                        std::int64_t dilation = 1, std::int64_t output_padding = 0);

// x [N, C, H, W], w [K, C / groups, R, S], bias [K] or undefined -> y [N, K, P, Q] (cross-correlation, as in
// PyTorch). kReflect pads x by reflection (pad2d) and then convolves without padding.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias = {}, Size2d stride = {1, 1}, Size2d padding = {0, 0},
              Size2d dilation = {1, 1}, std::int64_t groups = 1, PaddingMode padding_mode = PaddingMode::kZeros);

// The adjoint of conv2d with respect to its input, plus a bias: x [N, Cin, H, W], w [Cin, Cout / groups, R, S],
// bias [Cout] or undefined -> y [N, Cout, Ho, Wo] with Ho = conv_transpose_output_size(H, R, padding, stride,
// dilation, output_padding). output_padding (added on the bottom/right) must be below stride or dilation.
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& bias = {}, Size2d stride = {1, 1},
                        Size2d padding = {0, 0}, Size2d output_padding = {0, 0}, Size2d dilation = {1, 1},
                        std::int64_t groups = 1);

}  // namespace lockstep
