// Data-parallel benchmark under mpirun (bench_distributed.sh), ResNet-20 and DCGAN: raw MPI_Allreduce bus
// bandwidth, the Reducer's effective bandwidth for the same bytes, communication hidden behind backward,
// weak-scaling efficiency against one rank training alone, and the desync check's cost (--model desync: a
// 1 MiB all-reduce with and without it; per model: its share of a step). Prints figures, asserts nothing.
// The MPI C API only (the C++ bindings would need libmpi_cxx).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "distributed/data_parallel.h"
#include "distributed/init.h"
#include "distributed/mpi.h"
#include "distributed/reducer.h"
#include "src/autograd/grad_mode.h"
#include "src/core/error.h"
#include "src/core/rng.h"
#include "src/models/dcgan.h"
#include "src/models/resnet.h"
#include "src/ops/elementwise.h"
#include "src/ops/linalg.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/optim/adam.h"
#include "src/optim/sgd.h"
#include "src/tensor/factories.h"

namespace {

namespace dist = lockstep::distributed;
using lockstep::Tensor;
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kSeed = 1234;
constexpr std::int64_t kClasses = 10;
constexpr std::int64_t kLatent = 100;
constexpr int kTagAloneDone = 7;
constexpr double kMiB = 1024.0 * 1024.0;

enum class Sync : std::uint8_t { kOn, kOff };
enum class DesyncCheck : std::uint8_t { kOn, kOff };

struct Options {
  std::string model = "all";
  int steps = 30;
  int warmup = 3;
  int reps = 100;
  std::int64_t classifier_batch = 128;
  std::int64_t gan_batch = 64;
  double bucket_mib = 4.0;
  double first_bucket_mib = 1.0;
  DesyncCheck desync_check = DesyncCheck::kOn;
  bool shared_memory = true;  // the group's shared buffers for the reducer's buckets (ranks of one node)
};

// The collectives the group starts while `recording` is set (written by the communication thread's observer,
// read by the main thread after the recorded work has been waited for).
struct CallRecorder {
  std::mutex mutex;
  std::atomic<bool> recording{false};
  std::vector<dist::CollectiveCall> calls;
};

// The process group under test, this benchmark's own communicator (a dup of MPI_COMM_WORLD, used from the
// main thread only while the group's communication thread is idle: barriers, raw all-reduces, gathering
// timings) and the time the group's communication thread spends inside collectives (its observer).
struct Context {
  std::shared_ptr<dist::MpiProcessGroup> group;
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0;
  int size = 1;
  Options options;
  dist::ReducerOptions reducer;
  std::shared_ptr<std::atomic<std::int64_t>> comm_busy_ns = std::make_shared<std::atomic<std::int64_t>>(0);
  std::shared_ptr<CallRecorder> recorder;
};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double minimum(const std::vector<double>& v) {
  return v.empty() ? 0.0 : *std::min_element(v.begin(), v.end());
}

void check_mpi(int code, const char* function) {
  if (code == MPI_SUCCESS) return;
  int rank = 0;
  int size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  throw lockstep::DistributedError(lockstep::str_cat("lockstep_bench_distributed: expected ", function,
                                                     " to succeed, but it returned error code ", code),
                                   rank, size, function);
}

// Element-wise max or min of per-repetition figures over ranks (every rank gets them).
std::vector<double> over_ranks(const Context& ctx, std::vector<double> local, MPI_Op op) {
  check_mpi(
      MPI_Allreduce(MPI_IN_PLACE, local.data(), static_cast<int>(local.size()), MPI_DOUBLE, op, ctx.comm),
      "MPI_Allreduce");
  return local;
}

// Per-repetition times as seen by the slowest rank.
std::vector<double> max_over_ranks(const Context& ctx, std::vector<double> local) {
  return over_ranks(ctx, std::move(local), MPI_MAX);
}

void barrier(const Context& ctx) { check_mpi(MPI_Barrier(ctx.comm), "MPI_Barrier"); }

// Ring all-reduce bus bandwidth in GB/s: each rank moves bytes * 2(n-1)/n.
double bus_gbs(const Context& ctx, std::int64_t bytes, double seconds) {
  if (seconds <= 0.0) return 0.0;
  const double factor = 2.0 * (ctx.size - 1) / ctx.size;
  return static_cast<double>(bytes) * factor / seconds / 1e9;
}

// This rank's allowed CPUs as "0-1" / "1".
std::string affinity() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return "?";
  std::vector<int> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  std::string out;
  for (std::size_t i = 0; i < cpus.size();) {
    std::size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    char range[32];
    if (j > i) {
      std::snprintf(range, sizeof(range), "%s%d-%d", out.empty() ? "" : ",", cpus[i], cpus[j]);
    } else {
      std::snprintf(range, sizeof(range), "%s%d", out.empty() ? "" : ",", cpus[i]);
    }
    out.append(range);
    i = j + 1;
  }
  return out;
}

// The 1, 5 and 15 minute load averages ("0.12 0.30 0.25"): other work on the machine disturbs every figure.
std::string load_average() {
  std::FILE* file = std::fopen("/proc/loadavg", "r");
  if (file == nullptr) return "?";
  double one = 0.0;
  double five = 0.0;
  double fifteen = 0.0;
  const int read = std::fscanf(file, "%lf %lf %lf", &one, &five, &fifteen);
  std::fclose(file);
  if (read != 3) return "?";
  char text[64];
  std::snprintf(text, sizeof(text), "%.2f %.2f %.2f", one, five, fifteen);
  return text;
}

// -----------------------------------------------------------------------------------------------------------
// 1. Raw MPI_Allreduce (f32, in place, SUM) on the benchmark's communicator from the main thread.

struct Timing {
  double median = 0.0;
  double min = 0.0;
};

Timing time_raw_allreduce(const Context& ctx, std::int64_t bytes) {
  std::vector<float> buffer(static_cast<std::size_t>(bytes / 4), 0.0f);
  const int count = static_cast<int>(buffer.size());
  const int warmup = std::max(5, ctx.options.reps / 10);
  std::vector<double> seconds;
  for (int r = 0; r < warmup + ctx.options.reps; ++r) {
    barrier(ctx);
    const auto start = Clock::now();
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, buffer.data(), count, MPI_FLOAT, MPI_SUM, ctx.comm),
              "MPI_Allreduce");
    if (r >= warmup) seconds.push_back(seconds_since(start));
  }
  seconds = max_over_ranks(ctx, seconds);
  return {median(seconds), minimum(seconds)};
}

