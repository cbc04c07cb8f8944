// Launcher detection from the environment (see launcher.h for the variables each launcher sets).
#include "launch/env/launcher.h"

#include <charconv>
#include <cstdlib>
#include <initializer_list>
#include <utility>

#include "src/core/error.h"

namespace lockstep::launch {
namespace {

constexpr const char* kEnvironment = "environment";

// The non-negative decimal integer in `name` (nullopt when unset); ConfigError when malformed.
std::optional<int> read_count(const EnvLookup& env, const char* name) {
  const std::optional<std::string> text = env(name);
  if (!text) return std::nullopt;
  int value = -1;
  const char* first = text->data();
  const char* last = first + text->size();
  const auto [end, error] = std::from_chars(first, last, value);
  if (text->empty() || error != std::errc() || end != last || value < 0) {
    throw ConfigError(str_cat("detect_launch: expected the environment variable ", name,
                              " to be a non-negative decimal integer, but got '", *text,
                              "'. Was this process started by mpirun or srun, and is the variable "
                              "overwritten by a job script?"),
                      kEnvironment, 0, name);
  }
  return value;
}

// Like read_count, but the variable must be set because `because` is.
int require_count(const EnvLookup& env, const char* name, const char* because) {
  const std::optional<int> value = read_count(env, name);
  if (!value) {
    throw ConfigError(
        str_cat("detect_launch: expected the environment variable ", name, " alongside ", because,
                ", but it is not set. A launcher sets both; a job script may "
                "have unset one."),
        kEnvironment, 0, name);
  }
  return *value;
}

// The first of `names` that is set.
std::optional<int> first_count(const EnvLookup& env, std::initializer_list<const char*> names,
                               const char** which) {
  for (const char* name : names) {
    if (std::optional<int> value = read_count(env, name)) {
      *which = name;
      return value;
    }
  }
  return std::nullopt;
}

// The world size read from `world_name` is positive and the rank lies inside it.
void check_sizes(const LaunchInfo& info, const char* rank_name, const char* world_name) {
  if (info.world < 1) {
    throw ConfigError(str_cat("detect_launch: expected the environment variable ", world_name,
                              " to be at least 1, but got '", info.world, "'."),
                      kEnvironment, 0, world_name);
  }
  if (info.rank >= info.world) {
    throw ConfigError(str_cat("detect_launch: expected ", rank_name, " in [0, ", world_name, "), but got ",
                              rank_name, "='", info.rank, "' and ", world_name, "='", info.world, "'."),
                      kEnvironment, 0, rank_name);
  }
}

bool is_set(const EnvLookup& env, const char* name) { return env(name).has_value(); }

}  // namespace

EnvLookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

EnvLookup environment_of(std::map<std::string, std::string> variables) {
  return [variables = std::move(variables)](const std::string& name) -> std::optional<std::string> {
    const auto found = variables.find(name);
    if (found == variables.end()) return std::nullopt;
    return found->second;
  };
}

LaunchInfo detect_launch(const EnvLookup& env) {
  LaunchInfo info;
  // Open MPI's mpirun: its variables are exact even when Slurm's (SLURM_PROCID=0 everywhere) are present.
  if (is_set(env, "OMPI_COMM_WORLD_SIZE") || is_set(env, "OMPI_COMM_WORLD_RANK")) {
    info.launcher = "mpirun";
    info.mpi = true;
    info.world = require_count(env, "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK");
    info.rank = require_count(env, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE");
    info.local_rank = read_count(env, "OMPI_COMM_WORLD_LOCAL_RANK").value_or(0);
    check_sizes(info, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE");
    return info;
  }

  const char* rank_name = nullptr;
  const char* world_name = nullptr;
  const std::optional<int> pmi_rank = first_count(env, {"PMIX_RANK", "PMI_RANK"}, &rank_name);
  const std::optional<int> slurm_rank = read_count(env, "SLURM_PROCID");
  if (pmi_rank) {
    info.mpi = true;
    info.rank = *pmi_rank;
    if (slurm_rank) {  // srun --mpi=pmix or --mpi=pmi2
      info.launcher = "srun";
      const std::optional<int> world =
          first_count(env, {"SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "PMI_SIZE"}, &world_name);
      info.world = world.value_or(0);
      info.local_rank = read_count(env, "SLURM_LOCALID").value_or(0);
    } else {  // another launcher speaking PMIx or PMI
      info.launcher = "mpirun";
      const std::optional<int> world = first_count(env, {"PMI_SIZE"}, &world_name);
      info.world = world.value_or(0);
      info.local_rank = read_count(env, "MPI_LOCALRANKID").value_or(0);
    }
    if (world_name != nullptr) check_sizes(info, rank_name, world_name);
    return info;
  }

  // srun without an MPI plugin: tasks that MPI will not join. A batch script sees SLURM_PROCID=0 and the
  // allocation's SLURM_NTASKS, but no step task count: it is a single process.
  if (slurm_rank && is_set(env, "SLURM_STEP_NUM_TASKS")) {
    info.launcher = "srun";
    info.rank = *slurm_rank;
    info.world = require_count(env, "SLURM_STEP_NUM_TASKS", "SLURM_PROCID");
    info.local_rank = read_count(env, "SLURM_LOCALID").value_or(0);
    check_sizes(info, "SLURM_PROCID", "SLURM_STEP_NUM_TASKS");
  }
  return info;
}

std::string describe(const LaunchInfo& info) {
  if (info.launcher == "single") return "single process";
  const std::string world = info.world == 0 ? std::string("?") : std::to_string(info.world);
  std::string text =
      str_cat(info.launcher, " rank ", info.rank, "/", world, " (local ", info.local_rank, ")");
  if (!info.mpi) text += ", not joined by MPI";
  return text;
}

}  // namespace lockstep::launch
