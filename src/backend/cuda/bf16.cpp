// bf16 tensors for the CUDA kernels (bf16.h), on the conversion kernels of bf16_kernels.cu.
#include "src/backend/cuda/bf16.h"

#include <cstdint>

#include "src/backend/cuda/bf16_launch.h"
#include "src/backend/cuda/device.h"
#include "src/tensor/factories.h"

namespace lockstep::cuda {

Tensor bf16_like(const Tensor& t) { return empty(t.shape(), DType::bf16, t.device()); }

Tensor to_bf16(const Tensor& t) {
  LOCKSTEP_CHECK(t.dtype() == DType::f32 && t.is_contiguous(), TypeError,
                 "to_bf16 (CUDA): expected a contiguous f32 tensor, but got ", dtype_name(t.dtype()), " ",
                 shape_str(t.shape()));
  Tensor out = bf16_like(t);
  DeviceGuard guard(t.device());
  launch_to_bf16(t.data<float>(), static_cast<std::uint16_t*>(out.data()), t.numel());
  return out;
}

void widen(const Tensor& src, const Tensor& dst) {
  LOCKSTEP_CHECK(src.dtype() == DType::bf16 && dst.dtype() == DType::f32 && dst.is_contiguous() &&
                     src.numel() == dst.numel(),
                 TypeError, "widen (CUDA): expected bf16 into contiguous f32 of as many elements, but got ",
                 dtype_name(src.dtype()), " ", shape_str(src.shape()), " into ", dtype_name(dst.dtype()), " ",
                 shape_str(dst.shape()));
  DeviceGuard guard(dst.device());
  launch_from_bf16(static_cast<const std::uint16_t*>(src.data()), dst.data<float>(), dst.numel());
}

Tensor rounded_to_bf16(const Tensor& t) {
  Tensor out = empty(t.shape(), DType::f32, t.device());
  widen(to_bf16(t), out);
  return out;
}

}  // namespace lockstep::cuda
