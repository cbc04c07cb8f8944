// Run set-up, model files and the JSONL metrics log.
#include "launch/train/run.h"

#include <cmath>
#include <fstream>

#include "io/h5/h5.h"
#include "io/state/state_file.h"
#include "src/core/error.h"
#include "src/core/rng.h"
#include "src/core/threading.h"

namespace lockstep::train {

RunSettings setup_run(const launch::Config& cfg) {
  RunSettings run;
  run.task = cfg.choice("task", {"classifier", "gan"}, "classifier");
  run.seed = static_cast<std::uint64_t>(cfg.get_int("run.seed", 0));
  run.threads = static_cast<int>(cfg.get_int("run.threads", 0));
  run.output = cfg.get_string("run.output", "runs/latest");
  run.epochs = cfg.get_int("run.epochs", 1);
  run.max_steps = cfg.get_int("run.max_steps", 0);
  if (run.epochs < 1) cfg.fail("run.epochs", str_cat("expected at least 1, but got ", run.epochs));
  manual_seed(run.seed);
  if (run.threads > 0) set_num_threads(run.threads);
  std::filesystem::create_directories(run.output);
  return run;
}

void save_models(const std::filesystem::path& path, const std::string& kind, const launch::Config& cfg,
                 const std::vector<std::pair<std::string, const nn::Module*>>& models) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    h5::File file(tmp, h5::Access::kTruncate);
    h5::Group root = file.root();
    root.set_attribute("format_version", std::int64_t{1});
    root.set_attribute("kind", kind);
    root.set_attribute("config", cfg.to_string());
    for (const auto& [name, model] : models)
      io::write_state_dict(root.create_group(name), model->state_dict());
    file.flush();
  }
  std::filesystem::rename(tmp, path);
}

void load_model(const std::filesystem::path& path, const std::string& group, nn::Module& model) {
  h5::File file(path, h5::Access::kRead);
  model.load_state_dict(io::read_state_dict(file.root().group(group)));
}

std::string stored_config(const std::filesystem::path& path) {
  h5::File file(path, h5::Access::kRead);
  return file.root().attribute_string("config");
}

MetricsLog::MetricsLog(std::filesystem::path path) : path_(std::move(path)) {
  std::ofstream(path_, std::ios::trunc);
}

void MetricsLog::write(const std::vector<std::pair<std::string, double>>& fields) {
  std::ofstream out(path_, std::ios::app);
  out << '{';
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const double v = fields[i].second;
    out << (i ? ", " : "") << '"' << fields[i].first << "\": ";
    if (std::isfinite(v)) {
      out << v;
    } else {
      out << "null";
    }
  }
  out << "}\n";
  if (!out.good()) throw IoError(str_cat("metrics: cannot append to '", path_.string(), "'"), path_.string());
}

}  // namespace lockstep::train
