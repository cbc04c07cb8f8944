// The MPI process group and the MPI runtime it shares: initialisation once per process, finalisation with
// the last group, and the collectives on the group's communicator, each starting with a fixed-size header
// exchange that checks that every rank made the same call and carries small collectives' data.
#include "distributed/mpi.h"

// The C API only (Open MPI's header would otherwise pull in its deprecated C++ bindings).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <random>
#include <vector>

#include "distributed/shared_memory.h"
#include "src/core/error.h"
#include "src/tensor/factories.h"

namespace lockstep::distributed {

// MPI initialisation and finalisation, shared by every MPI group of the process (the last one to go
// finalises). Thread-safe.
class MpiRuntime {
 public:
  static std::shared_ptr<MpiRuntime> acquire();
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int thread_level() const { return thread_level_; }
  // A communication thread was left inside MPI: finalising would hang, so the process must abort instead.
  void abandon() { abandoned_ = true; }

 private:
  MpiRuntime() = default;
  int rank_ = 0;
  int size_ = 1;
  int thread_level_ = MPI_THREAD_SINGLE;
  bool owns_init_ = false;
  std::atomic<bool> abandoned_{false};
};

struct MpiProcessGroup::Comm {
  MPI_Comm comm = MPI_COMM_NULL;
};

namespace {

std::mutex g_runtime_mutex;
std::weak_ptr<MpiRuntime> g_runtime;
// MPI_COMM_WORLD's rank and size, cached when this process initialises MPI (rank_prefix reads them).
std::atomic<int> g_world_rank{-1};
std::atomic<int> g_world_size{0};

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return str_cat("MPI error code ", code);
  return std::string(text, static_cast<std::size_t>(length));
}

// Failures of MPI set-up calls (before a group exists).
void check_setup(int code, const char* function) {
  if (code != MPI_SUCCESS)
    throw DistributedError(str_cat(function, " failed: ", mpi_error_string(code)), g_world_rank.load(),
                           g_world_size.load(), "");
}

MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return MPI_FLOAT;
    case DType::f64:
      return MPI_DOUBLE;
    case DType::i64:
      return MPI_INT64_T;
    default:
      throw_unsupported_dtype("MpiProcessGroup", dtype);
  }
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      return MPI_SUM;  // the base divides
    case ReduceOp::kMax:
      return MPI_MAX;
    case ReduceOp::kMin:
      return MPI_MIN;
  }
  return MPI_SUM;
}

// The desync check rides on a fixed-size header that every rank exchanges (one MPI_Allgather of
// kHeaderBytes per rank) as the first MPI call of every collective, whatever the rank called:
//  - its call, exactly: kind, dtype, op and root packed in one word, count, sequence (no hash, so no
//    collisions). Each rank compares every rank's words with its own after the exchange; all ranks see the
//    same gathered headers, so a mismatch fails on every rank at the same collective, and the message names
//    each rank's call without a second exchange.
//  - the collective's data when it fits (kPayloadBytes per rank): then the header exchange *is* the
//    collective (one MPI call, as many as without the check), and each rank reduces the gathered payloads in
//    rank order, identically on every rank. Latency-bound collectives (the stop vote, losses, metrics,
//    barriers) would otherwise pay a second round trip, doubling their cost.
// Larger collectives move their data only after the header exchange has shown that every rank made the
// same call: one small-message round trip before the data. Measured (tests/perf/bench_distributed.sh
// --model desync, 2 ranks on one node): the exchange takes 0.5-1.5 us against 105-600 us for a 1 MiB
// MPI_Allreduce (0.2-0.5%). The alternatives are both slower and unsafe on a mismatch: MPI_Iallgather of the
// header next to an MPI_Iallreduce of the data (then MPI_Waitall) cost +120% or +25% (Open MPI's
// non-blocking all-reduce takes a slower path), and fingerprint elements appended to the data cost +60% to
// +130% (the copy in and out of a staging buffer). And before anyone knew of a mismatch, ranks whose counts,
// dtypes, kinds or roots differ would have issued data calls of different shapes, which MPI truncates, mixes
// up or hangs on.
constexpr std::size_t kHeaderBytes = 256;
constexpr int kRouteOffsetBits = 44;
constexpr std::size_t kFingerprintWords = 4;
constexpr std::size_t kPayloadBytes = kHeaderBytes - kFingerprintWords * sizeof(std::uint64_t);

