// libFuzzer harness of read_idx (io/data/idx.h): an images file and a labels file, raw or gzip-compressed,
// from one input (fuzz_util.h split_pair). Lockstep errors are the expected outcome of a malformed file.
#include "io/data/idx.h"
#include "src/core/error.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& dir = lockstep::fuzz::scratch_dir("idx");
  const auto [images, labels] = lockstep::fuzz::split_pair(data, size);
  lockstep::fuzz::write_file(dir / "images.idx", images);
  lockstep::fuzz::write_file(dir / "labels.idx", labels);
  try {
    const lockstep::io::ImageSet set = lockstep::io::read_idx(dir / "images.idx", dir / "labels.idx");
    if (set.images.shape()[0] != set.labels.shape()[0]) std::abort();
  } catch (const lockstep::Error&) {
  }
  return 0;
}
