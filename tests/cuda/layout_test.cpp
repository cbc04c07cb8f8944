// The host side of the CUDA element-wise indexing, which runs without a GPU: the Layout built from strided,
// sliced and broadcast CPU views must address exactly the elements the tensors' own strides address.
#include <gtest/gtest.h>

#include "src/backend/cuda/make_layout.h"
#include "src/tensor/factories.h"

namespace lockstep::test {
namespace {

// Offset (in elements, from the first element) of row-major index i of `t`, from its own strides.
std::int64_t reference_offset(const Tensor& t, std::int64_t i) {
  std::int64_t offset = 0;
  for (std::int64_t d = t.dim() - 1; d >= 0; --d) {
    offset += (i % t.size(d)) * t.stride(d);
    i /= t.size(d);
  }
  return offset;
}

template <int N> void expect_same_addresses(const std::array<const Tensor*, N>& tensors, const std::string& what) {
  const cuda::Layout<N> layout = cuda::make_layout<N>("test", tensors);
  ASSERT_GE(layout.ndim, 1) << what;
  ASSERT_LE(layout.ndim, cuda::kMaxDims) << what;
  std::int64_t n = 1;
  for (int d = 0; d < layout.ndim; ++d) n *= layout.sizes[d];
  ASSERT_EQ(n, tensors[0]->numel()) << what;
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t offsets[N];
    cuda::element_offsets(layout, i, offsets);
    for (int k = 0; k < N; ++k) {
      ASSERT_EQ(offsets[k], reference_offset(*tensors[static_cast<std::size_t>(k)], i))
          << what << ": operand " << k << ", element " << i;
    }
  }
}

TEST(CudaLayout, MatchesTensorStrides) {
  const Tensor base = zeros({4, 6, 5});
  const Tensor c = zeros({4, 6, 5});
  const Tensor t = base.permute({2, 0, 1});
  const Tensor ct = zeros({5, 4, 6});
  expect_same_addresses<2>({&c, &base}, "contiguous");
  expect_same_addresses<2>({&ct, &t}, "permuted");
  const Tensor s = base.slice(1, 1, 6, 2).slice(2, 0, 5, 3);
  const Tensor cs = zeros(s.shape());
  expect_same_addresses<2>({&cs, &s}, "sliced with steps");
  const Tensor row = zeros({5});
  const Tensor b = broadcast_view(row, {4, 6, 5});
  const Tensor col = broadcast_view(zeros({6, 1}), {4, 6, 5});
  expect_same_addresses<3>({&c, &b, &col}, "broadcast row and column");
  const Tensor scalar = broadcast_view(zeros({}), {4, 6, 5});
  expect_same_addresses<3>({&c, &base, &scalar}, "broadcast scalar");
  const Tensor many = zeros({2, 1, 3, 1, 2, 1, 2, 2});
  const Tensor many_b = broadcast_view(zeros({2, 2}), many.shape());
  expect_same_addresses<2>({&many, &many_b}, "eight dimensions with ones");
  const Tensor seven = zeros({2, 3, 2, 3, 2, 3, 4}).slice(6, 0, 4, 2);
  const Tensor seven_c = zeros(seven.shape());
  expect_same_addresses<2>({&seven_c, &seven}, "seven dimensions, last one strided");
  const Tensor empty_view = zeros({3, 0, 2}).transpose(0, 2);
  const Tensor empty_c = zeros(empty_view.shape());
  expect_same_addresses<2>({&empty_c, &empty_view}, "no elements");
  const Tensor one = zeros({1, 1});
  expect_same_addresses<1>({&one}, "single element");
  const Tensor zero_dim = zeros({});
  expect_same_addresses<1>({&zero_dim}, "0-dim");
}

TEST(CudaLayout, ContiguousFastPathOnlyForDenseOperands) {
  const Tensor a = zeros({3, 4, 5}), b = zeros({3, 4, 5});
  EXPECT_TRUE((cuda::make_layout<2>("test", {&a, &b}).contiguous()));
  const Tensor t = zeros({5, 4, 3}).permute({2, 1, 0});
  EXPECT_FALSE((cuda::make_layout<2>("test", {&a, &t}).contiguous()));
  const Tensor bc = broadcast_view(zeros({5}), {3, 4, 5});
  EXPECT_FALSE((cuda::make_layout<2>("test", {&a, &bc}).contiguous()));
}

TEST(CudaLayout, TooManyDimensionsRaiseNotImplemented) {
  const Tensor x = zeros({2, 2, 2, 2, 2, 2, 2});
  const Tensor reversed = x.permute({6, 5, 4, 3, 2, 1, 0});
  const Tensor out = zeros(reversed.shape());
  try {
    (void)cuda::make_layout<2>("binary (CUDA)", {&out, &reversed});
    FAIL() << "expected NotImplementedError";
  } catch (const NotImplementedError& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 2, 2, 2, 2, 2, 2]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lockstep::test