// The same bytes through the process group (one f32 tensor, all_reduce then wait): adds the hand-off to the
// communication thread, the desync check and, for kAvg, the averaging pass to the raw call. (The reducer
// issues kSum: its gradients are scaled as they enter their buckets.) `buffer_kind` kShared: a buffer of
// the group's empty_for_collectives, as the reducer's buckets are (shared memory when the ranks share a
// node).
enum class Buffer : std::uint8_t { kOrdinary, kShared };
Timing time_group_allreduce(const Context& ctx, std::int64_t bytes, dist::ReduceOp op = dist::ReduceOp::kAvg,
                            Buffer buffer_kind = Buffer::kOrdinary) {
  Tensor buffer = buffer_kind == Buffer::kShared
                      ? ctx.group->empty_for_collectives(bytes / 4, lockstep::DType::f32)
                      : lockstep::zeros({bytes / 4});
  buffer.fill_(0.0);
  const int warmup = std::max(5, ctx.options.reps / 10);
  std::vector<double> seconds;
  for (int r = 0; r < warmup + ctx.options.reps; ++r) {
    barrier(ctx);
    const auto start = Clock::now();
    ctx.group->all_reduce(buffer, op)->wait();
    if (r >= warmup) seconds.push_back(seconds_since(start));
  }
  seconds = max_over_ranks(ctx, seconds);
  return {median(seconds), minimum(seconds)};
}

// One memory pass over the same bytes (a flat f32 copy on the main thread): the reducer's unit of extra work
// (it copies gradients into buckets, averages them and copies them back), against which the all-reduce is
// compared.
Timing time_copy(const Context& ctx, std::int64_t bytes) {
  const Tensor src = lockstep::ones({bytes / 4});
  Tensor dst = lockstep::zeros({bytes / 4});
  const int warmup = std::max(5, ctx.options.reps / 10);
  std::vector<double> seconds;
  lockstep::NoGradGuard no_grad;
  for (int r = 0; r < warmup + ctx.options.reps; ++r) {
    barrier(ctx);
    const auto start = Clock::now();
    dst.copy_(src);
    if (r >= warmup) seconds.push_back(seconds_since(start));
  }
  seconds = max_over_ranks(ctx, seconds);
  return {median(seconds), minimum(seconds)};
}

// -----------------------------------------------------------------------------------------------------------
// 1b. The desync check's cost (issue 17): a 1 MiB all-reduce raw, through a group checking and one not, and
// the raw MPI shapes the check could take (header exchange then data: what the MPI group does; the header
// overlapped with the data; a fingerprint appended to the data in a staging buffer).

constexpr std::int64_t kHeaderBytes = 256;  // per rank, as in distributed/mpi.cpp

// Times `a` and `b` alternately (the same drift and load for both), each after a barrier.
struct PairTiming {
  Timing a;
  Timing b;
  double diff = 0.0;  // median over repetitions of a - b (paired: less drift than a difference of medians)
};

PairTiming time_pair(const Context& ctx, const std::function<void()>& a, const std::function<void()>& b) {
  const int warmup = std::max(5, ctx.options.reps / 10);
  std::vector<double> sa;
  std::vector<double> sb;
  for (int r = 0; r < warmup + ctx.options.reps; ++r) {
    barrier(ctx);
    auto start = Clock::now();
    a();
    const double ta = seconds_since(start);
    barrier(ctx);
    start = Clock::now();
    b();
    const double tb = seconds_since(start);
    if (r >= warmup) {
      sa.push_back(ta);
      sb.push_back(tb);
    }
  }
  sa = max_over_ranks(ctx, sa);
  sb = max_over_ranks(ctx, sb);
  std::vector<double> diff;
  for (std::size_t i = 0; i < sa.size(); ++i) diff.push_back(sa[i] - sb[i]);
  return {{median(sa), minimum(sa)}, {median(sb), minimum(sb)}, median(diff)};
}

// The two process groups the check is measured on (fresh ones: the benchmark's own group keeps
// --desync-check).
struct CheckGroups {
  std::shared_ptr<dist::MpiProcessGroup> on;
  std::shared_ptr<dist::MpiProcessGroup> off;
};

CheckGroups make_check_groups() {
  dist::ProcessGroupOptions on;
  on.check_desync = true;
  dist::ProcessGroupOptions off;
  off.check_desync = false;
  return {dist::MpiProcessGroup::world(on), dist::MpiProcessGroup::world(off)};
}

void print_line(const Context& ctx, const char* text) {
  if (ctx.rank == 0) {
    std::printf("%s\n", text);
    std::fflush(stdout);
  }
}

// The header exchange alone on the benchmark's communicator (what the check adds to a collective whose data
// does not fit the header).
Timing time_header_exchange(const Context& ctx) {
  std::vector<std::byte> header(kHeaderBytes, std::byte{0});
  std::vector<std::byte> headers(static_cast<std::size_t>(kHeaderBytes * ctx.size));
  const int warmup = std::max(5, ctx.options.reps / 10);
  std::vector<double> seconds;
  for (int r = 0; r < warmup + ctx.options.reps; ++r) {
    barrier(ctx);
    const auto start = Clock::now();
    check_mpi(MPI_Allgather(header.data(), kHeaderBytes, MPI_BYTE, headers.data(), kHeaderBytes, MPI_BYTE,
                            ctx.comm),
              "MPI_Allgather");
    if (r >= warmup) seconds.push_back(seconds_since(start));
  }
  seconds = max_over_ranks(ctx, seconds);
  return {median(seconds), minimum(seconds)};
}

