// 2-D padding of the last two dimensions of a tensor (constant value or reflection), differentiable, and the
// Size2d pair (height, width) shared by the spatial ops (conv, pool, upsample).
#pragma once

#include <array>
#include <cstdint>

#include "src/ops/kernels.h"

namespace lockstep {

// A (height, width) pair: kernel sizes, strides, paddings, dilations, output sizes.
using Size2d = std::array<std::int64_t, 2>;

// Pads the last two dimensions of x (any tensor with at least 2 dimensions) by pads = {left, right, top,
// bottom}, all >= 0. kConstant fills with `value`; kReflect mirrors without repeating the edge, as in
// PyTorch, and needs each pad to be smaller than the size of its dimension.
// x [.., H, W] -> y [.., H + top + bottom, W + left + right].
Tensor pad2d(const Tensor& x, Pads2d pads, PadMode mode = PadMode::kConstant, double value = 0.0);

}  // namespace lockstep
