// The in-process threaded world: ranks' communication threads meet at one rendezvous per sequence number,
// check that they called the same collective, each computes its result from the others' buffers, and all
// wait until every rank has read before anyone writes or leaves.
#include "distributed/threaded.h"

#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "src/core/error.h"

namespace lockstep::distributed {
namespace {

// The error of a collective that failed because of another rank: the world was aborted, or a rank finished
// without issuing it. run_threaded reports a first-hand error in preference.
class KnockOnError : public DistributedError {
  using DistributedError::DistributedError;
};

}  // namespace

// The rendezvous of a threaded world, shared by its groups. Thread-safe: every field under `mutex`.
struct ThreadedState {
  struct Slot {
    CollectiveCall call;
    const void* input = nullptr;
    void* output = nullptr;
  };
  struct Round {
    std::vector<std::optional<Slot>> slots;
    int arrived = 0;
    int done_reading = 0;
    int left = 0;
    std::string broken;  // why the round can no longer complete
  };

  int size = 0;
  ProcessGroupOptions options;
  std::mutex mutex;
  std::condition_variable cv;
  bool aborted = false;
  std::string why;
  std::map<std::uint64_t, Round> rounds;
  // Per rank: the number of collectives it issued, once its body has returned (run_threaded).
  std::vector<std::optional<std::uint64_t>> final_sequence;
};

namespace {

// A rank of a ThreadedWorld. Owns a reference to the shared state; used from its rank's thread.
class ThreadedProcessGroup : public ProcessGroup {
 public:
  ThreadedProcessGroup(int rank, std::shared_ptr<ThreadedState> state)
      : ProcessGroup(rank, state->size, state->options, Execution::kThread), state_(std::move(state)) {}
  ~ThreadedProcessGroup() override { stop(); }
  const char* backend() const override { return "threaded"; }

 protected:
  void run(const CollectiveCall& call, const void* input, void* output) override;

 private:
  [[noreturn]] void fail(const CollectiveCall& call, const std::string& message) const {
    throw DistributedError(prefix() + call.describe() + " failed: " + message, rank(), size(),
                           collective_name(call.kind));
  }
  // The reason this round cannot complete, or "" while it still may.
  std::string blocked(const ThreadedState::Round& round, const CollectiveCall& call) const;
  void compute(const ThreadedState::Round& round, const CollectiveCall& call,
               std::vector<std::byte>& result) const;