void run_desync_cost(const Context& ctx, const CheckGroups& groups) {
  const std::int64_t bytes = 1 << 20;
  const auto n = static_cast<int>(bytes / 4);
  std::vector<float> data(static_cast<std::size_t>(n), 1.0f);
  std::vector<std::byte> header(kHeaderBytes, std::byte{0});
  std::vector<std::byte> headers(static_cast<std::size_t>(kHeaderBytes * ctx.size));
  const auto raw = [&] {
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, data.data(), n, MPI_FLOAT, MPI_SUM, ctx.comm), "MPI_Allreduce");
  };
  const auto exchange_header = [&] {
    check_mpi(MPI_Allgather(header.data(), kHeaderBytes, MPI_BYTE, headers.data(), kHeaderBytes, MPI_BYTE,
                            ctx.comm),
              "MPI_Allgather");
  };
  const auto header_then_data = [&] {
    exchange_header();
    raw();
  };
  const auto overlapped = [&] {
    MPI_Request requests[2];
    check_mpi(MPI_Iallgather(header.data(), kHeaderBytes, MPI_BYTE, headers.data(), kHeaderBytes, MPI_BYTE,
                             ctx.comm, &requests[0]),
              "MPI_Iallgather");
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, data.data(), n, MPI_FLOAT, MPI_SUM, ctx.comm, &requests[1]),
              "MPI_Iallreduce");
    check_mpi(MPI_Waitall(2, requests, MPI_STATUSES_IGNORE), "MPI_Waitall");
  };
  // 16 extra f32 (8 fingerprint chunks and their squares) after the data: copy in, all-reduce, copy out.
  std::vector<float> staging(static_cast<std::size_t>(n + 16), 0.0f);
  const auto staged = [&] {
    std::memcpy(staging.data(), data.data(), static_cast<std::size_t>(bytes));
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, staging.data(), n + 16, MPI_FLOAT, MPI_SUM, ctx.comm),
              "MPI_Allreduce");
    std::memcpy(data.data(), staging.data(), static_cast<std::size_t>(bytes));
  };
  char line[512];
  const auto report = [&](const char* what, const PairTiming& t) {
    std::snprintf(line, sizeof(line),
                  "[desync] raw %-62s median_us=%.1f min_us=%.1f | raw 1 MiB median_us=%.1f | paired extra "
                  "median_us=%.1f (%.1f%% of raw)",
                  what, t.a.median * 1e6, t.a.min * 1e6, t.b.median * 1e6, t.diff * 1e6,
                  100.0 * t.diff / t.b.median);
    print_line(ctx, line);
  };
  const PairTiming alone = time_pair(ctx, exchange_header, raw);
  std::snprintf(
      line, sizeof(line),
      "[desync] raw header exchange alone (MPI_Allgather 256 B per rank) median_us=%.1f min_us=%.1f = "
      "%.2f%% of raw MPI_Allreduce 1 MiB (median_us=%.1f)",
      alone.a.median * 1e6, alone.a.min * 1e6, 100.0 * alone.a.median / alone.b.median, alone.b.median * 1e6);
  print_line(ctx, line);
  report("header then MPI_Allreduce 1 MiB (the MPI group, check on)", time_pair(ctx, header_then_data, raw));
  report("MPI_Iallgather header + MPI_Iallreduce 1 MiB (unsafe)", time_pair(ctx, overlapped, raw));
  report("memcpy in + MPI_Allreduce 1 MiB + 64 B + memcpy out", time_pair(ctx, staged, raw));

  // A small collective (8 bytes): the check before this change (an all-gather of a 24-byte fingerprint, then
  // the data's own MPI_Allreduce) against the header that carries both.
  std::vector<double> tiny(1, 1.0);
  std::vector<std::byte> fingerprints(static_cast<std::size_t>(24 * ctx.size));
  const auto tiny_raw = [&] {
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, tiny.data(), 1, MPI_DOUBLE, MPI_SUM, ctx.comm), "MPI_Allreduce");
  };
  const auto tiny_before = [&] {
    check_mpi(MPI_Allgather(header.data(), 24, MPI_BYTE, fingerprints.data(), 24, MPI_BYTE, ctx.comm),
              "MPI_Allgather");
    tiny_raw();
  };
  const PairTiming before = time_pair(ctx, tiny_before, tiny_raw);
  const PairTiming now = time_pair(ctx, exchange_header, tiny_raw);
  std::snprintf(
      line, sizeof(line),
      "[desync] raw 8 B all-reduce median_us=%.2f | checked before (MPI_Allgather 24 B + MPI_Allreduce "
      "8 B) median_us=%.2f | checked now (header MPI_Allgather 256 B carrying the data) median_us=%.2f",
      before.b.median * 1e6, before.a.median * 1e6, now.a.median * 1e6);
  print_line(ctx, line);

  // Through the groups: the check's whole cost is on minus off.
  const auto group_pair = [&](std::int64_t count) {
    const Tensor on = lockstep::zeros({count});
    const Tensor off = lockstep::zeros({count});
    return time_pair(
        ctx, [&] { groups.on->all_reduce(on, dist::ReduceOp::kSum)->wait(); },
        [&] { groups.off->all_reduce(off, dist::ReduceOp::kSum)->wait(); });
  };
  const PairTiming raw_again = time_pair(ctx, raw, raw);
  const PairTiming big = group_pair(n);
  std::snprintf(line, sizeof(line),
                "[desync] group all_reduce 1 MiB check_on_median_us=%.1f (min %.1f) check_off_median_us=%.1f "
                "(min %.1f) check_cost_us=%.1f (paired median) = %.2f%% of raw MPI_Allreduce 1 MiB "
                "(median_us=%.1f; target < 5%%)",
                big.a.median * 1e6, big.a.min * 1e6, big.b.median * 1e6, big.b.min * 1e6, big.diff * 1e6,
                100.0 * big.diff / raw_again.a.median, raw_again.a.median * 1e6);
  print_line(ctx, line);
  const PairTiming small = group_pair(2);
  std::snprintf(
      line, sizeof(line),
      "[desync] group all_reduce 8 B (carried by the header, check on or off) check_on_median_us=%.1f "
      "check_off_median_us=%.1f check_cost_us=%.1f (paired median)",
      small.a.median * 1e6, small.b.median * 1e6, small.diff * 1e6);
  print_line(ctx, line);
}

// The all-reduces of one synchronised step (recorded from the benchmark's group), replayed back to back
// through the checking and the unchecking group: the check's cost per step, as if none of it were hidden
// behind backward.
PairTiming time_step_replay(const Context& ctx, const CheckGroups& groups,
                            const std::vector<dist::CollectiveCall>& calls) {
  std::vector<Tensor> on;
  std::vector<Tensor> off;
  for (const auto& call : calls) {
    on.push_back(lockstep::zeros({call.count}, call.dtype));
    off.push_back(lockstep::zeros({call.count}, call.dtype));
  }
  const auto replay = [&](dist::MpiProcessGroup& group, std::vector<Tensor>& tensors) {
    std::vector<dist::WorkPtr> works;
    for (std::size_t i = 0; i < calls.size(); ++i) works.push_back(group.all_reduce(tensors[i], calls[i].op));
    for (auto& w : works) w->wait();
  };
  return time_pair(
      ctx, [&] { replay(*groups.on, on); }, [&] { replay(*groups.off, off); });
}

// -----------------------------------------------------------------------------------------------------------
// 2. The reducer over parameters shaped like a network's, with gradients that cost ~nothing to produce.

// Owns one parameter per parameter of `like` (the same number of elements, in the same order, named p0, p1,
// ...), each a matrix [rows, cols] used as a linear layer's weight on a constant one-row input; forward
// ignores its input and returns sum_k sum(linear(x_k, p_k) * c_k). Each gradient is then an outer product
// c_k^T x_k written by one GEMM, as a network's linear and convolution weight gradients are (into their
// bucket slots when synchronised), at the cost of writing it. Not thread-safe.
class GradientSource : public lockstep::nn::Module {
 public:
  explicit GradientSource(const lockstep::nn::Module& like) : Module("GradientSource") {
    int k = 0;
    for (const auto& [name, p] : like.named_parameters()) {
      const std::int64_t rows = p.dim() > 1 ? p.size(0) : 1;
      const std::int64_t cols = p.numel() / rows;
      params_.push_back(register_parameter(lockstep::str_cat("p", k++), lockstep::zeros({rows, cols})));
      inputs_.push_back(lockstep::full({1, cols}, 1e-3));
      constants_.push_back(lockstep::full({1, rows}, 1.0));
    }
  }
  Tensor forward(const Tensor& /*input*/) override {
    Tensor total;
    for (std::size_t k = 0; k < params_.size(); ++k) {
      const Tensor term = lockstep::sum(lockstep::linear(inputs_[k], params_[k], Tensor()) * constants_[k]);
      total = total.defined() ? total + term : term;
    }
    return total;
  }

 private:
  std::vector<Tensor> params_;
  std::vector<Tensor> inputs_;
  std::vector<Tensor> constants_;
};

