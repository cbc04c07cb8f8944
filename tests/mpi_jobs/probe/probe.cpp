// lockstep_mpi_probe: small whole jobs that tests/mpi_jobs runs under mpirun: a rank that throws mid-step,
// ranks calling different collectives, a rank that never joins a collective (the watchdog), and a short
// data-parallel run that prints a hash of every rank's parameters. Errors end the job the way the `lockstep`
// tool does.
#include <unistd.h>
#include <xxhash.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "distributed/data_parallel.h"
#include "distributed/init.h"
#include "src/core/error.h"
#include "src/core/rng.h"
#include "src/models/mlp.h"
#include "src/ops/loss.h"
#include "src/optim/sgd.h"
#include "src/tensor/factories.h"

namespace lockstep::probe {
namespace {

using distributed::ProcessGroup;
using distributed::ProcessGroupOptions;

constexpr const char* kUsage =
    "usage: lockstep_mpi_probe throw --rank R --step S [--steps N]\n"
    "       lockstep_mpi_probe desync\n"
    "       lockstep_mpi_probe hang --timeout-ms T\n"
    "       lockstep_mpi_probe train --steps K [--out DIR]";

// The subcommand and its "--name value" options.
struct Args {
  std::string command;
  std::map<std::string, std::string> options;

  std::int64_t get_int(const std::string& name, std::int64_t fallback) const {
    const auto it = options.find(name);
    if (it == options.end()) return fallback;
    std::size_t used = 0;
    std::int64_t value = 0;
    try {
      value = std::stoll(it->second, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    LOCKSTEP_CHECK(used == it->second.size() && used > 0, ValueError,
                   "lockstep_mpi_probe: expected an integer for --", name, ", but got '", it->second, "'");
    return value;
  }
  std::int64_t require_int(const std::string& name) const {
    LOCKSTEP_CHECK(options.count(name) != 0, ValueError, "lockstep_mpi_probe ", command, ": expected --",
                   name, ", but got none. ", kUsage);
    return get_int(name, 0);
  }
  std::string get_string(const std::string& name) const {
    const auto it = options.find(name);
    return it == options.end() ? std::string() : it->second;
  }
};

Args parse_args(int argc, char** argv) {
  LOCKSTEP_CHECK(argc >= 2, ValueError, "lockstep_mpi_probe: expected a subcommand, but got none. ", kUsage);
  Args args;
  args.command = argv[1];
  for (int i = 2; i < argc; i += 2) {
    const std::string name = argv[i];
    LOCKSTEP_CHECK(name.rfind("--", 0) == 0 && i + 1 < argc, ValueError,
                   "lockstep_mpi_probe: expected '--name value' pairs, but got '", name, "'. ", kUsage);
    args.options[name.substr(2)] = argv[i + 1];
  }
  return args;
}

// This process's rank as the launcher announced it, before any group exists (0 without a launcher).
int launcher_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK"}) {
    if (const char* value = std::getenv(name)) return std::atoi(value);
  }
  return 0;
}

void sleep_ms(std::int64_t ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// The probes' model: an MLP with a few hundred kilobytes of parameters, the same on every rank (seeded).
std::shared_ptr<models::MLP> make_model(std::uint64_t seed) {
  manual_seed(seed);
  return std::make_shared<models::MLP>(256, std::vector<std::int64_t>{256}, 10);
}

constexpr std::int64_t kBatch = 16;

// This rank's batch of step `step`: different on every rank, reproducible from (seed, rank, step).
std::pair<Tensor, Tensor> batch(std::uint64_t seed, int rank, std::int64_t step) {
  Generator gen(seed * 1000003ULL + static_cast<std::uint64_t>(rank) * 10007ULL +
                static_cast<std::uint64_t>(step));
  Tensor x = randn({kBatch, 256}, 0.0, 1.0, DType::f32, kCPU, &gen);
  Tensor y = rand({kBatch}, 0.0, 10.0, DType::f32, kCPU, &gen).to(DType::i64);
  return {x, y};
}

// Every rank trains; rank `--rank` throws after the forward of step `--step`, while the others are already
// in that step's backward (waiting for its gradients in the all-reduce).
int run_throw(const Args& args, const std::shared_ptr<ProcessGroup>& group) {
  const std::int64_t failing_rank = args.require_int("rank");
  const std::int64_t failing_step = args.require_int("step");
  const std::int64_t steps = args.get_int("steps", 40);
  auto model = make_model(5);
  distributed::DataParallel dp(model, group);
  optim::SGD opt(model->named_parameters(), {.lr = 0.05, .momentum = 0.9});
  for (std::int64_t step = 0; step < steps; ++step) {
    const auto [x, y] = batch(5, group->rank(), step);
    opt.zero_grad();
    const Tensor loss = cross_entropy(dp(x), y);
    if (group->rank() == failing_rank && step == failing_step) {
      throw ValueError(str_cat("injected failure at step ", step));
    }
    loss.backward();
    opt.step();
    sleep_ms(20);
  }
  std::printf("rank %d/%d finished %lld steps without the injected failure\n", group->rank(), group->size(),
              static_cast<long long>(steps));
  return 0;
}

// Rank 0 all-reduces a 10-element f32 tensor while every other rank broadcasts one: the desync check fails on
// every rank.
int run_desync(const std::shared_ptr<ProcessGroup>& group) {
  const Tensor t = ones({10});
  if (group->rank() == 0) {
    group->all_reduce(t)->wait();
  } else {
    group->broadcast(t, 0)->wait();
  }
  std::printf("rank %d/%d: the mismatched collectives completed\n", group->rank(), group->size());
  return 0;
}

constexpr std::int64_t kHangWarmup = 3;

// Three all-reduces that every rank joins (checked), then rank 1 skips the fourth and sleeps: the ranks that
// called it wait until their watchdog fires (rank 0's first: see main).
int run_hang(const Args& args, const std::shared_ptr<ProcessGroup>& group) {
  const std::int64_t timeout_ms = args.require_int("timeout-ms");
  for (std::int64_t i = 0; i < kHangWarmup; ++i) {
    const Tensor t = full({10}, static_cast<double>(group->rank() + 1));
    group->all_reduce(t)->wait();
    const double expected = group->size() * (group->size() + 1) / 2.0;
    LOCKSTEP_CHECK(t.to_vector<float>()[0] == expected, ValueError,
                   "probe hang: expected all_reduce sums of ", expected, ", but got ",
                   t.to_vector<float>()[0]);
  }
  if (group->rank() == 1) {
    sleep_ms(timeout_ms * 40);
    return 0;
  }
  const Tensor t = ones({10});
  group->all_reduce(t)->wait();
  std::printf("rank %d/%d: the all-reduce that rank 1 skipped completed\n", group->rank(), group->size());
  return 0;
}

// XXH64 of the bytes of every parameter and buffer of `model`, in state-dict order, as 16 hex digits.
std::string state_hash(const nn::Module& model, std::int64_t& bytes) {
  XXH64_state_t* state = XXH64_createState();
  XXH64_reset(state, 0);
  bytes = 0;
  for (const auto& [name, t] : model.state_dict()) {
    const Tensor c = t.contiguous();
    const auto n = static_cast<std::size_t>(c.numel()) * element_size(c.dtype());
    XXH64_update(state, c.data(), n);
    bytes += static_cast<std::int64_t>(n);
  }
  const unsigned long long digest = XXH64_digest(state);
  XXH64_freeState(state);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", digest);
  return hex;
}

// K data-parallel steps of SGD from a fixed seed; every rank prints its host and the hash of its parameters
// and buffers (and writes the same line to DIR/rank<r>.txt with --out).
int run_train(const Args& args, const std::shared_ptr<ProcessGroup>& group) {
  const std::int64_t steps = args.require_int("steps");
  auto model = make_model(9);
  distributed::DataParallel dp(model, group, {.bucket_bytes = 64 << 10, .first_bucket_bytes = 16 << 10});
  optim::SGD opt(model->named_parameters(), {.lr = 0.05, .momentum = 0.9});
  for (std::int64_t step = 0; step < steps; ++step) {
    const auto [x, y] = batch(9, group->rank(), step);
    opt.zero_grad();
    cross_entropy(dp(x), y).backward();
    opt.step();
  }
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::int64_t bytes = 0;
  const std::string hash = state_hash(*model, bytes);
  const std::string line = str_cat("rank ", group->rank(), "/", group->size(), " host=", host,
                                   " params_xxh64=", hash, " param_bytes=", bytes);
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  const std::string out = args.get_string("out");
  if (!out.empty()) {
    std::filesystem::create_directories(out);
    std::ofstream(std::filesystem::path(out) / str_cat("rank", group->rank(), ".txt")) << line << '\n';
  }
  return 0;
}

int run(const Args& args, const std::shared_ptr<ProcessGroup>& group) {
  if (args.command == "throw") return run_throw(args, group);
  if (args.command == "desync") return run_desync(group);
  if (args.command == "hang") return run_hang(args, group);
  if (args.command == "train") return run_train(args, group);
  throw ValueError(
      str_cat("lockstep_mpi_probe: expected a subcommand throw, desync, hang or train, but got '",
              args.command, "'. ", kUsage));
}

}  // namespace
}  // namespace lockstep::probe

int main(int argc, char** argv) {
  namespace dist = lockstep::distributed;
  try {
    const lockstep::probe::Args args = lockstep::probe::parse_args(argc, argv);
    dist::ProcessGroupOptions options;
    if (args.command == "hang") {
      // Rank 0's watchdog fires first; the other waiting ranks give it ample time, so that the job's error
      // names rank 0 deterministically.
      const std::int64_t timeout_ms = args.require_int("timeout-ms");
      options.timeout =
          std::chrono::milliseconds(lockstep::probe::launcher_rank() == 0 ? timeout_ms : timeout_ms * 20);
    }
    // The group outlives the catch below, as in the `lockstep` tool: the job ends while MPI is still alive.
    const std::shared_ptr<dist::ProcessGroup> group = dist::init_process_group(options);
    try {
      return lockstep::probe::run(args, group);
    } catch (const std::exception& e) {
      dist::abort_job(e.what());
    }
  } catch (const std::exception& e) {
    dist::abort_job(e.what());
  }
}
