// CheckpointStore: temporary directories, fsync + manifest + rename commits, verification, pruning and
// cleanup of stale temporaries.
#include "io/checkpoint/checkpoint_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <set>
#include <system_error>
#include <utility>

#include "io/checkpoint/manifest.h"
#include "io/data/convert.h"
#include "src/core/error.h"
#include "src/core/strings.h"

namespace lockstep::io {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kStepPrefix = "step_";
constexpr std::string_view kTemporarySuffix = ".tmp";
constexpr std::string_view kReplacedSuffix = ".tmp.replaced";
constexpr std::string_view kPrunedSuffix = ".tmp.pruned";


// The step of a committed directory name, only in the canonical form directory_name() writes.
std::optional<std::int64_t> parse_step(const std::string& name) {
  if (name.size() <= kStepPrefix.size() || name.compare(0, kStepPrefix.size(), kStepPrefix) != 0)
    return std::nullopt;
  const char* first = name.data() + kStepPrefix.size();
  const char* last = name.data() + name.size();
  if (!std::all_of(first, last, [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
  std::int64_t step = 0;
  const auto [end, ec] = std::from_chars(first, last, step);
  if (ec != std::errc() || end != last || CheckpointStore::directory_name(step) != name) return std::nullopt;
  return step;
}

bool is_stale_name(const std::string& name) {
  return name.compare(0, kStepPrefix.size(), kStepPrefix) == 0 &&
         name.find(kTemporarySuffix) != std::string::npos;
}

void check_step(const char* function, std::int64_t step) {
  LOCKSTEP_CHECK(step >= 0, ValueError, function, ": expected a step >= 0, but got ", step, ".");
}

[[noreturn]] void throw_fs(const char* function, const std::string& what, const fs::path& path,
                           const std::error_code& ec) {
  throw IoError(
      str_cat(function, ": expected to ", what, " ", in_quotes(path), ", but it failed: ", ec.message(), "."),
      path.string());
}

// Opens `path` read-only and fsyncs it (a file's data, or a directory's entries).
void fsync_path(const char* function, const fs::path& path, int extra_flags) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | extra_flags);
  int error = fd < 0 ? errno : 0;
  if (fd >= 0) {
    if (::fsync(fd) != 0) error = errno;
    ::close(fd);
  }
  if (error != 0) throw_fs(function, "fsync", path, std::error_code(error, std::generic_category()));
}

void remove_tree(const char* function, const fs::path& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) throw_fs(function, "remove", path, ec);
}

// The contents of a checkpoint directory: regular files (relative '/'-separated names, sorted; the top-level
// manifest excluded), subdirectories, and entries of any other kind (symlinks, sockets, ...).
struct Listing {
  std::vector<std::string> files;
  std::vector<fs::path> directories;
  std::vector<std::string> others;
  bool has_manifest = false;
};

void walk(const fs::path& dir, const std::string& prefix, Listing& out, std::error_code& ec) {
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const std::string relative = prefix.empty() ? name : prefix + "/" + name;
    const fs::file_status status = it->symlink_status(ec);
    if (ec) return;
    if (fs::is_regular_file(status)) {
      if (prefix.empty() && name == kManifestName) {
        out.has_manifest = true;
      } else {
        out.files.push_back(relative);
      }
    } else if (fs::is_directory(status)) {
      out.directories.push_back(it->path());
      walk(it->path(), relative, out, ec);
      if (ec) return;
    } else {
      out.others.push_back(relative);
    }
  }
}

Listing list_directory(const char* function, const fs::path& dir) {
  Listing listing;
  std::error_code ec;
  walk(dir, "", listing, ec);
  if (ec) throw_fs(function, "list", dir, ec);
  std::sort(listing.files.begin(), listing.files.end());
  std::sort(listing.others.begin(), listing.others.end());
  return listing;
}

