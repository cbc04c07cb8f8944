// `lockstep inspect PATH`: says what a Lockstep file or directory is and what it holds — a data set, a
// model file, a checkpoint (verified against its manifest) or a directory of checkpoints — without loading
// any tensor data but labels and RNG words (unless --verify asks to check a data set's array checksums).
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "io/checkpoint/checkpoint_state.h"
#include "io/checkpoint/checkpoint_store.h"
#include "io/checkpoint/manifest.h"
#include "io/data/dataset.h"
#include "io/data/text.h"
#include "io/h5/h5.h"
#include "io/model/model_file.h"
#include "launch/cli/commands.h"
#include "launch/cli/common.h"
#include "src/core/strings.h"

namespace lockstep::launch {
namespace {

namespace fs = std::filesystem;
namespace po = boost::program_options;

constexpr const char* kExpected =
    "a data set or model file (.h5), a checkpoint directory (step_NNNNNNNNN/) or a directory of checkpoints";
constexpr const char* kStepPrefix = "step_";
constexpr const char* kTrainerGroup = "trainer";

// The first `count` lines of `text`, indented, then how many were left out.
void print_text_head(std::ostream& out, const std::string& text, int count, const std::string& indent) {
  std::istringstream in(text);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  const std::size_t shown = std::min(lines.size(), static_cast<std::size_t>(std::max(count, 0)));
  for (std::size_t i = 0; i < shown; ++i) out << indent << "| " << lines[i] << '\n';
  if (shown < lines.size()) out << indent << "... (" << lines.size() - shown << " more lines)\n";
}

// The step in a committed checkpoint's directory name (step_<digits>), else nullopt.
std::optional<std::int64_t> committed_step(const std::string& name) {
  const std::string prefix(kStepPrefix);
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  const std::string digits = name.substr(prefix.size());
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  if (digits.size() > 18) return std::nullopt;
  const std::int64_t step = std::stoll(digits);
  if (io::CheckpointStore::directory_name(step) != name) return std::nullopt;
  return step;
}

// A temporary left by a save in progress or an interrupted one (step_<digits>.tmp...).
bool is_temporary_name(const std::string& name) {
  return name.rfind(kStepPrefix, 0) == 0 && name.find(".tmp") != std::string::npos;
}

// Regular files below `dir` (relative, '/'-separated, sorted) with their sizes.
std::vector<std::pair<std::string, std::uintmax_t>> files_below(const fs::path& dir) {
  std::vector<std::pair<std::string, std::uintmax_t>> files;
  for (const fs::directory_entry& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    files.emplace_back(fs::relative(entry.path(), dir).generic_string(), entry.file_size());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::uintmax_t total_bytes(const std::vector<std::pair<std::string, std::uintmax_t>>& files) {
  std::uintmax_t total = 0;
  for (const auto& file : files) total += file.second;
  return total;
}

// One tensor of a state dict in a file, found without reading its data.
struct TensorEntry {
  std::string name;  // dotted
  DType dtype = DType::f32;
  Shape shape;
};

void collect_tensors(const io::h5::Group& group, const std::string& prefix, std::vector<TensorEntry>& out) {
  for (const std::string& child : group.children()) {
    const std::string dotted = prefix.empty() ? child : prefix + "." + child;
    if (group.is_group(child)) {
      collect_tensors(group.group(child), dotted, out);
    } else {
      const io::h5::Dataset dataset = group.dataset(child);
      out.push_back({dotted, dataset.dtype(), dataset.shape()});
    }
  }
}

// What a group of tensors holds: a model's parameters and buffers (model files), or any state (checkpoints,
// whose groups may be optimizer or schedule state).
enum class GroupKind : std::uint8_t { kModel, kState };

// "group 'model': 62 tensors: 272,474 parameters + 1,234 buffer values (batch-norm statistics)" or
// "group 'optimizer': 40 tensors, 544,948 values", then one line per tensor: dotted name, dtype, shape.
void print_state_group(std::ostream& out, const io::h5::Group& group, const std::string& name, GroupKind kind,
                       const std::string& indent) {
  std::vector<TensorEntry> tensors;
  collect_tensors(group, "", tensors);
  std::int64_t parameters = 0;
  std::int64_t buffers = 0;
  std::size_t name_width = 0;
  std::size_t type_width = 0;
  for (const TensorEntry& t : tensors) {
    (io::is_buffer_entry(t.name) ? buffers : parameters) += numel_of(t.shape);
    name_width = std::max(name_width, t.name.size());
    type_width = std::max(type_width, std::string(dtype_name(t.dtype)).size());
  }
  out << indent << "group '" << name << "': " << tensors.size()
      << (tensors.size() == 1 ? " tensor" : " tensors");
  if (kind == GroupKind::kModel) {
    out << ": " << group_thousands(parameters) << " parameters";
    if (buffers > 0) out << " + " << group_thousands(buffers) << " buffer values (batch-norm statistics)";
  } else {
    out << ", " << group_thousands(parameters + buffers) << " values";
  }
  out << '\n';
  for (const TensorEntry& t : tensors) {
    out << indent << "  " << std::left << std::setw(static_cast<int>(name_width)) << t.name << "  "
        << std::setw(static_cast<int>(type_width)) << dtype_name(t.dtype) << std::right << "  "
        << shape_str(t.shape) << '\n';
  }
}

// ---- data sets ----

// The array checksums of one split: whether they are stored, and with `verify` each array's check. False
// when a stored checksum differs.
bool print_checksums(std::ostream& out, const fs::path& path, const std::string& split,
                     const io::h5::Group& group, bool verify) {
  if (!verify) {
    bool stored = true;
    for (const char* name : {"images", "labels"}) {
      stored = stored && group.contains(name) && !group.is_group(name) &&
               group.dataset(name).has_attribute(io::kArrayChecksumAttribute);
    }
    out << "    array checksums: "
        << (stored ? "xxh64 stored (--verify checks them)"
                   : "none stored (converted by an older `lockstep convert`): the arrays cannot be verified")
        << '\n';
    return true;
  }
  bool ok = true;
  for (const io::ArrayChecksum& check : io::split_checksums(path, split)) {
    out << "    " << check.object << " xxh64 " << check.actual << ": ";
    if (!check.stored()) {
      out << "none stored (converted by an older `lockstep convert`), not verified\n";
    } else if (check.ok()) {
      out << "verified\n";
    } else {
      out << "FAILED: " << io::checksum_error("inspect --verify", path.string(), check).what() << '\n';
      ok = false;
    }
  }
  return ok;
}

// Returns false when --verify found a damaged array.
bool inspect_data_set(std::ostream& out, const fs::path& path, const io::h5::Group& root, bool verify) {
  bool all_ok = true;
  out << "data set " << path.string() << " (Lockstep data-set format " << root.attribute_int("format_version")
      << ")\n";
  if (root.has_attribute("source")) out << "  source: " << root.attribute_string("source") << '\n';
  const std::vector<std::string> classes = root.attribute_strings("class_names");
  out << "  classes (" << classes.size() << "): " << join(classes, ", ") << '\n';
  for (const std::string& split : root.children()) {
    if (!root.is_group(split)) {
      out << "  '" << split << "': a dataset at the top, not a split\n";
      continue;
    }
    const io::h5::Group group = root.group(split);
    std::vector<std::string> members;
    std::int64_t rows = -1;
    for (const std::string& child : group.children()) {
      if (group.is_group(child)) {
        members.push_back(child + " (group)");
        continue;
      }
      const io::h5::Dataset dataset = group.dataset(child);
      members.push_back(str_cat(child, " ", dtype_name(dataset.dtype()), " ", shape_str(dataset.shape())));
      if (child == "labels" && !dataset.shape().empty()) rows = dataset.shape()[0];
    }
    out << "  split '" << split << "'";
    if (rows >= 0) out << ": " << group_thousands(rows) << " images";
    out << '\n' << "    " << join(members, ", ") << '\n';
    if (group.has_attribute("mean") && group.has_attribute("std")) {
      out << "    mean " << format_values(group.attribute_doubles("mean")) << ", std "
          << format_values(group.attribute_doubles("std")) << " (per channel, of pixel / 255)\n";
    }
    if (group.contains("labels") && !group.is_group("labels")) {
      const io::h5::Dataset labels = group.dataset("labels");
      if (labels.dtype() == DType::i64 && labels.shape().size() == 1) {
        std::map<std::int64_t, std::int64_t> counts;
        for (const std::int64_t label : labels.read().to_vector<std::int64_t>()) ++counts[label];
        std::vector<std::string> parts;
        for (const auto& [label, count] : counts) {
          const bool named = label >= 0 && label < static_cast<std::int64_t>(classes.size());
          parts.push_back(
              str_cat(named ? classes[static_cast<std::size_t>(label)] : std::to_string(label), " ", count));
        }
        out << "    images per class: " << join(parts, ", ") << '\n';
      }
    }
    if (group.has_attribute("source_files")) {
      const std::vector<std::string> files = group.attribute_strings("source_files");
      const std::vector<std::string> sums = group.has_attribute("source_xxh64")
                                                ? group.attribute_strings("source_xxh64")
                                                : std::vector<std::string>();
      out << "    source files:" << (files.empty() ? " none (written from memory)" : "") << '\n';
      for (std::size_t i = 0; i < files.size(); ++i) {
        out << "      " << files[i];
        if (i < sums.size()) out << "  xxh64 " << sums[i];
        out << '\n';
      }
    }
    if (group.contains("images") && group.contains("labels")) {
      all_ok = print_checksums(out, path, split, group, verify) && all_ok;
      // What `lockstep train` says about this split (labels outside the classes, images that are not u8,
      // mismatched shapes): its own opener, without reading the images.
      try {
        (void)io::ImageDataset::open(path, split, io::Cache::kNone);
      } catch (const Error& e) {
        out << "    warning: `lockstep train` would stop on this split: " << e.what() << '\n';
      }
    }
  }
  return all_ok;
}

// ---- model files ----

void inspect_model_file(std::ostream& out, const fs::path& path, const io::h5::Group& root,
                        int config_lines) {
  const io::ModelFileInfo info = io::read_model_file_info(path);
  out << "model file " << path.string() << ": kind " << info.kind << ", format_version " << info.format_version
      << '\n';
  out << "  config:\n";
  print_text_head(out, info.config, config_lines, "    ");
  for (const std::string& name : root.children()) {
    if (root.is_group(name)) {
      print_state_group(out, root.group(name), name, GroupKind::kModel, "  ");
    } else {
      out << "  '" << name << "': a dataset at the top, not a model group\n";
    }
  }
}

// ---- checkpoint parts (HDF5 files inside a checkpoint) ----

void print_trainer_state(std::ostream& out, const io::TrainerState& state, int config_lines,
                         const std::string& indent) {
  out << indent << "trainer state: step " << state.step << ", epoch " << state.epoch + 1 << " ("
      << state.epoch_step << " of its steps done), samples seen " << group_thousands(state.samples_seen)
      << ", global batch " << state.global_batch << ", seed " << state.seed << ", world size "
      << state.world_size << ", library " << state.library_version << '\n';
  std::vector<std::string> streams;
  for (const auto& [name, words] : state.rng)
    streams.push_back(str_cat(name, " (", words.size(), words.size() == 1 ? " word)" : " words)"));
  out << indent << "  rng streams: " << (streams.empty() ? "none" : join(streams, ", ")) << '\n';
  std::vector<std::string> values;
  for (const auto& [name, value] : state.values) values.push_back(str_cat(name, " = ", value));
  if (!values.empty()) out << indent << "  values: " << join(values, ", ") << '\n';
  if (!state.config.empty()) {
    out << indent << "  config:\n";
    print_text_head(out, state.config, config_lines, indent + "    ");
  }
}

// Prints what a checkpoint's HDF5 file holds: the trainer state under /trainer and every other top-level
// group as a state group.
void print_state_file(std::ostream& out, const fs::path& file, const std::string& label, int config_lines) {
  const io::h5::File h5file(file, io::h5::Access::kRead);
  const io::h5::Group root = h5file.root();
  out << "  " << label << ":\n";
  for (const std::string& name : root.children()) {
    if (!root.is_group(name)) {
      out << "    '" << name << "': a dataset at the top, not a state group\n";
    } else if (name == kTrainerGroup && root.group(name).has_attribute("format_version")) {
      print_trainer_state(out, io::read_trainer_state(root.group(name)), config_lines, "    ");
    } else {
      print_state_group(out, root.group(name), name, GroupKind::kState, "    ");
    }
  }
}

// ---- checkpoints ----

int inspect_checkpoint(std::ostream& out, const fs::path& dir, int config_lines) {
  const std::string name = dir.filename().string();
  const bool temporary = is_temporary_name(name);
  out << (temporary ? "incomplete checkpoint " : "checkpoint ") << dir.string();
  if (const std::optional<std::int64_t> step = committed_step(name)) out << " (step " << *step << ")";
  out << '\n';
  bool ok = true;
  if (temporary) {
    out << "  a temporary of a save in progress or an interrupted one: never resumed from, removed when "
           "the next run starts\n";
    ok = false;
  } else {
    std::string why;
    ok = io::CheckpointStore::verify(dir, &why);
    out << "  manifest: " << (ok ? "verified (every file's size and XXH64 match)" : "FAILED: " + why) << '\n';
  }
  const auto files = files_below(dir);
  out << "  files (" << files.size() << ", " << format_bytes(total_bytes(files)) << "):\n";
  std::size_t width = 0;
  for (const auto& file : files) width = std::max(width, file.first.size());
  for (const auto& [file, bytes] : files) {
    out << "    " << std::left << std::setw(static_cast<int>(width)) << file << std::right << "  "
        << format_bytes(bytes) << '\n';
  }
  for (const auto& [file, bytes] : files) {
    if (fs::path(file).extension() != ".h5") continue;
    try {
      print_state_file(out, dir / file, file, config_lines);
    } catch (const Error& e) {
      out << "  " << file << ": unreadable: " << e.what() << '\n';
      ok = false;
    }
  }
  return ok ? 0 : 1;
}

int inspect_checkpoint_root(std::ostream& out, const fs::path& root) {
  const io::CheckpointStore store(root);
  const std::vector<io::CheckpointInfo> checkpoints = store.list();
  out << "checkpoint root " << root.string() << ": " << checkpoints.size()
      << (checkpoints.size() == 1 ? " checkpoint" : " checkpoints") << '\n';
  bool all_ok = true;
  std::optional<io::CheckpointInfo> latest;
  for (const io::CheckpointInfo& info : checkpoints) {
    std::string why;
    const bool ok = io::CheckpointStore::verify(info.path, &why);
    all_ok = all_ok && ok;
    if (ok) latest = info;
    const auto files = files_below(info.path);
    out << "  " << info.path.filename().string() << "  step " << std::left << std::setw(10) << info.step
        << std::right << (ok ? "  ok      " : "  FAILED  ") << files.size()
        << (files.size() == 1 ? " file, " : " files, ") << format_bytes(total_bytes(files));
    if (!ok) out << ": " << why;
    out << '\n';
  }
  if (latest) {
    out << "  newest valid: " << latest->path.filename().string() << " (step " << latest->step
        << "): `--resume auto` starts from it\n";
  } else if (!checkpoints.empty()) {
    out << "  newest valid: none (every checkpoint fails verification)\n";
  }
  std::vector<std::string> temporaries;
  for (const fs::directory_entry& entry : fs::directory_iterator(root)) {
    const std::string name = entry.path().filename().string();
    if (is_temporary_name(name)) temporaries.push_back(name);
  }
  std::sort(temporaries.begin(), temporaries.end());
  if (!temporaries.empty()) {
    out << "  left by interrupted saves (removed when the next run starts): " << join(temporaries, ", ")
        << '\n';
  }
  return all_ok ? 0 : 1;
}

// ---- dispatch ----

[[noreturn]] void reject(const fs::path& path, const std::string& found) {
  throw IoError(str_cat("inspect: expected ", kExpected, ", but ", in_quotes(path.string()), " ", found), path.string());
}

// Up to a few names of a directory's entries, for a hint.
std::string some_entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir))
    names.push_back(entry.path().filename().string() + (entry.is_directory() ? "/" : ""));
  std::sort(names.begin(), names.end());
  if (names.empty()) return "nothing";
  constexpr std::size_t kShown = 8;
  const std::size_t more = names.size() > kShown ? names.size() - kShown : 0;
  names.resize(std::min(names.size(), kShown));
  return join(names, ", ") + (more > 0 ? str_cat(" and ", more, " more") : "");
}

int inspect_directory(std::ostream& out, const fs::path& dir, int config_lines) {
  const std::string name = dir.filename().string();
  if (committed_step(name) || is_temporary_name(name) || fs::exists(dir / io::kManifestName))
    return inspect_checkpoint(out, dir, config_lines);
  bool has_checkpoints = false;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    const std::string child = entry.path().filename().string();
    if (entry.is_directory() && (committed_step(child) || is_temporary_name(child))) has_checkpoints = true;
  }
  if (has_checkpoints) return inspect_checkpoint_root(out, dir);
  reject(dir, str_cat("is a directory without a manifest.json or step_NNNNNNNNN subdirectories; it holds ",
                      some_entries(dir), "."));
}

