// Run set-up, model files and the JSONL metrics log.
#include "launch/train/run.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>

#include "distributed/init.h"
#include "distributed/mpi.h"
#include "io/h5/h5.h"
#include "io/state/state_file.h"
#include "src/core/error.h"
#include "src/core/rng.h"
#include "src/core/threading.h"
#include "src/tensor/factories.h"

namespace lockstep::train {

namespace {

constexpr double kMiB = 1024.0 * 1024.0;

// The threads per rank for run.threads = 0: OMP_NUM_THREADS when set, else this node's cores shared out
// over the ranks on it (at least 1).
int default_threads(const distributed::ProcessGroup& group) {
  if (std::getenv("OMP_NUM_THREADS") != nullptr) return num_threads();
  int local_ranks = 1;
  if (const auto* mpi = dynamic_cast<const distributed::MpiProcessGroup*>(&group))
    local_ranks = mpi->local_size();
  return std::max(1, num_threads() / std::max(1, local_ranks));
}

}  // namespace

ResumeRequest ResumeRequest::parse(const std::string& text) {
  ResumeRequest r;
  if (text == "auto") {
    r.mode = Mode::kAuto;
  } else if (text == "none") {
    r.mode = Mode::kNone;
  } else if (text.empty()) {
    throw ValueError("--resume: expected auto, none or a checkpoint directory, but got an empty value");
  } else {
    r.mode = Mode::kPath;
    r.path = text;
  }
  return r;
}

std::shared_ptr<distributed::ProcessGroup> make_process_group(const launch::Config& cfg) {
  const double timeout_s = cfg.get_double("distributed.timeout_s", 300.0);
  if (!(timeout_s > 0.0) || timeout_s > 1e9) {
    cfg.fail("distributed.timeout_s",
             str_cat("expected a positive number of seconds (at most 1e9), but got ", timeout_s));
  }
  distributed::ProcessGroupOptions options;
  options.timeout = std::chrono::milliseconds(std::max<std::int64_t>(std::llround(timeout_s * 1000.0), 1));
  return distributed::init_process_group(options);
}

RunSettings setup_run(const launch::Config& cfg) { return setup_run(cfg, make_process_group(cfg)); }

RunSettings setup_run(const launch::Config& cfg, std::shared_ptr<distributed::ProcessGroup> group) {
  LOCKSTEP_CHECK(group != nullptr, ValueError, "setup_run: expected a process group, but got null");
  RunSettings run;
  run.group = std::move(group);
  run.task = cfg.choice("task", {"classifier", "gan"}, "classifier");
  run.seed = static_cast<std::uint64_t>(cfg.get_int("run.seed", 0));
  run.threads = static_cast<int>(cfg.get_int("run.threads", 0));
  run.output = cfg.get_string("run.output", "runs/latest");
  run.epochs = cfg.get_int("run.epochs", 1);
  run.max_steps = cfg.get_int("run.max_steps", 0);
  if (run.epochs < 1) cfg.fail("run.epochs", str_cat("expected at least 1, but got ", run.epochs));
  if (run.threads < 0)
    cfg.fail("run.threads", str_cat("expected 0 (automatic) or more, but got ", run.threads));
  const double bucket_mb = cfg.get_double("distributed.bucket_mb", 4.0);
  if (!(bucket_mb > 0.0) || bucket_mb > 1024.0) {
    cfg.fail("distributed.bucket_mb",
             str_cat("expected a bucket size in MiB in (0, 1024], but got ", bucket_mb));
  }
  run.reducer.bucket_bytes = std::max<std::int64_t>(static_cast<std::int64_t>(bucket_mb * kMiB), 1);
  run.reducer.first_bucket_bytes = std::min(run.reducer.first_bucket_bytes, run.reducer.bucket_bytes);
  run.sync_batchnorm = cfg.get_bool("distributed.sync_batchnorm", true);

  manual_seed(run.seed);
  if (run.threads == 0) run.threads = run.world() > 1 ? default_threads(*run.group) : 0;
  if (run.threads > 0) set_num_threads(run.threads);
  run.threads = num_threads();
  if (run.speaks()) std::filesystem::create_directories(run.output);
  return run;
}

void sum_over_ranks(distributed::ProcessGroup& group, std::span<double> values) {
  if (group.size() == 1 || values.empty()) return;
  const Tensor t = from_vector(std::vector<double>(values.begin(), values.end()),
                               {static_cast<std::int64_t>(values.size())});
  group.all_reduce(t, distributed::ReduceOp::kSum)->wait();
  const std::vector<double> v = t.to_vector<double>();
  std::copy(v.begin(), v.end(), values.begin());
}

std::string describe_job(const RunSettings& run, std::int64_t per_rank_batch) {
  const int world = run.world();
  return str_cat("job: ", world, world == 1 ? " rank (" : " ranks (",
                 run.group ? run.group->backend() : "single", "), batch ", per_rank_batch,
                 " per rank = ", per_rank_batch * world, " global, ", run.threads,
                 run.threads == 1 ? " thread" : " threads", " per rank");
}

void split_random_streams(const RunSettings& run) {
  if (run.rank() == 0) return;
  Generator& g = default_generator();
  g.set_state(mix64(run.seed ^ mix64(static_cast<std::uint64_t>(run.rank()))), g.offset());
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

SampleLog::SampleLog(const launch::Config& cfg, const RunSettings& run) {
  if (!cfg.get_bool("run.sample_log", false)) return;
  path_ = run.output / "samples" / str_cat("rank_", run.rank(), ".txt");
  std::filesystem::create_directories(path_.parent_path());
}

void SampleLog::write(std::int64_t step, const std::vector<std::int64_t>& indices) {
  if (path_.empty()) return;
  std::ofstream out(path_, std::ios::app);
  out << step;
  for (const std::int64_t i : indices) out << ' ' << i;
  out << '\n';
  if (!out.good())
    throw IoError(str_cat("sample log: cannot append to '", path_.string(), "'"), path_.string());
}

}  // namespace lockstep::train