std::int64_t gradient_bytes(const lockstep::nn::Module& net) {
  std::int64_t bytes = 0;
  for (const auto& [name, p] : net.named_parameters())
    if (p.requires_grad()) bytes += p.numel() * static_cast<std::int64_t>(lockstep::element_size(p.dtype()));
  return bytes;
}

struct ReducerTiming {
  Timing sync;        // synchronised backwards (one per network, in order)
  Timing no_sync;     // the same backwards under DataParallel::NoSync
  double comm = 0.0;  // median(sync) - median(no_sync): the reducer's communication time
  std::int64_t buckets = 0;
  double busy = 0.0;  // the communication thread's time inside collectives per synchronised backward (median)
};

ReducerTiming time_reducer(const Context& ctx, const std::vector<const lockstep::nn::Module*>& nets) {
  std::vector<std::shared_ptr<dist::DataParallel>> dps;
  ReducerTiming out;
  for (const auto* net : nets) {
    dps.push_back(
        std::make_shared<dist::DataParallel>(std::make_shared<GradientSource>(*net), ctx.group, ctx.reducer));
    out.buckets += dps.back()->reducer().num_buckets();
  }
  const Tensor dummy = lockstep::zeros({1});
  std::int64_t busy_ns = 0;
  auto backward = [&](Sync sync) {
    for (auto& dp : dps) dp->module().zero_grad();
    barrier(ctx);
    const std::int64_t busy_before = ctx.comm_busy_ns->load();
    const auto start = Clock::now();
    for (auto& dp : dps) {
      std::optional<dist::DataParallel::NoSync> guard;
      if (sync == Sync::kOff) guard.emplace(*dp);
      dp->forward(dummy).backward();
    }
    const double elapsed = seconds_since(start);
    busy_ns = ctx.comm_busy_ns->load() - busy_before;
    return elapsed;
  };
  const int warmup = std::max(5, ctx.options.reps / 10);
  std::vector<double> with_sync;
  std::vector<double> without_sync;
  std::vector<double> busy;
  for (int r = 0; r < warmup + ctx.options.reps; ++r) {  // interleaved, so drift affects both alike
    const double a = backward(Sync::kOn);
    const double a_busy = static_cast<double>(busy_ns) * 1e-9;
    const double b = backward(Sync::kOff);
    if (r >= warmup) {
      with_sync.push_back(a);
      without_sync.push_back(b);
      busy.push_back(a_busy);
    }
  }
  with_sync = max_over_ranks(ctx, with_sync);
  without_sync = max_over_ranks(ctx, without_sync);
  busy = max_over_ranks(ctx, busy);
  out.sync = {median(with_sync), minimum(with_sync)};
  out.no_sync = {median(without_sync), minimum(without_sync)};
  out.comm = out.sync.median - out.no_sync.median;
  out.busy = median(busy);
  return out;
}

// -----------------------------------------------------------------------------------------------------------
// 3-4. Real training steps.

// When the last gradient of a backward was accumulated: a post-accumulate hook on every parameter of the
// networks (registered after the reducer's, so it runs after the reducer has launched its bucket). The time
// from it to backward's return is the communication left exposed after compute (plus the reducer's copies).
struct TailClock {
  std::shared_ptr<Clock::time_point> last = std::make_shared<Clock::time_point>();
  double total = 0.0;  // seconds of tail accumulated by timed_backward
  void watch(const lockstep::nn::Module& net) {
    for (const auto& [name, p] : net.named_parameters()) {
      p.register_post_accumulate_hook([last = last](Tensor&) { *last = Clock::now(); });
    }
  }
  void timed_backward(const Tensor& loss) {
    *last = Clock::now();
    loss.backward();
    total += seconds_since(*last);
  }
  // A wait for an all-reduce left in flight by an earlier backward counts as tail too.
  void timed(const std::function<void()>& wait) {
    const auto start = Clock::now();
    wait();
    total += seconds_since(start);
  }
};

// One training iteration on a fixed synthetic batch (sync: through DataParallel with or without NoSync; a
// workload built without a group trains the plain networks), and the images it consumes. `finish` applies
// what the last step left in flight (DCGAN: the generator's update, once its all-reduce has ended, which
// the next step would apply after its work on real images).
struct Workload {
  std::int64_t batch = 0;
  std::int64_t grad_bytes = 0;
  std::vector<std::shared_ptr<lockstep::nn::Module>> nets;
  std::shared_ptr<TailClock> tail = std::make_shared<TailClock>();
  std::function<void(Sync)> step;
  std::function<void()> finish = [] {};
};

// Steps are timed in runs of this many, back to back, each run ending with Workload::finish: an all-reduce
// one step leaves in flight overlaps the next step's work, and the run's time includes what is not hidden.
constexpr int kStepsPerSample = 8;

Tensor random_labels(std::int64_t n, lockstep::Generator& gen) {
  const Tensor u =
      lockstep::rand({n}, 0.0, static_cast<double>(kClasses), lockstep::DType::f32, lockstep::kCPU, &gen);
  std::vector<std::int64_t> labels;
  for (float v : u.to_vector<float>())
    labels.push_back(std::min<std::int64_t>(static_cast<std::int64_t>(v), kClasses - 1));
  return lockstep::from_vector(labels, {n});
}

std::shared_ptr<dist::DataParallel> wrap(const Context* ctx, std::shared_ptr<lockstep::nn::Module> net) {
  if (ctx == nullptr) return nullptr;
  return std::make_shared<dist::DataParallel>(std::move(net), ctx->group, ctx->reducer);
}

Tensor call(const std::shared_ptr<dist::DataParallel>& dp, lockstep::nn::Module& net, const Tensor& x) {
  return dp ? dp->forward(x) : net.forward(x);
}

// CifarResNet-20 on 3x32x32, cross-entropy, SGD(0.1, momentum 0.9, weight decay 5e-4) as in bench_train.
Workload resnet_workload(const Context* ctx, std::int64_t batch, lockstep::Generator& gen) {
  auto model = std::make_shared<lockstep::models::CifarResNet>(20, 3, kClasses);
  auto dp = wrap(ctx, model);
  Workload work;
  work.batch = batch;
  work.grad_bytes = gradient_bytes(*model);
  work.nets = {model};
  work.tail->watch(*model);
  const lockstep::optim::SGDOptions sgd{.lr = 0.1, .momentum = 0.9, .weight_decay = 5e-4};
  auto optimizer = std::make_shared<lockstep::optim::SGD>(model->named_parameters(), sgd);
  const Tensor input =
      lockstep::rand({batch, 3, 32, 32}, -1.0, 1.0, lockstep::DType::f32, lockstep::kCPU, &gen);
  const Tensor labels = random_labels(batch, gen);
  auto tail = work.tail;
  work.step = [dp, model, optimizer, input, labels, tail](Sync sync) {
    std::optional<dist::DataParallel::NoSync> guard;
    if (dp && sync == Sync::kOff) guard.emplace(*dp);
    optimizer->zero_grad();
    tail->timed_backward(lockstep::cross_entropy(call(dp, *model, input), labels));
    optimizer->step();
  };
  return work;
}