int inspect_file(std::ostream& out, const fs::path& file, int config_lines, bool verify) {
  if (file.filename() == io::kManifestName) return inspect_checkpoint(out, file.parent_path(), config_lines);
  std::optional<io::h5::File> h5file;
  try {
    h5file.emplace(file, io::h5::Access::kRead);
  } catch (const IoError& e) {
    reject(file, str_cat("is not an HDF5 file (", format_bytes(fs::file_size(file)), "; ", e.what(), ")."));
  }
  const io::h5::Group root = h5file->root();
  if (root.has_attribute("format_version") && root.has_attribute("class_names")) {
    return inspect_data_set(out, file, root, verify) ? 0 : 1;
  }
  if (root.has_attribute("kind") && root.attribute_string("kind") == io::kTextKind) {  // io/data/text.h
    const std::vector<std::string> splits = root.children();
    out << "text data set " << file.string() << " (format_version " << root.attribute_int("format_version") << "): "
        << root.attribute_ints("vocabulary").size() << " distinct characters\n";
    for (const std::string& split : splits) {  // each read whole and checked against its checksum
      const auto set = io::TextDataset::open(file, split);
      out << "  " << split << ": " << group_thousands(set->size()) << " characters from " << set->files().size()
          << " files (" << join(set->files(), ", ") << ")\n";
    }
    return 0;
  }
  if (root.has_attribute("kind") && root.has_attribute("config")) {
    inspect_model_file(out, file, root, config_lines);
    return 0;
  }
  const std::vector<std::string> children = root.children();
  const bool all_groups =
      !children.empty() && std::all_of(children.begin(), children.end(),
                                       [&](const std::string& child) { return root.is_group(child); });
  if (all_groups) {  // a checkpoint's state file, on its own
    out << "checkpoint state file " << file.string() << '\n';
    print_state_file(out, file, file.filename().string(), config_lines);
    return 0;
  }
  reject(file, str_cat("is an HDF5 file that Lockstep did not write: no format_version and class_names "
                       "(data set) or kind and config (model file) attributes at its root, which holds ",
                       children.empty() ? std::string("nothing") : join(children, ", "), "."));
}

}  // namespace

