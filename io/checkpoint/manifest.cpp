// manifest.json: writing (escaped JSON, fsynced) and reading with the strict parser of io/json.
#include "io/checkpoint/manifest.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <utility>

#include "io/json/json.h"
#include "src/core/error.h"

namespace lockstep::io {
namespace {

[[noreturn]] void invalid(const std::string& file, const std::string& expected, const std::string& got) {
  throw IoError(str_cat("read_manifest: expected ", expected, " in '", file, "', but got ", got,
                        ". The checkpoint's manifest is damaged."),
                file);
}

const JsonValue& required(const JsonValue& object, const std::string& key, JsonValue::Kind kind,
                          const char* kind_name, const std::string& where, const std::string& file) {
  const JsonValue* value = object.member(key);
  if (value == nullptr) invalid(file, str_cat("key \"", key, "\" in ", where), "none");
  if (value->kind != kind)
    invalid(file, str_cat("\"", key, "\" in ", where, " to be ", kind_name), "another kind of value");
  return *value;
}

template <class T>
T integer(const JsonValue& object, const std::string& key, const std::string& where,
          const std::string& file) {
  const JsonValue& value = required(object, key, JsonValue::Kind::kNumber, "a number", where, file);
  T out{};
  const char* first = value.text.data();
  const char* last = first + value.text.size();
  const auto [end, ec] = std::from_chars(first, last, out);
  if (ec != std::errc() || end != last)
    invalid(file, str_cat("\"", key, "\" in ", where, " to be an integer in range"), value.text);
  return out;
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.front() == '/' || name == kManifestName) return false;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    const std::string part = name.substr(start, end - start);
    if (part.empty() || part == "." || part == ".." || part.find('\0') != std::string::npos) return false;
    start = end + 1;
  }
  return true;
}

bool valid_hex16(const std::string& s) {
  if (s.size() != 16) return false;
  for (const char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace

std::string manifest_json(const Manifest& manifest) {
  std::string out = str_cat("{\n  \"format_version\": ", manifest.format_version,
                            ",\n  \"step\": ", manifest.step, ",\n  \"files\": [");
  for (std::size_t i = 0; i < manifest.files.size(); ++i) {
    const ManifestEntry& f = manifest.files[i];
    out += i == 0 ? "\n    {\"name\": " : ",\n    {\"name\": ";
    append_json_string(out, f.name);
    out += str_cat(", \"bytes\": ", f.bytes, ", \"xxh64\": ");
    append_json_string(out, f.xxh64);
    out += "}";
  }
  out += manifest.files.empty() ? "]\n}\n" : "\n  ]\n}\n";
  return out;
}

void write_manifest(const std::filesystem::path& file, const Manifest& manifest) {
  const std::string text = manifest_json(manifest);
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw IoError(str_cat("write_manifest: expected to create '", file.string(),
                          "', but it failed: ", std::strerror(errno)),
                  file.string());
  }
  std::size_t written = 0;
  int error = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = errno;
      break;
    }
    written += static_cast<std::size_t>(n);
  }
  if (error == 0 && ::fsync(fd) != 0) error = errno;
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error != 0) {
    throw IoError(str_cat("write_manifest: expected to write and fsync '", file.string(),
                          "', but it failed: ", std::strerror(error)),
                  file.string());
  }
}

Manifest read_manifest(const std::filesystem::path& path) {
  const std::string file = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw IoError(
        str_cat("read_manifest: expected a readable manifest at '", file,
                "', but opening it failed: ", std::strerror(errno), ". The checkpoint is incomplete."),
        file);
  }
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) {
    throw IoError(str_cat("read_manifest: expected to read '", file, "', but reading failed"), file);
  }
  JsonValue root;
  try {
    root = parse_json(text, file);
  } catch (const IoError& e) {
    throw IoError(str_cat("read_manifest: ", e.what(), ". The checkpoint's manifest is damaged."), file);
  }
  if (root.kind != JsonValue::Kind::kObject) invalid(file, "a JSON object at the top level", "another value");

  Manifest manifest;
  manifest.format_version = integer<int>(root, "format_version", "the manifest", file);
  if (manifest.format_version != kManifestFormatVersion) {
    invalid(file, str_cat("format_version ", kManifestFormatVersion),
            str_cat(manifest.format_version, " (written by another Lockstep version?)"));
  }
  manifest.step = integer<std::int64_t>(root, "step", "the manifest", file);
  const JsonValue& files = required(root, "files", JsonValue::Kind::kArray, "an array", "the manifest", file);
  std::set<std::string> seen;
  for (std::size_t i = 0; i < files.items.size(); ++i) {
    const JsonValue& item = files.items[i];
    const std::string where = str_cat("files[", i, "]");
    if (item.kind != JsonValue::Kind::kObject) invalid(file, where + " to be an object", "another value");
    ManifestEntry entry;
    entry.name = required(item, "name", JsonValue::Kind::kString, "a string", where, file).text;
    entry.bytes = integer<std::uint64_t>(item, "bytes", where, file);
    entry.xxh64 = required(item, "xxh64", JsonValue::Kind::kString, "a string", where, file).text;
    if (!valid_name(entry.name)) {
      invalid(file,
              str_cat(where, ".name to be a relative path without '.', '..' or empty parts (and not ",
                      kManifestName, ")"),
              str_cat("\"", entry.name, "\""));
    }
    if (!seen.insert(entry.name).second)
      invalid(file, "unique file names", str_cat("\"", entry.name, "\" twice"));
    if (!valid_hex16(entry.xxh64)) {
      invalid(file, where + ".xxh64 to be 16 lowercase hex digits", str_cat("\"", entry.xxh64, "\""));
    }
    manifest.files.push_back(std::move(entry));
  }
  return manifest;
}

}  // namespace lockstep::io
