// Saving, finding and loading a training run's checkpoints, and agreeing to stop on a signal.
#include "launch/train/checkpointing.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>

#include "io/h5/h5.h"
#include "io/model/model_file.h"
#include "io/state/state_file.h"
#include "src/core/error.h"
#include "src/core/rng.h"
#include "src/tensor/factories.h"

namespace lockstep::launch {
namespace {

constexpr const char* kModelFile = io::kCheckpointModelFile;
constexpr const char* kOptimizerFile = io::kCheckpointOptimizerFile;
constexpr const char* kTrainerFile = io::kCheckpointTrainerFile;

std::string rng_name(int rank) { return str_cat("rank", rank, ".default"); }

// Renames `path` to `<path><suffix>` (or `<path><suffix>.2`, ... when taken: nothing set aside earlier is
// overwritten) and returns the new path.
std::filesystem::path set_aside(const std::filesystem::path& path, const std::string& suffix) {
  std::filesystem::path aside = path;
  aside += suffix;
  for (int n = 2; std::filesystem::exists(aside); ++n) {
    aside = path;
    aside += str_cat(suffix, ".", n);
  }
  std::filesystem::rename(path, aside);
  return aside;
}

// One i64 from rank 0 to every rank (a group of one returns it unchanged).
std::int64_t broadcast_value(distributed::ProcessGroup& group, std::int64_t value) {
  if (group.size() == 1) return value;
  const Tensor t = from_vector(std::vector<std::int64_t>{value}, {1});
  group.broadcast(t, 0)->wait();
  return t.to_vector<std::int64_t>()[0];
}

// Rank 0's `text` (at most 4096 characters) on every rank, one i64 per character.
std::string broadcast_text(distributed::ProcessGroup& group, const std::string& text) {
  if (group.size() == 1) return text;
  const std::int64_t n =
      broadcast_value(group, std::min<std::int64_t>(static_cast<std::int64_t>(text.size()), 4096));
  if (n <= 0) return "";
  std::vector<std::int64_t> codes(static_cast<std::size_t>(n), 0);
  for (std::size_t i = 0; i < codes.size() && i < text.size(); ++i)
    codes[i] = static_cast<unsigned char>(text[i]);
  const Tensor t = from_vector(codes, {n});
  group.broadcast(t, 0)->wait();
  std::string out;
  for (const std::int64_t c : t.to_vector<std::int64_t>()) out += static_cast<char>(c);
  return out;
}

// Runs `load` (a load_state_dict of group `group` of `file`); a mismatch error gains the file and group.
template <typename Load>
void in_group(const std::filesystem::path& file, const std::string& group, Load load) {
  try {
    load();
  } catch (const ValueError& e) {
    throw ValueError(
        str_cat("resume: group '/", group, "' of '", file.string(), "' does not fit: ", e.what()));
  }
}

}  // namespace

Checkpointer::Checkpointer(const launch::Settings& settings, const RunSettings& run)
    : run_(run),
      settings_(settings),
      store_(settings.checkpoint.dir,
             io::CheckpointPolicy{.keep_last = settings.checkpoint.keep_last,
                                  .keep_every = settings.checkpoint.keep_every}),
      every_steps_(settings.checkpoint.every_steps),
      signals_(run.signals ? run.signals : std::make_shared<launch::StopSignals>()) {}

std::optional<io::TrainerState> Checkpointer::find(Progress& progress) {
  distributed::ProcessGroup& group = *run_.group;
  // Rank 0 decides; -1: start fresh. Errors on rank 0 end the job (the caller aborts it).
  std::int64_t step = -1;
  std::filesystem::path picked;
  if (run_.rank() == 0) {
    for (const std::filesystem::path& stale : store_.cleanup_stale())
      progress.print(str_cat("removed ", stale.string(), " (a checkpoint a killed run did not finish)"));
    if (run_.resume.mode == ResumeRequest::Mode::kPath) {
      std::string why;
      if (!std::filesystem::is_directory(run_.resume.path)) {
        throw IoError(str_cat("--resume: expected a checkpoint directory, but '", run_.resume.path.string(),
                              "' is not a directory"),
                      run_.resume.path.string());
      }
      if (!io::CheckpointStore::verify(run_.resume.path, &why)) {
        throw IoError(
            str_cat("--resume: the checkpoint '", run_.resume.path.string(), "' does not verify: ", why),
            run_.resume.path.string());
      }
      picked = run_.resume.path;
      // Resuming an older checkpoint next to newer ones would mix two histories: pruning would delete the
      // resumed branch's checkpoints first, and `--resume auto` would later pick the abandoned newer one.
      const std::int64_t picked_step = io::read_trainer_state(picked / kTrainerFile).step;
      std::vector<std::string> newer;
      for (const io::CheckpointInfo& info : store_.list())
        if (info.step > picked_step) newer.push_back(info.path.filename().string());
      if (!newer.empty()) {
        std::string names;
        for (const std::string& name : newer) names += (names.empty() ? "" : ", ") + name;
        throw IoError(str_cat("--resume: '", store_.root().string(), "' holds checkpoints newer than step ",
                              picked_step, " (", names, "): continuing from '", picked.string(),
                              "' would mix two runs. Move them away, or set run.output (or checkpoint.dir) "
                              "to another folder"),
                      store_.root().string());
      }
    } else if (run_.resume.mode == ResumeRequest::Mode::kNone) {
      const std::vector<io::CheckpointInfo> existing = store_.list();
      if (!existing.empty()) {
        throw IoError(str_cat("--resume none: '", store_.root().string(), "' already holds ", existing.size(),
                              " checkpoint(s), the newest ", existing.back().path.filename().string(),
                              "; a fresh run would prune them. Resume with --resume auto, or set "
                              "run.output (or checkpoint.dir) to another folder"),
                      store_.root().string());
      }
    } else {
      std::vector<std::string> warnings;
      const std::optional<io::CheckpointInfo> latest = store_.latest_valid(&warnings);
      for (const std::string& w : warnings) progress.print("warning: " + w);
      // A damaged checkpoint newer than the one resumed from is set aside, never pruned into the newest.
      for (const io::CheckpointInfo& info : store_.list()) {
        if (latest && info.step <= latest->step) continue;
        progress.print(str_cat("warning: set the damaged checkpoint aside as ",
                               set_aside(info.path, ".damaged").string()));
      }
      if (latest) {
        picked = latest->path;
      } else if (!warnings.empty()) {
        throw IoError(
            str_cat(
                "--resume auto: no checkpoint under '", store_.root().string(),
                "' verifies (see the warnings above); they were set aside as step_*.damaged for inspection. "
                "Rerun to start fresh"),
            store_.root().string());
      }
    }
    if (!picked.empty()) step = io::read_trainer_state(picked / kTrainerFile).step;
  }
  step = broadcast_value(group, step);
  if (step < 0) return std::nullopt;
  // Every rank reads the same directory: rank 0's choice, by step, under the same root (or the same path).
  resumed_from_ = run_.resume.mode == ResumeRequest::Mode::kPath
                      ? run_.resume.path
                      : store_.root() / io::CheckpointStore::directory_name(step);
  io::TrainerState state = io::read_trainer_state(resumed_from_ / kTrainerFile);
  last_saved_ = state.step;
  return state;
}

io::StateGroups Checkpointer::load(const TrainingParts& parts, const io::TrainerState& state) const {
  LOCKSTEP_CHECK(!resumed_from_.empty(), ValueError,
                 "Checkpointer::load: expected find() to have picked a checkpoint, but none was picked");
  {
    const io::h5::File file(resumed_from_ / kModelFile, io::h5::Access::kRead);
    const io::h5::Group root = file.root();
    const std::string kind = root.attribute_string("kind");
    if (kind != parts.kind) {
      throw IoError(str_cat("resume: expected a ", parts.kind, " checkpoint, but '",
                            (resumed_from_ / kModelFile).string(), "' holds a ", kind),
                    (resumed_from_ / kModelFile).string());
    }
    // The data order and augmentation follow run.seed: another seed would not continue the same run.
    if (state.seed != run_.seed) {
      settings_.seed_key.fail(str_cat("expected the checkpoint's seed ", state.seed, " to resume '",
                                    resumed_from_.string(), "', but got ", run_.seed));
    }
    // Step k of an epoch must mean the same samples (the epoch's length depends on the world size when the
    // data set does not divide evenly).
    if (const auto it = state.values.find("steps_per_epoch");
        it != state.values.end() && static_cast<std::int64_t>(it->second) != steps_per_epoch_) {
      throw ValueError(str_cat("resume: the checkpoint '", resumed_from_.string(), "' was saved by ",
                               state.world_size, " ranks with ", static_cast<std::int64_t>(it->second),
                               " steps per epoch, but this job of ", run_.world(), " ranks has ",
                               steps_per_epoch_, ". Resume on ", state.world_size, " ranks"));
    }
    for (const auto& [name, model] : parts.models)
      in_group(resumed_from_ / kModelFile, name,
               [&] { model->load_state_dict(io::read_state_dict(root.group(name))); });
  }
  {
    const io::h5::File file(resumed_from_ / kOptimizerFile, io::h5::Access::kRead);
    const io::h5::Group root = file.root();
    const std::filesystem::path path = resumed_from_ / kOptimizerFile;
    for (const auto& [name, optimizer] : parts.optimizers)
      in_group(path, name, [&] { optimizer->load_state_dict(io::read_state_dict(root.group(name))); });
    for (const auto& [name, schedule] : parts.schedules)
      in_group(path, name, [&] { schedule->load_state_dict(io::read_state_dict(root.group(name))); });
  }
  // This rank's random stream: exactly the saved one at the same world size; in deterministic mode rank 0's
  // (every rank holds the same one) at any; otherwise a fresh one at another world size (the old ranks'
  // streams cannot be shared out over a different number of ranks).
  Generator& g = default_generator();
  if (state.world_size == run_.world() || run_.deterministic()) {
    const int from = run_.deterministic() ? 0 : run_.rank();
    const auto saved = state.rng.find(rng_name(from));
    if (saved == state.rng.end() || saved->second.size() != 2) {
      throw IoError(str_cat("resume: expected the random stream '", rng_name(from), "' ([seed, offset]) in '",
                            (resumed_from_ / kTrainerFile).string(), "', but it is missing or malformed"),
                    (resumed_from_ / kTrainerFile).string());
    }
    g.set_state(saved->second[0], saved->second[1]);
  } else {
    g.set_state(mix64(state.seed ^ mix64(static_cast<std::uint64_t>(run_.rank()) ^
                                         mix64(static_cast<std::uint64_t>(state.step)))),
                0);
  }
  // The extra state dicts: every top-level group of trainer.h5 except /trainer.
  io::StateGroups extra;
  {
    const io::h5::File file(resumed_from_ / kTrainerFile, io::h5::Access::kRead);
    const io::h5::Group root = file.root();
    for (const std::string& name : root.children())
      if (name != "trainer") extra.emplace(name, io::read_state_dict(root.group(name)));
  }
  // The task's states, by name.
  for (const auto& [name, module] : parts.states) {
    const std::filesystem::path path = resumed_from_ / kTrainerFile;
    const auto it = extra.find(name);
    if (it == extra.end()) {
      throw IoError(str_cat("resume: expected the group '/", name, "' (the task's state) in '", path.string(),
                            "', but it is missing. Was it written by another task?"),
                    path.string());
    }
    in_group(path, name, [&] { module->load_state_dict(it->second); });
    extra.erase(it);
  }
  return extra;
}

std::string Checkpointer::describe_resume(const io::TrainerState& state, std::int64_t global_batch) const {
  return str_cat("resumed from ", resumed_from_.string(), ": step ", state.step, ", epoch ", state.epoch + 1,
                 " at step ", state.epoch_step, "/", steps_per_epoch_,
                 state.world_size != run_.world() ? str_cat(" (saved by ", state.world_size,
                                                            " ranks; global batch ", global_batch, " kept)")
                                                  : "");
}

std::string nothing_left_to_train(const RunSettings& run, std::int64_t step, bool stopped_early) {
  if (stopped_early) {
    return str_cat("nothing left to train: the run stopped early (train.early_stopping_patience) at step ",
                   step, ". Set run.output to a new folder to start afresh");
  }
  return str_cat("nothing left to train: the checkpoint is at step ", step,
                 ", the end of run.epochs = ", run.epochs,
                 run.max_steps > 0 ? str_cat(" / run.max_steps = ", run.max_steps) : "",
                 ". Raise them to train on, or set run.output to a new folder to start afresh");
}

io::TrainerState trainer_state_at(std::int64_t step, std::int64_t epoch, std::int64_t epoch_step,
                                  std::int64_t global_batch) {
  io::TrainerState state;
  state.step = step;
  state.epoch = epoch;
  state.epoch_step = epoch_step;
  state.samples_seen = step * global_batch;
  state.global_batch = global_batch;
  return state;
}

void save_rank_sums(distributed::ProcessGroup& group, io::TrainerState* state, const std::string& name,
                    std::span<const double> sums) {
  const auto n = static_cast<std::int64_t>(sums.size());
  const Tensor mine = from_vector(std::vector<double>(sums.begin(), sums.end()), {n});
  Tensor all = mine;
  if (group.size() > 1) {
    all = empty({n * group.size()}, DType::f64);
    group.all_gather(mine, all)->wait();
  }
  const std::vector<double> values = all.to_vector<double>();
  for (int r = 0; r < group.size(); ++r)
    for (std::int64_t i = 0; i < n; ++i)
      state->values[str_cat(name, i, ".rank", r)] = values[static_cast<std::size_t>(r * n + i)];
}

void load_rank_sums(const io::TrainerState& state, const std::string& name, int rank, int world,
                    std::span<double> sums) {
  for (std::size_t i = 0; i < sums.size(); ++i) {
    if (state.world_size == world) {
      sums[i] = value_of(state, str_cat(name, i, ".rank", rank));
    } else {
      sums[i] = 0.0;
      if (rank == 0)
        for (std::int64_t r = 0; r < state.world_size; ++r)
          sums[i] += value_of(state, str_cat(name, i, ".rank", r));
    }
  }
}

double value_of(const io::TrainerState& state, const std::string& name) {
  const auto it = state.values.find(name);
  if (it == state.values.end()) {
    throw IoError(str_cat("resume: expected the value '", name,
                          "' under /trainer/values of the checkpoint's trainer.h5 (step ", state.step,
                          "), but it is missing. Was it written by another trainer?"),
                  "trainer.h5", "/trainer/values");
  }
  return it->second;
}

void Checkpointer::start_stop_vote() {
  if (stop_signal_ == 0 && !vote_ && run_.world() > 1) vote_.emplace(*run_.group, signals_->signal());
}

bool Checkpointer::stop_requested() {
  if (stop_signal_ != 0) return true;
  if (run_.world() == 1) {
    stop_signal_ = signals_->signal();
  } else {
    start_stop_vote();
    stop_signal_ = vote_->result();
    vote_.reset();
  }
  return stop_signal_ != 0;
}

std::string Checkpointer::stop_signal() const { return launch::signal_name(stop_signal_); }

std::string SavedCheckpoint::describe() const {
  return str_cat("checkpoint ", dir.string(), " (",
                 format_fixed(static_cast<double>(bytes) / (1024.0 * 1024.0), 1), " MiB in ",
                 format_fixed(seconds, 2), " s)");
}

SavedCheckpoint Checkpointer::save(const TrainingParts& parts, io::TrainerState state,
                                   const io::StateGroups& extra) {
  const auto t0 = std::chrono::steady_clock::now();
  distributed::ProcessGroup& group = *run_.group;
  const std::filesystem::path committed = store_.root() / io::CheckpointStore::directory_name(state.step);
  if (state.step == last_saved_) return {committed, 0, 0.0};
  // Every rank's random stream, gathered with the step: the ranks must be at the same step.
  const Generator& g = default_generator();
  const Tensor mine = from_vector(std::vector<std::int64_t>{state.step, static_cast<std::int64_t>(g.seed()),
                                                            static_cast<std::int64_t>(g.offset())},
                                  {3});
  Tensor all = empty({3 * static_cast<std::int64_t>(run_.world())}, DType::i64);
  if (run_.world() == 1) {
    all.copy_(mine);
  } else {
    group.all_gather(mine, all)->wait();
  }
  const std::vector<std::int64_t> words = all.to_vector<std::int64_t>();
  for (int r = 0; r < run_.world(); ++r) {
    const std::size_t at = 3 * static_cast<std::size_t>(r);
    if (words[at] != state.step) {
      throw ValueError(str_cat("checkpoint: rank ", r, " is at step ", words[at], " while rank ", run_.rank(),
                               " saves step ", state.step, ": the ranks have diverged"));
    }
    state.rng[rng_name(r)] = {static_cast<std::uint64_t>(words[at + 1]),
                              static_cast<std::uint64_t>(words[at + 2])};
  }
  state.seed = run_.seed;
  state.world_size = run_.world();
  state.values["steps_per_epoch"] = static_cast<double>(steps_per_epoch_);
  state.config = settings_.config_text;
  state.library_version = io::library_version();

  std::int64_t ok = 1;
  std::string failure;
  if (run_.rank() == 0) {
    try {
      const std::filesystem::path dir = store_.begin(state.step);
      std::vector<std::pair<std::string, const nn::Module*>> models;
      for (const auto& [name, model] : parts.models) models.emplace_back(name, model);
      io::write_model_file(dir / kModelFile, parts.kind, settings_.config_text, models);
      io::StateGroups optim_state;
      for (const auto& [name, optimizer] : parts.optimizers)
        optim_state.emplace(name, optimizer->state_dict());
      for (const auto& [name, schedule] : parts.schedules) optim_state.emplace(name, schedule->state_dict());
      io::write_state_groups(dir / kOptimizerFile, optim_state);
      {
        const io::h5::File file(dir / kTrainerFile, io::h5::Access::kTruncate);
        const io::h5::Group root = file.root();
        io::write_trainer_state(root.create_group("trainer"), state);
        for (const auto& [name, module] : parts.states)
          io::write_state_dict(root.create_group(name), module->state_dict());
        for (const auto& [name, dict] : extra) io::write_state_dict(root.create_group(name), dict);
        file.flush();
      }
      try {
        store_.commit(state.step);
      } catch (const IoError& e) {
        // Committed, but removing an older checkpoint failed: the new one is safe, training goes on.
        if (!io::CheckpointStore::verify(committed)) throw;
        std::fprintf(stderr, "warning: %s\n", e.what());
      }
    } catch (const std::exception& e) {
      store_.discard(state.step);
      ok = 0;
      failure = e.what();
    }
  }
  // Every rank learns the outcome before going on (or exiting after a stop signal).
  ok = broadcast_value(group, ok);
  if (ok == 0) {
    // Every rank ends the job with rank 0's cause, so that its first line names the cause whichever rank
    // prints first.
    failure = broadcast_text(group, failure);
    throw IoError(str_cat("checkpoint: rank 0 could not save step ", state.step, " under '",
                          store_.root().string(), "'", failure.empty() ? std::string() : ": " + failure),
                  store_.root().string());
  }
  last_saved_ = state.step;
  SavedCheckpoint saved{committed, 0, 0.0};
  if (run_.rank() == 0)
    for (const auto& entry : std::filesystem::directory_iterator(committed))
      if (entry.is_regular_file()) saved.bytes += static_cast<std::int64_t>(entry.file_size());
  saved.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return saved;
}

std::int64_t resumed_batch_size(const io::TrainerState& state, std::int64_t configured,
                                const launch::DataSection& data, int world) {
  if (state.world_size == world) {
    if (configured * world != state.global_batch) {
      data.batch_key.fail(str_cat("expected the checkpoint's global batch ", state.global_batch, " (", world,
                                  " x ", state.global_batch / world, ") to resume, but the config gives ",
                                  configured * world, " (", world, " x ", configured, ")"));
    }
    return configured;
  }
  if (state.global_batch % world != 0) {
    data.batch_key.fail(str_cat("the checkpoint was saved by ", state.world_size, " ranks with global batch ",
                                state.global_batch, ", which ", world,
                                " ranks cannot share evenly; resume on a world size that divides it"));
  }
  return state.global_batch / world;
}

}  // namespace lockstep::launch
