// Code shared by the CPU and CUDA kernels: LOCKSTEP_HOST_DEVICE marks a function as compiled for both (plain
// C++ outside nvcc), and the rounding helpers keep both devices' arithmetic the same bits where it matters.
#pragma once

#include <type_traits>

#ifdef __CUDACC__
#define LOCKSTEP_HOST_DEVICE __host__ __device__
#else
#define LOCKSTEP_HOST_DEVICE
#endif

namespace lockstep {

// x * y rounded on its own, never contracted with a following addition into an FMA (nvcc contracts by
// default; the host compiler does not in ISO C++ mode), so that a + x * y has the same bits on both.
template <class T>
LOCKSTEP_HOST_DEVICE inline T mul_rounded(T x, T y) {
#ifdef __CUDA_ARCH__
  if constexpr (std::is_same_v<T, float>) return __fmul_rn(x, y);
  if constexpr (std::is_same_v<T, double>) return __dmul_rn(x, y);
#endif
  return static_cast<T>(x * y);
}

}  // namespace lockstep
