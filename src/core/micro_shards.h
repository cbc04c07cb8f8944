// Deterministic mode's batch layout: the global batch is cut into micro-shards of a fixed number of rows,
// the same at every world size; each rank holds whole, contiguous micro-shards. While a MicroShardScope is
// alive (the training loop opens one around each deterministic step), the ops that reduce over the batch
// (parameter gradients, batch-norm statistics) compute each micro-shard on its own, with kernels whose
// results do not depend on the thread count, and sum them in one fixed binary tree over the micro-shard index
// (tree_sum in src/ops/micro_shards.h); random draws of batch-shaped tensors take the rows of one draw over
// the global batch. Then a step's gradient is bitwise the same on 1, 2 or 4 ranks and at any thread count.
//
// Which tensors are "batch-shaped": those whose leading dimension equals this rank's rows (local_rows). Ops
// see only shapes; a model that reduces over a non-batch leading dimension of exactly that size would be
// split too, which is deterministic but not world-size independent (none of the supported models does).
#pragma once

#include <cstdint>

namespace lockstep {

struct MicroShards {
  std::int64_t rows = 0;         // rows per micro-shard
  std::int64_t local_rows = 0;   // this rank's rows: a whole number of micro-shards
  std::int64_t first_row = 0;    // this rank's first row in the global batch
  std::int64_t global_rows = 0;  // the global batch
  // The micro-shards of a leading dimension of `n` rows: n / rows when n is this rank's batch, else 0.
  std::int64_t count(std::int64_t n) const { return rows > 0 && n == local_rows ? n / rows : 0; }
};

// The layout in force on this thread, or null outside deterministic steps (the default, fast mode).
const MicroShards* current_micro_shards();

// Puts `layout` in force on this thread until destroyed (restoring what was there). ValueError unless rows
// divides local_rows and the rank's rows lie inside the global batch.
class MicroShardScope {
 public:
  explicit MicroShardScope(const MicroShards& layout);
  ~MicroShardScope();
  MicroShardScope(const MicroShardScope&) = delete;
  MicroShardScope& operator=(const MicroShardScope&) = delete;

 private:
  const MicroShards* previous_;
  MicroShards layout_;
};

// A random draw of `numel` elements whose leading dimension has `leading` rows, as counter-based generators
// take it: under a scope with a batch-shaped draw, the elements of the whole global batch are reserved and
// this rank's start at `first`; otherwise {numel, 0}.
struct RandomSpan {
  std::uint64_t reserve = 0;  // elements to reserve counters for
  std::uint64_t first = 0;    // index of this tensor's first element in the reserved draw
};
RandomSpan random_span(std::int64_t leading, std::int64_t numel);

}  // namespace lockstep
