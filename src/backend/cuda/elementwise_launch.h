// Launchers of the element-wise CUDA kernels (defined in elementwise_kernels.cu). They run on the current
// device and the default stream, return without waiting, and raise DeviceError when a launch fails.
// Pointers are to the first element of each operand; `n` is the number of elements of the layout.
#pragma once

#include <cstdint>

#include "src/backend/cuda/layout.h"
#include "src/core/dtype.h"
#include "src/ops/binary_formulas.h"

namespace lockstep::cuda {

// dst[i] = value converted to `dtype` (f32, f64, i64, u8).
void launch_fill(DType dtype, void* dst, const Layout<1>& layout, std::int64_t n, double value);
// dst[i] = src[i] converted from `src_dtype` to `dst_dtype` (each f32, f64, i64 or u8). Operand 0 is dst.
void launch_copy(DType dst_dtype, void* dst, DType src_dtype, const void* src, const Layout<2>& layout,
                 std::int64_t n);
// out[i] = binary_formula<op>(a[i], b[i], alpha) for f32, f64, i64 and u8 operands (out: u8 for comparisons,
// else their dtype); operands 0, 1, 2 are out, a, b; out may be a (same layout).
void launch_binary(BinaryOp op, DType dtype, void* out, const void* a, const void* b, const Layout<3>& layout,
                   std::int64_t n, double alpha);

// out[i] = cond[i] ? a[i] : b[i] (cond u8; out, a, b of `dtype`); operands 0-3 are out, cond, a, b.
void launch_where(DType dtype, void* out, const void* cond, const void* a, const void* b,
                  const Layout<4>& layout, std::int64_t n);

}  // namespace lockstep::cuda
