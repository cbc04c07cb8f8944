// libFuzzer harness of the HDF5 data-set opener (io/data/dataset.h ImageDataset::open): the input is a
// data-set file, opened with and without the memory cache; a split that opens is gathered whole.
#include <vector>

#include "io/data/dataset.h"
#include "src/core/error.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& dir = lockstep::fuzz::scratch_dir("h5_dataset");
  lockstep::fuzz::write_file(dir / "data.h5", {reinterpret_cast<const char*>(data), size});
  for (const auto cache : {lockstep::io::Cache::kMemory, lockstep::io::Cache::kNone}) {
    try {
      const auto set = lockstep::io::ImageDataset::open(dir / "data.h5", "train", cache);
      std::vector<std::int64_t> indices;
      for (std::int64_t i = 0; i < set->size() && i < 64; ++i) indices.push_back(i);
      std::vector<std::uint8_t> images(indices.size() * static_cast<std::size_t>(set->image_bytes()));
      std::vector<std::int64_t> labels(indices.size());
      set->gather(indices, images.data(), labels.data());
    } catch (const lockstep::Error&) {
    }
  }
  return 0;
}
