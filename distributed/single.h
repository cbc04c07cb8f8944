// The single-process group: rank 0 of 1, every collective a local copy at most, run inline.
#pragma once

#include "distributed/process_group.h"

namespace lockstep::distributed {

// The world of a job started without MPI. Owns nothing but its options; used from one thread.
class SingleProcessGroup : public ProcessGroup {
 public:
  explicit SingleProcessGroup(ProcessGroupOptions options = {});
  ~SingleProcessGroup() override;
  const char* backend() const override { return "single"; }

 protected:
  void run(const CollectiveCall& call, const void* input, void* output) override;
};

}  // namespace lockstep::distributed
