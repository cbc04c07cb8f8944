// Registration of the CUDA kernels and the CUDA caching allocator (compiled only with LOCKSTEP_WITH_CUDA).
#pragma once

namespace lockstep::cuda {

void register_kernels();

}  // namespace lockstep::cuda
