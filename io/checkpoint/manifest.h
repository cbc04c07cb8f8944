// The manifest of a checkpoint directory (manifest.json): format version, step, and every file's relative
// name, size and XXH64. Written last, it marks the checkpoint complete; verification re-reads it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lockstep::io {

inline constexpr int kManifestFormatVersion = 1;
inline constexpr const char* kManifestName = "manifest.json";

struct ManifestEntry {
  std::string name;  // relative to the checkpoint directory, '/'-separated ("model.h5", "rank_1/rng.h5")
  std::uint64_t bytes = 0;
  std::string xxh64;  // XXH64 (seed 0) of the bytes, 16 lowercase hex digits
  bool operator==(const ManifestEntry&) const = default;
};

struct Manifest {
  int format_version = kManifestFormatVersion;
  std::int64_t step = 0;
  std::vector<ManifestEntry> files;  // sorted by name
  bool operator==(const Manifest&) const = default;
};

// The manifest as JSON text: {"format_version": 1, "step": 1200, "files": [{"name", "bytes", "xxh64"}, ...]}.
std::string manifest_json(const Manifest& manifest);
// Writes manifest_json(manifest) to `file` (which must not exist yet) and fsyncs it. IoError naming the file.
void write_manifest(const std::filesystem::path& file, const Manifest& manifest);
// Reads and validates `file`: parseable JSON with the three keys, integer fields, unique relative file
// names without ".." components, 16-hex-digit checksums. IoError naming the file and the problem otherwise.
Manifest read_manifest(const std::filesystem::path& file);

}  // namespace lockstep::io
