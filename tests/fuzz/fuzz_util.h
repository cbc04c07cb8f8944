// Shared pieces of the libFuzzer harnesses: a private scratch directory per process, writing the input to a
// file there (the parsers read paths), and splitting one input into the two files of a pair.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>

namespace lockstep::fuzz {

// $TMPDIR/lockstep_fuzz_<harness>_<pid>, created on first use and removed at exit.
inline const std::filesystem::path& scratch_dir(const char* harness) {
  static const std::filesystem::path dir = [harness] {
    const char* tmp = std::getenv("TMPDIR");
    std::filesystem::path d = std::filesystem::path(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") /
                              (std::string("lockstep_fuzz_") + harness + "_" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  static const bool registered = [] {
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    });
    return true;
  }();
  (void)registered;
  return dir;
}

// Writes `bytes` to `path` (replacing it).
inline void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Splits an input into two files: a 4-byte little-endian length L of the first (taken modulo the bytes
// left), then the first file's L bytes, then the second file's. Inputs under 4 bytes give two empty files.
inline std::pair<std::string_view, std::string_view> split_pair(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return {};
  const std::uint32_t length = std::uint32_t{data[0]} | std::uint32_t{data[1]} << 8 |
                               std::uint32_t{data[2]} << 16 | std::uint32_t{data[3]} << 24;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 4, size - 4);
  const std::size_t first = rest.empty() ? 0 : length % (rest.size() + 1);
  return {rest.substr(0, first), rest.substr(first)};
}

}  // namespace lockstep::fuzz
