// Plain enums of kernels whose CUDA code includes no Tensor header (the enums of the element-wise ops and the
// random fills live with their formulas: unary_formulas.h, binary_formulas.h, random_formulas.h).
#pragma once

#include <cstdint>

namespace lockstep {

enum class ReduceOp : std::uint8_t { kSum, kMean, kMax, kMin, kArgmax, kArgmin };
enum class SoftmaxKind : std::uint8_t { kSoftmax, kLogSoftmax };

}  // namespace lockstep
