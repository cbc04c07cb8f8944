// libFuzzer harness of read_npy (io/data/npy.h): an images and a labels .npy file (raw or gzip) from one
// input (fuzz_util.h split_pair), read in both 4-d layouts. Lockstep errors are the expected outcome.
#include "io/data/npy.h"
#include "src/core/error.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& dir = lockstep::fuzz::scratch_dir("npy");
  const auto [images, labels] = lockstep::fuzz::split_pair(data, size);
  lockstep::fuzz::write_file(dir / "images.npy", images);
  lockstep::fuzz::write_file(dir / "labels.npy", labels);
  for (const auto layout : {lockstep::io::NpyLayout::kNCHW, lockstep::io::NpyLayout::kNHWC}) {
    try {
      const lockstep::io::ImageSet set = lockstep::io::read_npy(dir / "images.npy", dir / "labels.npy", layout);
      if (set.images.shape()[0] != set.labels.shape()[0]) std::abort();
    } catch (const lockstep::Error&) {
    }
  }
  return 0;
}
