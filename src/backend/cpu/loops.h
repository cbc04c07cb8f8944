// Strided loops for element-wise CPU kernels: collapses dimensions that are contiguous in every operand,
// then hands innermost rows (pointers, length, byte strides) to a row function, in parallel when large.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "src/core/shape.h"
#include "src/core/threading.h"
#include "src/tensor/tensor.h"

namespace lockstep::cpu {

template <std::size_t N> struct RowGeometry {
  Shape shape;                                 // collapsed; the last dimension is the row
  std::array<std::vector<std::int64_t>, N> strides;  // bytes, per operand, per collapsed dimension
};

// Collapses `shape` for operands with element strides `strides[k]` and element sizes `sizes[k]`.
template <std::size_t N>
RowGeometry<N> collapse(const Shape& shape, const std::array<const Shape*, N>& strides,
                        const std::array<std::int64_t, N>& sizes) {
  RowGeometry<N> g;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    const bool mergeable = [&] {
      if (g.shape.empty()) return false;
      for (std::size_t k = 0; k < N; ++k) {
        if (g.strides[k].back() != (*strides[k])[d] * sizes[k] * shape[d]) return false;
      }
      return true;
    }();
    if (mergeable) {
      g.shape.back() *= shape[d];
      for (std::size_t k = 0; k < N; ++k) g.strides[k].back() = (*strides[k])[d] * sizes[k];
    } else {
      g.shape.push_back(shape[d]);
      for (std::size_t k = 0; k < N; ++k) g.strides[k].push_back((*strides[k])[d] * sizes[k]);
    }
  }
  if (g.shape.empty()) {
    g.shape.push_back(1);
    for (std::size_t k = 0; k < N; ++k) g.strides[k].push_back(sizes[k]);
  }
  return g;
}

// Calls row(ptrs, n, byte_strides) for every innermost row of `tensors` (all of the same shape), splitting
// long single rows into chunks; runs in parallel on the shared pool above kParallelGrain elements.
template <std::size_t N, class RowFn>
void for_each_row(const std::array<const Tensor*, N>& tensors, RowFn&& row) {
  const Shape& shape = tensors[0]->shape();
  std::array<const Shape*, N> strides;
  std::array<std::int64_t, N> sizes;
  std::array<char*, N> base;
  for (std::size_t k = 0; k < N; ++k) {
    strides[k] = &tensors[k]->strides();
    sizes[k] = static_cast<std::int64_t>(element_size(tensors[k]->dtype()));
    base[k] = static_cast<char*>(tensors[k]->data());
  }
  const std::int64_t total = numel_of(shape);
  if (total == 0) return;
  const RowGeometry<N> g = collapse<N>(shape, strides, sizes);
  const std::int64_t ndim = static_cast<std::int64_t>(g.shape.size());
  const std::int64_t row_len = g.shape.back();
  std::array<std::int64_t, N> inner;
  for (std::size_t k = 0; k < N; ++k) inner[k] = g.strides[k].back();

  // Work items: (row, chunk) pairs, chunks of at most kChunk elements so one long row still splits.
  constexpr std::int64_t kChunk = 16384;
  const std::int64_t chunks_per_row = (row_len + kChunk - 1) / kChunk;
  const std::int64_t rows = total / row_len;
  const std::int64_t items = rows * chunks_per_row;
  auto run = [&](std::int64_t item) {
    const std::int64_t r = item / chunks_per_row, c = item % chunks_per_row;
    std::array<char*, N> p = base;
    std::int64_t rem = r;
    for (std::int64_t d = ndim - 2; d >= 0; --d) {
      const std::int64_t idx = rem % g.shape[d];
      rem /= g.shape[d];
      for (std::size_t k = 0; k < N; ++k) p[k] += idx * g.strides[k][d];
    }
    const std::int64_t start = c * kChunk;
    for (std::size_t k = 0; k < N; ++k) p[k] += start * inner[k];
    row(p, std::min(kChunk, row_len - start), inner);
  };
  if (total >= kParallelGrain && items > 1) {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < items; ++i) run(i);
  } else {
    for (std::int64_t i = 0; i < items; ++i) run(i);
  }
}

}  // namespace lockstep::cpu
