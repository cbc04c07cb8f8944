// Unary differentiable ops built on the unary kernel: the op, its saved tensors and its fused backward.
#pragma once

#include "src/ops/kernels.h"

namespace lockstep {

enum class SaveForBackward : std::uint8_t { kInput, kOutput, kBoth, kNone };

// y = f_op(x; a, b) recorded as `name`, saving x and/or y for the fused backward kernel.
Tensor unary_op(const char* name, UnaryOp op, const Tensor& x, SaveForBackward save, double a = 0.0, double b = 0.0);

}  // namespace lockstep
