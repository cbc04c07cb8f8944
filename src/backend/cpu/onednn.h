// The one oneDNN CPU engine of the process and each thread's stream on it, for the kernels that run oneDNN
// primitives (convolutions: conv_onednn.cpp; bf16 GEMM: linalg.cpp).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <dnnl.hpp>

namespace lockstep::cpu {

dnnl::engine& onednn_engine();
dnnl::stream& onednn_stream();  // the calling thread's

// Hash (FNV-1a) of the integer fields that key the caches of primitives (by shape, type, threads).
struct PrimitiveKeyHash {
  template <std::size_t N>
  std::size_t operator()(const std::array<std::int64_t, N>& key) const {
    std::size_t h = 1469598103934665603ull;
    for (const std::int64_t e : key) h = (h ^ static_cast<std::size_t>(e)) * 1099511628211ull;
    return h;
  }
};

}  // namespace lockstep::cpu
