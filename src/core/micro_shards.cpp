// The thread's micro-shard layout (deterministic mode).
#include "src/core/micro_shards.h"

#include "src/core/error.h"

namespace lockstep {
namespace {
thread_local const MicroShards* g_current = nullptr;
}  // namespace

const MicroShards* current_micro_shards() { return g_current; }

MicroShardScope::MicroShardScope(const MicroShards& layout) : previous_(g_current), layout_(layout) {
  LOCKSTEP_CHECK(layout.rows > 0 && layout.local_rows > 0 && layout.local_rows % layout.rows == 0 &&
                     layout.first_row >= 0 && layout.first_row + layout.local_rows <= layout.global_rows,
                 ValueError, "MicroShardScope: expected micro-shards of rows dividing the rank's ",
                 layout.local_rows, " rows at ", layout.first_row, " of a global batch of ",
                 layout.global_rows, ", but got ", layout.rows, " rows per micro-shard");
  g_current = &layout_;
}

MicroShardScope::~MicroShardScope() { g_current = previous_; }

RandomSpan random_span(std::int64_t leading, std::int64_t numel) {
  const MicroShards* m = g_current;
  if (m == nullptr || m->count(leading) == 0) return {static_cast<std::uint64_t>(numel), 0};
  const std::int64_t per_row = numel / leading;
  return {static_cast<std::uint64_t>(per_row * m->global_rows),
          static_cast<std::uint64_t>(per_row * m->first_row)};
}

}  // namespace lockstep
