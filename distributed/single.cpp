// The single-process group: with one rank, every collective leaves its data as it is or copies it to the
// output.
#include "distributed/single.h"

#include <cstring>

namespace lockstep::distributed {

SingleProcessGroup::SingleProcessGroup(ProcessGroupOptions options)
    : ProcessGroup(0, 1, options, Execution::kInline) {}

SingleProcessGroup::~SingleProcessGroup() { stop(); }

void SingleProcessGroup::run(const CollectiveCall& call, const void* input, void* output) {
  // all_reduce and broadcast are in place; all_gather and reduce_scatter copy this rank's only block.
  const bool copies = call.kind == Collective::kAllGather || call.kind == Collective::kReduceScatter;
  if (copies && input != output && call.count > 0)
    std::memmove(output, input, static_cast<std::size_t>(call.bytes()));
}

}  // namespace lockstep::distributed
