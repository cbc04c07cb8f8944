// Unary differentiable ops built on the unary kernel: the op, its saved tensors and its fused backward.
#pragma once

#include "src/ops/kernels.h"

namespace lockstep {

enum class SaveForBackward : std::uint8_t { kInput, kOutput, kBoth, kNone };

// y = f_op(x; a, b) recorded as `name`, saving x and/or y for the fused backward kernel.
Tensor unary_op(const char* name, UnaryOp op, const Tensor& x, SaveForBackward save, double a = 0.0, double b = 0.0);

// f'(x) g for a piecewise-linear op (relu, leaky_relu, hardtanh) from x [*] contiguous and g [*], recorded as
// "<op>_backward" (differentiable in g: under create_graph it is differentiated again). For relu, x may be
// the op's output instead of its input: both give the same mask.
Tensor piecewise_linear_backward(UnaryOp op, const Tensor& g, const Tensor& x, double a = 0.0,
                                 double b = 0.0);

}  // namespace lockstep
