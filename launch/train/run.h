// What every run shares: the job's process group, seed, threads, output folder, step limits; and the model
// file it leaves behind, and the audit log of the samples each step saw.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "distributed/process_group.h"
#include "distributed/reducer.h"
#include "launch/config/settings.h"
#include "launch/env/signals.h"
#include "src/core/precision.h"
#include "src/nn/module.h"

namespace lockstep::launch {

// How a run starts: `auto` resumes from the newest checkpoint that verifies (falling back to older ones with
// a warning, starting fresh when there is none), `none` starts fresh and refuses a checkpoint folder that
// already holds checkpoints (it would prune them), a path resumes from that checkpoint directory.
struct ResumeRequest {
  enum class Mode { kAuto, kNone, kPath } mode = Mode::kAuto;
  std::filesystem::path path;
  // Parses "auto", "none" or a path (ValueError for an empty text).
  static ResumeRequest parse(const std::string& text);
};

// The run's settings that every task shares, and the job it runs in: its process group and stop signals.
// Rank 0 writes every file (except the per-rank SampleLog) and prints; the other ranks only report their own
// errors.
struct RunSettings {
  std::uint64_t seed = 0;
  int threads = 0;  // per rank, after the default was resolved
  Device device = kCPU;  // where this rank's networks, optimizers and batches live (run.device, resolved)
  MatmulPrecision precision = MatmulPrecision::kF32;  // run.precision, in force process-wide during the run
  std::filesystem::path output;
  std::int64_t epochs = 1;
  std::int64_t max_steps = 0;  // 0: no limit
  distributed::ReducerOptions reducer;
  bool sync_batchnorm = true;
  // Deterministic mode: the global batch's micro-shards (0: the default, fast mode). Batch norm is then
  // always synchronised (DeterministicBatchNorm, at one rank too) and the reducer deterministic.
  std::int64_t micro_shards = 0;
  ResumeRequest resume;  // from the command line (`lockstep train --resume`)
  // The SIGUSR1/SIGTERM handlers, installed first thing by `lockstep train` so that no signal is missed
  // during set-up; null: the trainer installs its own.
  std::shared_ptr<launch::StopSignals> signals;
  // The job: an MPI world under mpirun/srun, else a single-process group.
  std::shared_ptr<distributed::ProcessGroup> group;
  // On CUDA with several ranks, the NCCL group of the same ranks on this rank's GPU: the gradients are
  // averaged over it (batch-norm statistics and the loop's figures stay on `group`). Null: `group`.
  std::shared_ptr<distributed::ProcessGroup> device_group;

  int rank() const { return group ? group->rank() : 0; }
  // The group the reducer averages gradients over.
  std::shared_ptr<distributed::ProcessGroup> gradient_group() const {
    return device_group ? device_group : group;
  }
  int world() const { return group ? group->size() : 1; }
  // Whether this rank writes files and prints progress (rank 0).
  bool speaks() const { return rank() == 0; }
  bool deterministic() const { return micro_shards > 0; }
};

// The job's process group (init_process_group: the MPI world under mpirun/srun, else a single-process
// group), with distributed.timeout_s as its collective timeout. Collective under MPI.
std::shared_ptr<distributed::ProcessGroup> make_process_group(const launch::Settings& settings);

// The run over `group`: seeds the default generator with run.seed on every rank, sets the threads per rank
// (run.threads; 0 = OMP_NUM_THREADS when set, else the cores shared out over the ranks on this node) and, on
// rank 0, creates the output folder (a ConfigError at run.output when it cannot). Callers that must end
// every rank on a failure keep `group` alive across it.
RunSettings setup_run(const launch::Settings& settings, std::shared_ptr<distributed::ProcessGroup> group);
// The same over make_process_group(settings).
RunSettings setup_run(const launch::Settings& settings);

// Replaces `values` by their sums over every rank of `group` (one all_reduce in f64; collective). A group of
// one leaves them as they are.
void sum_over_ranks(distributed::ProcessGroup& group, std::span<double> values);

// The job in one line, the first one rank 0 prints: "job: 2 ranks (mpi), batch 64 per rank = 128 global,
// 1 thread per rank".
std::string describe_job(const RunSettings& run, std::int64_t per_rank_batch);

// Makes `model`'s batch norms normalise over the job's whole batch: DeterministicBatchNorm in deterministic
// mode (at any world size), SyncBatchNorm on several ranks when distributed.sync_batchnorm is on, else none.
// Returns how many layers were converted.
int synchronise_batch_norms(nn::Module& model, const RunSettings& run);

// From here on, ranks draw different random numbers (dropout masks, GAN noise) from the default generator:
// rank r > 0 re-keys it with a seed derived from (run.seed, r); rank 0 keeps its stream, so a single-process
// run draws exactly what it drew before. Called after the models are built (identical on every rank). In
// deterministic mode every rank keeps the one stream (its batch-shaped draws are made over the global batch).
void split_random_streams(const RunSettings& run);

// [run] sample_log = true: every rank appends, for each training step, the line "STEP INDEX INDEX ..." (the
// data set indices of its batch) to <run.output>/samples/rank_<rank>.txt: an audit of the global sample
// order, e.g. across a resume (a resumed run appends again from its checkpoint's step: the last line of a
// step is the one that counted). Off by default (a no-op).
class SampleLog {
 public:
  SampleLog(bool on, const RunSettings& run);
  void write(std::int64_t step, const std::vector<std::int64_t>& indices);

 private:
  std::filesystem::path path_;  // empty when off
};

}  // namespace lockstep::launch