struct Header {
  std::uint64_t words[kFingerprintWords];  // fingerprint(): the call and its route
  alignas(std::uint64_t) std::byte payload[kPayloadBytes];
};
static_assert(sizeof(Header) == kHeaderBytes);

// The call as header words: kind | dtype << 8 | op << 16 | root << 32, count, sequence, route (0: MPI moves
// the data; else serial << kRouteOffsetBits | byte offset: the shared buffers that move it, and where).
void fingerprint(const CollectiveCall& call, std::uint64_t route, std::uint64_t* words) {
  words[0] = static_cast<std::uint64_t>(call.kind) | static_cast<std::uint64_t>(call.dtype) << 8 |
             static_cast<std::uint64_t>(call.op) << 16 |
             static_cast<std::uint64_t>(static_cast<std::uint32_t>(call.root)) << 32;
  words[1] = static_cast<std::uint64_t>(call.count);
  words[2] = call.sequence;
  words[3] = route;
}

CollectiveCall call_of(const Header& header) {
  const std::uint64_t w = header.words[0];
  return CollectiveCall{static_cast<Collective>(w & 0xff),
                        static_cast<DType>((w >> 8) & 0xff),
                        static_cast<std::int64_t>(header.words[1]),
                        static_cast<ReduceOp>((w >> 16) & 0xff),
                        static_cast<int>(static_cast<std::uint32_t>(w >> 32)),
                        header.words[2]};
}

// The bytes of data each rank contributes to `call` (all_gather: its input; reduce_scatter: its whole input).
std::int64_t payload_bytes(const CollectiveCall& call, std::int64_t world) {
  switch (call.kind) {
    case Collective::kBarrier:
      return 0;
    case Collective::kReduceScatter:
      return world * call.bytes();
    case Collective::kAllReduce:
    case Collective::kBroadcast:
    case Collective::kAllGather:
      return call.bytes();
  }
  return 0;
}

}  // namespace

std::shared_ptr<MpiRuntime> MpiRuntime::acquire() {
  std::lock_guard lock(g_runtime_mutex);
  if (auto runtime = g_runtime.lock()) return runtime;
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (finalized)
    throw DistributedError(
        "MpiProcessGroup::world: expected MPI not yet finalised, but the last MPI group was destroyed and "
        "MPI "
        "finalised, and MPI cannot start twice. Keep one group alive for the whole job",
        g_world_rank.load(), g_world_size.load(), "");
  std::shared_ptr<MpiRuntime> runtime(new MpiRuntime());
  if (!initialized) {
    // The communication thread shares its cores with the rank's compute threads (training uses every core
    // the rank has). While a collective waits for a peer, or for its data on a network, Open MPI's progress
    // loop would spin at full speed on a core the compute needs; yielding when idle hands it back. Over a
    // 1 Gbit/s link (tests/perf/bench_link.sh, ResNet-20, 1 core per rank) the communication exposed per step
    // fell from 18-35 ms to 3-7 ms. The user's own setting (mpirun --mca, the environment) wins.
    ::setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
    check_setup(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &runtime->thread_level_),
                "MPI_Init_thread");
    runtime->owns_init_ = true;
  } else {
    check_setup(MPI_Query_thread(&runtime->thread_level_), "MPI_Query_thread");
  }
  check_setup(MPI_Comm_rank(MPI_COMM_WORLD, &runtime->rank_), "MPI_Comm_rank");
  check_setup(MPI_Comm_size(MPI_COMM_WORLD, &runtime->size_), "MPI_Comm_size");
  g_world_rank = runtime->rank_;
  g_world_size = runtime->size_;
  if (runtime->thread_level_ < MPI_THREAD_SERIALIZED) {
    throw DistributedError(
        str_cat("[rank ", runtime->rank_, "/", runtime->size_,
                "] MpiProcessGroup::world: expected MPI to provide at least MPI_THREAD_SERIALIZED "
                "(collectives run "
                "on a communication thread), but it provides ",
                MpiProcessGroup::thread_level_name(runtime->thread_level_),
                ". Use an MPI built with thread support"),
        runtime->rank_, runtime->size_, "");
  }
  g_runtime = runtime;
  return runtime;
}

