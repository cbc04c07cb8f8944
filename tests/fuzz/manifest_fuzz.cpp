// libFuzzer harness of read_manifest (io/checkpoint/manifest.h): the input is manifest.json; a manifest
// that reads must write back to JSON that reads to the same manifest.
#include "io/checkpoint/manifest.h"
#include "io/json/json.h"
#include "src/core/error.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto& dir = lockstep::fuzz::scratch_dir("manifest");
  lockstep::fuzz::write_file(dir / "manifest.json", {reinterpret_cast<const char*>(data), size});
  lockstep::io::Manifest manifest;
  try {
    manifest = lockstep::io::read_manifest(dir / "manifest.json");
  } catch (const lockstep::Error&) {
    return 0;
  }
  lockstep::fuzz::write_file(dir / "manifest.json", lockstep::io::manifest_json(manifest));
  if (!(lockstep::io::read_manifest(dir / "manifest.json") == manifest)) std::abort();
  return 0;
}
