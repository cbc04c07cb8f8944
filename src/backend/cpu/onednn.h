// The one oneDNN CPU engine of the process and each thread's stream on it, for the kernels that run oneDNN
// primitives (convolutions: conv_onednn.cpp; bf16 GEMM: linalg.cpp).
#pragma once

#include <dnnl.hpp>

namespace lockstep::cpu {

dnnl::engine& onednn_engine();
dnnl::stream& onednn_stream();  // the calling thread's

}  // namespace lockstep::cpu
