// Adversarial review of the tensor core: Philox known answers, views of odd geometries (0-dim, empty,
// non-contiguous, broadcast), in-place ops on views and aliases, printing, and the caching allocator.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "src/core/rng.h"
#include "src/ops/elementwise.h"
#include "src/tensor/allocator.h"
#include "src/tensor/factories.h"

namespace lockstep {
namespace {

using I64 = std::vector<std::int64_t>;
using F32 = std::vector<float>;

// ---- Philox-4x32-10 against the Random123 known-answer vectors ----

// Counter words c0..c3 and key words k0, k1 as Random123 numbers them.
std::array<std::uint32_t, 4> philox_words(std::array<std::uint32_t, 4> c, std::array<std::uint32_t, 2> k) {
  const std::uint64_t seed = (static_cast<std::uint64_t>(k[1]) << 32) | k[0];
  const std::uint64_t lo = (static_cast<std::uint64_t>(c[1]) << 32) | c[0];
  const std::uint64_t hi = (static_cast<std::uint64_t>(c[3]) << 32) | c[2];
  return philox4x32(seed, hi, lo);
}

TEST(ReviewRng, PhiloxMatchesRandom123KnownAnswers) {
  using W = std::array<std::uint32_t, 4>;
  EXPECT_EQ(philox_words({0, 0, 0, 0}, {0, 0}), (W{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(philox_words({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu}),
            (W{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  EXPECT_EQ(philox_words({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u}),
            (W{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(ReviewRng, RandomFillFollowsTheKernelContract) {
  // Element i of a fill that took counter `offset` comes from Philox(seed, offset + i / 4, lane i % 4).
  Generator gen(1234);
  gen.take(7);
  Tensor t = rand({10}, 0.0, 1.0, DType::f32, kCPU, &gen);
  const F32 v = t.to_vector<float>();
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::uint32_t bits = philox4x32(1234, 0, 7 + i / 4)[i % 4];
    EXPECT_EQ(v[i], static_cast<float>(static_cast<double>(bits) * 0x1p-32)) << i;
  }
  EXPECT_EQ(gen.offset(), 7u + 3u);
}

// ---- views ----

TEST(ReviewViews, SliceWithStepOnANonContiguousBase) {
  Tensor x = arange(24, DType::i64).view({4, 6});
  Tensor t = x.transpose(0, 1);  // [6, 4], t[i][j] = x[j][i] = 6j + i
  Tensor s = t.slice(0, 1, 6, 2);  // rows 1, 3, 5 of t = columns 1, 3, 5 of x
  EXPECT_EQ(s.shape(), (Shape{3, 4}));
  EXPECT_EQ(s.to_vector<std::int64_t>(), (I64{1, 7, 13, 19, 3, 9, 15, 21, 5, 11, 17, 23}));
  Tensor ss = s.slice(1, -3, 4, 2);  // columns 1 and 3 of s
  EXPECT_EQ(ss.to_vector<std::int64_t>(), (I64{7, 19, 9, 21, 11, 23}));
  EXPECT_EQ(ss.storage(), x.storage());
  ss.fill_(-1.0);
  EXPECT_EQ(x.select(0, 1).to_vector<std::int64_t>(), (I64{6, -1, 8, -1, 10, -1}));
  EXPECT_EQ(x.select(0, 3).to_vector<std::int64_t>(), (I64{18, -1, 20, -1, 22, -1}));
  EXPECT_EQ(x.select(0, 0).to_vector<std::int64_t>(), (I64{0, 1, 2, 3, 4, 5}));
  // Steps past the end and empty ranges.
  EXPECT_EQ(t.slice(0, 4, 100, 5).shape(), (Shape{1, 4}));
  EXPECT_EQ(t.slice(0, 5, 2).shape(), (Shape{0, 4}));
  EXPECT_THROW(t.slice(0, 0, 2, 0), ValueError);
}

TEST(ReviewViews, ZeroDimTensorsRejectIndexingButAcceptSqueezeUnsqueezeExpand) {
  Tensor s = scalar_tensor(2.5);
  EXPECT_THROW((void)s.size(0), IndexError);
  EXPECT_THROW((void)s.stride(-1), IndexError);
  EXPECT_THROW((void)s.slice(0, 0, 1), IndexError);
  EXPECT_THROW((void)s.select(0, 0), IndexError);
  EXPECT_EQ(s.squeeze(0).shape(), Shape{});
  EXPECT_EQ(s.squeeze(-1).shape(), Shape{});
  EXPECT_EQ(s.transpose(0, -1).shape(), Shape{});
  EXPECT_EQ(s.flatten().shape(), (Shape{1}));
  EXPECT_THROW((void)s.flatten(0, 1), IndexError);
  Tensor u = s.unsqueeze(0);
  EXPECT_EQ(u.shape(), (Shape{1}));
  EXPECT_EQ(s.unsqueeze(-1).shape(), (Shape{1}));
  EXPECT_THROW((void)s.unsqueeze(1), IndexError);
  Tensor e = s.expand({2, 3});
  EXPECT_EQ(e.strides(), (Shape{0, 0}));
  EXPECT_EQ(e.storage(), s.storage());
  EXPECT_EQ(e.to_vector<float>(), F32(6, 2.5f));
  EXPECT_EQ(s.expand({}).item(), 2.5);
  Tensor c = e.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_NE(c.storage(), s.storage());
  EXPECT_EQ(s.permute({}).item(), 2.5);
  EXPECT_EQ(s.reshape({1, 1}).select(-1, 0).select(0, 0).item(), 2.5);
}

TEST(ReviewViews, SelectSqueezeUnsqueezeAreViewsEvenOnNonContiguousBases) {
  Tensor x = arange(12, DType::f32).view({3, 4});
  Tensor col = x.select(1, 2);  // [3] with stride 4
  EXPECT_EQ(col.storage(), x.storage());
  EXPECT_EQ(col.strides(), (Shape{4}));
  col.fill_(-1.0);
  EXPECT_EQ(x.to_vector<float>(), (F32{0, 1, -1, 3, 4, 5, -1, 7, 8, 9, -1, 11}));

  Tensor t = x.transpose(0, 1);  // [4, 3]
  Tensor u = t.unsqueeze(1);     // [4, 1, 3]
  EXPECT_EQ(u.shape(), (Shape{4, 1, 3}));
  EXPECT_EQ(u.storage(), x.storage());
  Tensor back = u.squeeze(-2);
  EXPECT_EQ(back.shape(), (Shape{4, 3}));
  EXPECT_EQ(back.strides(), t.strides());
  EXPECT_EQ(back.storage(), x.storage());
  EXPECT_EQ(t.unsqueeze(-1).shape(), (Shape{4, 3, 1}));
  // squeeze of a dimension that is not 1 is a no-op view, but still a distinct handle.
  Tensor same = t.squeeze(0);
  EXPECT_EQ(same.shape(), t.shape());
  EXPECT_FALSE(same.same(t));
  // select on a size-1 dimension.
  Tensor one = arange(3, DType::i64).view({1, 3});
  EXPECT_EQ(one.select(0, -1).to_vector<std::int64_t>(), (I64{0, 1, 2}));
  EXPECT_THROW((void)one.select(0, 1), IndexError);
  EXPECT_THROW((void)one.select(0, -2), IndexError);
}

TEST(ReviewViews, ExpandValidatesTargetsAndAcceptsMinusOne) {
  Tensor x = from_vector(std::vector<float>{1, 2, 3}, {3, 1});
  EXPECT_EQ(x.expand({2, -1, 4}).shape(), (Shape{2, 3, 4}));
  EXPECT_THROW((void)x.expand({3, -2}), ValueError);
  EXPECT_THROW((void)x.expand({-1, 3, 4}), ValueError);  // -1 is not allowed for a new leading dimension
  EXPECT_THROW((void)x.expand({2, 4}), ValueError);
  EXPECT_THROW((void)x.expand({4}), ValueError);
  Tensor b = x.expand({3, 4});
  EXPECT_FALSE(b.is_contiguous());
  Tensor c = b.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.to_vector<float>(), (F32{1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3}));
  EXPECT_EQ(b.reshape({12}).to_vector<float>(), c.to_vector<float>());
  EXPECT_EQ(b.transpose(0, 1).contiguous().to_vector<float>(), (F32{1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3}));
}

TEST(ReviewViews, PermuteThenReshapeCopiesAndLeavesTheBaseAlone) {
  Tensor x = arange(24, DType::f64).view({2, 3, 4});
  Tensor p = x.permute({2, 0, -2});  // [4, 2, 3]
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  Tensor r = p.reshape({4, 6});
  EXPECT_NE(r.storage(), x.storage());
  const std::vector<double> rv = r.to_vector<double>();
  for (std::int64_t i = 0; i < 4; ++i) {
    for (std::int64_t j = 0; j < 2; ++j) {
      for (std::int64_t k = 0; k < 3; ++k) EXPECT_EQ(rv[static_cast<std::size_t>(i * 6 + j * 3 + k)], j * 12 + k * 4 + i);
    }
  }
  r.fill_(0.0);
  EXPECT_EQ(x.to_vector<double>()[23], 23.0);
  EXPECT_THROW((void)x.permute({0, 1}), ValueError);
  EXPECT_THROW((void)x.permute({0, 1, 1}), ValueError);
  EXPECT_THROW((void)x.permute({0, 1, 3}), IndexError);
  EXPECT_EQ(x.transpose(-1, 0).shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(x.flatten(-2, -1).shape(), (Shape{2, 12}));
  EXPECT_EQ(x.flatten(1).shape(), (Shape{2, 12}));
  EXPECT_THROW((void)x.flatten(2, 1), ValueError);
  EXPECT_EQ(x.size(-1), 4);
  EXPECT_EQ(x.stride(-3), 12);
  EXPECT_THROW((void)x.size(-4), IndexError);
  EXPECT_THROW((void)x.size(3), IndexError);
  EXPECT_THROW((void)x.unsqueeze(-5), IndexError);
  EXPECT_EQ(x.unsqueeze(-4).shape(), (Shape{1, 2, 3, 4}));
}

TEST(ReviewViews, DtypeConversionOfViews) {
  Tensor x = from_vector(std::vector<double>{0.5, 1.5, 2.5, -3.5, 4.5, 5.5}, {2, 3});
  EXPECT_EQ(x.transpose(0, 1).to(DType::f32).to_vector<float>(), (F32{0.5f, -3.5f, 1.5f, 4.5f, 2.5f, 5.5f}));
  EXPECT_EQ(x.slice(1, 0, 3, 2).to(DType::i64).to_vector<std::int64_t>(), (I64{0, 2, -3, 5}));
  Tensor b = from_vector(std::vector<std::uint8_t>{7, 200}, {2, 1}).expand({2, 3});
  Tensor bf = b.to(DType::f64);
  EXPECT_TRUE(bf.is_contiguous());
  EXPECT_EQ(bf.to_vector<double>(), (std::vector<double>{7, 7, 7, 200, 200, 200}));
  EXPECT_TRUE(x.to(DType::f64).same(x));
}

TEST(ReviewViews, EmptyTensorsGoThroughEveryViewAndCopy) {
  Tensor e = zeros({0, 3});
  EXPECT_EQ(e.numel(), 0);
  EXPECT_TRUE(e.is_contiguous());
  EXPECT_EQ(e.view({3, 0}).shape(), (Shape{3, 0}));
  EXPECT_EQ(e.reshape({0}).shape(), (Shape{0}));
  EXPECT_EQ(e.reshape({-1, 3}).shape(), (Shape{0, 3}));
  EXPECT_THROW((void)e.reshape({-1, 0}), ValueError);
  EXPECT_EQ(e.flatten().shape(), (Shape{0}));
  EXPECT_EQ(e.transpose(0, 1).shape(), (Shape{3, 0}));
  EXPECT_TRUE(e.transpose(0, 1).is_contiguous());  // nothing to lay out
  EXPECT_EQ(e.transpose(0, 1).view({0}).shape(), (Shape{0}));
  EXPECT_EQ(e.permute({1, 0}).reshape({3, 0}).shape(), (Shape{3, 0}));
  EXPECT_EQ(e.slice(1, 1, 3).shape(), (Shape{0, 2}));
  EXPECT_EQ(e.select(1, -1).shape(), (Shape{0}));
  EXPECT_THROW((void)e.select(0, 0), IndexError);
  EXPECT_EQ(e.unsqueeze(0).shape(), (Shape{1, 0, 3}));
  EXPECT_EQ(e.unsqueeze(0).squeeze(0).shape(), (Shape{0, 3}));
  EXPECT_EQ(e.expand({2, 0, 3}).shape(), (Shape{2, 0, 3}));
  EXPECT_EQ(zeros({1, 3}).expand({0, 3}).numel(), 0);
  EXPECT_EQ(e.contiguous().shape(), (Shape{0, 3}));
  EXPECT_EQ(e.clone().shape(), (Shape{0, 3}));
  EXPECT_EQ(e.to(DType::i64).dtype(), DType::i64);
  EXPECT_TRUE(e.to_vector<float>().empty());
  e.fill_(1.0);
  e.copy_(ones({3}));
  e.add_(ones({0, 3}));
  e.mul_(2.0);
  e.clamp_(0.0, 1.0);
  Tensor holes = arange(6, DType::f32).view({2, 3}).slice(1, 2, 2);  // [2, 0] view into real storage
  holes.fill_(5.0);
  EXPECT_EQ(holes.to(DType::f64).numel(), 0);
}

TEST(ReviewViews, NegativeDimsEverywhere) {
  Tensor x = arange(24, DType::i64).view({2, 3, 4});
  EXPECT_EQ(x.slice(-1, 1, 3).shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(x.select(-2, -1).to_vector<std::int64_t>(), (I64{8, 9, 10, 11, 20, 21, 22, 23}));
  EXPECT_EQ(x.select(-3, -2).shape(), (Shape{3, 4}));
  EXPECT_EQ(x.unsqueeze(-1).shape(), (Shape{2, 3, 4, 1}));
  EXPECT_EQ(x.unsqueeze(-2).shape(), (Shape{2, 3, 1, 4}));
  EXPECT_EQ(x.unsqueeze(-1).squeeze(-1).shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(x.transpose(-1, -3).shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(x.flatten(0, -2).shape(), (Shape{6, 4}));
  EXPECT_THROW((void)x.slice(-4, 0, 1), IndexError);
  EXPECT_THROW((void)x.select(3, 0), IndexError);
  EXPECT_THROW((void)x.squeeze(-4), IndexError);
  EXPECT_THROW((void)x.transpose(0, -4), IndexError);
}

// ---- printing ----

TEST(ReviewPrint, ZeroDimEmptyIntegerAndByteTensors) {
  EXPECT_EQ(scalar_tensor(1.5).str(), "tensor(1.5000, shape=[], dtype=f32)");
  EXPECT_EQ(scalar_tensor(-7, DType::i64).str(), "tensor(-7, shape=[], dtype=i64)");
  EXPECT_EQ(zeros({0}).str(), "tensor([], shape=[0], dtype=f32)");
  EXPECT_EQ(zeros({2, 0}, DType::i64).str(), "tensor([[],\n        []], shape=[2, 0], dtype=i64)");
  EXPECT_EQ(from_vector(std::vector<std::uint8_t>{0, 128, 255}, {3}).str(), "tensor([0, 128, 255], shape=[3], dtype=u8)");
  const std::int64_t big = std::numeric_limits<std::int64_t>::max();
  const std::int64_t small = std::numeric_limits<std::int64_t>::min();
  EXPECT_EQ(from_vector(std::vector<std::int64_t>{big, small, 9007199254740993}, {3}).str(),
            "tensor([9223372036854775807, -9223372036854775808, 9007199254740993], shape=[3], dtype=i64)");
  EXPECT_EQ(arange(6, DType::i64).view({2, 3}).transpose(0, 1).str(),
            "tensor([[0, 3],\n        [1, 4],\n        [2, 5]], shape=[3, 2], dtype=i64)");
  EXPECT_EQ(Tensor().str(), "tensor(undefined)");
}

// ---- in-place ops on views ----

TEST(ReviewInPlace, OpsOnASliceTouchOnlyTheSliceAndShareTheVersion) {
  Tensor x = arange(12, DType::f32).view({3, 4});
  Tensor s = x.slice(1, 1, 4, 2);  // columns 1 and 3
  Tensor other = x.select(0, 0);
  const std::uint64_t v0 = x.version();
  s.add_(ones({2}), 10.0);
  EXPECT_EQ(x.to_vector<float>(), (F32{0, 11, 2, 13, 4, 15, 6, 17, 8, 19, 10, 21}));
  s.mul_(from_vector(std::vector<float>{1, 2, 3}, {3, 1}));
  EXPECT_EQ(x.to_vector<float>(), (F32{0, 11, 2, 13, 4, 30, 6, 34, 8, 57, 10, 63}));
  s.fill_(0.0);
  EXPECT_EQ(x.to_vector<float>(), (F32{0, 0, 2, 0, 4, 0, 6, 0, 8, 0, 10, 0}));
  s.copy_(from_vector(std::vector<double>{-1, -2}, {2}));  // broadcast over rows, converted from f64
  EXPECT_EQ(x.to_vector<float>(), (F32{0, -1, 2, -2, 4, -1, 6, -2, 8, -1, 10, -2}));
  s.div_(full({3, 2}, -1.0));
  s.sub_(ones({}));
  EXPECT_EQ(x.to_vector<float>(), (F32{0, 0, 2, 1, 4, 0, 6, 1, 8, 0, 10, 1}));
  EXPECT_EQ(x.version(), v0 + 6);
  EXPECT_EQ(s.version(), x.version());
  EXPECT_EQ(other.version(), x.version());
  EXPECT_EQ(x.detach().version(), x.version());
}

TEST(ReviewInPlace, CopyBroadcastsAndConvertsDtypes) {
  Tensor dst = zeros({2, 3}, DType::f64);
  dst.copy_(from_vector(std::vector<std::int64_t>{1, 2, 3}, {3}));
  EXPECT_EQ(dst.to_vector<double>(), (std::vector<double>{1, 2, 3, 1, 2, 3}));
  dst.copy_(scalar_tensor(4.0, DType::u8));
  EXPECT_EQ(dst.to_vector<double>(), std::vector<double>(6, 4.0));
  dst.copy_(from_vector(std::vector<float>{7, 8}, {2, 1}));
  EXPECT_EQ(dst.to_vector<double>(), (std::vector<double>{7, 7, 7, 8, 8, 8}));
  Tensor ints = zeros({3}, DType::i64);
  ints.copy_(from_vector(std::vector<double>{1.9, -1.9, 0.2}, {3}));
  EXPECT_EQ(ints.to_vector<std::int64_t>(), (I64{1, -1, 0}));
  EXPECT_THROW(dst.copy_(ones({3, 3})), ValueError);
  EXPECT_THROW(dst.copy_(ones({2, 3, 1})), ValueError);
  dst.transpose(0, 1).copy_(arange(6, DType::f32).view({3, 2}));
  EXPECT_EQ(dst.to_vector<double>(), (std::vector<double>{0, 2, 4, 1, 3, 5}));
}

TEST(ReviewInPlace, OverlappingSourcesAreReadBeforeTheyAreWritten) {
  Tensor x = arange(6, DType::f32);
  x.slice(0, 1, 6).copy_(x.slice(0, 0, 5));  // shift right by one
  EXPECT_EQ(x.to_vector<float>(), (F32{0, 0, 1, 2, 3, 4}));
  Tensor m = from_vector(std::vector<float>{1, 2, 3, 4}, {2, 2});
  m.add_(m.transpose(0, 1));
  EXPECT_EQ(m.to_vector<float>(), (F32{2, 5, 5, 8}));
  Tensor n = from_vector(std::vector<float>{1, 2, 3, 4}, {2, 2});
  n.mul_(n.select(1, 0).unsqueeze(1));  // each row times its (aliased) first element
  EXPECT_EQ(n.to_vector<float>(), (F32{1, 2, 9, 12}));
  Tensor self = arange(4, DType::f32);
  self.add_(self);
  EXPECT_EQ(self.to_vector<float>(), (F32{0, 2, 4, 6}));
}

TEST(ReviewInPlace, WritingThroughABroadcastViewIsRefused) {
  Tensor base = zeros({3, 1});
  Tensor b = base.expand({3, 4});
  EXPECT_THROW(b.add_(ones({3, 4})), ValueError);
  EXPECT_THROW(b.mul_(2.0), ValueError);
  EXPECT_THROW(b.copy_(ones({3, 4})), ValueError);
  b.fill_(2.0);  // every alias gets the same value: allowed
  EXPECT_EQ(base.to_vector<float>(), (F32{2, 2, 2}));
}

TEST(ReviewInPlace, ClampOnViewsAndIntegers) {
  Tensor x = from_vector(std::vector<float>{-5, -1, 0, 1, 5, 9}, {2, 3});
  Tensor col = x.slice(1, 0, 3, 2);  // columns 0 and 2
  const std::uint64_t v0 = x.version();
  col.clamp_(-2.0, 2.0);
  EXPECT_EQ(x.to_vector<float>(), (F32{-2, -1, 0, 1, 5, 2}));
  EXPECT_EQ(x.version(), v0 + 1);
  x.select(0, 0).clamp_(-0.5, 0.5);
  EXPECT_EQ(x.to_vector<float>(), (F32{-0.5f, -0.5f, 0, 1, 5, 2}));
  Tensor labels = from_vector(std::vector<std::int64_t>{-3, 0, 7, 12}, {4});
  labels.slice(0, 1, 4).clamp_(0.5, 9.5);  // bounds are rounded inwards for integers
  EXPECT_EQ(labels.to_vector<std::int64_t>(), (I64{-3, 1, 7, 9}));
  labels.clamp_(-1e300, 1e300);
  EXPECT_EQ(labels.to_vector<std::int64_t>(), (I64{-3, 1, 7, 9}));
  Tensor bytes = from_vector(std::vector<std::uint8_t>{0, 100, 255}, {3});
  bytes.clamp_(10, 200);
  EXPECT_EQ(bytes.to_vector<std::uint8_t>(), (std::vector<std::uint8_t>{10, 100, 200}));
}

TEST(ReviewFactories, NegativeSizesAreValueErrors) {
  EXPECT_THROW((void)eye(-1), ValueError);
  EXPECT_THROW((void)arange(-1), ValueError);
  EXPECT_THROW((void)zeros({2, -1}), ValueError);
  EXPECT_EQ(eye(0).shape(), (Shape{0, 0}));
}

// ---- allocator ----

TEST(ReviewAllocator, StatisticsPeakAndEmptyCache) {
  cpu_empty_cache();
  const AllocatorStats s0 = cpu_allocator_stats();
  EXPECT_EQ(s0.cached_bytes, 0u);
  cpu_allocator_reset_peak();
  EXPECT_EQ(cpu_allocator_stats().peak_allocated_bytes, s0.allocated_bytes);
  const std::size_t big = cpu_size_class(1 << 20);
  {
    std::vector<Tensor> live;
    for (int i = 0; i < 200; ++i) live.push_back(empty({1 + i * 3}, DType::f64));
    Tensor large = empty({(1 << 20) / 4});
    const AllocatorStats s1 = cpu_allocator_stats();
    EXPECT_GE(s1.allocated_bytes, s0.allocated_bytes + big);
    EXPECT_EQ(s1.peak_allocated_bytes, s1.allocated_bytes);
  }
  const AllocatorStats s2 = cpu_allocator_stats();
  EXPECT_EQ(s2.allocated_bytes, s0.allocated_bytes);
  EXPECT_GE(s2.peak_allocated_bytes, s0.allocated_bytes + big);
  EXPECT_GE(s2.cached_bytes, big);
  // Reuse: the same sizes again reach the system allocator no more.
  const std::uint64_t calls = s2.system_allocations;
  {
    std::vector<Tensor> live;
    for (int i = 0; i < 200; ++i) live.push_back(empty({1 + i * 3}, DType::f64));
  }
  EXPECT_EQ(cpu_allocator_stats().system_allocations, calls);
  cpu_allocator_reset_peak();
  EXPECT_EQ(cpu_allocator_stats().peak_allocated_bytes, s0.allocated_bytes);
  cpu_empty_cache();
  EXPECT_EQ(cpu_allocator_stats().cached_bytes, 0u);
  EXPECT_EQ(cpu_allocator_stats().allocated_bytes, s0.allocated_bytes);
}

TEST(ReviewAllocator, SizeClassesAreMultiplesOfTheAlignment) {
  // std::aligned_alloc requires the size to be a multiple of the alignment (ASan enforces it).
  for (std::size_t bytes : {0ul, 1ul, 63ul, 64ul, 65ul, 80ul, 100ul, 129ul, 200ul, 257ul, 1000ul, 100000ul}) {
    const std::size_t c = cpu_size_class(bytes);
    EXPECT_EQ(c % 64, 0u) << bytes;
    EXPECT_GE(c, bytes);
    EXPECT_LE(c, bytes < 256 ? 256 : bytes + bytes / 4 + 1) << bytes;
  }
  Tensor t = from_vector(std::vector<float>(20, 1.0f), {20});  // 80 bytes
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.data()) % 64, 0u);
}

TEST(ReviewAllocator, ConcurrentAllocationFromManyThreadsKeepsConsistentStatistics) {
  cpu_empty_cache();
  const std::size_t before = cpu_allocator_stats().allocated_bytes;
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([k, &wrong] {
      std::vector<Tensor> keep;
      for (int i = 0; i < 1500; ++i) {
        Tensor t = full({1 + (i * 7 + k) % 97}, static_cast<double>(k), DType::f32);
        if (t.to_vector<float>().back() != static_cast<float>(k)) ++wrong;
        if (i % 3 == 0) keep.push_back(t);
        if (keep.size() > 50) keep.erase(keep.begin(), keep.begin() + 25);
      }
      for (const auto& t : keep) {
        for (float v : t.to_vector<float>()) {
          if (v != static_cast<float>(k)) ++wrong;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(cpu_allocator_stats().allocated_bytes, before);
  cpu_empty_cache();
  EXPECT_EQ(cpu_allocator_stats().cached_bytes, 0u);
}

}  // namespace
}  // namespace lockstep