// DCGAN at 32x32x3, width 64, stepped as the GAN task steps (launch/train/gan.cpp): the discriminator's
// backward on a real batch (accumulated locally, while the generator's all-reduce from the step before
// moves), the generator's update, D's backward on a generated batch (averaging D's summed gradients), the
// generator's batch (while D's all-reduce moves), D's update, then the generator's backward through the
// frozen discriminator (called through module(), so its reducer stays idle), its all-reduce left in flight;
// Adam(2e-4, 0.5, 0.999).
Workload dcgan_workload(const Context* ctx, std::int64_t batch, lockstep::Generator& gen) {
  auto generator = std::make_shared<lockstep::models::DCGANGenerator>(kLatent, 3, 32, 64);
  auto discriminator = std::make_shared<lockstep::models::DCGANDiscriminator>(
      3, 32, 64, lockstep::models::DiscriminatorOutput::kLogits);
  lockstep::models::dcgan_init_(*generator, &gen);
  lockstep::models::dcgan_init_(*discriminator, &gen);
  auto dp_g = wrap(ctx, generator);
  auto dp_d = wrap(ctx, discriminator);
  Workload work;
  work.batch = batch;
  work.grad_bytes = gradient_bytes(*generator) + gradient_bytes(*discriminator);
  work.nets = {discriminator, generator};
  work.tail->watch(*generator);
  work.tail->watch(*discriminator);
  const lockstep::optim::AdamOptions adam{.lr = 2e-4, .beta1 = 0.5, .beta2 = 0.999};
  auto opt_g = std::make_shared<lockstep::optim::Adam>(generator->named_parameters(), adam);
  auto opt_d = std::make_shared<lockstep::optim::Adam>(discriminator->named_parameters(), adam);
  const Tensor real =
      lockstep::rand({batch, 3, 32, 32}, -1.0, 1.0, lockstep::DType::f32, lockstep::kCPU, &gen);
  const Tensor ones = lockstep::ones({batch});
  const Tensor zeros = lockstep::zeros({batch});
  auto noise_gen = std::make_shared<lockstep::Generator>(gen.seed() + 1);
  auto tail = work.tail;
  auto g_pending = std::make_shared<bool>(false);
  const std::function<void()> finish_g = [=] {
    if (!*g_pending) return;
    *g_pending = false;
    if (dp_g) dp_g->reducer().wait();
    opt_g->step();
  };
  work.finish = [=] { tail->timed(finish_g); };
  work.step = [=](Sync sync) {
    std::optional<dist::DataParallel::NoSync> guard_g;
    std::optional<dist::DataParallel::NoSync> guard_d;
    if (dp_g && sync == Sync::kOff) {
      guard_g.emplace(*dp_g);
      guard_d.emplace(*dp_d);
    }
    const auto noise = [&] {
      return lockstep::randn({batch, kLatent}, 0.0, 1.0, lockstep::DType::f32, lockstep::kCPU,
                             noise_gen.get());
    };
    opt_d->zero_grad();
    {
      std::optional<dist::DataParallel::NoSync> local;
      if (dp_d) local.emplace(*dp_d);
      tail->timed_backward(
          lockstep::binary_cross_entropy_with_logits(call(dp_d, *discriminator, real), ones));
    }
    tail->timed(finish_g);
    Tensor fake;
    {
      lockstep::NoGradGuard no_grad;
      fake = generator->forward(noise());
    }
    if (dp_d && sync == Sync::kOn) dp_d->reducer().defer_next_wait();
    tail->timed_backward(lockstep::binary_cross_entropy_with_logits(call(dp_d, *discriminator, fake), zeros));

    opt_g->zero_grad();
    const Tensor images = call(dp_g, *generator, noise());
    tail->timed([&] {
      if (dp_d) dp_d->reducer().wait();
    });
    opt_d->step();
    std::vector<Tensor> d_params = discriminator->parameters();
    for (Tensor& p : d_params) p.requires_grad_(false);
    if (dp_g && sync == Sync::kOn) dp_g->reducer().defer_next_wait();
    tail->timed_backward(lockstep::binary_cross_entropy_with_logits(discriminator->forward(images), ones));
    for (Tensor& p : d_params) p.requires_grad_(true);
    *g_pending = true;
  };
  return work;
}

Workload make_workload(const std::string& model, const Context* ctx, const Options& options,
                       lockstep::Generator& gen) {
  if (model == "resnet20") return resnet_workload(ctx, options.classifier_batch, gen);
  return dcgan_workload(ctx, options.gan_batch, gen);
}

struct StepTiming {
  std::vector<double> sync;   // step seconds, max over ranks
  std::vector<double> local;  // NoSync on every rank
  std::vector<double>
      busy;  // communication-thread seconds inside collectives per synchronised step (rank max)
  std::vector<double> tail_sync;  // tail per step, averaged over a run of steps, max over ranks
  std::vector<double> tail_local;
  // The same per step, min over ranks (the rank that reached the step's end last waits only for what its
  // own last buckets still had to send, not for the other ranks' lateness), averaged over a run of steps.
  std::vector<double> last_tail_sync;
  std::vector<double> last_tail_local;
  // Per step, how much longer the rank that finished compute first waited than the last one (the ranks'
  // skew; no clocks compared), averaged over a run of steps.
  std::vector<double> skew;
};

// Synchronised and NoSync steps interleaved (the same contention and drift for both), a barrier before each.
StepTiming time_steps(const Context& ctx, Workload& work) {
  StepTiming out;
  std::vector<double> step_tails_sync;  // per step, this rank
  std::vector<double> step_tails_local;
  auto timed = [&](Sync sync, std::vector<double>* seconds, std::vector<double>* tails,
                   std::vector<double>* busy) {
    barrier(ctx);
    const std::int64_t busy_before = ctx.comm_busy_ns->load();
    work.tail->total = 0.0;
    double step_tails[kStepsPerSample];
    const auto start = Clock::now();
    for (int k = 0; k < kStepsPerSample; ++k) {
      const double before = work.tail->total;
      work.step(sync);
      if (k + 1 == kStepsPerSample) work.finish();
      step_tails[k] = work.tail->total - before;
    }
    const double elapsed = seconds_since(start) / kStepsPerSample;
    if (seconds == nullptr) return;
    seconds->push_back(elapsed);
    tails->push_back(work.tail->total / kStepsPerSample);
    auto& per_step = sync == Sync::kOn ? step_tails_sync : step_tails_local;
    per_step.insert(per_step.end(), step_tails, step_tails + kStepsPerSample);
    if (busy != nullptr) {
      busy->push_back(static_cast<double>(ctx.comm_busy_ns->load() - busy_before) * 1e-9 / kStepsPerSample);
    }
  };
  for (int i = 0; i < ctx.options.warmup; ++i) {
    timed(Sync::kOn, nullptr, nullptr, nullptr);
    timed(Sync::kOff, nullptr, nullptr, nullptr);
  }
  for (int i = 0; i < ctx.options.steps; ++i) {
    timed(Sync::kOn, &out.sync, &out.tail_sync, &out.busy);
    timed(Sync::kOff, &out.local, &out.tail_local, nullptr);
  }
  out.sync = max_over_ranks(ctx, out.sync);
  out.local = max_over_ranks(ctx, out.local);
  out.busy = max_over_ranks(ctx, out.busy);
  out.tail_sync = max_over_ranks(ctx, out.tail_sync);
  out.tail_local = max_over_ranks(ctx, out.tail_local);
  auto run_means = [](const std::vector<double>& per_step) {
    std::vector<double> runs;
    for (std::size_t i = 0; i < per_step.size(); i += kStepsPerSample)
      runs.push_back(std::accumulate(per_step.begin() + i, per_step.begin() + i + kStepsPerSample, 0.0) /
                     kStepsPerSample);
    return runs;
  };
  const std::vector<double> first_sync = over_ranks(ctx, step_tails_sync, MPI_MAX);
  const std::vector<double> last_sync = over_ranks(ctx, step_tails_sync, MPI_MIN);
  std::vector<double> skew(last_sync.size());
  for (std::size_t i = 0; i < skew.size(); ++i) skew[i] = first_sync[i] - last_sync[i];
  out.last_tail_sync = run_means(last_sync);
  out.last_tail_local = run_means(over_ranks(ctx, step_tails_local, MPI_MIN));
  out.skew = run_means(skew);
  return out;
}

