// libFuzzer harness of read_png (io/image/png.h): the input is the PNG file. Lockstep errors are the
// expected outcome of a malformed file.
#include "io/image/png.h"
#include "src/core/error.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& dir = lockstep::fuzz::scratch_dir("png");
  lockstep::fuzz::write_file(dir / "image.png", {reinterpret_cast<const char*>(data), size});
  try {
    const lockstep::Tensor image = lockstep::io::read_png(dir / "image.png");
    const auto channels = image.shape()[0];
    if (image.shape().size() != 3 || (channels != 1 && channels != 3)) std::abort();
  } catch (const lockstep::Error&) {
  }
  return 0;
}
