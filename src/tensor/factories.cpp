// Tensor factories.
#include "src/tensor/factories.h"

#include "src/core/micro_shards.h"
#include "src/ops/kernels.h"

namespace lockstep {

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  kernels::fill.get(device)(t, value);
  return t;
}

Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), t.dtype(), t.device()); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype(), t.device()); }
Tensor full_like(const Tensor& t, double value) { return full(t.shape(), value, t.dtype(), t.device()); }

Tensor arange(std::int64_t n, DType dtype, Device device) {
  LOCKSTEP_CHECK(n >= 0, ValueError, "arange: expected n >= 0, but got ", n);
  std::vector<double> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = static_cast<double>(i);
  return from_vector(v, {n}, dtype, device);
}

Tensor eye(std::int64_t n, DType dtype, Device device) {
  LOCKSTEP_CHECK(n >= 0, ValueError, "eye: expected n >= 0, but got ", n);
  std::vector<double> v(static_cast<std::size_t>(n * n), 0.0);
  for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i * n + i)] = 1.0;
  return from_vector(v, {n, n}, dtype, device);
}

template <class T> Tensor from_vector(const std::vector<T>& values, const Shape& shape, DType dtype, Device device) {
  LOCKSTEP_CHECK(static_cast<std::int64_t>(values.size()) == numel_of(shape), ValueError,
                 "from_vector: expected ", numel_of(shape), " values for shape ", shape_str(shape), ", but got ",
                 values.size());
  using Host = std::conditional_t<std::is_same_v<T, int>, std::int64_t, T>;
  std::vector<Host> host(values.begin(), values.end());
  Tensor src = empty(shape, dtype_of<Host>, kCPU);
  std::copy(host.begin(), host.end(), src.data<Host>());
  if (dtype == src.dtype() && device.is_cpu()) return src;
  return src.to(dtype).to(device);
}

template Tensor from_vector<float>(const std::vector<float>&, const Shape&, DType, Device);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&, DType, Device);
template Tensor from_vector<std::int64_t>(const std::vector<std::int64_t>&, const Shape&, DType, Device);
template Tensor from_vector<std::uint8_t>(const std::vector<std::uint8_t>&, const Shape&, DType, Device);
template Tensor from_vector<int>(const std::vector<int>&, const Shape&, DType, Device);

Tensor scalar_tensor(double value, DType dtype, Device device) { return full({}, value, dtype, device); }

void random_fill(const Tensor& t, RandomKind kind, double a, double b, Generator* gen) {
  LOCKSTEP_CHECK(is_floating(t.dtype()), TypeError, "random fill: expected a floating tensor, but got ",
                 dtype_name(t.dtype()), " ", shape_str(t.shape()));
  Generator& g = gen ? *gen : default_generator();
  // Element e of the reserved draw comes from counter offset + e / 4, lane e % 4 (the kernels fill blocks of
  // four): a draw starting inside a block is made from the block's start and its first elements dropped.
  const RandomSpan span = random_span(t.dim() > 0 ? t.size(0) : 1, t.numel());
  const std::uint64_t offset = g.take((span.reserve + 3) / 4) + span.first / 4;
  const auto lead = static_cast<std::int64_t>(span.first % 4);
  if (t.is_contiguous() && lead == 0) {
    kernels::random.get(t.device())(kind, t, g.seed(), offset, a, b);
  } else {
    Tensor tmp = empty({lead + t.numel()}, t.dtype(), t.device());
    kernels::random.get(t.device())(kind, tmp, g.seed(), offset, a, b);
    kernels::copy.get(t.device())(tmp.slice(0, lead, lead + t.numel()).view(t.shape()), t);
  }
  t.bump_version();
}

void uniform_(const Tensor& t, double lo, double hi, Generator* gen) { random_fill(t, RandomKind::kUniform, lo, hi, gen); }
void normal_(const Tensor& t, double mean, double std, Generator* gen) {
  random_fill(t, RandomKind::kNormal, mean, std, gen);
}

Tensor rand(const Shape& shape, double lo, double hi, DType dtype, Device device, Generator* gen) {
  Tensor t = empty(shape, dtype, device);
  uniform_(t, lo, hi, gen);
  return t;
}

Tensor randn(const Shape& shape, double mean, double std, DType dtype, Device device, Generator* gen) {
  Tensor t = empty(shape, dtype, device);
  normal_(t, mean, std, gen);
  return t;
}

}  // namespace lockstep
