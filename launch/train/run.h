// What every run shares: seed, threads, output folder, step limits; and the model file it leaves behind.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "launch/config/config.h"
#include "src/nn/module.h"

namespace lockstep::train {

// task = classifier | gan; [run] seed, threads (0 = OMP_NUM_THREADS or all cores), output, epochs,
// max_steps (0 = no limit).
struct RunSettings {
  std::string task = "classifier";
  std::uint64_t seed = 0;
  int threads = 0;
  std::filesystem::path output;
  std::int64_t epochs = 1;
  std::int64_t max_steps = 0;
};

// Reads [run], seeds the default generator, sets the thread count, creates the output folder.
RunSettings setup_run(const launch::Config& cfg);

// Writes `models` (group name, module) into `path` (format_version, kind and the effective config as root
// attributes), through a temporary file renamed into place.
void save_models(const std::filesystem::path& path, const std::string& kind, const launch::Config& cfg,
                 const std::vector<std::pair<std::string, const nn::Module*>>& models);
// Loads group `group` of a model file into `model` (strict: every mismatch is reported by name).
void load_model(const std::filesystem::path& path, const std::string& group, nn::Module& model);
// The config text stored in a model file.
std::string stored_config(const std::filesystem::path& path);

// Appends one JSON object per line to `path`.
class MetricsLog {
 public:
  explicit MetricsLog(std::filesystem::path path);
  // `fields` are (name, value) pairs written as numbers.
  void write(const std::vector<std::pair<std::string, double>>& fields);

 private:
  std::filesystem::path path_;
};

}  // namespace lockstep::train
