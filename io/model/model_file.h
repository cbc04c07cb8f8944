// The one owner of Lockstep's model-file and checkpoint layouts: file names inside a checkpoint, the model
// file's root attributes (format_version, kind, config) and its groups (one state dict per network: /model,
// or /generator, /discriminator and /generator_ema), and the library version stamped into checkpoints.
// `lockstep train`, `eval`, `sample` and `inspect` all go through it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "src/nn/module.h"

namespace lockstep::io {

inline constexpr std::int64_t kModelFileFormatVersion = 1;
// The files of a checkpoint directory: the models in the model-file layout, the optimizers and schedules
// (one group each), and the trainer's state (/trainer plus extra state dicts such as /best_model).
inline constexpr const char* kCheckpointModelFile = "model.h5";
inline constexpr const char* kCheckpointOptimizerFile = "optimizer.h5";
inline constexpr const char* kCheckpointTrainerFile = "trainer.h5";

// The library version ("0.1.0", from CMake's PROJECT_VERSION) stored in checkpoints.
const char* library_version();

// What a model file's root says.
struct ModelFileInfo {
  std::string kind;  // the task that wrote it: "classifier", "gan"
  std::int64_t format_version = 0;
  std::string config;               // the effective config text of the run
  std::vector<std::string> groups;  // the networks' groups
  bool has_group(const std::string& name) const;
};

// Whether a state-dict entry of a model group ("layer1.0.bn1.running_mean") is a buffer (batch-norm running
// statistics) rather than a parameter.
bool is_buffer_entry(const std::string& dotted_name);

// Writes `models` (group name, module) into `path` with the root attributes, through a temporary file
// renamed into place. IoError naming the file.
void write_model_file(const std::filesystem::path& path, const std::string& kind, const std::string& config,
                      const std::vector<std::pair<std::string, const nn::Module*>>& models);
// Reads a model file's root. IoError naming the file when it is missing, not HDF5, or not a model file
// (no kind and config attributes: e.g. a data set), or of a newer format version.
ModelFileInfo read_model_file_info(const std::filesystem::path& path);
// Loads group `group` of a model file into `model` (strict: every mismatch is reported by name).
void load_model_group(const std::filesystem::path& path, const std::string& group, nn::Module& model);

}  // namespace lockstep::io
