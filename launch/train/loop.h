// The one training loop: every task (launch/train/task.h) trains through it, data-parallel over the run's
// process group (a single process is a group of one, where the wrappers and reductions change no number).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "launch/config/settings.h"
#include "launch/train/progress.h"
#include "launch/train/run.h"

namespace lockstep::launch {

struct TrainResult {
  std::int64_t steps = 0;            // the run's steps, resumed ones included
  std::int64_t resumed_step = -1;    // the checkpoint's step when the run resumed, else -1
  std::string stopped_by;            // "SIGUSR1" or "SIGTERM" when a signal stopped the run, else ""
  std::filesystem::path checkpoint;  // the last checkpoint written or resumed from (empty: none)
  double seconds = 0;                // training time in this process
  double samples_per_s = 0;          // samples consumed per second, over every rank
  std::optional<double> best_score;  // the best complete epoch's score (tasks with a score)
  std::string score_name;            // what the score is: "test accuracy"
  std::int64_t best_epoch = 0;       // 1-based (0: none)
  // The last epoch's record (train_loss, test_accuracy, d_loss...) and the task's own values (first_loss,
  // generator_steps...).
  std::map<std::string, double> figures;
  std::string summary;  // the task's summary line
  // figures[name], NaN when absent.
  double figure(const std::string& name) const;
};

// Trains `settings.task` for run.epochs epochs (or run.max_steps steps), resuming as run.resume says,
// checkpointing as [checkpoint] says, stopping at the next step when a rank gets SIGUSR1 or SIGTERM (after a
// checkpoint: result.stopped_by). Rank 0 writes <output>/metrics.jsonl, tensorboard/, model.h5 (the best
// model's when the task has a score) and prints on `progress`. Collective.
TrainResult train(const launch::Settings& settings, const RunSettings& run, Progress& progress);

}  // namespace lockstep::launch
