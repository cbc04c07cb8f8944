// Tensor factories: constants, ranges, copies of host data, and random tensors from the counter-based RNG.
#pragma once

#include <cstdint>
#include <vector>

#include "src/core/rng.h"
#include "src/tensor/tensor.h"

namespace lockstep {

enum class RandomKind : std::uint8_t;  // src/ops/kernels.h

Tensor full(const Shape& shape, double value, DType dtype = DType::f32, Device device = kCPU);
Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = kCPU);
Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = kCPU);
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
// 0, 1, ..., n - 1.
Tensor arange(std::int64_t n, DType dtype = DType::i64, Device device = kCPU);
Tensor eye(std::int64_t n, DType dtype = DType::f32, Device device = kCPU);

// A tensor of `shape` holding a copy of `values` (row-major), converted to `dtype`.
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, DType dtype = dtype_of<T>, Device device = kCPU);
// A 0-dim tensor.
Tensor scalar_tensor(double value, DType dtype = DType::f32, Device device = kCPU);

// Uniform in [lo, hi) and normal(mean, std), drawn from `gen` (the default generator when null).
Tensor rand(const Shape& shape, double lo = 0.0, double hi = 1.0, DType dtype = DType::f32, Device device = kCPU,
            Generator* gen = nullptr);
Tensor randn(const Shape& shape, double mean = 0.0, double std = 1.0, DType dtype = DType::f32, Device device = kCPU,
             Generator* gen = nullptr);
// Fills `t` in place (floating dtypes); used by initialisers.
void uniform_(const Tensor& t, double lo, double hi, Generator* gen = nullptr);
void normal_(const Tensor& t, double mean, double std, Generator* gen = nullptr);
// Fills `t` in place from `gen` with the random kernel's `kind` and parameters; what every draw above (and
// dropout's mask) goes through. Under a MicroShardScope (src/core/micro_shards.h) a batch-shaped `t` gets its
// rows of one draw over the global batch, so a sample's values do not depend on the world size.
void random_fill(const Tensor& t, RandomKind kind, double a, double b, Generator* gen = nullptr);

extern template Tensor from_vector<float>(const std::vector<float>&, const Shape&, DType, Device);
extern template Tensor from_vector<double>(const std::vector<double>&, const Shape&, DType, Device);
extern template Tensor from_vector<std::int64_t>(const std::vector<std::int64_t>&, const Shape&, DType, Device);
extern template Tensor from_vector<std::uint8_t>(const std::vector<std::uint8_t>&, const Shape&, DType, Device);
extern template Tensor from_vector<int>(const std::vector<int>&, const Shape&, DType, Device);

}  // namespace lockstep
