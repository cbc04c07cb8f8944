// Whether this process can use a CUDA device; callable from every build (false when compiled without CUDA).
#pragma once

namespace lockstep {

// True when the binary has the CUDA backend and the runtime sees at least one device. Never throws.
bool cuda_available();

}  // namespace lockstep
