// The backend-independent part of process groups: argument checks, sequence numbers, Work handles with the
// watchdog timeout, the communication thread and its FIFO, and the element-wise reductions backends share.
#include "distributed/process_group.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <utility>

#include "src/core/error.h"
#include "src/core/strings.h"

namespace lockstep::distributed {
namespace {

std::string describe_tensor(const Tensor& t) {
  return str_cat(dtype_name(t.dtype()), " tensor of shape ", shape_str(t.shape()));
}

// Checks that `t` can be handed to a backend: defined, on the group's device, contiguous, f32/f64/i64.
void check_tensor(const char* where, const char* role, const Tensor& t, Device device) {
  LOCKSTEP_CHECK(t.defined(), ValueError, where, ": expected a defined ", role,
                 " tensor, but got an undefined one");
  LOCKSTEP_CHECK(t.device() == device, DeviceError, where, ": expected a ", role, role[0] ? " " : "",
                 "tensor on ", device.str(), " (this group's device), but got a ", describe_tensor(t), " on ",
                 t.device().str(), ". Copy it there first");
  LOCKSTEP_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64 || t.dtype() == DType::i64, TypeError,
                 where, ": expected a ", role, " tensor of dtype f32, f64 or i64, but got a ",
                 describe_tensor(t));
  LOCKSTEP_CHECK(t.is_contiguous(), ValueError, where, ": expected a contiguous ", role,
                 " tensor, but got a ", describe_tensor(t), " with strides ", shape_str(t.strides()),
                 ". Call .contiguous() first");
}

void check_same_dtype(const char* where, const Tensor& input, const Tensor& output) {
  LOCKSTEP_CHECK(input.dtype() == output.dtype(), TypeError, where,
                 ": expected input and output of the same dtype, but got input ", describe_tensor(input),
                 " and output ", describe_tensor(output));
}

bool overlaps(const Tensor& a, const Tensor& b) {
  const auto* a0 = static_cast<const std::byte*>(a.data());
  const auto* b0 = static_cast<const std::byte*>(b.data());
  const auto* a1 = a0 + a.numel() * static_cast<std::int64_t>(element_size(a.dtype()));
  const auto* b1 = b0 + b.numel() * static_cast<std::int64_t>(element_size(b.dtype()));
  return a0 < b1 && b0 < a1;
}

template <class T>
void reduce_typed(T* dst, const T* src, std::int64_t count, ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg:
      for (std::int64_t i = 0; i < count; ++i) dst[i] += src[i];
      return;
    case ReduceOp::kMax:
      for (std::int64_t i = 0; i < count; ++i) dst[i] = std::max(dst[i], src[i]);
      return;
    case ReduceOp::kMin:
      for (std::int64_t i = 0; i < count; ++i) dst[i] = std::min(dst[i], src[i]);
      return;
  }
}

// Ranks as "0", "0-2", "0, 2, 5-7".
std::string format_ranks(const std::vector<int>& ranks) {
  std::string out;
  for (std::size_t i = 0; i < ranks.size();) {
    std::size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += j > i ? str_cat(ranks[i], "-", ranks[j]) : str_cat(ranks[i]);
    i = j + 1;
  }
  return out;
}

}  // namespace

std::string format_duration(std::chrono::milliseconds duration) {
  const auto ms = duration.count();
  if (ms < 1000) return str_cat(ms, " ms");
  if (ms % 1000 == 0) return str_cat(ms / 1000, " s");
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f s", static_cast<double>(ms) / 1000.0);
  return text;
}

const char* collective_name(Collective kind) {
  switch (kind) {
    case Collective::kAllReduce:
      return "all_reduce";
    case Collective::kBroadcast:
      return "broadcast";
    case Collective::kAllGather:
      return "all_gather";
    case Collective::kReduceScatter:
      return "reduce_scatter";
    case Collective::kBarrier:
      return "barrier";
  }
  return "?";
}

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return "sum";
    case ReduceOp::kAvg:
      return "avg";
    case ReduceOp::kMax:
      return "max";
    case ReduceOp::kMin:
      return "min";
  }
  return "?";
}

bool CollectiveCall::matches(const CollectiveCall& other) const {
  return kind == other.kind && dtype == other.dtype && count == other.count && op == other.op &&
         root == other.root;
}