// Rank 0 trains the plain networks alone while the other ranks sleep-poll (MPI_Iprobe + usleep: no core is
// spun), then rank 0 sends them its step times. Returns the step seconds on every rank.
std::vector<double> time_alone(const Context& ctx, const std::string& model) {
  std::vector<double> seconds(static_cast<std::size_t>(ctx.options.steps), 0.0);
  barrier(ctx);
  if (ctx.rank == 0) {
    lockstep::Generator gen(kSeed);
    Workload work = make_workload(model, nullptr, ctx.options, gen);
    for (int i = 0; i < ctx.options.warmup; ++i) work.step(Sync::kOff);
    work.finish();
    for (auto& s : seconds) {
      const auto start = Clock::now();
      for (int k = 0; k < kStepsPerSample; ++k) work.step(Sync::kOff);
      work.finish();
      s = seconds_since(start) / kStepsPerSample;
    }
    for (int r = 1; r < ctx.size; ++r) {
      check_mpi(
          MPI_Send(seconds.data(), static_cast<int>(seconds.size()), MPI_DOUBLE, r, kTagAloneDone, ctx.comm),
          "MPI_Send");
    }
  } else {
    int arrived = 0;
    while (arrived == 0) {
      check_mpi(MPI_Iprobe(0, kTagAloneDone, ctx.comm, &arrived, MPI_STATUS_IGNORE), "MPI_Iprobe");
      if (arrived == 0) usleep(2000);
    }
    check_mpi(MPI_Recv(seconds.data(), static_cast<int>(seconds.size()), MPI_DOUBLE, 0, kTagAloneDone,
                       ctx.comm, MPI_STATUS_IGNORE),
              "MPI_Recv");
  }
  return seconds;
}

void print_raw(const Context& ctx, const char* tag, const char* what, std::int64_t bytes, const Timing& t) {
  if (ctx.rank != 0) return;
  std::printf("[%s] raw_allreduce %-14s bytes=%lld (%.2f MiB) median_us=%.1f min_us=%.1f busbw_GBps=%.2f\n",
              tag, what, static_cast<long long>(bytes), static_cast<double>(bytes) / kMiB, t.median * 1e6,
              t.min * 1e6, bus_gbs(ctx, bytes, t.median));
}

