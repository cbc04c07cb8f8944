// The process-wide precision of convolutions and matrix products.
#include "src/core/precision.h"

#include <atomic>

namespace lockstep {
namespace {
std::atomic<MatmulPrecision> g_precision{MatmulPrecision::kF32};
}  // namespace

MatmulPrecision matmul_precision() { return g_precision.load(std::memory_order_relaxed); }

void set_matmul_precision(MatmulPrecision precision) {
  g_precision.store(precision, std::memory_order_relaxed);
}

const char* precision_name(MatmulPrecision precision) {
  return precision == MatmulPrecision::kBf16 ? "bf16" : "f32";
}

std::vector<float> rounded_to_bf16(const float* values, std::int64_t n) {
  std::vector<float> r(static_cast<std::size_t>(n));
#pragma omp parallel for schedule(static) if (n > (std::int64_t{1} << 16))
  for (std::int64_t i = 0; i < n; ++i) r[static_cast<std::size_t>(i)] = round_to_bf16(values[i]);
  return r;
}

std::vector<std::uint16_t> bf16_bits_copy(const float* values, std::int64_t n) {
  std::vector<std::uint16_t> r(static_cast<std::size_t>(n));
#pragma omp parallel for schedule(static) if (n > (std::int64_t{1} << 16))
  for (std::int64_t i = 0; i < n; ++i) r[static_cast<std::size_t>(i)] = bf16_bits(values[i]);
  return r;
}

}  // namespace lockstep
