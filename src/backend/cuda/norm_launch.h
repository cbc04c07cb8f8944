// Launchers of the CUDA batch-norm and layer-norm kernels (defined in norm_kernels.cu): they run on the
// current device and the default stream, return without waiting, and raise DeviceError when a launch fails.
// Batch norm: x, dy, y, dx are contiguous [n, c, l] of `dtype` (f32, f64); per-channel tensors have c
// elements. Layer norm: x, dy, y, dx are contiguous [rows, cols]; mean, rstd have rows elements, weight,
// bias, dweight, dbias cols. Weight and bias may be null (1 and 0).
#pragma once

#include <cstdint>

#include "src/core/dtype.h"

namespace lockstep::cuda {

// mean, var (biased) per channel, written as `stats_dtype` (dtype, or f64 for SyncBatchNorm).
void launch_batch_norm_stats(DType dtype, DType stats_dtype, const void* x, void* mean, void* var,
                             std::int64_t n, std::int64_t c, std::int64_t l);
void launch_batch_norm_apply(DType dtype, const void* x, const void* mean, const void* invstd,
                             const void* weight, const void* bias, void* y, std::int64_t n, std::int64_t c,
                             std::int64_t l);
void launch_batch_norm_backward_reduce(DType dtype, const void* dy, const void* x, const void* mean,
                                       void* sum_dy, void* sum_dy_xmu, std::int64_t n, std::int64_t c,
                                       std::int64_t l);
void launch_batch_norm_backward_apply(DType dtype, const void* dy, const void* x, const void* mean,
                                      const void* invstd, const void* weight, const void* sum_dy,
                                      const void* sum_dy_xmu, double count, void* dx, std::int64_t n,
                                      std::int64_t c, std::int64_t l);

void launch_layer_norm(DType dtype, const void* x, const void* weight, const void* bias, double eps, void* y,
                       void* mean, void* rstd, std::int64_t rows, std::int64_t cols);
// dx, dweight, dbias: each written when not null.
void launch_layer_norm_backward(DType dtype, const void* dy, const void* x, const void* mean,
                                const void* rstd, const void* weight, void* dx, void* dweight, void* dbias,
                                std::int64_t rows, std::int64_t cols);

}  // namespace lockstep::cuda
