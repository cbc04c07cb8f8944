// libFuzzer harness of read_events (io/metrics/tensorboard.h): the input is a TFRecord-framed event file.
// Lockstep errors are the expected outcome of a malformed file.
#include "io/metrics/tensorboard.h"
#include "src/core/error.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& dir = lockstep::fuzz::scratch_dir("tensorboard");
  lockstep::fuzz::write_file(dir / "events.out.tfevents", {reinterpret_cast<const char*>(data), size});
  try {
    (void)lockstep::io::read_events(dir / "events.out.tfevents");
  } catch (const lockstep::Error&) {
  }
  return 0;
}
