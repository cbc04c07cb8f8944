// The process-wide default random generator.
#include "src/core/rng.h"

namespace lockstep {

Generator& default_generator() {
  static Generator generator(0);
  return generator;
}

void manual_seed(std::uint64_t seed) { default_generator().set_state(seed, 0); }

}  // namespace lockstep