std::string CollectiveCall::signature() const {
  const std::string elements = str_cat(dtype_name(dtype), " x ", count);
  switch (kind) {
    case Collective::kAllReduce:
    case Collective::kReduceScatter:
      return str_cat(collective_name(kind), " (", reduce_op_name(op), ", ", elements, ")");
    case Collective::kBroadcast:
      return str_cat(collective_name(kind), " (root ", root, ", ", elements, ")");
    case Collective::kAllGather:
      return str_cat(collective_name(kind), " (", elements, ")");
    case Collective::kBarrier:
      return collective_name(kind);
  }
  return "?";
}

std::string CollectiveCall::describe() const {
  const std::string head = str_cat(collective_name(kind), " #", sequence);
  const std::string elements =
      str_cat(dtype_name(dtype), " x ", count, ", ", format_bytes(static_cast<std::uint64_t>(bytes())));
  switch (kind) {
    case Collective::kAllReduce:
    case Collective::kReduceScatter:
      return str_cat(head, " (", reduce_op_name(op), ", ", elements, ")");
    case Collective::kBroadcast:
      return str_cat(head, " (root ", root, ", ", elements, ")");
    case Collective::kAllGather:
      return str_cat(head, " (", elements, ")");
    case Collective::kBarrier:
      return head;
  }
  return head;
}

std::string describe_desync(const std::vector<CollectiveCall>& calls) {
  // Group ranks by the call they made, in order of each call's first rank.
  std::vector<std::pair<std::string, std::vector<int>>> groups;
  for (std::size_t r = 0; r < calls.size(); ++r) {
    const std::string sig = calls[r].signature();
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == sig; });
    if (it == groups.end()) {
      groups.push_back({sig, {}});
      it = groups.end() - 1;
    }
    it->second.push_back(static_cast<int>(r));
  }
  std::string out = str_cat("collective #", calls.empty() ? 0 : calls.front().sequence, ": ");
  for (std::size_t g = 0; g < groups.size(); ++g) {
    if (g > 0) out += ", ";
    const auto& ranks = groups[g].second;
    out += str_cat(ranks.size() > 1 ? "ranks " : "rank ", format_ranks(ranks), " called ", groups[g].first);
  }
  return out;
}

void reduce_into(void* dst, const void* src, std::int64_t count, DType dtype, ReduceOp op) {
  switch (dtype) {
    case DType::f32:
      return reduce_typed(static_cast<float*>(dst), static_cast<const float*>(src), count, op);
    case DType::f64:
      return reduce_typed(static_cast<double*>(dst), static_cast<const double*>(src), count, op);
    case DType::i64:
      return reduce_typed(static_cast<std::int64_t*>(dst), static_cast<const std::int64_t*>(src), count, op);
    default:
      throw_unsupported_dtype("reduce_into", dtype);
  }
}

// Floating point: a world size that is a power of two divides by multiplying with its exact reciprocal (the
// same correctly rounded quotient; a vector multiply is about 10x a vector divide's throughput, which made
// the division of a 1 MiB average cost half as much as its all-reduce); other divisors divide.
template <class T>
void divide_floats(T* p, std::int64_t count, std::int64_t divisor) {
  const T d = static_cast<T>(divisor);
  if ((divisor & (divisor - 1)) == 0) {
    const T reciprocal = T(1) / d;
    for (std::int64_t i = 0; i < count; ++i) p[i] *= reciprocal;
  } else {
    for (std::int64_t i = 0; i < count; ++i) p[i] /= d;
  }
}

void divide_by(void* data, std::int64_t count, DType dtype, std::int64_t divisor) {
  LOCKSTEP_CHECK(divisor > 0, ValueError, "divide_by: expected a positive divisor, but got ", divisor);
  switch (dtype) {
    case DType::f32:
      return divide_floats(static_cast<float*>(data), count, divisor);
    case DType::f64:
      return divide_floats(static_cast<double*>(data), count, divisor);
    case DType::i64: {
      auto* p = static_cast<std::int64_t*>(data);
      for (std::int64_t i = 0; i < count; ++i) p[i] /= divisor;
      return;
    }
    default:
      throw_unsupported_dtype("divide_by", dtype);
  }
}

Work::Work(CollectiveCall call, int rank, int world, std::chrono::milliseconds timeout)
    : call_(call), rank_(rank), world_(world), timeout_(timeout) {}

