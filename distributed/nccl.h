// The NCCL process group: collectives over the GPUs of a job, one communicator per group, bootstrapped over
// another group (MPI: rank 0's unique id is broadcast to every rank). Compiled with the CUDA backend; NCCL
// itself (libnccl.so.2) is loaded when the first group is made, so the binary runs where NCCL is absent.
//
// Ordering is the stream's, as in llm.c and PyTorch: each collective waits on its own stream for the work
// queued so far on the default stream (a CUDA event) and runs there; Work::wait() makes the default stream
// wait for it in turn (another event), so kernels queued after the wait read its result, kernels queued
// before it overlap with it, and the host is never blocked (a barrier alone waits for the device). Reading a
// result on the host goes through a copy on the default stream, which waits too. After a failure the
// communicator is aborted, not waited for. No watchdog yet: a peer lost outside a barrier shows at the next
// collective (NCCL's asynchronous error) or hangs a host read.
#pragma once

#include <functional>
#include <memory>

#include "distributed/process_group.h"

namespace lockstep::distributed {

// The opaque 128-byte token from which the ranks of one communicator find each other.
struct NcclUniqueId {
  unsigned char bytes[128] = {};
};

// Whether NCCL can be loaded here (libnccl.so.2 on the loader's path), and if not, why.
bool nccl_available();
std::string nccl_unavailable_reason();

// A fresh unique id (rank 0 makes it; the others receive it). DistributedError when NCCL cannot be loaded.
NcclUniqueId nccl_unique_id();

// Rank `rank` of `size` on GPU `device`, joining the communicator of `id`. kAvg runs as ncclAvg for
// floating dtypes (i64 averages are refused). Errors raise DistributedError naming the rank and the
// collective; the desync check is not carried (NCCL offers no side channel): options.check_desync is ignored.
// Used from one thread.
class NcclProcessGroup : public ProcessGroup {
 public:
  NcclProcessGroup(int rank, int size, Device device, const NcclUniqueId& id,
                   ProcessGroupOptions options = {});
  ~NcclProcessGroup() override;
  const char* backend() const override { return "nccl"; }
  Device tensor_device() const override { return device_; }

 protected:
  void run(const CollectiveCall& call, const void* input, void* output) override;
  bool averages_in_backend() const override { return true; }
  std::function<void()> on_wait() override;

 private:
  struct State;
  Device device_;
  std::unique_ptr<State> state_;
};

// The NCCL group of `bootstrap`'s ranks on this rank's GPU `device`: rank 0 makes the unique id and
// broadcasts it over `bootstrap` (a CPU group, e.g. MPI). Collective over `bootstrap`.
std::shared_ptr<NcclProcessGroup> make_nccl_group(ProcessGroup& bootstrap, Device device,
                                                  ProcessGroupOptions options = {});

}  // namespace lockstep::distributed
