// Checkpoints of a training run and stopping on a signal: what a trainer saves (models, optimizers,
// schedules, its own counters and RNG streams), when, where, and how a run resumes from it — at the same
// world size bit for bit, at another world size with the same global batch and global sample order.
//
// A checkpoint (io::CheckpointStore, committed atomically with a manifest) holds:
//   model.h5      the models, in the layout of a trained model file (root attributes format_version, kind,
//                 config; one group per model: /model, or /generator and /discriminator), so `lockstep eval`,
//                 `lockstep sample` and `lockstep inspect` read it like a model file;
//   optimizer.h5  one group per optimizer and schedule (/optimizer, /schedule; /generator_optimizer, ...);
//   trainer.h5    /trainer (io::TrainerState: step, epoch, epoch_step, samples seen, global batch, seed,
//                 world size, config, library version, every rank's RNG stream, the trainer's figures
//                 in /trainer/values, e.g. steps_per_epoch and the epoch's running sums), the task's
//                 states (TrainingParts::states, e.g. /image_pools) and the trainer's extra state dicts
//                 (e.g. /best_model for early stopping).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "io/checkpoint/checkpoint_state.h"
#include "io/checkpoint/checkpoint_store.h"
#include "launch/config/settings.h"
#include "launch/env/signals.h"
#include "launch/train/progress.h"
#include "launch/train/run.h"
#include "src/nn/module.h"
#include "src/optim/optimizer.h"
#include "src/optim/schedule.h"

namespace lockstep::launch {

// Everything a trainer checkpoints besides io::TrainerState, by name. The pointers are not owned.
struct TrainingParts {
  std::string kind;  // "classifier" | "gan": the model file's kind
  std::vector<std::pair<std::string, nn::Module*>> models;
  std::vector<std::pair<std::string, optim::Optimizer*>> optimizers;
  std::vector<std::pair<std::string, optim::LRScheduler*>> schedules;
  // The task's training state that is no network (e.g. CycleGAN's image pools and their random stream), as
  // modules' buffers: saved in trainer.h5 beside /trainer (not in model.h5), loaded on resume. Rank 0 writes
  // the checkpoint, so this state must be the same on every rank.
  std::vector<std::pair<std::string, nn::Module*>> states = {};
};

// A committed checkpoint: its directory, its size on disk and how long saving took on this rank (gathering
// the random streams, writing, fsyncing, committing and agreeing).
struct SavedCheckpoint {
  std::filesystem::path dir;
  std::int64_t bytes = 0;
  double seconds = 0.0;
  // "checkpoint runs/x/checkpoints/step_000000400 (3.1 MiB in 0.04 s)"
  std::string describe() const;
};

// [checkpoint] every_steps (0: at the end of every epoch; N: every N steps, and never twice for one step),
// keep_last (3), keep_every (0: none; N: also keep every checkpoint whose step is a multiple of N), dir
// (default <run.output>/checkpoints). A checkpoint is also written when training ends and when the job is
// asked to stop (SIGUSR1, SIGTERM).
//
// Collective methods are called by every rank at the same point. Rank 0 writes and prunes; every rank reads
// the checkpoint it resumes from (the folder must be visible to every rank: a shared file system across
// nodes). Stop signals come from run.signals (installed by `lockstep train` before anything else), else
// construction installs the SIGUSR1/SIGTERM handlers (launch::StopSignals) for the object's life.
class Checkpointer {
 public:
  // [checkpoint] settings; run.resume says how find() picks.
  Checkpointer(const launch::Settings& settings, const RunSettings& run);

  // Collective. Rank 0 removes temporaries left by a killed run and picks the checkpoint to resume from
  // (printing a warning for each damaged newer one, which it renames to step_N.damaged so that it is
  // neither pruned into the newest nor picked again); every rank then reads its trainer state. nullopt:
  // start fresh. Errors (no checkpoint at an explicit path, one that does not verify, `none` over
  // existing checkpoints) name the path.
  std::optional<io::TrainerState> find(Progress& progress);
  // The checkpoint find() picked.
  const std::filesystem::path& resumed_from() const { return resumed_from_; }

  // The trainer's epoch length in steps: saved with each checkpoint and checked by load() (call it first).
  void set_steps_per_epoch(std::int64_t steps) { steps_per_epoch_ = steps; }

