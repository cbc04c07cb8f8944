// Thread-count control for the shared OpenMP pool.
#include "src/core/threading.h"

#include <omp.h>

#include "src/core/error.h"

namespace lockstep {

int num_threads() { return omp_get_max_threads(); }

void set_num_threads(int n) {
  LOCKSTEP_CHECK(n >= 1, ValueError, "set_num_threads: expected at least 1 thread, but got ", n);
  omp_set_num_threads(n);
}

}  // namespace lockstep
