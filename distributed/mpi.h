// The MPI process group: collectives over a duplicate of MPI_COMM_WORLD, run on the group's communication
// thread. The desync check rides on a fixed-size header every rank exchanges first, which also carries the
// data of small collectives (mpi.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "distributed/process_group.h"

namespace lockstep::distributed {

// True when this process was started by an MPI launcher (mpirun, srun): OMPI_COMM_WORLD_SIZE, PMIX_RANK or
// PMI_RANK is set.
bool mpi_launched();

// MPI_COMM_WORLD's rank and size once this process has initialised MPI (cached: no MPI call), else nullopt.
struct RankInWorld {
  int rank = 0;
  int size = 1;
};
std::optional<RankInWorld> mpi_world_rank();

class MpiRuntime;
class SharedBuffers;

// A group over every rank of the job. Owns its communicator (a dup of MPI_COMM_WORLD) and a reference to the
// MPI runtime: MPI is initialised by the first world() (MPI_THREAD_MULTIPLE requested, SERIALIZED accepted)
// and finalised when the last group is destroyed, after which MPI cannot be initialised again. world() is
// collective (every rank calls it, in the same order as other group creations). Methods are called from one
// thread, as for every ProcessGroup; between creation and destruction only the communication thread calls
// MPI.
class MpiProcessGroup : public ProcessGroup {
 public:
  static std::shared_ptr<MpiProcessGroup> world(ProcessGroupOptions options = {});
  ~MpiProcessGroup() override;

  const char* backend() const override { return "mpi"; }
  // This rank among the ranks sharing its node, and their number (MPI_COMM_TYPE_SHARED).
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  // The processor name of this rank (MPI_Get_processor_name).
  const std::string& host() const { return host_; }
  // The thread level MPI provided (MPI_THREAD_SERIALIZED or MPI_THREAD_MULTIPLE).
  int thread_level() const;
  // Its name, e.g. "MPI_THREAD_MULTIPLE".
  static const char* thread_level_name(int level);

  // Largest element count handed to one MPI call (default INT_MAX); larger collectives are split into
  // pieces. Tests lower it to exercise the splitting. Set before issuing collectives.
  void set_max_chunk(std::int64_t elements);

  // With every rank on this node (and options().shared_memory, which must then be the same on every rank),
  // buffers every rank maps: all-reduces of them (or of the same part of them on every rank) move through
  // shared memory (distributed/shared_memory.h) instead of MPI's transports. Otherwise, or once the system
  // refuses shared memory (said once on stderr), ordinary memory.
  Tensor empty_for_collectives(std::int64_t numel, DType dtype) override;
  bool progresses_while_computing() const override { return local_size_ != size(); }

 protected:
  void run(const CollectiveCall& call, const void* input, void* output) override;

 private:
  struct Comm;  // the MPI_Comm, kept out of this header (mpi.h is a private dependency)
  MpiProcessGroup(std::shared_ptr<MpiRuntime> runtime, ProcessGroupOptions options);
  // What a collective's header exchange carries besides the call: its data (the exchange completes the
  // collective) or nothing (the data follows). See mpi.cpp.
  enum class Carried : std::uint8_t { kData, kFingerprint };
  // The first MPI call of a collective, the same fixed-size MPI_Allgather on every rank whatever it called:
  // throws the desync DistributedError on every rank when ranks' calls differ, before any data call.
  // `route` is 0 for data moved by MPI, else the shared buffers that move it and the byte offset there
  // (ranks whose routes differ fail the check too).
  void exchange_header(const CollectiveCall& call, const void* input, void* output, Carried carried,
                       std::uint64_t route = 0);
  // Whether every local rank agrees (each passing its own `ok`): a small all-reduce on this group.
  bool all_agree(bool ok);
  struct Shared {
    std::weak_ptr<SharedBuffers> buffers;
    std::uint64_t serial = 0;
  };
  // The live shared buffers holding [p, p + bytes), if any (called on the communication thread).
  std::optional<std::pair<std::shared_ptr<SharedBuffers>, std::uint64_t>> shared_holding(const void* p,
                                                                                         std::int64_t bytes);
  void check(int code, const CollectiveCall& call, const char* function) const;

  std::shared_ptr<MpiRuntime> runtime_;
  std::unique_ptr<Comm> comm_;
  int local_rank_ = 0;
  int local_size_ = 1;
  std::string host_;
  std::int64_t max_chunk_;
  std::uint64_t shared_nonce_ = 0;  // rank 0's, in every name of this group's shared buffers (0: none yet)
  std::uint64_t shared_made_ = 0;
  bool shared_refused_ = false;
  std::mutex shared_mutex_;  // guards shared_
  std::vector<Shared> shared_;
};

}  // namespace lockstep::distributed
