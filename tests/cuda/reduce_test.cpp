// CUDA reductions against the CPU: rows longer than a block (the shared-memory tree), columns (inner > 1),
// every dtype the kernel takes, NaN propagation and the first index of ties and NaNs for argmax/argmin.
#include "src/ops/reduce.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "src/autograd/grad_mode.h"
#include "tests/cuda/cuda_test_util.h"

namespace lockstep::test {
namespace {

TEST(CudaReduce, SumsMeansAndExtremesMatchCpuOverRowsAndColumns) {
  LOCKSTEP_REQUIRE_CUDA();
  NoGradGuard no_grad;
  for (DType dtype : {DType::f32, DType::f64}) {
    // Long rows (many threads per row, then the tree), short rows, and reductions over a middle dimension.
    for (const Shape& shape : std::vector<Shape>{{3, 100003}, {1000, 7}, {5, 1001, 33}}) {
      const Tensor x = cpu_rand(shape, dtype, 31);
      const Tensor g = x.to(kGpu);
      const double tol = dtype == DType::f32 ? 1e-6 : 1e-12;
      for (std::int64_t dim = 0; dim < static_cast<std::int64_t>(shape.size()); ++dim) {
        const std::string what = shape_str(shape) + " dim " + std::to_string(dim);
        expect_close(sum(g, {dim}), sum(x, {dim}), tol, "sum " + what);
        expect_close(mean(g, {dim}), mean(x, {dim}), tol, "mean " + what);
        EXPECT_EQ(max(g, dim).to_vector<double>(), max(x, dim).to_vector<double>()) << "max " << what;
        EXPECT_EQ(min(g, dim).to_vector<double>(), min(x, dim).to_vector<double>()) << "min " << what;
        EXPECT_EQ(argmax(g, dim).to_vector<std::int64_t>(), argmax(x, dim).to_vector<std::int64_t>())
            << "argmax " << what;
        EXPECT_EQ(argmin(g, dim).to_vector<std::int64_t>(), argmin(x, dim).to_vector<std::int64_t>())
            << "argmin " << what;
      }
      expect_close(sum(g), sum(x), tol, "sum of all " + shape_str(shape));
    }
  }
}

TEST(CudaReduce, NanAndTiesFollowTheCpu) {
  LOCKSTEP_REQUIRE_CUDA();
  NoGradGuard no_grad;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // Row 0: ties of the maximum (first index wins); row 1: two NaNs (the first wins, and max is NaN); row 2:
  // ties of the minimum far apart (past one block's stride).
  std::vector<double> values(3 * 600, 0.0);
  values[5] = values[400] = 2.0;
  values[600 + 7] = nan;
  values[600 + 300] = nan;
  values[1200 + 3] = values[1200 + 599] = -1.0;
  const Tensor x = from_vector(values, {3, 600});
  const Tensor g = x.to(kGpu);
  EXPECT_EQ(argmax(g, 1).to_vector<std::int64_t>(), argmax(x, 1).to_vector<std::int64_t>());
  EXPECT_EQ(argmin(g, 1).to_vector<std::int64_t>(), argmin(x, 1).to_vector<std::int64_t>());
  const std::vector<double> got = max(g, 1).to_vector<double>(), want = max(x, 1).to_vector<double>();
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(std::isnan(got[i]), std::isnan(want[i])) << i;
    if (!std::isnan(want[i])) {
      EXPECT_EQ(got[i], want[i]) << i;
    }
  }
  // Integers sum in i64.
  const Tensor ints = from_vector(std::vector<std::int64_t>{1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(sum(ints.to(kGpu), {1}).to_vector<std::int64_t>(), (std::vector<std::int64_t>{6, 15}));
}

}  // namespace
}  // namespace lockstep::test
