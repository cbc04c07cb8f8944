// Process groups: the collectives (all_reduce, broadcast, all_gather, reduce_scatter, barrier) that keep
// data-parallel ranks identical, each returning a Work handle. Backends: single-process (single.h),
// in-process threads for fast logic tests (threaded.h), and MPI (mpi.h).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "src/tensor/tensor.h"

namespace lockstep::distributed {

enum class ReduceOp : std::uint8_t { kSum, kAvg, kMax, kMin };
enum class Collective : std::uint8_t { kAllReduce, kBroadcast, kAllGather, kReduceScatter, kBarrier };
const char* collective_name(Collective kind);
const char* reduce_op_name(ReduceOp op);

// One collective call as every rank must issue it: the `sequence`-th call of this group, of `kind` over
// `count` elements of `dtype` per rank (all_gather: the input's count; reduce_scatter: the output's count).
// Two ranks' calls match when kind, dtype, count, op and root are equal (the desync check compares them).
struct CollectiveCall {
  Collective kind = Collective::kBarrier;
  DType dtype = DType::f32;
  std::int64_t count = 0;
  ReduceOp op = ReduceOp::kSum;
  int root = 0;
  std::uint64_t sequence = 0;
  std::int64_t bytes() const { return count * static_cast<std::int64_t>(element_size(dtype)); }
  bool matches(const CollectiveCall& other) const;
  // "all_reduce #17 (sum, f32 x 262144, 1.00 MiB)"
  std::string describe() const;
  // The call without its sequence number and size: "all_reduce (sum, f32 x 262144)", "barrier".
  std::string signature() const;
};

// The completion of one collective. wait() blocks until it has finished and rethrows its error; it throws
// DistributedError naming the rank, the collective, its sequence number and size when the group's timeout
// passes first (the watchdog: the caller's catch prints it and aborts the job). Thread-safe.
class Work {
 public:
  explicit Work(CollectiveCall call, int rank, int world, std::chrono::milliseconds timeout);
  void wait();
  bool completed() const;
  const CollectiveCall& call() const { return call_; }

  // For backends: mark the end of the collective, with the error it raised if any.
  void finish(std::exception_ptr error = nullptr);
  // For backends whose collectives end on a device stream (NCCL): what wait() does once the collective has
  // been issued, e.g. make the caller's stream wait for it. Set before finish().
  void set_on_wait(std::function<void()> on_wait) { on_wait_ = std::move(on_wait); }

 private:
  CollectiveCall call_;
  int rank_;
  int world_;
  std::chrono::milliseconds timeout_;
  mutable std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::atomic<bool> done_flag_{false};  // done_, readable without the mutex (wait's short spin)
  std::exception_ptr error_;
  std::function<void()> on_wait_;
};
using WorkPtr = std::shared_ptr<Work>;

struct ProcessGroupOptions {
  // How long wait() and the backends wait for the other ranks before giving up (the watchdog).
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  // Compare every collective's kind, dtype, size, op and root across ranks before it moves data; a mismatch
  // (ranks calling collectives in different orders) becomes a DistributedError on every rank. The MPI
  // backend carries the check on a header it exchanges anyway for small collectives (mpi.cpp): it costs one
  // small-message round trip only on collectives larger than the header. The threaded backend always checks.
  bool check_desync = true;
  // Let the MPI group all-reduce the reducer's buckets through memory every rank maps when all ranks share a
  // node (MpiProcessGroup::empty_for_collectives). The same on every rank.
  bool shared_memory = true;
};

// What an observer sees: a collective leaving the queue to run, and finishing.
enum class CollectiveEvent : std::uint8_t { kStart, kFinish };
using CollectiveObserver = std::function<void(const CollectiveCall&, CollectiveEvent)>;

// A group of `size` ranks, this process being `rank`. Tensors are on the group's device (the CPU, or one GPU
// for NCCL), contiguous, of dtype f32, f64 or i64;
// all_reduce and broadcast work in place; the caller keeps every tensor alive and untouched until its Work
// has completed. Collectives run in call order, one at a time, on a communication thread (the single-process
// backend runs them inline), so they overlap with the caller's computation. Every rank must issue the same
// collectives in the same order. Methods are called from one thread.
class ProcessGroup {
 public:
  virtual ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  virtual const char* backend() const = 0;
  // Where the collectives' tensors live: the CPU, or this rank's GPU for NCCL.
  virtual Device tensor_device() const { return kCPU; }
  const ProcessGroupOptions& options() const { return options_; }

