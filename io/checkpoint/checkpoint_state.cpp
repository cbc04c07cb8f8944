// State-dict group sets and trainer state in HDF5 files (see checkpoint_state.h for the layout).
#include "io/checkpoint/checkpoint_state.h"

#include <bit>
#include <utility>

#include "io/state/state_file.h"
#include "src/core/error.h"
#include "src/tensor/factories.h"

namespace lockstep::io {
namespace {

constexpr const char* kTrainerGroup = "trainer";
constexpr const char* kRngGroup = "rng";
constexpr const char* kValuesGroup = "values";

void check_name(const char* function, const char* what, const std::string& name, const char* forbidden) {
  LOCKSTEP_CHECK(!name.empty() && name.find_first_of(forbidden) == std::string::npos, ValueError, function,
                 ": expected a non-empty ", what, " name without any of \"", forbidden, "\", but got \"",
                 name, "\".");
}

}  // namespace

void write_state_groups(const std::filesystem::path& file, const StateGroups& groups) {
  for (const auto& entry : groups) check_name("write_state_groups", "group", entry.first, "/.");
  const h5::File out(file, h5::Access::kTruncate);
  const h5::Group root = out.root();
  for (const auto& [name, state] : groups) write_state_dict(root.create_group(name), state);
  out.flush();
}

StateGroups read_state_groups(const std::filesystem::path& file) {
  const h5::File in(file, h5::Access::kRead);
  const h5::Group root = in.root();
  StateGroups groups;
  for (const std::string& name : root.children()) {
    if (!root.is_group(name)) {
      throw IoError(str_cat("read_state_groups: expected only groups at the top of '", file.string(),
                            "', but '/", name, "' is a dataset. Is this a checkpoint state file?"),
                    file.string(), "/" + name);
    }
    groups.emplace(name, read_state_dict(root.group(name)));
  }
  return groups;
}

void write_trainer_state(const h5::Group& group, const TrainerState& state) {
  for (const auto& entry : state.rng) check_name("write_trainer_state", "RNG stream", entry.first, "/");
  group.set_attribute("format_version", kTrainerStateFormatVersion);
  group.set_attribute("step", state.step);
  group.set_attribute("epoch", state.epoch);
  group.set_attribute("epoch_step", state.epoch_step);
  group.set_attribute("samples_seen", state.samples_seen);
  group.set_attribute("global_batch", state.global_batch);
  group.set_attribute("seed", std::bit_cast<std::int64_t>(state.seed));
  group.set_attribute("world_size", state.world_size);
  group.set_attribute("config", state.config);
  group.set_attribute("library_version", state.library_version);
  const h5::Group rng = group.create_group(kRngGroup);
  for (const auto& [name, words] : state.rng) {
    std::vector<std::int64_t> stored;
    stored.reserve(words.size());
    for (const std::uint64_t w : words) stored.push_back(std::bit_cast<std::int64_t>(w));
    rng.write_tensor(name, from_vector(stored, {static_cast<std::int64_t>(stored.size())}));
  }
  const h5::Group values = group.create_group(kValuesGroup);
  for (const auto& [name, value] : state.values) values.set_attribute(name, value);
}

TrainerState read_trainer_state(const h5::Group& group) {
  const std::int64_t version = group.attribute_int("format_version");
  if (version != kTrainerStateFormatVersion) {
    throw IoError(str_cat("read_trainer_state: expected format_version ", kTrainerStateFormatVersion, " in '",
                          group.file_name(), "' at '", group.object_path(), "', but got ", version,
                          ". It was written by another Lockstep version."),
                  group.file_name(), group.object_path());
  }
  TrainerState state;
  state.step = group.attribute_int("step");
  state.epoch = group.attribute_int("epoch");
  state.epoch_step = group.attribute_int("epoch_step");
  state.samples_seen = group.attribute_int("samples_seen");
  state.global_batch = group.attribute_int("global_batch");
  state.seed = std::bit_cast<std::uint64_t>(group.attribute_int("seed"));
  state.world_size = group.attribute_int("world_size");
  state.config = group.attribute_string("config");
  state.library_version = group.attribute_string("library_version");
  const h5::Group rng = group.group(kRngGroup);
  for (const std::string& name : rng.children()) {
    const h5::Dataset dataset = rng.dataset(name);
    if (dataset.dtype() != DType::i64 || dataset.shape().size() != 1) {
      throw IoError(str_cat("read_trainer_state: expected RNG stream '", dataset.object_path(), "' in '",
                            group.file_name(), "' to be a 1-D int64 dataset, but got ",
                            dtype_name(dataset.dtype()), " with ", dataset.shape().size(), " dimensions."),
                    group.file_name(), dataset.object_path());
    }
    std::vector<std::uint64_t>& words = state.rng[name];
    for (const std::int64_t w : dataset.read().to_vector<std::int64_t>())
      words.push_back(std::bit_cast<std::uint64_t>(w));
  }
  const h5::Group values = group.group(kValuesGroup);
  for (const std::string& name : values.attribute_names()) state.values[name] = values.attribute_double(name);
  return state;
}

void write_trainer_state(const std::filesystem::path& file, const TrainerState& state) {
  const h5::File out(file, h5::Access::kTruncate);
  write_trainer_state(out.root().create_group(kTrainerGroup), state);
  out.flush();
}

TrainerState read_trainer_state(const std::filesystem::path& file) {
  const h5::File in(file, h5::Access::kRead);
  return read_trainer_state(in.root().group(kTrainerGroup));
}

}  // namespace lockstep::io
