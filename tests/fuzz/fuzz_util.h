// Shared pieces of the libFuzzer harnesses: a private scratch directory per process, writing the input to a
// file there (the parsers read paths), and splitting one input into the two files of a pair.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cerrno>
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

// Removes the scratch directories lockstep_fuzz_<harness>_<pid> under `root` whose process is gone: a
// harness stopped by a signal or a timeout never runs its atexit clean-up.
inline void remove_stale_scratch(const std::filesystem::path& root, const std::string& prefix) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(root, error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string pid = name.substr(prefix.size());
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (::kill(static_cast<pid_t>(std::stol(pid)), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours)
    std::error_code ignored;
    std::filesystem::remove_all(entry.path(), ignored);
  }
}

// $TMPDIR/lockstep_fuzz_<harness>_<pid>, created on first use and removed at exit (and by a later run of the
// harness when this process is killed instead).
inline const std::filesystem::path& scratch_dir(const char* harness) {
  static const std::filesystem::path dir = [harness] {
    const char* tmp = std::getenv("TMPDIR");
    const std::filesystem::path root(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp");
    const std::string prefix = std::string("lockstep_fuzz_") + harness + "_";
    remove_stale_scratch(root, prefix);
    std::filesystem::path d = root / (prefix + std::to_string(::getpid()));
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