void run_model(const Context& ctx, const std::string& model) {
  const char* tag = model.c_str();
  lockstep::Generator gen(kSeed + 1000 * static_cast<std::uint64_t>(ctx.rank));
  Workload work = make_workload(model, &ctx, ctx.options, gen);
  const std::int64_t bytes = work.grad_bytes;
  const std::int64_t batch = work.batch;
  std::int64_t params = 0;
  for (const auto& net : work.nets) params += net->num_parameters();
  if (ctx.rank == 0) {
    std::printf(
        "[%s] parameters=%lld grad_bytes=%lld (%.2f MiB) per_rank_batch=%lld steps=%d x %d back to back "
        "warmup=%d reps=%d\n",
        tag, static_cast<long long>(params), static_cast<long long>(bytes), static_cast<double>(bytes) / kMiB,
        static_cast<long long>(batch), ctx.options.steps, kStepsPerSample, ctx.options.warmup,
        ctx.options.reps);
  }

  // 1. Raw MPI_Allreduce: all gradient bytes in one call, then one bucket's worth for reference.
  const Timing raw = time_raw_allreduce(ctx, bytes);
  print_raw(ctx, tag, "grad_bytes", bytes, raw);
  const Timing raw_bucket = time_raw_allreduce(ctx, ctx.reducer.bucket_bytes);
  print_raw(ctx, tag, "bucket_bytes", ctx.reducer.bucket_bytes, raw_bucket);
  const Timing raw_first = time_raw_allreduce(ctx, ctx.reducer.first_bucket_bytes);
  print_raw(ctx, tag, "first_bucket", ctx.reducer.first_bucket_bytes, raw_first);

  const Timing through_group = time_group_allreduce(ctx, bytes);
  if (ctx.rank == 0) {
    std::printf(
        "[%s] group_allreduce grad_bytes   bytes=%lld median_us=%.1f min_us=%.1f busbw_GBps=%.2f "
        "ratio_to_raw=%.2f\n",
        tag, static_cast<long long>(bytes), through_group.median * 1e6, through_group.min * 1e6,
        bus_gbs(ctx, bytes, through_group.median), raw.median / through_group.median);
  }

  const Timing group_sum = time_group_allreduce(ctx, bytes, dist::ReduceOp::kSum);
  if (ctx.rank == 0) {
    std::printf("[%s] group_allreduce sum (no averaging pass) median_us=%.1f min_us=%.1f ratio_to_raw=%.2f\n",
                tag, group_sum.median * 1e6, group_sum.min * 1e6, raw.median / group_sum.median);
  }
  const Timing group_shared = time_group_allreduce(ctx, bytes, dist::ReduceOp::kSum, Buffer::kShared);
  if (ctx.rank == 0) {
    std::printf(
        "[%s] group_allreduce sum, a buffer of empty_for_collectives (the reducer's buckets' memory%s) "
        "median_us=%.1f min_us=%.1f ratio_to_raw=%.2f\n",
        tag, ctx.group->local_size() == ctx.size && ctx.options.shared_memory ? ": shared" : ": ordinary",
        group_shared.median * 1e6, group_shared.min * 1e6, raw.median / group_shared.median);
  }
  // What a trainer adds per step to agree on stop signals (SIGUSR1/SIGTERM): one tiny all_reduce through the
  // group (launch/env/signals.h StopVote), latency only.
  const Timing stop_vote = time_group_allreduce(ctx, 8);
  if (ctx.rank == 0) {
    std::printf(
        "[%s] stop_agreement 8-byte group all_reduce (once per training step) median_us=%.1f min_us=%.1f\n",
        tag, stop_vote.median * 1e6, stop_vote.min * 1e6);
  }

  const Timing copy = time_copy(ctx, bytes);
  if (ctx.rank == 0) {
    std::printf(
        "[%s] memory_pass grad_bytes       bytes=%lld median_us=%.1f min_us=%.1f (one f32 copy, both ranks "
        "at "
        "once; %.2f x raw all-reduce)\n",
        tag, static_cast<long long>(bytes), copy.median * 1e6, copy.min * 1e6, copy.median / raw.median);
  }

  // 2. The reducer on near-free gradients of the same shapes.
  std::vector<const lockstep::nn::Module*> nets;
  for (const auto& net : work.nets) nets.push_back(net.get());
  const ReducerTiming red = time_reducer(ctx, nets);
  const double raw_bw = bus_gbs(ctx, bytes, raw.median);
  const double red_bw = bus_gbs(ctx, bytes, red.comm);
  if (ctx.rank == 0) {
    std::printf(
        "[%s] reducer buckets=%lld backwards=%zu sync_median_us=%.1f (min %.1f) nosync_median_us=%.1f "
        "(min %.1f) comm_us=%.1f busbw_GBps=%.2f ratio_to_raw=%.2f (target >= 0.90) "
        "comm_thread_in_collectives_us=%.1f\n",
        tag, static_cast<long long>(red.buckets), nets.size(), red.sync.median * 1e6, red.sync.min * 1e6,
        red.no_sync.median * 1e6, red.no_sync.min * 1e6, red.comm * 1e6, red_bw,
        raw_bw > 0.0 ? red_bw / raw_bw : 0.0, red.busy * 1e6);
    std::fflush(stdout);
  }

  // 3. Training steps with and without synchronisation.
  const StepTiming steps = time_steps(ctx, work);
  const double t_sync = median(steps.sync);
  const double t_local = median(steps.local);
  const double exposed = t_sync - t_local;
  const double hidden = red.comm > 0.0 ? std::clamp(1.0 - exposed / red.comm, 0.0, 1.0) : 0.0;
  std::vector<double>
      paired;  // step i synchronised minus step i without: less drift than a difference of medians
  for (std::size_t i = 0; i < steps.sync.size(); ++i) paired.push_back(steps.sync[i] - steps.local[i]);
  const double tail_exposed = median(steps.tail_sync) - median(steps.tail_local);
  const double hidden_tail = red.comm > 0.0 ? std::clamp(1.0 - tail_exposed / red.comm, 0.0, 1.0) : 0.0;
  const double last_exposed = median(steps.last_tail_sync) - median(steps.last_tail_local);
  const double hidden_last = red.comm > 0.0 ? std::clamp(1.0 - last_exposed / red.comm, 0.0, 1.0) : 0.0;
  if (ctx.rank == 0) {
    std::printf(
        "[%s] step sync_median_ms=%.2f sync_min_ms=%.2f local_median_ms=%.2f local_min_ms=%.2f "
        "exposed_ms=%.3f (paired median %.3f) comm_ms=%.3f hidden=%.2f\n",
        tag, t_sync * 1e3, minimum(steps.sync) * 1e3, t_local * 1e3, minimum(steps.local) * 1e3,
        exposed * 1e3, median(paired) * 1e3, red.comm * 1e3, hidden);
    std::printf(
        "[%s] step diagnostics: tail_after_last_grad_sync_ms=%.3f tail_local_ms=%.3f exposed_tail_ms=%.3f "
        "hidden_by_tail=%.2f (1 - exposed_tail / comm: ignores compute slowed by the communication thread); "
        "comm_thread_in_collectives_ms=%.3f per sync step (median, slowest rank)\n",
        tag, median(steps.tail_sync) * 1e3, median(steps.tail_local) * 1e3, tail_exposed * 1e3, hidden_tail,
        median(steps.busy) * 1e3);
    std::printf(
        "[%s] step diagnostics, per step the rank that finished compute last: exposed_tail_ms=%.3f "
        "hidden_by_tail_last_rank=%.2f; skew_ms=%.3f per step (how much longer the first rank to finish "
        "compute waited: the ranks' compute ending apart, which synchronous training pays whatever the "
        "link)\n",
        tag, last_exposed * 1e3, hidden_last, median(steps.skew) * 1e3);
    std::fflush(stdout);
  }

  // 3b. The desync check's share of a step: record the step's collectives, replay them checked and not.
  {
    {
      std::lock_guard lock(ctx.recorder->mutex);
      ctx.recorder->calls.clear();
    }
    barrier(ctx);
    ctx.recorder->recording = true;
    work.step(Sync::kOn);
    work.finish();
    ctx.recorder->recording = false;
    std::vector<dist::CollectiveCall> calls;
    {
      std::lock_guard lock(ctx.recorder->mutex);
      for (const auto& c : ctx.recorder->calls)
        if (c.kind == dist::Collective::kAllReduce) calls.push_back(c);
    }
    const CheckGroups groups = make_check_groups();
    const PairTiming replay = time_step_replay(ctx, groups, calls);
    std::int64_t step_bytes = 0;
    std::int64_t past_header =
        0;  // collectives whose data does not fit the header: the check adds a round trip
    for (const auto& c : calls) {
      step_bytes += c.bytes();
      if (c.bytes() > kHeaderBytes - 32) ++past_header;
    }
    const Timing header = time_header_exchange(ctx);
    const double estimate = static_cast<double>(past_header) * header.median;
    if (ctx.rank == 0) {
      std::printf(
          "[%s] desync_check per step: all_reduces=%zu (%.2f MiB) replayed check_on_median_us=%.1f "
          "check_off_median_us=%.1f check_cost_us=%.1f (paired median) = %.4f%% of the synchronised step "
          "(median_ms=%.2f; target < 1%%); past the header=%lld x header exchange median_us=%.1f = %.4f%% "
          "of the step (the bound without noise)\n",
          tag, calls.size(), static_cast<double>(step_bytes) / kMiB, replay.a.median * 1e6,
          replay.b.median * 1e6, replay.diff * 1e6, 100.0 * replay.diff / t_sync, t_sync * 1e3,
          static_cast<long long>(past_header), header.median * 1e6, 100.0 * estimate / t_sync);
      std::fflush(stdout);
    }
  }

  // 4. Weak scaling against rank 0 training alone.
  const std::vector<double> alone = time_alone(ctx, model);
  const double t_alone = median(alone);
  const double tp_alone = static_cast<double>(batch) / t_alone;
  const double tp_group = static_cast<double>(batch * ctx.size) / t_sync;
  if (ctx.rank == 0) {
    std::printf(
        "[%s] throughput alone_1rank_images_per_s=%.1f (step median_ms=%.2f min_ms=%.2f) "
        "group_%drank_images_per_s=%.1f efficiency=%.2f (target >= 0.90; contention alone/local=%.2f, "
        "communication local/sync=%.2f)\n",
        tag, tp_alone, t_alone * 1e3, minimum(alone) * 1e3, ctx.size, tp_group,
        tp_group / (ctx.size * tp_alone), t_alone / t_local, t_local / t_sync);
    std::fflush(stdout);
  }
}

