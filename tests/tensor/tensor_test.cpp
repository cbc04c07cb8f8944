// Tensors: views sharing storage, strides, broadcasting, dtype conversion, printing, the allocator cache.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "src/ops/elementwise.h"
#include "src/tensor/allocator.h"
#include "src/tensor/factories.h"

namespace lockstep {
namespace {

TEST(Tensor, ViewsShareStorageAndSeeWrites) {
  Tensor x = arange(12, DType::f32).view({3, 4});
  Tensor col = x.slice(1, 1, 2);
  Tensor t = x.transpose(0, 1);
  EXPECT_EQ(col.shape(), (Shape{3, 1}));
  EXPECT_FALSE(t.is_contiguous());
  col.fill_(-1.0);
  EXPECT_EQ(x.to_vector<float>(), (std::vector<float>{0, -1, 2, 3, 4, -1, 6, 7, 8, -1, 10, 11}));
  EXPECT_EQ(t.contiguous().to_vector<float>(), (std::vector<float>{0, 4, 8, -1, -1, -1, 2, 6, 10, 3, 7, 11}));
  EXPECT_EQ(x.version(), col.version());
}

TEST(Tensor, ReshapeCopiesOnlyWhenNeeded) {
  Tensor x = arange(6, DType::f64).view({2, 3});
  EXPECT_EQ(x.reshape({3, 2}).storage(), x.storage());
  Tensor t = x.transpose(0, 1).reshape({6});
  EXPECT_NE(t.storage(), x.storage());
  EXPECT_EQ(t.to_vector<double>(), (std::vector<double>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(x.reshape({-1, 2}).shape(), (Shape{3, 2}));
  EXPECT_THROW(x.transpose(0, 1).view({6}), ValueError);
  EXPECT_THROW(x.reshape({4, 2}), ValueError);
}

TEST(Tensor, SliceWithStepAndSelect) {
  Tensor x = arange(10, DType::i64);
  EXPECT_EQ(x.slice(0, 1, 9, 3).to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, 4, 7}));
  EXPECT_EQ(x.slice(0, -3, 10).to_vector<std::int64_t>(), (std::vector<std::int64_t>{7, 8, 9}));
  EXPECT_EQ(x.view({2, 5}).select(1, -1).to_vector<std::int64_t>(), (std::vector<std::int64_t>{4, 9}));
  EXPECT_THROW(x.view({2, 5}).select(0, 2), IndexError);
}

TEST(Tensor, DtypeConversionRoundsAndTruncates) {
  Tensor x = from_vector(std::vector<double>{1.7, -2.2, 300.0}, {3});
  EXPECT_EQ(x.to(DType::i64).to_vector<std::int64_t>(), (std::vector<std::int64_t>{1, -2, 300}));
  EXPECT_EQ(x.to(DType::f32).dtype(), DType::f32);
  EXPECT_EQ(from_vector(std::vector<std::uint8_t>{0, 255}, {2}).to(DType::f32).to_vector<float>(),
            (std::vector<float>{0.0f, 255.0f}));
}

TEST(Tensor, InPlaceOpsBumpVersionAndBroadcast) {
  Tensor x = zeros({2, 3});
  const auto v0 = x.version();
  x.add_(from_vector(std::vector<float>{1, 2, 3}, {3}), 2.0);
  x.mul_(0.5);
  EXPECT_EQ(x.to_vector<float>(), (std::vector<float>{1, 2, 3, 1, 2, 3}));
  EXPECT_GT(x.version(), v0);
  EXPECT_THROW(x.add_(ones({3, 3})), ValueError);
}

TEST(Tensor, MismatchedShapesDtypesDevicesRaiseTypedErrorsWithShapes) {
  Tensor a = ones({2, 3}), b = ones({4});
  try {
    (void)(a + b);
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 3]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[4]"), std::string::npos) << e.what();
  }
  try {
    (void)(a + ones({2, 3}, DType::f64));
    FAIL() << "expected TypeError";
  } catch (const TypeError& e) {
    EXPECT_NE(std::string(e.what()).find("f32 [2, 3]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("f64 [2, 3]"), std::string::npos) << e.what();
  }
}

// Borrowed memory: the tensor reads and writes it in place, its views keep the owner alive, and the memory
// is released by the owner only when the last of them goes (never through the allocator).
TEST(Tensor, BorrowedMemoryLivesAsLongAsItsLastViewAndIsFreedByItsOwner) {
  auto block = std::make_shared<std::vector<float>>(std::vector<float>{1, 2, 3, 4, 5, 6});
  std::weak_ptr<std::vector<float>> watch = block;
  Tensor tail;
  {
    Tensor t = borrow_memory(block->data(), {2, 3}, DType::f32, kCPU, block);
    block.reset();
    EXPECT_FALSE(watch.expired());
    tail = t.slice(0, 1, 2);
    tail.fill_(0.0);
    EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{1, 2, 3, 0, 0, 0}));
  }
  EXPECT_FALSE(watch.expired());
  EXPECT_EQ((*watch.lock())[4], 0.0f);
  tail = Tensor();
  EXPECT_TRUE(watch.expired());
  float x = 0;
  EXPECT_THROW(borrow_memory(&x, {1}, DType::f32, kCPU, nullptr), ValueError);
  EXPECT_THROW(borrow_memory(&x, {-1}, DType::f32, kCPU, std::make_shared<int>(0)), ValueError);
}

TEST(Tensor, PrintsValuesShapeAndDtype) {
  Tensor x = from_vector(std::vector<float>{1.5f, -2.0f, 0.25f, 4.0f}, {2, 2});
  EXPECT_EQ(x.str(), "tensor([[1.5000, -2.0000],\n        [0.2500, 4.0000]], shape=[2, 2], dtype=f32)");
  EXPECT_EQ(arange(3).str(), "tensor([0, 1, 2], shape=[3], dtype=i64)");
  const std::string big = zeros({2000}).str();
  EXPECT_NE(big.find("..."), std::string::npos);
}

TEST(Allocator, ReusesFreedBlocksOfTheSameSizeClass) {
  cpu_empty_cache();
  { Tensor warm = empty({1000, 257}); }
  const auto before = cpu_allocator_stats().system_allocations;
  for (int i = 0; i < 10; ++i) {
    Tensor t = empty({1000, 257});
    t.fill_(1.0);
  }
  EXPECT_EQ(cpu_allocator_stats().system_allocations, before);
  EXPECT_EQ(cpu_size_class(1000), 1024u);
  EXPECT_EQ(cpu_size_class(1025), 1280u);
  EXPECT_EQ(cpu_size_class(1), 64u);
}

}  // namespace
}  // namespace lockstep
