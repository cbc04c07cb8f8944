// Intra-op parallelism: one OpenMP pool shared by Lockstep's kernels, OpenBLAS and oneDNN. The thread
// count follows OMP_NUM_THREADS unless set explicitly.
#pragma once

#include <cstdint>

namespace lockstep {

int num_threads();
void set_num_threads(int n);

// Element counts below this run single-threaded: forking the pool costs more than it saves.
inline constexpr std::int64_t kParallelGrain = 32768;

}  // namespace lockstep
