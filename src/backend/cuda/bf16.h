// bf16 tensors for the CUDA kernels of run.precision = "bf16" (cuBLAS's and cuDNN's bf16 operands), made on
// the operands' device and the default stream with the rounding of src/core/precision.h.
#pragma once

#include "src/tensor/tensor.h"

namespace lockstep::cuda {

// A bf16 copy of the contiguous f32 tensor `t`.
Tensor to_bf16(const Tensor& t);
// An uninitialised bf16 tensor of `t`'s shape on its device.
Tensor bf16_like(const Tensor& t);
// dst (contiguous f32) = src (bf16), element by element.
void widen(const Tensor& src, const Tensor& dst);
// An f32 copy of `t` holding its values rounded to bf16 (operands for f32 kernels computing bf16's products).
Tensor rounded_to_bf16(const Tensor& t);

}  // namespace lockstep::cuda
