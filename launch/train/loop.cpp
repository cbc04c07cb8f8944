// The training loop: set-up and resume, then for each step: next batch, the task's step (forward, backward,
// update), progress, maybe a checkpoint; at each epoch's end: the task's evaluation, the metrics record, the
// best model and early stopping, maybe a checkpoint.
#include "launch/train/loop.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "io/data/device_batches.h"
#include "io/model/model_file.h"
#include "launch/train/evaluate.h"
#include "launch/train/task.h"
#include "src/core/micro_shards.h"

namespace lockstep::launch {
namespace {

constexpr const char* kBestPrefix = "best_";  // extra state dicts: best_<model> of the best complete epoch

// The models of `parts` as the model file takes them.
std::vector<std::pair<std::string, const nn::Module*>> model_list(const TrainingParts& parts) {
  std::vector<std::pair<std::string, const nn::Module*>> models;
  for (const auto& [name, model] : parts.models) models.emplace_back(name, model);
  return models;
}

// Weights this large have left any useful regime; a checkpoint of them only resumes a diverged run.
constexpr double kDivergedWeight = 1e12;

// ValueError naming the network and tensor when a weight of `parts` is not finite or has exploded: checked
// before every save, so that a diverged run never commits a checkpoint to resume from.
void check_weights(const TrainingParts& parts, std::int64_t step, const std::filesystem::path& last_saved,
                   const std::string& hint) {
  for (const auto& [model_name, model] : parts.models) {
    for (const auto& [name, tensor] : model->named_parameters()) {
      const std::vector<double> values = tensor.detach().to_vector<double>();
      for (const double v : values) {
        if (std::isfinite(v) && std::abs(v) < kDivergedWeight) continue;
        throw ValueError(str_cat("train: the weights of the ", model_name, " diverged by step ", step, " (", name,
                                 " holds ", v, "); they were not saved",
                                 last_saved.empty() ? std::string()
                                                    : str_cat(": the last checkpoint is '", last_saved.string(), "'"),
                                 ". ", hint));
      }
    }
  }
}

// Deterministic mode's layout of each step's global batch, or none in the default mode. ConfigError unless
// the world size divides the micro-shards and they divide the global batch.
std::optional<MicroShards> micro_shard_layout(const launch::Settings& settings, const RunSettings& run,
                                              std::int64_t per_rank_batch) {
  if (!run.deterministic()) return std::nullopt;
  const std::int64_t m = run.micro_shards, world = run.world(), global = per_rank_batch * world;
  if (m % world != 0) {
    settings.distributed.micro_shards_key.fail(str_cat(
        "expected a number of micro-shards that the world size divides (ranks own whole micro-shards), "
        "but got ",
        m, " micro-shards on ", world, " ranks"));
  }
  if (global % m != 0) {
    settings.distributed.micro_shards_key.fail(
        str_cat("expected a number of micro-shards that divides the global batch ", global, " (", world,
                " x ", per_rank_batch, "), but got ", m));
  }
  return MicroShards{global / m, per_rank_batch, run.rank() * per_rank_batch, global};
}

}  // namespace

double TrainResult::figure(const std::string& name) const {
  const auto it = figures.find(name);
  return it == figures.end() ? std::numeric_limits<double>::quiet_NaN() : it->second;
}

TrainResult train(const launch::Settings& settings, const RunSettings& run, Progress& progress) {
  LOCKSTEP_CHECK(run.group != nullptr, ValueError,
                 "train: expected run settings from setup_run (with a process group), but got none");
  distributed::ProcessGroup& group = *run.group;
  const int world = group.size();
  const MatmulPrecisionScope precision(run.precision);  // training, evaluation and samples alike
  DataSplits data = make_data(settings.data, run.seed, group.rank(), world, task_data_kind(settings.task));
  const std::unique_ptr<Task> task = make_task({settings, run, data});
  split_random_streams(run);  // every rank draws its own dropout masks and noise from here on
  Checkpointer checkpointer(settings, run);
  const std::optional<io::TrainerState> resumed = checkpointer.find(progress);
  if (resumed) {
    data.train_options.batch_size =
        resumed_batch_size(*resumed, data.train_options.batch_size, settings.data, world);
  }
  const std::optional<MicroShards> shards = micro_shard_layout(settings, run, data.train_options.batch_size);
  if (shards) data.train_options.shard_block = shards->local_rows;  // rank r's rows of each global batch
  // On a GPU each batch is copied there while the step before it computes.
  const std::unique_ptr<io::BatchSource> batches = io::on_device(task->training_batches(data), run.device);
  io::BatchSource& loader = *batches;
  const std::int64_t steps_per_epoch = loader.batches_per_epoch();
  const std::int64_t global_batch = data.train_options.batch_size * world;
  if (steps_per_epoch == 0) {
    settings.data.batch_key.fail(str_cat("expected a global batch of at most the ", data.train_size,
                                         " training samples, but got ", global_batch, " (", world, " x ",
                                         data.train_options.batch_size, "): an epoch would train nothing"));
  }
  task->start(steps_per_epoch);
  SampleLog sample_log(settings.run.sample_log, run);
  progress.print(describe_job(run, data.train_options.batch_size));
  progress.print(str_cat(task->describe(), "; ", data.train_size, " training samples",
                         data.validation_size > 0 ? str_cat(" (", data.validation_size, " held out for validation)")
                                                  : "",
                         ", ", steps_per_epoch, " steps per epoch", world > 1 ? " per rank" : ""));
  const TrainingParts parts = task->parts();

  TrainResult result;
  const std::vector<std::string> names = task->sum_names();
  StepSums sums(names.size());                                     // this rank's, this epoch
  std::vector<double> checked(names.size()), added(names.size());  // the sums at the last check; since then
  std::int64_t checked_step = 0, unchecked_samples = 0;
  const auto set_sums = [&](std::span<const double> values, std::int64_t step) {
    sums.assign(values);
    std::copy(values.begin(), values.end(), checked.begin());
    checked_step = step;
    unchecked_samples = 0;
  };
  io::StateGroups best;                         // best_<model> of the best complete epoch
  double best_score = 0.0;
  std::int64_t epochs_without_gain = 0;
  std::int64_t first_epoch = 0, first_step = 0;  // where this process starts
  checkpointer.set_steps_per_epoch(steps_per_epoch);
  if (resumed) {
    for (auto& [name, dict] : checkpointer.load(parts, *resumed))
      if (name.rfind(kBestPrefix, 0) == 0) best.emplace(name, std::move(dict));
    best_score = value_of(*resumed, "best_score");
    result.best_epoch = static_cast<std::int64_t>(value_of(*resumed, "best_epoch"));
    epochs_without_gain = static_cast<std::int64_t>(value_of(*resumed, "epochs_without_gain"));
    std::vector<double> loaded(names.size());
    load_rank_sums(*resumed, "epoch_sum", run.rank(), world, loaded);
    set_sums(loaded, resumed->step);
    task->restore(*resumed);
    result.steps = resumed->step;
    first_epoch = resumed->epoch;
    first_step = resumed->epoch_step;
    result.resumed_step = resumed->step;
    result.checkpoint = checkpointer.resumed_from();
    progress.print(checkpointer.describe_resume(*resumed, global_batch));
  }
  std::optional<RunLog> log;
  if (run.speaks()) log.emplace(run.output, resumed ? resumed->step : -1);
  // Stops the run when a sum is not finite or the task sees it diverge in what the steps since the last check
  // added. Before anything is saved: a diverged run must never commit a checkpoint.
  const auto check_sums = [&](std::int64_t epoch) {
    if (result.steps == checked_step) return;
    const std::span<const double> now = sums.values();
    std::string why;
    for (std::size_t i = 0; i < now.size() && why.empty(); ++i) {
      if (!std::isfinite(now[i])) why = str_cat(names[i], " became ", now[i]);
      added[i] = now[i] - checked[i];
    }
    if (why.empty()) why = task->exploded(added, unchecked_samples);
    if (!why.empty()) {
      const std::string last = result.checkpoint.empty()
                                   ? ""
                                   : str_cat(" (the last checkpoint is '", result.checkpoint.string(), "')");
      const std::string when = result.steps == checked_step + 1
                                   ? str_cat("at step ", result.steps)
                                   : str_cat("in steps ", checked_step + 1, "-", result.steps);
      throw ValueError(str_cat("train: ", when, " (epoch ", epoch + 1, ") on rank ", run.rank(), ", ", why,
                               ": the run diverged; nothing of it was saved", last, ". ",
                               task->divergence_hint()));
    }
    std::copy(now.begin(), now.end(), checked.begin());
    checked_step = result.steps;
    unchecked_samples = 0;
  };
  // Collective: every rank's epoch sums are gathered into the trainer state.
  const auto save = [&](std::int64_t epoch, std::int64_t epoch_step) {
    check_sums(epoch);
    task->before_save();
    check_weights(parts, result.steps, result.checkpoint, task->divergence_hint());
    io::TrainerState state = trainer_state_at(result.steps, epoch, epoch_step, global_batch);
    const std::span<const double> mine = sums.values();
    save_rank_sums(
        group, &state, "epoch_sum",
        epoch_step > 0 ? std::vector<double>(mine.begin(), mine.end()) : std::vector<double>(mine.size()));
    state.values.merge(task->values());
    state.values["best_score"] = best_score;
    state.values["best_epoch"] = static_cast<double>(result.best_epoch);
    state.values["epochs_without_gain"] = static_cast<double>(epochs_without_gain);
    const SavedCheckpoint saved = checkpointer.save(parts, state, best);
    result.checkpoint = saved.dir;
    progress.print(saved.describe());
  };
  const auto stopped = [&] {
    result.stopped_by = checkpointer.stop_signal();
    return result;
  };

  std::int64_t samples = 0;  // this rank's, in this process
  std::vector<std::pair<std::string, double>> last_fields;
  const std::int64_t patience = settings.train.early_stopping_patience;
  const auto t0 = std::chrono::steady_clock::now();
  const bool stopped_early = patience > 0 && epochs_without_gain >= patience;
  bool done = stopped_early || (run.max_steps > 0 && result.steps >= run.max_steps);
  if (resumed && (done || first_epoch >= run.epochs))
    progress.print(nothing_left_to_train(run, result.steps, stopped_early));
  for (std::int64_t epoch = first_epoch; epoch < run.epochs && !done; ++epoch) {
    const std::int64_t start = epoch == first_epoch ? first_step : 0;
    if (epoch != first_epoch) set_sums(std::vector<double>(names.size(), 0.0), result.steps);
    loader.start_epoch(epoch, start);
    progress.start(str_cat("epoch ", epoch + 1, "/", run.epochs), steps_per_epoch, start);
    std::int64_t epoch_step = start;
    while (std::optional<io::Batch> batch = loader.next()) {
      sample_log.write(result.steps + 1, batch->indices);
      checkpointer.start_stop_vote();
      std::optional<MicroShardScope> scope;
      if (shards) scope.emplace(*shards);
      const std::int64_t n = task->step(*batch, result.steps + 1, sums);
      scope.reset();
      ++result.steps;
      ++epoch_step;
      samples += n;
      unchecked_samples += n;
      // The sums are checked whenever they are read: after every step where none waits on a device (the
      // CPU), else when the bar is drawn (a GPU step is not made to wait for its figures), before a save and
      // at the epoch's end.
      if (!sums.pending()) check_sums(epoch);
      // The bar shows rank 0's running figures (no communication per step); the logged ones are the job's.
      progress.update(epoch_step, n * world, [&] {
        check_sums(epoch);
        return task->progress_text(sums.values());
      });
      if (run.max_steps > 0 && result.steps >= run.max_steps) done = true;
      const bool stop = checkpointer.stop_requested();
      if (done || epoch_step == steps_per_epoch) break;  // the epoch's end evaluates and saves
      if (stop || checkpointer.due(result.steps)) save(epoch, epoch_step);
      if (stop) {
        progress.finish(str_cat("interrupted at step ", result.steps));
        return stopped();
      }
    }
    check_sums(epoch);
    const std::span<const double> mine = sums.values();
    std::vector<double> job(mine.begin(), mine.end());
    sum_over_ranks(group, job);
    const EpochEnd end = task->end_epoch(epoch, result.steps, job, log ? &*log : nullptr);
    last_fields = end.fields;
    std::vector<std::pair<std::string, double>> fields = {{"epoch", static_cast<double>(epoch + 1)}};
    fields.insert(fields.end(), end.fields.begin(), end.fields.end());
    std::string line = end.line;
    // The best model and early stopping count complete epochs only: an epoch cut short by run.max_steps
    // is evaluated and reported, but a run that later resumes it must decide as an uninterrupted one would.
    // The score is the same on every rank, so every rank makes the same decisions.
    const bool complete = epoch_step == steps_per_epoch;
    if (end.score) {
      result.score_name = end.score_name;
      if (!complete) {
        line += "  (part of an epoch)";
      } else if (result.best_epoch == 0 || *end.score > best_score) {
        best_score = *end.score;
        result.best_epoch = epoch + 1;
        best.clear();
        for (const auto& [name, model] : parts.models)
          best.emplace(kBestPrefix + name, clone_state(model->state_dict()));
        epochs_without_gain = 0;
      } else if (patience > 0 && ++epochs_without_gain >= patience) {
        line += str_cat("  (no gain for ", patience, " epochs: stopping early)");
        done = true;
      }
    } else if (run.speaks()) {
      io::write_model_file(run.output / "model.h5", parts.kind, settings.config_text, model_list(parts));
    }
    if (log) log->write(result.steps, fields, end.json);
    progress.finish(line);
    const bool stop = checkpointer.stop_requested();
    // The state after a complete epoch is the start of the next one. The last epoch always saves.
    if (checkpointer.due_at_epoch_end(result.steps, stop || done || epoch + 1 == run.epochs))
      save(complete ? epoch + 1 : epoch, complete ? 0 : epoch_step);
    if (stop) return stopped();
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.samples_per_s = static_cast<double>(samples * world) / std::max(result.seconds, 1e-9);
  for (const auto& [name, model] : parts.models)
    if (const auto it = best.find(kBestPrefix + name); it != best.end()) model->load_state_dict(it->second);
  if (result.best_epoch > 0) result.best_score = best_score;
  if (run.speaks())
    io::write_model_file(run.output / "model.h5", parts.kind, settings.config_text, model_list(parts));
  result.figures.insert(last_fields.begin(), last_fields.end());
  result.figures.merge(task->values());
  result.summary = task->summary(last_fields);
  return result;
}

}  // namespace lockstep::launch