void Work::wait() {
  // Most collectives a caller waits for end within a few hundred microseconds: yielding in a short loop
  // first saves the two thread wake-ups of a condition-variable wait, and yielding (not spinning) leaves the
  // core to the communication thread when both share one.
  const auto spin_end = std::chrono::steady_clock::now() + std::chrono::microseconds(300);
  while (!done_flag_.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < spin_end) {
    std::this_thread::yield();
  }
  std::unique_lock lock(mutex_);
  if (!done_cv_.wait_for(lock, timeout_, [&] { return done_; })) {
    throw DistributedError(
        str_cat("[rank ", rank_, "/", world_, "] ", call_.describe(), " has not finished after ",
                format_duration(timeout_),
                ": another rank may have failed, stopped, or called a different collective"),
        rank_, world_, collective_name(call_.kind));
  }
  if (error_) std::rethrow_exception(error_);
  if (on_wait_) on_wait_();
}

bool Work::completed() const {
  std::lock_guard lock(mutex_);
  return done_;
}

void Work::finish(std::exception_ptr error) {
  {
    std::lock_guard lock(mutex_);
    done_ = true;
    error_ = std::move(error);
  }
  done_flag_.store(true, std::memory_order_release);
  done_cv_.notify_all();
}

ProcessGroup::ProcessGroup(int rank, int size, ProcessGroupOptions options, Execution execution)
    : rank_(rank), size_(size), options_(options) {
  LOCKSTEP_CHECK(size >= 1 && rank >= 0 && rank < size, ValueError,
                 "ProcessGroup: expected 0 <= rank < size, but got rank ", rank, " and size ", size);
  LOCKSTEP_CHECK(options.timeout.count() > 0, ValueError,
                 "ProcessGroup: expected a positive timeout, but got ", options.timeout.count(), " ms");
  if (execution == Execution::kThread) {
    queue_ = std::make_shared<Queue>();
    thread_ = std::thread(&ProcessGroup::loop, this, queue_);
  }
}

ProcessGroup::~ProcessGroup() { stop(); }

std::string ProcessGroup::prefix() const { return str_cat("[rank ", rank_, "/", size_, "] "); }

Tensor ProcessGroup::empty_for_collectives(std::int64_t numel, DType dtype) {
  return empty({numel}, dtype, tensor_device());
}

WorkPtr ProcessGroup::all_reduce(const Tensor& tensor, ReduceOp op) {
  check_tensor("all_reduce", "", tensor, tensor_device());
  CollectiveCall call{Collective::kAllReduce, tensor.dtype(), tensor.numel(), op, 0, 0};
  return submit(call, tensor.data(), tensor.data());
}

WorkPtr ProcessGroup::broadcast(const Tensor& tensor, int root) {
  check_tensor("broadcast", "", tensor, tensor_device());
  LOCKSTEP_CHECK(root >= 0 && root < size_, ValueError, "broadcast: expected a root rank in [0, ", size_,
                 "), but got ", root);
  CollectiveCall call{Collective::kBroadcast, tensor.dtype(), tensor.numel(), ReduceOp::kSum, root, 0};
  return submit(call, tensor.data(), tensor.data());
}

WorkPtr ProcessGroup::all_gather(const Tensor& input, const Tensor& output) {
  check_tensor("all_gather", "input", input, tensor_device());
  check_tensor("all_gather", "output", output, tensor_device());
  check_same_dtype("all_gather", input, output);
  LOCKSTEP_CHECK(output.numel() == size_ * input.numel(), ValueError, "all_gather: expected an output of ",
                 size_, " x ", input.numel(), " = ", size_ * input.numel(),
                 " elements (world size x input elements), but got input shape ", shape_str(input.shape()),
                 " and output shape ", shape_str(output.shape()));
  // Allowed overlap: the input is this rank's block of the output (gathering in place).
  const bool in_place = static_cast<const std::byte*>(input.data()) ==
                        static_cast<const std::byte*>(output.data()) +
                            rank_ * input.numel() * static_cast<std::int64_t>(element_size(input.dtype()));
  LOCKSTEP_CHECK(in_place || input.numel() == 0 || !overlaps(input, output), ValueError,
                 "all_gather: expected an input that does not overlap the output (or is exactly this rank's "
                 "block of it), but got overlapping ",
                 describe_tensor(input), " and ", describe_tensor(output));
  CollectiveCall call{Collective::kAllGather, input.dtype(), input.numel(), ReduceOp::kSum, 0, 0};
  return submit(call, input.data(), output.data());
}

