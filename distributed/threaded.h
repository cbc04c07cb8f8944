// An in-process world of `size` ranks on threads, for fast tests of the distributed logic: each rank's group
// has its own communication thread, and ranks meet at a rendezvous per collective.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "distributed/process_group.h"

namespace lockstep::distributed {

struct ThreadedState;

// Owns the groups of its ranks (one per rank, made on first use) and the rendezvous they share. Thread-safe;
// each rank's group is used from its own thread. Destroying the world aborts collectives still waiting;
// groups kept past it fail their later collectives. Ranks' calls are always compared (moving data between
// mismatched buffers is unsafe), whatever check_desync says.
class ThreadedWorld {
 public:
  explicit ThreadedWorld(int size, ProcessGroupOptions options = {});
  ~ThreadedWorld();
  ThreadedWorld(const ThreadedWorld&) = delete;
  ThreadedWorld& operator=(const ThreadedWorld&) = delete;

  int size() const { return size_; }
  std::shared_ptr<ProcessGroup> group(int rank);
  // Every pending and future collective of every rank fails with DistributedError(why).
  void abort(const std::string& why);
  // Declares that `rank` will issue no more collectives (its body returned): collectives of other ranks
  // that it never issued fail at once rather than at the timeout.
  void finish_rank(int rank);

 private:
  int size_;
  ProcessGroupOptions options_;
  std::shared_ptr<ThreadedState> state_;
  std::mutex groups_mutex_;
  std::vector<std::shared_ptr<ProcessGroup>> groups_;
};

using RankBody = std::function<void(const std::shared_ptr<ProcessGroup>& group)>;

// Runs `body` on `size` threads, one per rank of a fresh ThreadedWorld; when a rank throws, aborts the world
// so that no other rank waits forever. Joins every thread, then rethrows the error of the lowest rank that
// failed first-hand (not merely because of the abort), its message prefixed with "[rank r/W] ".
void run_threaded(int size, const RankBody& body, ProcessGroupOptions options = {});

}  // namespace lockstep::distributed
