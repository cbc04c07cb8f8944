// Tensor factories: constants, ranges, copies of host data, and random tensors from the counter-based RNG.
#pragma once

#include <cstdint>
#include <vector>

#include "src/core/rng.h"
#include "src/tensor/tensor.h"

namespace lockstep {

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

extern template Tensor from_vector<float>(const std::vector<float>&, const Shape&, DType, Device);
extern template Tensor from_vector<double>(const std::vector<double>&, const Shape&, DType, Device);
extern template Tensor from_vector<std::int64_t>(const std::vector<std::int64_t>&, const Shape&, DType, Device);
extern template Tensor from_vector<std::uint8_t>(const std::vector<std::uint8_t>&, const Shape&, DType, Device);
extern template Tensor from_vector<int>(const std::vector<int>&, const Shape&, DType, Device);

}  // namespace lockstep