MpiRuntime::~MpiRuntime() {
  // While an exception unwinds, the other ranks may still be waiting in a collective: MPI_Finalize would
  // then block forever, and the handler that prints the error and calls abort_job would never run.
  if (owns_init_ && !abandoned_ && std::uncaught_exceptions() == 0) MPI_Finalize();
}

bool mpi_launched() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr ||
         std::getenv("PMI_RANK") != nullptr;
}

std::optional<RankInWorld> mpi_world_rank() {
  const int rank = g_world_rank.load();
  if (rank < 0) return std::nullopt;
  return RankInWorld{rank, g_world_size.load()};
}

std::shared_ptr<MpiProcessGroup> MpiProcessGroup::world(ProcessGroupOptions options) {
  auto runtime = MpiRuntime::acquire();
  return std::shared_ptr<MpiProcessGroup>(new MpiProcessGroup(std::move(runtime), options));
}

MpiProcessGroup::MpiProcessGroup(std::shared_ptr<MpiRuntime> runtime, ProcessGroupOptions options)
    : ProcessGroup(runtime->rank(), runtime->size(), options, Execution::kThread),
      runtime_(std::move(runtime)),
      comm_(std::make_unique<Comm>()),
      max_chunk_(INT_MAX) {
  // Set-up runs on the caller's thread; the communication thread is idle until the first collective.
  check_setup(MPI_Comm_dup(MPI_COMM_WORLD, &comm_->comm), "MPI_Comm_dup");
  check_setup(MPI_Comm_set_errhandler(comm_->comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  MPI_Comm local = MPI_COMM_NULL;
  check_setup(MPI_Comm_split_type(comm_->comm, MPI_COMM_TYPE_SHARED, rank(), MPI_INFO_NULL, &local),
              "MPI_Comm_split_type");
  MPI_Comm_rank(local, &local_rank_);
  MPI_Comm_size(local, &local_size_);
  MPI_Comm_free(&local);
  char name[MPI_MAX_PROCESSOR_NAME];
  int length = 0;
  check_setup(MPI_Get_processor_name(name, &length), "MPI_Get_processor_name");
  host_.assign(name, static_cast<std::size_t>(length));
}

MpiProcessGroup::~MpiProcessGroup() {
  stop();
  if (abandoned()) {
    runtime_->abandon();
    return;
  }
  if (comm_->comm != MPI_COMM_NULL) MPI_Comm_free(&comm_->comm);
}

int MpiProcessGroup::thread_level() const { return runtime_->thread_level(); }

const char* MpiProcessGroup::thread_level_name(int level) {
  switch (level) {
    case MPI_THREAD_SINGLE:
      return "MPI_THREAD_SINGLE";
    case MPI_THREAD_FUNNELED:
      return "MPI_THREAD_FUNNELED";
    case MPI_THREAD_SERIALIZED:
      return "MPI_THREAD_SERIALIZED";
    case MPI_THREAD_MULTIPLE:
      return "MPI_THREAD_MULTIPLE";
    default:
      return "an unknown thread level";
  }
}

void MpiProcessGroup::set_max_chunk(std::int64_t elements) {
  LOCKSTEP_CHECK(elements >= 1 && elements <= INT_MAX, ValueError,
                 "MpiProcessGroup::set_max_chunk: expected 1 <= elements <= INT_MAX, but got ", elements);
  max_chunk_ = elements;
}

void MpiProcessGroup::check(int code, const CollectiveCall& call, const char* function) const {
  if (code != MPI_SUCCESS)
    throw DistributedError(
        str_cat(prefix(), call.describe(), " failed: ", function, ": ", mpi_error_string(code)), rank(),
        size(), collective_name(call.kind));
}

void MpiProcessGroup::exchange_header(const CollectiveCall& call, const void* input, void* output,
                                      Carried carried, std::uint64_t route) {
  const auto world = static_cast<std::size_t>(size());
  const std::int64_t bytes = payload_bytes(call, size());
  Header mine{};
  fingerprint(call, route, mine.words);
  if (carried == Carried::kData && bytes > 0)
    std::memcpy(mine.payload, input, static_cast<std::size_t>(bytes));
  std::vector<Header> all(world);
  check(MPI_Allgather(&mine, static_cast<int>(kHeaderBytes), MPI_BYTE, all.data(),
                      static_cast<int>(kHeaderBytes), MPI_BYTE, comm_->comm),
        call, "MPI_Allgather (collective header)");
  const bool same = std::all_of(all.begin(), all.end(), [&](const Header& h) {
    return std::equal(std::begin(h.words), std::end(h.words), std::begin(mine.words));
  });
  if (!same) {
    std::vector<CollectiveCall> calls;
    for (const Header& h : all) calls.push_back(call_of(h));
    calls.front().sequence = call.sequence;
    // Calls alike but routes not: list each rank's route.
    std::string routes;
    for (std::size_t r = 0; r < world; ++r) {
      const std::uint64_t route = all[r].words[3];
      routes +=
          str_cat(r == 0 ? "" : ", ", "rank ", r, " ",
                  route == 0 ? std::string("through MPI")
                             : str_cat("through shared buffers #", route >> kRouteOffsetBits, " at byte ",
                                       route & ((std::uint64_t{1} << kRouteOffsetBits) - 1)));
    }
    const bool routes_differ =
        std::any_of(all.begin(), all.end(), [&](const Header& h) { return h.words[3] != mine.words[3]; });
    throw DistributedError(str_cat(prefix(), "collectives out of step at ", describe_desync(calls),
                                   routes_differ ? str_cat(" on different buffers (", routes, ")") : "",
                                   ". Every rank must issue the same collectives in the same order"),
                           rank(), size(), collective_name(call.kind));
  }
  if (carried == Carried::kFingerprint || bytes == 0) return;
  // Every rank made this call: combine the gathered payloads in rank order (the same bits on every rank).
  auto* out = static_cast<std::byte*>(output);
  const auto n = static_cast<std::size_t>(call.bytes());
  switch (call.kind) {
    case Collective::kAllReduce:
      std::memcpy(out, all[0].payload, n);
      for (std::size_t r = 1; r < world; ++r)
        reduce_into(out, all[r].payload, call.count, call.dtype, call.op);
      return;
    case Collective::kBroadcast:
      if (rank() != call.root) std::memcpy(out, all[static_cast<std::size_t>(call.root)].payload, n);
      return;
    case Collective::kAllGather:
      for (std::size_t r = 0; r < world; ++r) std::memcpy(out + r * n, all[r].payload, n);
      return;
    case Collective::kReduceScatter: {
      const std::size_t block = static_cast<std::size_t>(rank()) * n;
      std::memcpy(out, all[0].payload + block, n);
      for (std::size_t r = 1; r < world; ++r)
        reduce_into(out, all[r].payload + block, call.count, call.dtype, call.op);
      return;
    }
    case Collective::kBarrier:
      return;
  }
}

void MpiProcessGroup::run(const CollectiveCall& call, const void* input, void* output) {
  // Collectives whose data fits the header are carried by it whether or not check_desync is on, so that
  // their results are the same bits either way (MPI's own reduction order may differ from rank order); their
  // calls are then compared at no extra cost. Larger ones exchange the header first only when checking.
  if (payload_bytes(call, size()) <= static_cast<std::int64_t>(kPayloadBytes)) {
    exchange_header(call, input, output, Carried::kData);
    return;
  }
  if (call.kind == Collective::kAllReduce) {
    if (auto shared = shared_holding(output, call.bytes())) {
      auto& [buffers, serial] = *shared;
      const auto offset = static_cast<std::size_t>(static_cast<std::byte*>(output) - buffers->data());
      if (options().check_desync)
        exchange_header(call, input, output, Carried::kFingerprint, serial << kRouteOffsetBits | offset);
      // By value: an abandoned communication thread may reach the message after the group is gone.
      buffers->all_reduce(offset, call.count, call.dtype, call.op, options().timeout,
                          [rank = rank(), world = size(), call] {
                            return str_cat("[rank ", rank, "/", world, "] ", call.describe());
                          });
      return;
    }
  }
  if (options().check_desync) exchange_header(call, input, output, Carried::kFingerprint);
  MPI_Comm comm = comm_->comm;
  const MPI_Datatype type = mpi_type(call.dtype);
  const MPI_Op op = mpi_op(call.op);
  const auto element = static_cast<std::int64_t>(element_size(call.dtype));
  const auto* in = static_cast<const std::byte*>(input);
  auto* out = static_cast<std::byte*>(output);
  const std::int64_t count = call.count;
  const std::int64_t world = size();
  // Pieces of at most max_chunk_ elements: [offset, offset + length).
  for (std::int64_t offset = 0; offset < count; offset += max_chunk_) {
    const std::int64_t length = std::min(max_chunk_, count - offset);
    const int n = static_cast<int>(length);
    switch (call.kind) {
      case Collective::kAllReduce:
        check(MPI_Allreduce(MPI_IN_PLACE, out + offset * element, n, type, op, comm), call, "MPI_Allreduce");
        break;
      case Collective::kBroadcast:
        check(MPI_Bcast(out + offset * element, n, type, call.root, comm), call, "MPI_Bcast");
        break;
      case Collective::kAllGather: {
        const bool in_place = in == out + rank() * count * element;
        if (length == count) {
          check(MPI_Allgather(in_place ? MPI_IN_PLACE : in, n, type, out, n, type, comm), call,
                "MPI_Allgather");
          break;
        }
        // Piece by piece through a buffer of every rank's piece, then into each rank's block of the output.
        std::vector<std::byte> gathered(static_cast<std::size_t>(world * length * element));
        check(MPI_Allgather(in + offset * element, n, type, gathered.data(), n, type, comm), call,
              "MPI_Allgather");
        for (std::int64_t r = 0; r < world; ++r)
          std::memcpy(out + (r * count + offset) * element, gathered.data() + r * length * element,
                      static_cast<std::size_t>(length * element));
        break;
      }
      case Collective::kReduceScatter: {
        if (length == count) {
          check(MPI_Reduce_scatter_block(in, out, n, type, op, comm), call, "MPI_Reduce_scatter_block");
          break;
        }
        // Every rank's block r's piece, packed together, then reduced and scattered.
        std::vector<std::byte> packed(static_cast<std::size_t>(world * length * element));
        for (std::int64_t r = 0; r < world; ++r)
          std::memcpy(packed.data() + r * length * element, in + (r * count + offset) * element,
                      static_cast<std::size_t>(length * element));
        check(MPI_Reduce_scatter_block(packed.data(), out + offset * element, n, type, op, comm), call,
              "MPI_Reduce_scatter_block");
        break;
      }
      case Collective::kBarrier:
        break;
    }
  }
}

bool MpiProcessGroup::all_agree(bool ok) {
  Tensor flag = full({1}, ok ? 1.0 : 0.0, DType::i64);
  all_reduce(flag, ReduceOp::kMin)->wait();
  return *flag.data<std::int64_t>() == 1;
}

// Three agreements, each a small all-reduce: every rank created its object, every rank mapped every object
// (then each unlinks its own name); a rank that fails says why, and every rank falls back to ordinary memory
// for this and later buffers. Names carry a nonce rank 0 draws for the group, so no other job's or group's
// objects are ever opened.
Tensor MpiProcessGroup::empty_for_collectives(std::int64_t numel, DType dtype) {
  LOCKSTEP_CHECK(numel >= 0, ValueError, "empty_for_collectives: expected a non-negative size, but got ",
                 numel);
  const auto bytes = static_cast<std::size_t>(numel) * element_size(dtype);
  if (size() == 1 || local_size_ != size() || !options().shared_memory || shared_refused_ || bytes == 0)
    return ProcessGroup::empty_for_collectives(numel, dtype);
  if (shared_nonce_ == 0) {
    Tensor nonce = full({1}, 0.0, DType::i64);
    std::random_device entropy;
    *nonce.data<std::int64_t>() =
        static_cast<std::int64_t>((static_cast<std::uint64_t>(entropy()) << 32 | entropy()) &
                                  0x7fffffffffffffffULL) |
        1;
    broadcast(nonce, 0)->wait();
    shared_nonce_ = static_cast<std::uint64_t>(*nonce.data<std::int64_t>());
  }
  const std::uint64_t serial = ++shared_made_;
  LOCKSTEP_CHECK(serial < (std::uint64_t{1} << (64 - kRouteOffsetBits)) &&
                     bytes < (std::uint64_t{1} << kRouteOffsetBits),
                 ValueError, "empty_for_collectives: at most ",
                 (std::uint64_t{1} << (64 - kRouteOffsetBits)) - 1,
                 " buffers of less than 16 TiB each, but this is buffer ", serial, " of ", bytes, " bytes");
  std::vector<std::string> names;
  char nonce_hex[17];
  std::snprintf(nonce_hex, sizeof(nonce_hex), "%016llx", static_cast<unsigned long long>(shared_nonce_));
  for (int r = 0; r < size(); ++r) names.push_back(str_cat("/lockstep-", nonce_hex, "-r", r, "-", serial));
  std::string error;
  auto buffers = SharedBuffers::create(names[static_cast<std::size_t>(rank())], bytes, rank(), size(),
                                       shared_nonce_, error);
  bool ok = all_agree(buffers != nullptr);
  ok = ok && all_agree(buffers->map_peers(names, error));
  if (buffers) buffers->unlink();
  if (!ok) {
    shared_refused_ = true;
    if (!error.empty())
      std::fprintf(
          stderr,
          "%sshared memory refused (%s): this and later all-reduce buffers of the group go through MPI "
          "(%llu made before stay shared); a container may need a larger /dev/shm (docker run "
          "--shm-size)\n",
          prefix().c_str(), error.c_str(), static_cast<unsigned long long>(serial - 1));
    return ProcessGroup::empty_for_collectives(numel, dtype);
  }
  {
    std::lock_guard lock(shared_mutex_);
    std::erase_if(shared_, [](const Shared& s) { return s.buffers.expired(); });
    shared_.push_back({buffers, serial});
  }
  return borrow_memory(buffers->data(), {numel}, dtype, kCPU, buffers);
}

std::optional<std::pair<std::shared_ptr<SharedBuffers>, std::uint64_t>> MpiProcessGroup::shared_holding(
    const void* p, std::int64_t bytes) {
  std::lock_guard lock(shared_mutex_);
  for (const Shared& s : shared_)
    if (auto buffers = s.buffers.lock(); buffers && buffers->contains(p, static_cast<std::size_t>(bytes)))
      return std::pair{buffers, s.serial};
  return std::nullopt;
}

}  // namespace lockstep::distributed
