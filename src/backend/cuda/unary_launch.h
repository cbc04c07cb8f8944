// Launchers of the unary CUDA kernels (defined in unary_kernels.cu). They run on the current device and the
// default stream, return without waiting, and raise DeviceError when a launch fails. f32 and f64.
#pragma once

#include <cstdint>

#include "src/backend/cuda/layout.h"
#include "src/core/dtype.h"
#include "src/ops/unary_formulas.h"

namespace lockstep::cuda {

// out[i] = f(x[i]) (unary_forward_formula); operands 0, 1 are out, x; out may be x (same layout).
void launch_unary(UnaryOp op, DType dtype, void* out, const void* x, const Layout<2>& layout, std::int64_t n,
                  double a, double b);
// d[i] = g[i] * f'(x[i]) (unary_backward_formula) over n contiguous elements; x and y may be null where the
// derivative does not read them.
void launch_unary_backward(UnaryOp op, DType dtype, const void* g, const void* x, const void* y, void* d,
                           std::int64_t n, double a, double b);

}  // namespace lockstep::cuda