Options parse(int argc, char** argv) {
  Options options;
  const char* usage =
      "--model resnet20|dcgan|desync|all, --steps N, --warmup N, --reps N, --batch N, --gan-batch N, "
      "--bucket-mib "
      "X, "
      "--first-bucket-mib X, --desync-check on|off or --shared-memory on|off";
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    LOCKSTEP_CHECK(i + 1 < argc, lockstep::ValueError, "lockstep_bench_distributed: expected ", usage,
                   ", but got '", flag, "' without a value");
    const std::string value = argv[++i];
    if (flag == "--model") {
      options.model = value;
    } else if (flag == "--steps") {
      options.steps = std::stoi(value);
    } else if (flag == "--warmup") {
      options.warmup = std::stoi(value);
    } else if (flag == "--reps") {
      options.reps = std::stoi(value);
    } else if (flag == "--batch") {
      options.classifier_batch = std::stoll(value);
    } else if (flag == "--gan-batch") {
      options.gan_batch = std::stoll(value);
    } else if (flag == "--bucket-mib") {
      options.bucket_mib = std::stod(value);
    } else if (flag == "--first-bucket-mib") {
      options.first_bucket_mib = std::stod(value);
    } else if (flag == "--desync-check" && (value == "on" || value == "off")) {
      options.desync_check = value == "on" ? DesyncCheck::kOn : DesyncCheck::kOff;
    } else if (flag == "--shared-memory" && (value == "on" || value == "off")) {
      options.shared_memory = value == "on";
    } else {
      LOCKSTEP_CHECK(false, lockstep::ValueError, "lockstep_bench_distributed: expected ", usage,
                     ", but got '", flag, " ", value, "'");
    }
  }
  LOCKSTEP_CHECK(options.model == "all" || options.model == "resnet20" || options.model == "dcgan" ||
                     options.model == "desync",
                 lockstep::ValueError,
                 "lockstep_bench_distributed: expected --model resnet20|dcgan|desync|all, but got '",
                 options.model, "'");
  LOCKSTEP_CHECK(
      options.steps > 0 && options.warmup >= 0 && options.reps > 0 && options.classifier_batch > 0 &&
          options.gan_batch > 0 && options.bucket_mib > 0.0 && options.first_bucket_mib > 0.0,
      lockstep::ValueError,
      "lockstep_bench_distributed: expected positive --steps, --reps, batches and bucket sizes and "
      "--warmup >= 0, but got steps=",
      options.steps, ", warmup=", options.warmup, ", reps=", options.reps);
  return options;
}

int run(int argc, char** argv) {
  Context ctx;
  ctx.options = parse(argc, argv);
  LOCKSTEP_CHECK(dist::mpi_launched(), lockstep::ValueError,
                 "lockstep_bench_distributed: expected to be started by mpirun, but it was not. Run "
                 "tests/perf/bench_distributed.sh");
  dist::ProcessGroupOptions group_options;
  group_options.check_desync = ctx.options.desync_check == DesyncCheck::kOn;
  group_options.shared_memory = ctx.options.shared_memory;
  ctx.group = dist::MpiProcessGroup::world(group_options);
  ctx.rank = ctx.group->rank();
  ctx.size = ctx.group->size();
  LOCKSTEP_CHECK(ctx.size >= 2, lockstep::ValueError,
                 "lockstep_bench_distributed: expected at least 2 ranks (mpirun -np 2), but got ", ctx.size);
  ctx.reducer.bucket_bytes = static_cast<std::int64_t>(ctx.options.bucket_mib * kMiB);
  ctx.reducer.first_bucket_bytes = static_cast<std::int64_t>(ctx.options.first_bucket_mib * kMiB);
  auto busy = ctx.comm_busy_ns;
  auto started = std::make_shared<Clock::time_point>();
  ctx.recorder = std::make_shared<CallRecorder>();
  auto recorder = ctx.recorder;
  ctx.group->set_observer([busy, started, recorder](const dist::CollectiveCall& call,
                                                    dist::CollectiveEvent event) {
    if (event == dist::CollectiveEvent::kStart) {
      *started = Clock::now();
      if (recorder->recording) {
        std::lock_guard lock(recorder->mutex);
        recorder->calls.push_back(call);
      }
    } else {
      busy->fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - *started).count());
    }
  });
  check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &ctx.comm), "MPI_Comm_dup");

  // Each rank's allowed CPUs, for the binding in use.
  std::string cpus = affinity();
  cpus.resize(32, '\0');
  std::vector<char> all_cpus(static_cast<std::size_t>(32 * ctx.size));
  check_mpi(MPI_Gather(cpus.data(), 32, MPI_CHAR, all_cpus.data(), 32, MPI_CHAR, 0, ctx.comm), "MPI_Gather");
  if (ctx.rank == 0) {
    const char* yield = std::getenv("OMPI_MCA_mpi_yield_when_idle");
    std::printf(
        "lockstep_bench_distributed: world=%d backend=%s mpi_thread_level=%s omp_threads=%d "
        "bucket_bytes=%lld first_bucket_bytes=%lld desync_check=%s shared_memory=%s local_size=%d host=%s "
        "OMPI_MCA_mpi_yield_when_idle=%s\n",
        ctx.size, ctx.group->backend(), dist::MpiProcessGroup::thread_level_name(ctx.group->thread_level()),
        omp_get_max_threads(), static_cast<long long>(ctx.reducer.bucket_bytes),
        static_cast<long long>(ctx.reducer.first_bucket_bytes),
        ctx.options.desync_check == DesyncCheck::kOn ? "on" : "off", ctx.options.shared_memory ? "on" : "off",
        ctx.group->local_size(), ctx.group->host().c_str(), yield != nullptr ? yield : "(unset)");
    std::printf("load_average_at_start=%s\n", load_average().c_str());
    std::printf("cpu_affinity:");
    for (int r = 0; r < ctx.size; ++r)
      std::printf(" rank%d=%s", r, &all_cpus[static_cast<std::size_t>(32 * r)]);
    std::printf("\n");
    std::fflush(stdout);
  }

  if (ctx.options.model == "all" || ctx.options.model == "desync") run_desync_cost(ctx, make_check_groups());
  for (const std::string model : {"resnet20", "dcgan"}) {
    if (ctx.options.model == "all" || ctx.options.model == model) run_model(ctx, model);
  }
  barrier(ctx);
  if (ctx.rank == 0)
    std::printf("load_average_at_end=%s (this run's own 2 ranks count towards it)\n", load_average().c_str());
  check_mpi(MPI_Comm_free(&ctx.comm), "MPI_Comm_free");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& error) {
    dist::abort_job(error.what());
  }
}