int run_inspect(const std::vector<std::string>& args) {
  po::options_description options("Options");
  options.add_options()("path", po::value<std::string>()->required(), "the file or directory to describe")(
      "config-lines", po::value<int>()->default_value(8), "lines of a stored config to show")(
      "verify", po::bool_switch(),
      "read a data set's arrays whole and check them against their xxh64 checksums");
  po::positional_options_description positional;
  positional.add("path", 1);
  const auto values = parse_options(
      args, options, positional, "inspect PATH",
      "Describes PATH: a data set (splits, shapes, dtypes, class names, mean/std, source checksums), a model "
      "file (groups, tensors, parameter counts, stored config), a checkpoint directory (manifest "
      "verification, files, trainer state, state groups) or a directory of checkpoints (each one's "
      "verification). --verify also checks a data set's arrays against the checksums `lockstep convert` "
      "stored. Exits with 1 when a checkpoint or (with --verify) a data-set array fails verification.");
  if (!values) return 0;
  const fs::path path = (*values)["path"].as<std::string>();
  const int config_lines = (*values)["config-lines"].as<int>();
  if (config_lines < 0)
    throw UsageError(str_cat("--config-lines: expected a count >= 0, but got ", config_lines, "."));

  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) reject(path, "does not exist.");
  // "ckpt/step_000000100/" names the same directory as "ckpt/step_000000100".
  const fs::path clean = path.has_filename() ? path : path.parent_path();
  if (fs::is_directory(status)) return inspect_directory(std::cout, clean, config_lines);
  if (fs::is_regular_file(status))
    return inspect_file(std::cout, clean, config_lines, (*values)["verify"].as<bool>());
  reject(path, "is neither a regular file nor a directory.");
}

}  // namespace lockstep::launch
