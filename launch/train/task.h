// A task is what one kind of training run (classifier, GAN, ...) supplies to the one training loop
// (launch/train/loop.h): its networks, optimizers and schedules, one step on a batch, its epoch-end
// evaluation and its running figures. Resuming, epochs, stop signals, checkpoints, the metrics log,
// progress, timing, the best model and early stopping belong to the loop.
//
// Adding a task: one file with a Task subclass, one line in launch/train/tasks.cpp, an example config under
// examples/ and its tests.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "io/data/loader.h"
#include "launch/config/settings.h"
#include "launch/train/checkpointing.h"
#include "launch/train/factory.h"
#include "launch/train/run.h"
#include "launch/train/run_log.h"
#include "launch/train/step_sums.h"

namespace lockstep::launch {

// What a task is built from. The references outlive the task. The loop builds its training loader from
// `data` after the task: a task may narrow data.train_options.subset (and data.train_size) to the samples it
// trains on, as CycleGAN does to its domain A.
struct TaskContext {
  const launch::Settings& settings;
  const RunSettings& run;
  DataSplits& data;
};

// What a task reports at the end of an epoch (or of the part of one where training ends or stops).
struct EpochEnd {
  std::vector<std::pair<std::string, double>> fields;  // the metrics record (metrics.jsonl, TensorBoard)
  std::vector<std::pair<std::string, std::string>> json;  // JSON-valued fields of the record (metrics.jsonl only)
  std::string line;                                    // the progress line
  // Higher is better; the best model (of complete epochs) and early stopping watch it. None: no score.
  std::optional<double> score;
  std::string score_name;  // "validation accuracy"
};

// One kind of training run. Every rank holds one; the methods marked collective are called by every rank
// at the same point. Not thread-safe.
class Task {
 public:
  virtual ~Task() = default;

  // The networks (also written to model.h5), optimizers and schedules, by name, for checkpoints.
  virtual TrainingParts parts() = 0;
  // One line about the models for the job's start: "model mlp: 535818 parameters".
  virtual std::string describe() const = 0;
  // Called once the epoch length is known (before any step or resume): builds what depends on it, such as
  // the learning-rate schedules.
  virtual void start(std::int64_t steps_per_epoch) = 0;

  // The names of the figures this rank sums over an epoch's steps (e.g. loss sum, steps, images). The loop
  // keeps the sums, checkpoints them, resets them each epoch, and stops the run when one is not finite.
  virtual std::vector<std::string> sum_names() const = 0;
  // One training step on this rank's batch, the job's step number `step` (1-based): forward, backward,
  // update; adds the step's figures to `sums` (as tensors where they are tensors: on a GPU, reading one
  // back would make every step wait for the device). Returns the number of samples consumed. Collective
  // (the gradients are all-reduced).
  virtual std::int64_t step(const io::Batch& batch, std::int64_t step, StepSums& sums) = 0;
  // The bar's running text from this rank's sums: "loss 0.4123".
  virtual std::string progress_text(std::span<const double> sums) const = 0;
  // Collective: evaluates after the steps of `epoch` (0-based); `job_sums` are the epoch's sums over every
  // rank; `log` is rank 0's run log (null elsewhere) for anything beyond the fields, e.g. sample images.
  virtual EpochEnd end_epoch(std::int64_t epoch, std::int64_t step, std::span<const double> job_sums,
                             RunLog* log) = 0;
  // What to say when a figure stops being finite: which setting to change.
  virtual std::string divergence_hint() const = 0;
  // Empty, or what shows that the run diverged although every figure is still finite, from what the steps
  // since the last check added to each sum (`added`, as sum_names) over their `n` samples, as means per
  // sample or per step (one step on the CPU, many on a GPU): a loss that no healthy run comes near (Adam
  // moves each weight by at most lr per step, so a diverged run's weights can stay finite while its loss
  // explodes). Checked whenever the loop reads the sums (after every step on the CPU; on a GPU when the bar
  // is drawn), and always before anything is saved.
  virtual std::string exploded(std::span<const double> /*added*/, std::int64_t /*n*/) const { return ""; }

  // The batches the loop trains on, built after start-up (and any resume) set data.train_options: by default
  // the image loader over data.train; a task of another kind of data (text) returns its own source.
  virtual std::unique_ptr<io::BatchSource> training_batches(const DataSplits& data);
  // Collective: brings the states of parts() up to date just before a checkpoint is written (e.g. gathers
  // every rank's share of a recurrent state, so that rank 0 writes all of it; applies an update whose
  // all-reduce a step left in flight).
  virtual void before_save() {}

  // The task's own figures kept in checkpoints (e.g. the first window's loss), and their restore on resume.
  virtual std::map<std::string, double> values() const { return {}; }
  virtual void restore(const io::TrainerState& /*state*/) {}
  // The summary after training, without the loop's figures (steps, speed, time, files): "test accuracy
  // 0.9123, final train loss 0.2345".
  virtual std::string summary(const std::vector<std::pair<std::string, double>>& last_fields) const = 0;
};

// The task `settings.task` names (launch/train/tasks.cpp). ConfigError for an unknown name.
std::unique_ptr<Task> make_task(const TaskContext& context);
// The kind of data `task` trains on (launch/train/tasks.cpp).
DataKind task_data_kind(const std::string& task);

// For Task::exploded: "" when |value| <= bound, else "<figure> reached <value><unit> (beyond <bound>, which
// no healthy run comes near)" (also for a NaN value).
std::string beyond(const std::string& figure, double value, double bound, const std::string& unit = "");

}  // namespace lockstep::launch
