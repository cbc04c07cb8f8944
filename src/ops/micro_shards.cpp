// Micro-shard views, the fixed tree sum and the thread-count independent per-shard loop.
#include "src/ops/micro_shards.h"

#include <omp.h>

#include <exception>
#include <utility>

#include "src/autograd/grad_mode.h"
#include "src/core/error.h"
#include "src/ops/elementwise.h"
#include "src/ops/reduce.h"

namespace lockstep {

std::int64_t micro_shard_count(const Tensor& t) {
  const MicroShards* m = current_micro_shards();
  return m == nullptr || t.dim() < 2 ? 0 : m->count(t.size(0));
}

Tensor micro_shard(const Tensor& t, std::int64_t k, std::int64_t count) {
  const std::int64_t rows = t.size(0) / count;
  return t.slice(0, k * rows, (k + 1) * rows);
}

Tensor tree_sum(std::vector<Tensor> parts) {
  LOCKSTEP_CHECK(!parts.empty(), ValueError, "tree_sum: expected at least one part, but got none");
  NoGradGuard no_grad;
  return tree_reduce(std::move(parts), [](const Tensor& a, const Tensor& b) { return add(a, b); });
}

Tensor batch_sum(const Tensor& t, const std::vector<std::int64_t>& dims) {
  const std::int64_t shards = micro_shard_count(t);
  if (shards == 0 || GradMode::is_enabled()) return sum(t, dims);
  std::vector<Tensor> parts(static_cast<std::size_t>(shards));
  for (std::int64_t k = 0; k < shards; ++k)
    parts[static_cast<std::size_t>(k)] = sum(micro_shard(t, k, shards), dims);
  return tree_sum(std::move(parts));
}

void for_each_micro_shard(std::int64_t count, const std::function<void(std::int64_t)>& fn) {
  std::exception_ptr error;
#pragma omp parallel for schedule(static)
  for (std::int64_t k = 0; k < count; ++k) {
    // One thread per call: nested regions and the libraries (OpenBLAS, oneDNN) run serially inside.
    omp_set_num_threads(1);
    NoGradGuard no_grad;
    try {
      fn(k);
    } catch (...) {
#pragma omp critical(lockstep_micro_shard_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace lockstep
