// What ops do with deterministic mode's micro-shards (src/core/micro_shards.h): cut a batch-shaped tensor's
// rows into its micro-shards, compute something per micro-shard with thread-count independent kernels, and
// sum the results in the fixed binary tree over the micro-shard index.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "src/core/micro_shards.h"
#include "src/tensor/tensor.h"

namespace lockstep {

// The number of micro-shards the leading dimension of `t` is cut into under the current scope: 0 outside
// deterministic steps or when `t` is not batch-shaped (batch tensors have a sample dimension and at least one
// more: [N, features...]).
std::int64_t micro_shard_count(const Tensor& t);

// Rows [k * n / count, (k + 1) * n / count) of t's leading dimension (a view).
Tensor micro_shard(const Tensor& t, std::int64_t k, std::int64_t count);

// Sums `parts` (one shape and dtype) in the fixed binary tree over their index: ((p0 + p1) + (p2 + p3)) +
// ...; at each level an odd last part is carried up unchanged. A rank's micro-shards form a subtree of the
// global tree (their count is a power of two and they are aligned), so this composes with the tree across
// ranks.
Tensor tree_sum(std::vector<Tensor> parts);
// The same tree with any associative-in-spirit `combine(left, right)` (batch-norm statistics use Chan's
// pairwise formula); parts must not be empty.
template <class T, class Combine>
T tree_reduce(std::vector<T> parts, Combine combine) {
  while (parts.size() > 1) {
    std::vector<T> next;
    next.reserve((parts.size() + 1) / 2);
    for (std::size_t i = 0; i + 1 < parts.size(); i += 2) next.push_back(combine(parts[i], parts[i + 1]));
    if (parts.size() % 2 == 1) next.push_back(std::move(parts.back()));
    parts = std::move(next);
  }
  return std::move(parts.front());
}

// sum(t, dims) for dims that include the batch dimension 0: per micro-shard and in the tree when t is
// batch-shaped under a scope (and no graph is being recorded), else one sum.
Tensor batch_sum(const Tensor& t, const std::vector<std::int64_t>& dims);

// Runs fn(k) for k in [0, count), the calls spread over the thread pool, each single-threaded (with grad mode
// off), so that what fn computes does not depend on the thread count. fn must be safe to call concurrently.
void for_each_micro_shard(std::int64_t count, const std::function<void(std::int64_t)>& fn);

}  // namespace lockstep
