// Launchers of the f32 <-> bf16 conversions (bf16_kernels.cu) that feed cuDNN's bf16 convolutions
// (run.precision = "bf16"): the rounding of src/core/precision.h. They run on the current device and the
// default stream, return without waiting, and raise DeviceError when a launch fails.
#pragma once

#include <cstdint>

namespace lockstep::cuda {

// dst[i] = bf16_bits(src[i]) for n elements.
void launch_to_bf16(const float* src, std::uint16_t* dst, std::int64_t n);
// dst[i] = bf16_to_float(src[i]) for n elements.
void launch_from_bf16(const std::uint16_t* src, float* dst, std::int64_t n);

}  // namespace lockstep::cuda
