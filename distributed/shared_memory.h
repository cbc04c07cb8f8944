// Buffers that every rank of one node maps, and the all-reduce that runs through them: each rank reads the
// others' buffers directly, with no copy through a transport's staging memory. The MPI group hands such
// buffers out for the collectives it runs many times (ProcessGroup::empty_for_collectives: the reducer's
// buckets) when all its ranks share a node, and all-reduces them here (mpi.cpp).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "distributed/process_group.h"

namespace lockstep::distributed {

// One allocation: this rank's buffer (a POSIX shared-memory object it created, named `name`) and its mappings
// of every other local rank's buffer of the same size. Each buffer follows a control page: the rank's
// barrier count, whether it gave up on these buffers, who it is (the job's nonce and its rank, checked by
// the peers that map it) and the part of the buffer its current all-reduce covers. Created in three steps
// that the ranks agree on between them (mpi.cpp): create() on every rank, map_peers() once every rank has
// created its object, unlink() once every rank has mapped every object (the objects then vanish with the last
// mapping, even if the job dies). Not thread-safe; one collective at a time.
class SharedBuffers {
 public:
  // This rank's object of `bytes` bytes (zero-filled) as rank `rank` of `world` in the group that `nonce`
  // names; null, with the reason in `error`, when the system refuses (no /dev/shm, no space).
  static std::shared_ptr<SharedBuffers> create(const std::string& name, std::size_t bytes, int rank,
                                               int world, std::uint64_t nonce, std::string& error);
  ~SharedBuffers();
  SharedBuffers(const SharedBuffers&) = delete;
  SharedBuffers& operator=(const SharedBuffers&) = delete;

  // Maps every other rank's object (names[r] is rank r's), checking its size and that it was made by rank r
  // of this job; false, with the reason in `error`, on failure.
  bool map_peers(const std::vector<std::string>& names, std::string& error);
  // Removes this rank's name (its memory stays mapped).
  void unlink();

  std::byte* data() const { return data_[static_cast<std::size_t>(rank_)]; }
  std::size_t bytes() const { return bytes_; }
  bool contains(const void* p, std::size_t n) const;

  // In-place all-reduce of `count` elements of `dtype` at byte `offset` of every rank's buffer, called by
  // every rank: each rank reduces one slice of the elements over every rank's buffer in rank order
  // (((b0 op b1) op b2) ...: the same bits on every rank and every run), then copies the other slices from
  // the ranks that reduced them; a barrier on the control pages before, between and after. kAvg sums (the
  // caller divides). Throws DistributedError, beginning with `what`: on every rank when ranks cover
  // different parts of the buffers; when the collective has not finished within `timeout` (naming the ranks
  // that never arrived) or another rank gave up on these buffers. After a timeout the buffers are broken on
  // this rank and its peers: later all-reduces on them throw at once.
  void all_reduce(std::size_t offset, std::int64_t count, DType dtype, ReduceOp op,
                  std::chrono::milliseconds timeout, const std::function<std::string()>& what);

 private:
  struct Control;
  SharedBuffers(int rank, int world, std::size_t bytes);
  void barrier(std::chrono::steady_clock::time_point deadline, std::chrono::milliseconds timeout,
               const std::function<std::string()>& what);
  Control& control(int r) const;
  [[noreturn]] void give_up(const std::string& message);

  int rank_;
  int world_;
  std::size_t bytes_;
  std::size_t mapped_bytes_;       // control page + bytes, page-rounded
  std::vector<std::byte*> pages_;  // each rank's mapping (its control page), null until mapped
  std::vector<std::byte*> data_;   // each rank's buffer (after the control page)
  std::string name_;               // this rank's object, until unlinked
  std::uint64_t nonce_ = 0;
  std::uint64_t barriers_ = 0;  // barriers this rank has entered
  std::string broken_;          // why these buffers can no longer be used, once they cannot
};

}  // namespace lockstep::distributed
