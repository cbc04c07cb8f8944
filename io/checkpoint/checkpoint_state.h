// The HDF5 contents of a checkpoint: named sets of state dicts (model, optimizer, schedule, ...) in one file,
// one top-level group each with dotted names as paths, and the trainer's own state (counters, seed, world
// size, config text, library version, RNG streams as integers). Files open in h5dump and h5py.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "io/h5/h5.h"
#include "src/nn/state_dict.h"

namespace lockstep::io {

inline constexpr int kTrainerStateFormatVersion = 1;

// Named state dicts: {"model": ..., "optimizer": ..., "schedule": ...}. Names are top-level HDF5 groups:
// non-empty, without '/' or '.'.
using StateGroups = std::map<std::string, nn::StateDict>;

// Writes `groups` to a new HDF5 file at `file` (replacing any file there): /<group>/<dotted/name/path>.
// An empty state dict becomes an empty group. ValueError for a bad group name; IoError naming the file.
void write_state_groups(const std::filesystem::path& file, const StateGroups& groups);
// Every top-level group of `file` as a StateDict (entries sorted by name; dtypes and bits as written).
// IoError naming the file (missing, not HDF5, a top-level dataset where a group belongs).
StateGroups read_state_groups(const std::filesystem::path& file);

// What a trainer needs beyond state dicts to resume exactly. Unsigned values (seed, RNG words) are stored
// as int64 with the same 64 bits, so h5py shows values >= 2^63 as negative.
struct TrainerState {
  std::int64_t step = 0;
  std::int64_t epoch = 0;       // the epoch in progress (0-based)
  std::int64_t epoch_step = 0;  // steps of that epoch already taken
  std::int64_t samples_seen = 0;
  std::int64_t global_batch = 0;
  std::uint64_t seed = 0;
  std::int64_t world_size = 1;  // at save
  std::string config;           // the run's configuration text, verbatim
  std::string library_version;
  // RNG state that cannot be recomputed, per named stream: e.g. "default" -> {seed, offset} of a
  // Generator; per-rank streams gathered by rank 0 under names like "rank1.sampler". Names: non-empty,
  // without '/'.
  std::map<std::string, std::vector<std::uint64_t>> rng;
  // The trainer's own figures (best accuracy so far, running loss sums of the epoch...), by name.
  std::map<std::string, double> values;
  bool operator==(const TrainerState&) const = default;
};

// Under `group`: attributes format_version, step, epoch, epoch_step, samples_seen, global_batch, seed,
// world_size, config, library_version; a subgroup `rng` with one 1-D int64 dataset per stream; a subgroup
// `values` with one f64 attribute per value.
void write_trainer_state(const h5::Group& group, const TrainerState& state);
// IoError naming the file and object when something is missing or of another format version.
TrainerState read_trainer_state(const h5::Group& group);
// The same in a new file, under the group /trainer.
void write_trainer_state(const std::filesystem::path& file, const TrainerState& state);
TrainerState read_trainer_state(const std::filesystem::path& file);

}  // namespace lockstep::io
