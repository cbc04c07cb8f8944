// Classifier training: cross-entropy on minibatches, test accuracy each epoch, early stopping with
// best-model restore (complete epochs), checkpoints and resume, metrics as JSONL and TensorBoard events, and
// the trained model as an HDF5 file.
#pragma once

#include <cstdint>
#include <optional>

#include "launch/config/config.h"
#include "launch/train/progress.h"
#include "launch/train/run.h"

namespace lockstep::train {

struct ClassifierResult {
  double first_loss = 0;        // mean training loss over the first logged window
  double last_loss = 0;         // mean training loss of the last epoch
  double best_accuracy = 0;     // on the test split after a complete epoch (0 when there is none)
  std::int64_t best_epoch = 0;  // 1-based (0: no complete epoch was evaluated)
  // On the test split at the end (also after a part of an epoch); none when this process evaluated nothing.
  std::optional<double> final_accuracy;
  std::int64_t steps = 0;
  double images_per_s = 0;
  double seconds = 0;
  std::int64_t resumed_step = -1;    // the checkpoint's step when the run resumed, else -1
  std::string stopped_by;            // "SIGUSR1" or "SIGTERM" when a signal stopped the run, else ""
  std::filesystem::path checkpoint;  // the last checkpoint written by this process (empty: none)
};

ClassifierResult train_classifier(const launch::Config& cfg, const RunSettings& run, Progress& progress);

}  // namespace lockstep::train
