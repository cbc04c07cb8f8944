// libFuzzer harness of read_cifar10 (io/data/cifar.h): the input is test_batch.bin of split "test".
// Lockstep errors are the expected outcome of a malformed batch.
#include "io/data/cifar.h"
#include "src/core/error.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& dir = lockstep::fuzz::scratch_dir("cifar");
  lockstep::fuzz::write_file(dir / "test_batch.bin", {reinterpret_cast<const char*>(data), size});
  try {
    const lockstep::io::ImageSet set = lockstep::io::read_cifar10(dir, "test");
    if (set.images.shape()[0] != set.labels.shape()[0]) std::abort();
  } catch (const lockstep::Error&) {
  }
  return 0;
}
