// CUDA index ops beyond the op table: an index out of range is an IndexError naming the op (not a device
// fault), and accumulation over many repeated indices is the CPU's bits (each destination adds its sources in
// index order on both devices).
#include "src/ops/index.h"

#include <gtest/gtest.h>

#include "src/autograd/grad_mode.h"
#include "src/tensor/factories.h"
#include "tests/cuda/cuda_test_util.h"

namespace lockstep::test {
namespace {

// n indices in [0, size) from a fixed pattern with many repeats, as an i64 CPU tensor.
Tensor repeated_indices(std::int64_t n, std::int64_t size) {
  std::vector<std::int64_t> values;
  for (std::int64_t i = 0; i < n; ++i) values.push_back((i * 7 + i / 3) % size);
  return from_vector(values, {n});
}

TEST(CudaIndex, OutOfRangeIndicesRaiseIndexError) {
  LOCKSTEP_REQUIRE_CUDA();
  NoGradGuard no_grad;
  const Tensor x = cpu_rand({4, 3}, DType::f32, 1).to(kGpu);
  const Tensor bad = from_vector(std::vector<std::int64_t>{0, 4}, {2}, DType::i64, kGpu);
  const Tensor negative = from_vector(std::vector<std::int64_t>{-1, 2}, {2}, DType::i64, kGpu);
  EXPECT_THROW(index_select(x, 0, bad), IndexError);
  EXPECT_THROW(index_select(x, 0, negative), IndexError);
  EXPECT_THROW(embedding(x, bad), IndexError);
  EXPECT_THROW(gather(x, 0, bad.reshape({2, 1})), IndexError);
  EXPECT_THROW(index_add(x, 0, bad, cpu_rand({2, 3}, DType::f32, 2).to(kGpu)), IndexError);
  EXPECT_THROW(scatter_add(x, 0, bad.reshape({2, 1}), cpu_rand({2, 1}, DType::f32, 3).to(kGpu)), IndexError);
}

TEST(CudaIndex, RepeatedIndicesAccumulateToTheCpuBits) {
  LOCKSTEP_REQUIRE_CUDA();
  NoGradGuard no_grad;
  for (DType dtype : {DType::f32, DType::f64}) {
    const Tensor index = repeated_indices(1000, 3);
    const Tensor x = cpu_rand({3, 70}, dtype, 4), src = cpu_rand({1000, 70}, dtype, 5);
    expect_identical(index_add(x.to(kGpu), 0, index.to(kGpu), src.to(kGpu)), index_add(x, 0, index, src),
                     "index_add");
    const Tensor along = index.reshape({1000, 1}).expand({1000, 70}).contiguous();
    expect_identical(scatter_add(x.to(kGpu), 0, along.to(kGpu), src.to(kGpu)), scatter_add(x, 0, along, src),
                     "scatter_add");
  }
}

}  // namespace
}  // namespace lockstep::test
