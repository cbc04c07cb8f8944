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

}  // namespace lockstep