// The problems of a checkpoint directory against its manifest (empty when it verifies).
std::vector<std::string> problems_of(const fs::path& checkpoint) {
  std::error_code ec;
  if (!fs::is_directory(checkpoint, ec)) return {"it is not a directory"};
  Manifest manifest;
  try {
    manifest = read_manifest(checkpoint / kManifestName);
  } catch (const IoError& e) {
    return {e.what()};
  }
  std::vector<std::string> problems;
  const std::optional<std::int64_t> named_step = parse_step(checkpoint.filename().string());
  if (named_step && *named_step != manifest.step) {
    problems.push_back(str_cat("the manifest is for step ", manifest.step, ", but the directory is named ",
                               checkpoint.filename().string()));
  }
  Listing listing;
  try {
    listing = list_directory("CheckpointStore::verify", checkpoint);
  } catch (const IoError& e) {
    return {e.what()};
  }
  for (const std::string& other : listing.others)
    problems.push_back(str_cat("'", other, "' is not a regular file or directory"));
  const std::set<std::string> present(listing.files.begin(), listing.files.end());
  std::set<std::string> listed;
  for (const ManifestEntry& entry : manifest.files) {
    listed.insert(entry.name);
    if (present.count(entry.name) == 0)
      problems.push_back(str_cat("file '", entry.name, "' is in the manifest but missing"));
  }
  for (const std::string& name : listing.files)
    if (listed.count(name) == 0) problems.push_back(str_cat("file '", name, "' is not in the manifest"));
  for (const ManifestEntry& entry : manifest.files) {
    if (present.count(entry.name) == 0) continue;
    const fs::path file = checkpoint / entry.name;
    const std::uintmax_t bytes = fs::file_size(file, ec);
    if (ec) {
      problems.push_back(str_cat("file '", entry.name, "' cannot be read: ", ec.message()));
      continue;
    }
    if (bytes != entry.bytes) {
      problems.push_back(
          str_cat("file '", entry.name, "' has ", bytes, " bytes, but the manifest says ", entry.bytes));
      continue;
    }
    try {
      const std::string hash = file_xxh64(file);
      if (hash != entry.xxh64) {
        problems.push_back(
            str_cat("file '", entry.name, "' has XXH64 ", hash, ", but the manifest says ", entry.xxh64));
      }
    } catch (const IoError& e) {
      problems.push_back(e.what());
    }
  }
  return problems;
}

}  // namespace

CheckpointStore::CheckpointStore(fs::path root, CheckpointPolicy policy)
    : root_(std::move(root)), policy_(policy) {
  LOCKSTEP_CHECK(policy_.keep_last >= 1, ValueError, "CheckpointStore: expected keep_last >= 1, but got ",
                 policy_.keep_last, ". The newest checkpoint is always kept.");
  LOCKSTEP_CHECK(policy_.keep_every >= 0, ValueError, "CheckpointStore: expected keep_every >= 0, but got ",
                 policy_.keep_every, ". Use 0 to keep no extra checkpoints.");
}

std::string CheckpointStore::directory_name(std::int64_t step) {
  check_step("CheckpointStore::directory_name", step);
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "step_%09lld", static_cast<long long>(step));
  return buffer;
}

fs::path CheckpointStore::temporary_path(std::int64_t step) const {
  return root_ / (directory_name(step) + std::string(kTemporarySuffix));
}

std::vector<fs::path> CheckpointStore::cleanup_stale() const {
  std::vector<fs::path> removed;
  std::error_code ec;
  if (!fs::exists(root_, ec)) return removed;
  for (fs::directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec))
    if (is_stale_name(it->path().filename().string())) removed.push_back(it->path());
  if (ec) throw_fs("CheckpointStore::cleanup_stale", "list", root_, ec);
  std::sort(removed.begin(), removed.end());
  for (const fs::path& path : removed) remove_tree("CheckpointStore::cleanup_stale", path);
  return removed;
}

fs::path CheckpointStore::begin(std::int64_t step) const {
  check_step("CheckpointStore::begin", step);
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) throw_fs("CheckpointStore::begin", "create the checkpoint root", root_, ec);
  const fs::path temporary = temporary_path(step);
  remove_tree("CheckpointStore::begin", temporary);
  fs::create_directory(temporary, ec);
  if (ec) throw_fs("CheckpointStore::begin", "create", temporary, ec);
  return temporary;
}

void CheckpointStore::discard(std::int64_t step) const {
  check_step("CheckpointStore::discard", step);
  remove_tree("CheckpointStore::discard", temporary_path(step));
}

