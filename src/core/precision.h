// The precision of convolutions and matrix products on f32 tensors (run.precision): f32, or bf16 as mixed
// precision does it — each operand rounded to bfloat16 (round to nearest even), the products (exact in f32)
// accumulated in f32, the result f32. Tensors, master weights, batch norm, softmax, losses, optimizer state
// and checkpoints stay f32; only the multiplications of conv2d, conv_transpose2d and every GEMM (linear,
// matmul, recurrent cells) see bf16 inputs. The kernels reach it through bf16 hardware where there is one
// (oneDNN's bf16 convolutions and matmul) and otherwise by rounding copies of the operands and running the
// f32 kernels, so the numbers are those of bf16 on any CPU, up to summation order. On CUDA: cuBLAS on bf16
// copies of the operands, and cuDNN's bf16 convolutions, whose results are rounded to bf16 too
// (src/backend/cuda/conv.cpp). f64 tensors are unaffected. Process-wide (the training loop sets it once per
// run).
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "src/core/host_device.h"

namespace lockstep {

enum class MatmulPrecision : std::uint8_t { kF32, kBf16 };

MatmulPrecision matmul_precision();
void set_matmul_precision(MatmulPrecision precision);
const char* precision_name(MatmulPrecision precision);  // "f32", "bf16"

// Sets the precision while alive, restoring the previous one.
class MatmulPrecisionScope {
 public:
  explicit MatmulPrecisionScope(MatmulPrecision precision) : previous_(matmul_precision()) {
    set_matmul_precision(precision);
  }
  ~MatmulPrecisionScope() { set_matmul_precision(previous_); }
  MatmulPrecisionScope(const MatmulPrecisionScope&) = delete;
  MatmulPrecisionScope& operator=(const MatmulPrecisionScope&) = delete;

 private:
  MatmulPrecision previous_;
};

// bfloat16 conversions (host and device code: the CPU kernels and the CUDA conversions feeding cuDNN): the
// upper 16 bits of an f32, rounded to nearest even (as oneDNN, cuDNN and PyTorch round); a NaN stays a
// (quiet) NaN, overflow rounds to infinity.
LOCKSTEP_HOST_DEVICE inline std::uint32_t float_bits(float x) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(x);
#else
  std::uint32_t u = 0;
  std::memcpy(&u, &x, sizeof(u));
  return u;
#endif
}

LOCKSTEP_HOST_DEVICE inline std::uint16_t bf16_bits(float x) {
  std::uint32_t u = float_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

LOCKSTEP_HOST_DEVICE inline float bf16_to_float(std::uint16_t bits) {
  const std::uint32_t u = static_cast<std::uint32_t>(bits) << 16;
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float x = 0.0f;
  std::memcpy(&x, &u, sizeof(x));
  return x;
#endif
}

LOCKSTEP_HOST_DEVICE inline float round_to_bf16(float x) { return bf16_to_float(bf16_bits(x)); }

// Copies of n floats rounded to bf16, for the CPU kernels (OpenMP-parallel): as the f32 values they stand
// for (f32 code computing bf16's numbers), and as bf16 bits (operands of bf16 kernels).
std::vector<float> rounded_to_bf16(const float* values, std::int64_t n);
std::vector<std::uint16_t> bf16_bits_copy(const float* values, std::int64_t n);

}  // namespace lockstep