  std::shared_ptr<ThreadedState> state_;
};

std::string ThreadedProcessGroup::blocked(const ThreadedState::Round& round,
                                          const CollectiveCall& call) const {
  if (!round.broken.empty()) return round.broken;
  for (int r = 0; r < size(); ++r) {
    const auto& last = state_->final_sequence[static_cast<std::size_t>(r)];
    if (!round.slots[static_cast<std::size_t>(r)] && last && *last < call.sequence)
      return str_cat("rank ", r, " finished after ", *last, " collectives without calling it");
  }
  return {};
}

void ThreadedProcessGroup::run(const CollectiveCall& call, const void* input, void* output) {
  const auto deadline = std::chrono::steady_clock::now() + options().timeout;
  const auto n = static_cast<std::size_t>(size());
  const auto me = static_cast<std::size_t>(rank());
  std::unique_lock lock(state_->mutex);
  if (state_->aborted)
    throw KnockOnError(prefix() + call.describe() + " aborted: " + state_->why, rank(), size(),
                       collective_name(call.kind));
  ThreadedState::Round& round = state_->rounds[call.sequence];
  if (round.slots.empty()) round.slots.resize(n);
  if (!round.broken.empty())
    throw KnockOnError(prefix() + call.describe() + " failed: " + round.broken, rank(), size(),
                       collective_name(call.kind));
  round.slots[me] = ThreadedState::Slot{call, input, output};
  ++round.arrived;
  state_->cv.notify_all();

  // Phase 1: every rank arrives. Once all have, the round completes even if the world is aborted meanwhile
  // (others may already be reading this rank's buffers).
  const auto arrived = [&] { return round.arrived == size(); };
  const bool all_arrived = state_->cv.wait_until(
      lock, deadline, [&] { return arrived() || state_->aborted || !blocked(round, call).empty(); });
  if (!all_arrived || !arrived()) {
    round.slots[me].reset();
    --round.arrived;
    std::string why;
    bool timed_out = false;
    if (state_->aborted) {
      why = state_->why;
    } else if (!blocked(round, call).empty()) {
      why = blocked(round, call);
    } else {
      timed_out = true;
      std::vector<int> missing;
      for (std::size_t r = 0; r < n; ++r)
        if (!round.slots[r] && r != me) missing.push_back(static_cast<int>(r));
      std::string ranks;
      for (int r : missing) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
      why = str_cat("timed out after ", options().timeout.count(), " ms waiting for rank",
                    missing.size() > 1 ? "s " : " ", ranks,
                    " to call it: another rank may have failed, stopped, or called a different collective");
    }
    if (round.broken.empty()) round.broken = str_cat("rank ", rank(), " gave up on it: ", why);
    state_->cv.notify_all();
    if (state_->aborted)
      throw KnockOnError(prefix() + call.describe() + " aborted: " + why, rank(), size(),
                         collective_name(call.kind));
    if (timed_out) fail(call, why);
    throw KnockOnError(prefix() + call.describe() + " failed: " + why, rank(), size(),
                       collective_name(call.kind));
  }

  // Every rank checks the calls the same way, so a mismatch fails on every rank.
  std::string mismatch;
  std::vector<CollectiveCall> calls;
  for (const auto& slot : round.slots) calls.push_back(slot->call);
  for (const auto& other : calls)
    if (!other.matches(calls.front())) mismatch = describe_desync(calls);

  // Phase 2: compute this rank's result from everyone's inputs, outside the lock.
  std::vector<std::byte> result;
  std::exception_ptr error;
  if (mismatch.empty()) {
    lock.unlock();
    try {
      compute(round, call, result);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
  }
  ++round.done_reading;
  state_->cv.notify_all();
  // Nobody writes its output or leaves (letting its caller reuse the buffers) before everyone has read.
  state_->cv.wait(lock, [&] { return round.done_reading == size(); });
  if (++round.left == size()) state_->rounds.erase(call.sequence);
  lock.unlock();

  if (!mismatch.empty())
    throw DistributedError(str_cat(prefix(), "collectives out of step at ", mismatch,
                                   ". Every rank must issue the same collectives in the same order"),
                           rank(), size(), collective_name(call.kind));
  if (error) std::rethrow_exception(error);
  const bool writes =
      call.kind != Collective::kBarrier && !(call.kind == Collective::kBroadcast && call.root == rank());
  if (writes && !result.empty()) std::memcpy(output, result.data(), result.size());
}

void ThreadedProcessGroup::compute(const ThreadedState::Round& round, const CollectiveCall& call,
                                   std::vector<std::byte>& result) const {
  const auto bytes = static_cast<std::size_t>(call.bytes());
  const auto input_of = [&](int r) {
    return static_cast<const std::byte*>(round.slots[static_cast<std::size_t>(r)]->input);
  };
  switch (call.kind) {
    case Collective::kAllReduce:
      result.resize(bytes);
      if (bytes == 0) return;
      std::memcpy(result.data(), input_of(0), bytes);
      for (int r = 1; r < size(); ++r)
        reduce_into(result.data(), input_of(r), call.count, call.dtype, call.op);
      return;
    case Collective::kBroadcast:
      result.resize(bytes);
      if (bytes != 0) std::memcpy(result.data(), input_of(call.root), bytes);
      return;
    case Collective::kAllGather:
      result.resize(bytes * static_cast<std::size_t>(size()));
      if (bytes == 0) return;
      for (int r = 0; r < size(); ++r)
        std::memcpy(result.data() + bytes * static_cast<std::size_t>(r), input_of(r), bytes);
      return;
    case Collective::kReduceScatter: {
      result.resize(bytes);
      if (bytes == 0) return;
      const std::size_t block = bytes * static_cast<std::size_t>(rank());
      std::memcpy(result.data(), input_of(0) + block, bytes);
      for (int r = 1; r < size(); ++r)
        reduce_into(result.data(), input_of(r) + block, call.count, call.dtype, call.op);
      return;
    }
    case Collective::kBarrier:
      return;
  }
}

// `message` prefixed with "[rank r/W] " unless it already starts with a rank prefix.
std::string with_prefix(const std::string& prefix, const char* message) {
  const std::string text = message;
  return text.rfind("[rank ", 0) == 0 ? text : prefix + text;
}

// Rethrows `error` as the same lockstep error type with its message prefixed.
[[noreturn]] void rethrow_prefixed(const std::exception_ptr& error, const std::string& prefix) {
  try {
    std::rethrow_exception(error);
  } catch (const DistributedError& e) {
    throw DistributedError(with_prefix(prefix, e.what()), e.rank(), e.world_size(), e.collective());
  } catch (const IoError& e) {
    throw IoError(with_prefix(prefix, e.what()), e.file(), e.object());
  } catch (const ConfigError& e) {
    throw ConfigError(with_prefix(prefix, e.what()), e.file(), e.line(), e.key());
  } catch (const ValueError& e) {
    throw ValueError(with_prefix(prefix, e.what()));
  } catch (const TypeError& e) {
    throw TypeError(with_prefix(prefix, e.what()));
  } catch (const IndexError& e) {
    throw IndexError(with_prefix(prefix, e.what()));
  } catch (const NotImplementedError& e) {
    throw NotImplementedError(with_prefix(prefix, e.what()));
  } catch (const DeviceError& e) {
    throw DeviceError(with_prefix(prefix, e.what()));
  } catch (const AutogradError& e) {
    throw AutogradError(with_prefix(prefix, e.what()));
  } catch (const InternalError& e) {
    throw InternalError(with_prefix(prefix, e.what()));
  } catch (const std::exception& e) {
    // Error itself, and anything foreign a rank's body threw: the message is kept, the type becomes Error.
    throw Error(with_prefix(prefix, e.what()));
  }
}

bool is_knock_on(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const KnockOnError&) {
    return true;
  } catch (...) {
    return false;
  }
}

std::string message_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

}  // namespace

ThreadedWorld::ThreadedWorld(int size, ProcessGroupOptions options)
    : size_(size), options_(options), state_(std::make_shared<ThreadedState>()) {
  LOCKSTEP_CHECK(size >= 1, ValueError, "ThreadedWorld: expected a size of at least 1, but got ", size);
  state_->size = size;
  state_->options = options;
  state_->final_sequence.resize(static_cast<std::size_t>(size));
  groups_.resize(static_cast<std::size_t>(size));
}

ThreadedWorld::~ThreadedWorld() { abort("the threaded world was destroyed"); }

std::shared_ptr<ProcessGroup> ThreadedWorld::group(int rank) {
  LOCKSTEP_CHECK(rank >= 0 && rank < size_, IndexError, "ThreadedWorld::group: expected a rank in [0, ",
                 size_, "), but got ", rank);
  std::lock_guard lock(groups_mutex_);
  auto& group = groups_[static_cast<std::size_t>(rank)];
  if (!group) group = std::make_shared<ThreadedProcessGroup>(rank, state_);
  return group;
}

void ThreadedWorld::abort(const std::string& why) {
  std::lock_guard lock(state_->mutex);
  if (!state_->aborted) {
    state_->aborted = true;
    state_->why = why;
  }
  state_->cv.notify_all();
}

void ThreadedWorld::finish_rank(int rank) {
  const std::uint64_t issued = group(rank)->sequence();  // the rank's thread has stopped issuing
  std::lock_guard lock(state_->mutex);
  state_->final_sequence[static_cast<std::size_t>(rank)] = issued;
  state_->cv.notify_all();
}

void run_threaded(int size, const RankBody& body, ProcessGroupOptions options) {
  ThreadedWorld world(size, options);
  std::vector<std::shared_ptr<ProcessGroup>> groups;
  for (int r = 0; r < size; ++r) groups.push_back(world.group(r));
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(size));
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(size));
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      const auto i = static_cast<std::size_t>(r);
      try {
        body(groups[i]);
        world.finish_rank(r);
      } catch (...) {
        errors[i] = std::current_exception();
        world.abort(str_cat("rank ", r, " failed: ", message_of(errors[i])));
      }
    });
  }
  for (auto& t : threads) t.join();
  // The lowest rank that failed first-hand, else the lowest that failed at all.
  int chosen = -1;
  for (int r = 0; r < size && chosen < 0; ++r) {
    const auto& e = errors[static_cast<std::size_t>(r)];
    if (e && !is_knock_on(e)) chosen = r;
  }
  for (int r = 0; r < size && chosen < 0; ++r)
    if (errors[static_cast<std::size_t>(r)]) chosen = r;
  if (chosen < 0) return;
  groups.clear();
  rethrow_prefixed(errors[static_cast<std::size_t>(chosen)], str_cat("[rank ", chosen, "/", size, "] "));
}

}  // namespace lockstep::distributed
