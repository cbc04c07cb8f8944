// Intra-op parallelism: one OpenMP pool shared by Lockstep's kernels, OpenBLAS and oneDNN. The thread
// count follows OMP_NUM_THREADS unless set explicitly.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace lockstep {

int num_threads();
void set_num_threads(int n);

// Element counts below this run single-threaded: forking the pool costs more than it saves.
inline constexpr std::int64_t kParallelGrain = 32768;

// Elements per task of for_each_element.
inline constexpr std::int64_t kElementBlock = 8192;

// Runs f(i) for i in [0, n), in blocks split over the OpenMP threads when n is large. Each i must be
// independent (the result then does not depend on the thread count). Each block works on its own copy of f,
// so that the compiler keeps the captured pointers in registers and vectorises the loop.
template <class F>
void for_each_element(std::int64_t n, const F& f) {
  const std::int64_t blocks = (n + kElementBlock - 1) / kElementBlock;
#pragma omp parallel for schedule(static) if (n >= kParallelGrain)
  for (std::int64_t b = 0; b < blocks; ++b) {
    const F body = f;
    const std::int64_t end = std::min(n, (b + 1) * kElementBlock);
#pragma omp simd
    for (std::int64_t i = b * kElementBlock; i < end; ++i) body(i);
  }
}

// Calls fn(std::true_type{}) or fn(std::false_type{}), so that a kernel branches on a flag at compile time.
template <class Fn>
void dispatch_flag(bool flag, Fn&& fn) {
  if (flag) {
    fn(std::true_type{});
  } else {
    fn(std::false_type{});
  }
}

}  // namespace lockstep