  WorkPtr all_reduce(const Tensor& tensor, ReduceOp op = ReduceOp::kSum);
  WorkPtr broadcast(const Tensor& tensor, int root = 0);
  // output holds size() * input.numel() elements: rank r's input at [r * n, (r + 1) * n).
  WorkPtr all_gather(const Tensor& input, const Tensor& output);
  // input holds size() * output.numel() elements; rank r gets the reduction of every rank's block r.
  WorkPtr reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp op = ReduceOp::kSum);
  WorkPtr barrier();

  // A flat, uninitialised tensor for a buffer this group will reduce many times (the reducer's buckets), in
  // the memory its collectives move fastest: by default ordinary memory on the group's device; the MPI group
  // with every rank on one node gives memory the ranks map from each other (distributed/shared_memory.h).
  // Collective: every rank calls it in the same order, with the same sizes.
  virtual Tensor empty_for_collectives(std::int64_t numel, DType dtype);

  // Whether collectives in flight need this rank's CPU time while it computes: true for the MPI group over
  // several nodes, whose network transports move data only when the communication thread runs (it polls).
  // The reducer then has backward yield the core between nodes (src/autograd/engine.h). Not for one node,
  // where shared memory moves the data in the collective itself: yielding there cost 45 us of ResNet-20's
  // 150 us all-reduce (tests/perf/bench_distributed.sh).
  virtual bool progresses_while_computing() const { return false; }

  // Collectives issued so far.
  std::uint64_t sequence() const { return sequence_; }
  // Called on the communication thread around every collective (tests, benchmarks); set before issuing.
  void set_observer(CollectiveObserver observer) { observer_ = std::move(observer); }

 protected:
  enum class Execution : std::uint8_t { kInline, kThread };
  ProcessGroup(int rank, int size, ProcessGroupOptions options, Execution execution);
  // Runs one collective to completion: checks it against the other ranks' call when check_desync is on,
  // then moves the data (kAvg: the backend sums, the base divides). `input` and `output` are the same pointer
  // for in-place collectives; barrier passes null. Throws DistributedError on failure or timeout. Called on
  // the communication thread, in order.
  virtual void run(const CollectiveCall& call, const void* input, void* output) = 0;
  // Whether run() averages kAvg itself (NCCL's ncclAvg, on the device) instead of the base dividing.
  virtual bool averages_in_backend() const { return false; }
  // What Work::wait() must do for the collective run() has just issued (none by default: it is complete).
  virtual std::function<void()> on_wait() { return {}; }
  // Stops the communication thread: collectives still queued fail; the one running is given the group's
  // timeout to finish, after which the thread is left behind (abandoned() turns true: a backend then skips
  // its own clean-up, the job being about to abort). Backends call it first in their destructor.
  void stop();
  bool abandoned() const { return abandoned_; }
  // "[rank r/W] " for messages.
  std::string prefix() const;

 private:
  struct Pending {
    WorkPtr work;
    const void* input = nullptr;
    void* output = nullptr;
  };
  // The queue shared with the communication thread, which may outlive an abandoned group.
  struct Queue {
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<Pending> pending;
    bool stopping = false;
    bool finishing = false;  // the running collective has moved its data
    bool exited = false;
    bool abandoned = false;
  };
  WorkPtr submit(CollectiveCall call, const void* input, void* output);
  void execute(Pending& pending, Queue* queue);
  static void loop(ProcessGroup* group, std::shared_ptr<Queue> queue);

  int rank_;
  int size_;
  ProcessGroupOptions options_;
  std::uint64_t sequence_ = 0;
  CollectiveObserver observer_;
  std::shared_ptr<Queue> queue_;  // null for Execution::kInline
  std::thread thread_;
  bool abandoned_ = false;
};

// Element-wise dst[i] = op(dst[i], src[i]) for `count` elements of `dtype` (kAvg sums; the caller divides).
void reduce_into(void* dst, const void* src, std::int64_t count, DType dtype, ReduceOp op);
// A timeout for messages: "800 ms", "1.5 s", "300 s".
std::string format_duration(std::chrono::milliseconds duration);
// dst[i] /= divisor for floating dtypes (kAvg); integer dtypes are divided with truncation.
void divide_by(void* data, std::int64_t count, DType dtype, std::int64_t divisor);
// What each rank called when ranks' calls differ, for desync errors: "collective #5: rank 0 called
// all_reduce (sum, f32 x 10), rank 1 called broadcast (root 0, f32 x 10)" (calls[r] from rank r; ranks
// with the same call are listed together).
std::string describe_desync(const std::vector<CollectiveCall>& calls);

}  // namespace lockstep::distributed
