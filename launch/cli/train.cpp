// `lockstep train CONFIG [key=value ...]`: classifier or GAN training from a config file, as one process or
// as every rank of an mpirun/srun job (data-parallel).
#include <charconv>
#include <cmath>
#include <string>

#include "distributed/init.h"
#include "launch/cli/commands.h"
#include "launch/cli/common.h"
#include "launch/config/config.h"
#include "launch/env/launcher.h"
#include "launch/env/signals.h"
#include "launch/config/settings.h"
#include "launch/train/loop.h"
#include "launch/train/run.h"

namespace lockstep::launch {
namespace {

namespace po = boost::program_options;

// Trains what `settings` describe on this rank of `run`'s job; rank 0 prints. Returns the exit code: 0, or
// launch::kExitRequeue when a signal stopped the run after a checkpoint.
int train_job(const launch::Settings& settings, const launch::RunSettings& run, launch::Style style) {
  launch::Progress progress(run.speaks() ? stdout : nullptr, style);
  const launch::TrainResult r = launch::train(settings, run, progress);
  const std::string files = str_cat("model ", (run.output / "model.h5").string(), ", checkpoint ", r.checkpoint.string());
  if (!r.stopped_by.empty()) {
    progress.print(str_cat("stopped by ", r.stopped_by, ": checkpoint ", r.checkpoint.string(),
                           " saved; run the same command again (or requeue the job) to resume. Exit code ",
                           launch::kExitRequeue));
    return launch::kExitRequeue;
  }
  if (r.steps == r.resumed_step) {
    progress.print(str_cat("done: nothing trained; ", files));
  } else {
    const std::string best = r.best_score ? str_cat("best ", r.score_name, " ", format_fixed(*r.best_score, 4),
                                                    " (epoch ", r.best_epoch, "), ")
                                          : "";
    progress.print(str_cat("done: ", r.summary, r.summary.empty() ? "" : ", ", best, r.steps, " steps, ",
                           static_cast<std::int64_t>(r.samples_per_s), " samples/s, ",
                           launch::format_duration(r.seconds), "; ", files));
  }
  return 0;
}

}  // namespace

int run_train(const std::vector<std::string>& args) {
  po::options_description options("Options");
  options.add_options()("config", po::value<std::string>()->required(), "the TOML config file")(
      "override", po::value<std::vector<std::string>>()->default_value({}, ""),
      "dotted.key=value overrides of config values (TOML syntax), after the config file")(
      "progress", po::value<std::string>()->default_value("auto"),
      "auto (a bar on a terminal, plain lines otherwise and under mpirun/srun) | bar | lines")(
      "bucket-mb", po::value<double>(),
      "gradient bucket size in MiB for data-parallel runs (overrides distributed.bucket_mb, default 4)")(
      "resume", po::value<std::string>()->default_value("auto"),
      "auto (the newest checkpoint that verifies, else start fresh) | none (start fresh; refuses a folder "
      "holding checkpoints) | a checkpoint directory");
  po::positional_options_description positional;
  positional.add("config", 1).add("override", -1);
  const auto values = parse_options(
      args, options, positional,
      "train CONFIG [key=value ...] [--resume auto|none|DIR] [--progress auto|bar|lines] [--bucket-mb X]",
      "Trains the classifier or GAN the config describes (see examples/*.toml). Under mpirun or srun every "
      "rank runs this command and the job trains data-parallel: rank 0 prints and writes the files. "
      "SIGUSR1 or SIGTERM stops every rank at the next step with a checkpoint and exit code 3.");
  if (!values) return 0;
  // Before anything slow (data, models, MPI): a SIGUSR1 or SIGTERM from now on stops the run cleanly.
  const auto signals = std::make_shared<launch::StopSignals>();
  const std::string style_name = (*values)["progress"].as<std::string>();
  if (style_name != "auto" && style_name != "bar" && style_name != "lines") {
    throw UsageError(str_cat("--progress: expected auto, bar or lines, but got '", style_name, "'"));
  }
  std::vector<std::string> overrides = (*values)["override"].as<std::vector<std::string>>();
  if (values->count("bucket-mb") != 0) {
    const double bucket_mb = (*values)["bucket-mb"].as<double>();
    if (!std::isfinite(bucket_mb) || bucket_mb <= 0.0 || bucket_mb > 1024.0)
      throw UsageError(str_cat("--bucket-mb: expected a bucket size in MiB in (0, 1024], but got ", bucket_mb));
    // Stored with the config's other values in the model file.
    char text[32];
    const auto end = std::to_chars(text, text + sizeof text, bucket_mb).ptr;  // shortest exact form
    overrides.push_back("distributed.bucket_mb=" + std::string(text, end));
  }
  // Every config error comes out here, before MPI, data or models.
  const launch::Settings settings =
      launch::read_settings(launch::Config::load((*values)["config"].as<std::string>(), overrides));
  // Under a launcher, rank 0's output is a pseudo-terminal of mpirun's (or a pipe of srun's) whatever
  // mpirun's own output is, so `auto` cannot tell a terminal from a batch log there: it means plain lines.
  const bool launched = launch::detect_launch().launcher != "single";
  const launch::Style style = style_name == "bar"                 ? launch::Style::kBar
                             : style_name == "lines" || launched ? launch::Style::kLines
                                                                 : launch::Style::kAuto;
  const launch::ResumeRequest resume = launch::ResumeRequest::parse((*values)["resume"].as<std::string>());
  const std::shared_ptr<distributed::ProcessGroup> group = launch::make_process_group(settings);
  try {
    launch::RunSettings run = launch::setup_run(settings, group);
    run.resume = resume;
    run.signals = signals;
    return train_job(settings, run, style);
  } catch (const std::exception& e) {
    // The other ranks may be waiting in a collective for this one: end the whole job now, while the
    // process group (and MPI) is still alive, rather than unwinding into its shutdown.
    if (group->size() > 1) distributed::abort_job(e.what());
    throw;
  }
}

}  // namespace lockstep::launch
