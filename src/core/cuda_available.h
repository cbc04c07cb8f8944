// Whether this process can use a CUDA device; callable from every build (no device when compiled without
// CUDA).
#pragma once

#include <string>

namespace lockstep {

// True when the binary has the CUDA backend and the runtime sees at least one device. Never throws.
bool cuda_available();
// The CUDA devices this process sees (0 without the CUDA backend or a usable driver). Never throws.
int cuda_devices();
// Why cuda_available() is false, for error messages ("" when it is true).
std::string cuda_unavailable_why();
// Waits for the current CUDA device's queued work (nothing to wait for without CUDA).
void cuda_synchronize();

}  // namespace lockstep