CommitResult CheckpointStore::commit(std::int64_t step) const {
  constexpr const char* kFunction = "CheckpointStore::commit";
  check_step(kFunction, step);
  const fs::path temporary = temporary_path(step);
  std::error_code ec;
  if (!fs::is_directory(temporary, ec)) {
    throw IoError(str_cat(kFunction, ": expected the directory ", in_quotes(temporary), " made by begin(", step,
                          "), but it does not exist. Call begin(step) and write the files first."),
                  temporary.string());
  }
  const Listing listing = list_directory(kFunction, temporary);
  if (listing.has_manifest) {
    throw IoError(str_cat(kFunction, ": expected no ", kManifestName, " in ", in_quotes(temporary),
                          ", but there is one. The name is reserved for the manifest commit writes."),
                  (temporary / kManifestName).string());
  }
  if (!listing.others.empty()) {
    throw IoError(str_cat(kFunction, ": expected only regular files and directories in ", in_quotes(temporary),
                          ", but '", listing.others.front(), "' is neither (a symlink?)."),
                  (temporary / listing.others.front()).string());
  }

  Manifest manifest;
  manifest.step = step;
  for (const std::string& name : listing.files) {
    const fs::path file = temporary / name;
    fsync_path(kFunction, file, 0);
    const std::uintmax_t bytes = fs::file_size(file, ec);
    if (ec) throw_fs(kFunction, "read the size of", file, ec);
    manifest.files.push_back({name, static_cast<std::uint64_t>(bytes), file_xxh64(file)});
  }
  for (const fs::path& dir : listing.directories) fsync_path(kFunction, dir, O_DIRECTORY);
  write_manifest(temporary / kManifestName, manifest);
  fsync_path(kFunction, temporary, O_DIRECTORY);

  const fs::path final_path = root_ / directory_name(step);
  if (fs::exists(fs::symlink_status(final_path, ec))) {
    // Swap out an existing checkpoint of this step: aside under a stale name, new one in, old one removed.
    const fs::path aside = root_ / (directory_name(step) + std::string(kReplacedSuffix));
    remove_tree(kFunction, aside);
    fs::rename(final_path, aside, ec);
    if (ec) throw_fs(kFunction, "move aside the existing checkpoint", final_path, ec);
    fs::rename(temporary, final_path, ec);
    if (ec) {
      std::error_code restore_ec;
      fs::rename(aside, final_path, restore_ec);
      throw_fs(kFunction, str_cat("rename ", in_quotes(temporary), " to"), final_path, ec);
    }
    fsync_path(kFunction, root_, O_DIRECTORY);
    remove_tree(kFunction, aside);
  } else {
    fs::rename(temporary, final_path, ec);
    if (ec) throw_fs(kFunction, str_cat("rename ", in_quotes(temporary), " to"), final_path, ec);
    fsync_path(kFunction, root_, O_DIRECTORY);
  }

  CommitResult result;
  result.committed = {step, final_path};
  result.pruned = prune(step);
  return result;
}

std::vector<fs::path> CheckpointStore::prune(std::int64_t keep_step) const {
  const std::vector<CheckpointInfo> all = list();
  const std::size_t keep_last = static_cast<std::size_t>(policy_.keep_last);
  std::vector<fs::path> pruned;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const CheckpointInfo& info = all[i];
    const bool newest = i + keep_last >= all.size();
    const bool milestone = policy_.keep_every > 0 && info.step % policy_.keep_every == 0;
    if (info.step == keep_step || newest || milestone) continue;
    try {
      // Renamed out of the committed names first (one atomic step), then deleted: a job killed while
      // deleting leaves only a stale temporary, removed by the next cleanup_stale, never a step_N/ whose
      // manifest lists files that are gone.
      const fs::path doomed = root_ / (info.path.filename().string() + std::string(kPrunedSuffix));
      remove_tree("CheckpointStore::commit", doomed);
      std::error_code ec;
      fs::rename(info.path, doomed, ec);
      if (ec) throw_fs("CheckpointStore::commit", "move aside the pruned checkpoint", info.path, ec);
      fsync_path("CheckpointStore::commit", root_, O_DIRECTORY);
      remove_tree("CheckpointStore::commit", doomed);
    } catch (const IoError& e) {
      throw IoError(str_cat(e.what(), " Step ", keep_step, " was committed; only pruning failed."), e.file());
    }
    pruned.push_back(info.path);
  }
  return pruned;
}

std::vector<CheckpointInfo> CheckpointStore::list() const {
  std::vector<CheckpointInfo> out;
  std::error_code ec;
  if (!fs::exists(root_, ec)) return out;
  for (fs::directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::optional<std::int64_t> step = parse_step(it->path().filename().string());
    std::error_code type_ec;
    if (step && it->is_directory(type_ec)) out.push_back({*step, it->path()});
  }
  if (ec) throw_fs("CheckpointStore::list", "list", root_, ec);
  std::sort(out.begin(), out.end(),
            [](const CheckpointInfo& a, const CheckpointInfo& b) { return a.step < b.step; });
  return out;
}

bool CheckpointStore::verify(const fs::path& checkpoint, std::string* why) {
  const std::vector<std::string> problems = problems_of(checkpoint);
  if (why != nullptr) *why = join(problems, "; ");
  return problems.empty();
}

std::optional<CheckpointInfo> CheckpointStore::latest_valid(std::vector<std::string>* warnings) const {
  const std::vector<CheckpointInfo> all = list();
  for (std::size_t i = all.size(); i-- > 0;) {
    std::string why;
    if (verify(all[i].path, &why)) return all[i];
    if (warnings != nullptr) {
      warnings->push_back(
          str_cat("checkpoint ", in_quotes(all[i].path), " is damaged (", why, "); ",
                  i > 0 ? "falling back to the previous one" : "no older checkpoint to fall back to", "."));
    }
  }
  return std::nullopt;
}

}  // namespace lockstep::io