WorkPtr ProcessGroup::reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp op) {
  check_tensor("reduce_scatter", "input", input, tensor_device());
  check_tensor("reduce_scatter", "output", output, tensor_device());
  check_same_dtype("reduce_scatter", input, output);
  LOCKSTEP_CHECK(input.numel() == size_ * output.numel(), ValueError, "reduce_scatter: expected an input of ",
                 size_, " x ", output.numel(), " = ", size_ * output.numel(),
                 " elements (world size x output elements), but got input shape ", shape_str(input.shape()),
                 " and output shape ", shape_str(output.shape()));
  LOCKSTEP_CHECK(output.numel() == 0 || !overlaps(input, output), ValueError,
                 "reduce_scatter: expected an output that does not overlap the input, but got overlapping ",
                 describe_tensor(input), " and ", describe_tensor(output));
  CollectiveCall call{Collective::kReduceScatter, input.dtype(), output.numel(), op, 0, 0};
  return submit(call, input.data(), output.data());
}

WorkPtr ProcessGroup::barrier() { return submit(CollectiveCall{}, nullptr, nullptr); }

WorkPtr ProcessGroup::submit(CollectiveCall call, const void* input, void* output) {
  call.sequence = ++sequence_;
  auto work = std::make_shared<Work>(call, rank_, size_, options_.timeout);
  Pending pending{work, input, output};
  if (!queue_) {
    execute(pending, nullptr);
    return work;
  }
  {
    std::lock_guard lock(queue_->mutex);
    if (!queue_->stopping) {
      queue_->pending.push_back(std::move(pending));
      pending.work = nullptr;
    }
  }
  if (pending.work) {
    work->finish(std::make_exception_ptr(DistributedError(
        str_cat(prefix(), call.describe(), " was issued after the process group was stopped"), rank_, size_,
        collective_name(call.kind))));
  }
  queue_->cv.notify_all();
  return work;
}

void ProcessGroup::execute(Pending& pending, Queue* queue) {
  const CollectiveCall& call = pending.work->call();
  std::exception_ptr error;
  try {
    if (observer_) observer_(call, CollectiveEvent::kStart);
    run(call, pending.input, pending.output);
    pending.work->set_on_wait(on_wait());
  } catch (...) {
    error = std::current_exception();
  }
  if (queue) {
    std::lock_guard lock(queue->mutex);
    if (queue->abandoned) {  // stop() gave up on this collective: `this` may be gone
      pending.work->finish(error);
      return;
    }
    queue->finishing = true;
  }
  try {
    const bool averages = call.op == ReduceOp::kAvg && !averages_in_backend() &&
                          (call.kind == Collective::kAllReduce || call.kind == Collective::kReduceScatter);
    if (!error && averages) divide_by(pending.output, call.count, call.dtype, size_);
    if (observer_) observer_(call, CollectiveEvent::kFinish);
  } catch (...) {
    if (!error) error = std::current_exception();
  }
  pending.work->finish(error);
}

void ProcessGroup::loop(ProcessGroup* group, std::shared_ptr<Queue> queue) {
  for (;;) {
    Pending pending;
    {
      std::unique_lock lock(queue->mutex);
      queue->cv.wait(lock, [&] { return queue->stopping || !queue->pending.empty(); });
      if (queue->pending.empty()) break;
      pending = std::move(queue->pending.front());
      queue->pending.pop_front();
      queue->finishing = false;
    }
    group->execute(pending, queue.get());
  }
  std::lock_guard lock(queue->mutex);
  queue->exited = true;
  queue->cv.notify_all();
}

void ProcessGroup::stop() {
  if (!queue_ || !thread_.joinable()) return;
  std::deque<Pending> dropped;
  {
    std::lock_guard lock(queue_->mutex);
    queue_->stopping = true;
    dropped.swap(queue_->pending);
  }
  queue_->cv.notify_all();
  for (auto& p : dropped) {
    const CollectiveCall& call = p.work->call();
    p.work->finish(std::make_exception_ptr(DistributedError(
        str_cat(prefix(), call.describe(), " did not run: the process group was stopped first"), rank_, size_,
        collective_name(call.kind))));
  }
  {
    std::unique_lock lock(queue_->mutex);
    // A collective past its data movement (finishing) is let finish; one still moving data gets the timeout,
    // or only a moment while an exception unwinds (the job is about to be aborted: don't hold it up).
    const auto patience = std::uncaught_exceptions() > 0 ? std::chrono::milliseconds(100) : options_.timeout;
    if (queue_->cv.wait_for(lock, patience, [&] { return queue_->exited || queue_->finishing; }))
      queue_->cv.wait(lock, [&] { return queue_->exited; });
    else
      queue_->abandoned = true;
  }
  if (queue_->abandoned) {
    abandoned_ = true;
    thread_.detach();
  } else {
    thread_.join();
  }
}

}  // namespace lockstep::distributed