  // Every rank: checks that the run continues the checkpoint's (run.seed, steps per epoch: a ConfigError or
  // ValueError naming both values), loads the picked checkpoint's models, optimizers and schedules into
  // `parts` (every mismatch reported by name), restores this rank's default random stream (the same world
  // size: the saved stream; another: a fresh one derived from seed, rank and step), loads the task's states
  // (parts.states) from trainer.h5 and returns the other state dicts saved there (e.g. "best_model").
  io::StateGroups load(const TrainingParts& parts, const io::TrainerState& state) const;

  // "resumed from DIR: step 1200, epoch 3 at step 28/234" (+ the world size change): the line trainers print.
  std::string describe_resume(const io::TrainerState& state, std::int64_t global_batch) const;

  // Whether a checkpoint is due after step `step` (every_steps > 0 and step a multiple of it).
  bool due(std::int64_t step) const { return every_steps_ > 0 && step % every_steps_ == 0; }
  // Whether a checkpoint is due at the end of an epoch (or of its part where training ends or stops):
  // every_steps = 0 (every epoch), `ending` (training ends or stops here), or due(step).
  bool due_at_epoch_end(std::int64_t step, bool ending) const {
    return every_steps_ == 0 || ending || due(step);
  }
  // Collective: whether any rank received SIGUSR1 or SIGTERM (one all-reduce when world > 1); once true
  // it stays true. It reads the vote start_stop_vote() left in flight, if any, else votes now.
  bool stop_requested();
  // Collective: starts the next stop_requested()'s vote on the signals received so far, without waiting.
  // The loop starts it before each step: the vote then takes its place among the step's collectives, ahead
  // of any all-reduce the step leaves in flight for later (a GAN's generator update), and the step's end
  // does not wait for those. A signal arriving during the step is seen by the next step's vote.
  void start_stop_vote();
  // The signal that stopped the run ("SIGUSR1"), after stop_requested() returned true.
  std::string stop_signal() const;

  // Collective. Saves `parts` and `state` (the trainer fills step, epoch, epoch_step, samples_seen,
  // global_batch and values; the rest is filled here, including every rank's default random stream) plus
  // `extra` state dicts into checkpoint `state.step`: rank 0 writes and commits, then tells every rank the
  // outcome (an error on rank 0 fails every rank). A second save of the same step is skipped (bytes and
  // seconds 0).
  SavedCheckpoint save(const TrainingParts& parts, io::TrainerState state, const io::StateGroups& extra = {});
  std::int64_t last_saved_step() const { return last_saved_; }

 private:
  const RunSettings& run_;
  const launch::Settings& settings_;
  io::CheckpointStore store_;
  std::int64_t every_steps_ = 0;
  std::int64_t steps_per_epoch_ = 0;
  std::shared_ptr<launch::StopSignals> signals_;  // run.signals, or its own
  int stop_signal_ = 0;
  std::optional<launch::StopVote> vote_;  // started by start_stop_vote, not yet read
  std::filesystem::path resumed_from_;
  std::int64_t last_saved_ = -1;
};

// What a resumed run that has nothing left to train prints: its step, why (the end of run.epochs or
// run.max_steps, or early stopping) and how to go on.
std::string nothing_left_to_train(const RunSettings& run, std::int64_t step, bool stopped_early);

// The counters of a trainer state at `step` (samples_seen = step x global_batch); the rest is the trainer's
// (values) and Checkpointer::save's.
io::TrainerState trainer_state_at(std::int64_t step, std::int64_t epoch, std::int64_t epoch_step,
                                  std::int64_t global_batch);

// A trainer's per-rank running sums (the epoch's loss sums...) in its state, so that a resumed run logs the
// same figures as an uninterrupted one: save_rank_sums gathers every rank's `sums` (collective) into
// state->values "<name><i>.rank<r>"; load_rank_sums restores this rank's own at the same world size, and at
// another gives rank 0 the sums over the saved ranks and the other ranks zeros.
void save_rank_sums(distributed::ProcessGroup& group, io::TrainerState* state, const std::string& name,
                    std::span<const double> sums);
void load_rank_sums(const io::TrainerState& state, const std::string& name, int rank, int world,
                    std::span<double> sums);

// The trainer's figure `name` saved in state.values (IoError naming it when missing).
double value_of(const io::TrainerState& state, const std::string& name);

// The per-rank training batch of a run resumed from `state` on `world` ranks, whose loader options hold the
// batch the config asks for: the same world size keeps it (a ConfigError naming the batch key when the
// config's global batch differs from the saved one); another world size shares the saved global batch out
// over the ranks, so that every step sees the same samples (a ConfigError when it does not divide).
std::int64_t resumed_batch_size(const io::TrainerState& state, std::int64_t configured,
                                const launch::DataSection& data, int world);

}  // namespace lockstep::launch
