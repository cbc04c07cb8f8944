// The epoch sampler (permutation, determinism, known answer, both sharding policies) and the fused
// augmentation (normalisation by hand, centred padding, crop shifts, flips, reproducibility, errors).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "io/data/augment.h"
#include "io/data/sampler.h"
#include "src/core/error.h"

namespace lockstep {
namespace {

std::vector<std::int64_t> iota_vector(std::int64_t n) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), std::int64_t{0});
  return v;
}

std::vector<std::int64_t> sorted(std::vector<std::int64_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST(SamplerTest, PermutationIsDeterministicInSeedAndEpoch) {
  const io::Sampler sampler(1000, 42, io::Shuffle::kYes);
  const std::vector<std::int64_t> e0 = sampler.indices(0);
  EXPECT_EQ(sorted(e0), iota_vector(1000));
  EXPECT_EQ(io::Sampler(1000, 42, io::Shuffle::kYes).indices(0), e0);  // a fresh sampler, same (seed, epoch)
  EXPECT_EQ(sampler.indices(0), e0);
  const std::vector<std::int64_t> e1 = sampler.indices(1);
  EXPECT_EQ(sorted(e1), iota_vector(1000));
  EXPECT_NE(e1, e0);
  EXPECT_NE(io::Sampler(1000, 43, io::Shuffle::kYes).indices(0), e0);
  EXPECT_NE(e0, iota_vector(1000));
  EXPECT_EQ(io::Sampler(1000, 42, io::Shuffle::kNo).indices(5), iota_vector(1000));
  EXPECT_TRUE(io::Sampler(0, 1, io::Shuffle::kYes).indices(0).empty());
  EXPECT_EQ(io::Sampler(1, 1, io::Shuffle::kYes).indices(3), std::vector<std::int64_t>{0});
}

// Known answers from an independent Python transcription of Philox-4x32-10 and the documented
// Fisher-Yates (counter_hi = 1 << 56 | epoch, two words per draw, rejection below 2^64 mod bound). A change
// of algorithm changes every epoch order of every run and must be deliberate.
TEST(SamplerTest, KnownAnswer) {
  const std::vector<std::int64_t> order = io::Sampler(100, 42, io::Shuffle::kYes).indices(0);
  EXPECT_EQ(std::vector<std::int64_t>(order.begin(), order.begin() + 10),
            (std::vector<std::int64_t>{15, 51, 80, 83, 13, 63, 36, 59, 19, 97}));
  EXPECT_EQ(io::Sampler(10, 7, io::Shuffle::kYes).indices(3),
            (std::vector<std::int64_t>{5, 7, 4, 9, 2, 1, 8, 3, 0, 6}));
}

// All 6 orders of 3 elements appear about equally often over 6000 epochs (a biased bounded draw or an
// off-by-one in Fisher-Yates makes some orders twice as likely or impossible).
TEST(SamplerTest, OrdersAreUniform) {
  const io::Sampler sampler(3, 9, io::Shuffle::kYes);
  std::map<std::vector<std::int64_t>, int> counts;
  for (int epoch = 0; epoch < 6000; ++epoch) ++counts[sampler.indices(epoch)];
  ASSERT_EQ(counts.size(), 6u);
  for (const auto& [order, count] : counts) {
    EXPECT_GT(count, 850) << order[0] << order[1] << order[2];
    EXPECT_LT(count, 1150) << order[0] << order[1] << order[2];
  }
}

TEST(SamplerTest, PaddedShardsAreEqualAndCoverEverything) {
  for (const std::int64_t size : {1, 2, 3, 7, 10, 100, 101}) {
    for (std::int64_t world = 1; world <= 4; ++world) {
      const std::vector<std::int64_t> order = io::Sampler(size, 5, io::Shuffle::kYes).permutation(2);
      const std::int64_t per_rank = (size + world - 1) / world;
      std::map<std::int64_t, int> seen;
      for (std::int64_t rank = 0; rank < world; ++rank) {
        const io::Sampler sampler(size, 5, io::Shuffle::kYes, rank, world, io::Pad::kYes);
        const std::vector<std::int64_t> shard = sampler.indices(2);
        ASSERT_EQ(static_cast<std::int64_t>(shard.size()), per_rank) << "size " << size << " world " << world;
        EXPECT_EQ(sampler.shard_size(), per_rank);
        for (std::int64_t k = 0; k < per_rank; ++k) {
          // Position rank + k * world of the permutation wrapped around to its start.
          EXPECT_EQ(shard[static_cast<std::size_t>(k)],
                    order[static_cast<std::size_t>((rank + k * world) % size)]);
          ++seen[shard[static_cast<std::size_t>(k)]];
        }
      }
      EXPECT_EQ(static_cast<std::int64_t>(seen.size()), size) << "every sample is seen";
      // Padded position p holds permutation entry p % size, so entry i appears once per p = i, i + size, ...
      // below per_rank * world (twice for the first few entries; more often when world > size).
      const std::int64_t total = per_rank * world;
      for (std::int64_t i = 0; i < size; ++i) {
        EXPECT_EQ(seen[order[static_cast<std::size_t>(i)]], (total - i + size - 1) / size)
            << "size " << size << " world " << world;
      }
      EXPECT_LT(total - size, world) << "at most world - 1 repeats";
    }
  }
}

TEST(SamplerTest, UnpaddedShardsAreDisjointAndExact) {
  for (const io::Shuffle shuffle : {io::Shuffle::kNo, io::Shuffle::kYes}) {
    for (const std::int64_t size : {1, 2, 3, 7, 10, 100, 101}) {
      for (std::int64_t world = 1; world <= 4; ++world) {
        std::vector<std::int64_t> all;
        std::int64_t smallest = size, largest = 0;
        for (std::int64_t rank = 0; rank < world; ++rank) {
          const io::Sampler sampler(size, 5, shuffle, rank, world, io::Pad::kNo);
          const std::vector<std::int64_t> shard = sampler.indices(4);
          EXPECT_EQ(static_cast<std::int64_t>(shard.size()), sampler.shard_size());
          if (shuffle == io::Shuffle::kNo) {
            for (std::size_t k = 0; k < shard.size(); ++k)
              EXPECT_EQ(shard[k], rank + static_cast<std::int64_t>(k) * world);
          }
          smallest = std::min<std::int64_t>(smallest, static_cast<std::int64_t>(shard.size()));
          largest = std::max<std::int64_t>(largest, static_cast<std::int64_t>(shard.size()));
          all.insert(all.end(), shard.begin(), shard.end());
        }
        EXPECT_EQ(sorted(all), iota_vector(size)) << "size " << size << " world " << world;
        EXPECT_LE(largest - smallest, 1);
      }
    }
  }
}

TEST(SamplerTest, RejectsBadArguments) {
  EXPECT_THROW(io::Sampler(10, 0, io::Shuffle::kYes, 2, 2), ValueError);
  EXPECT_THROW(io::Sampler(10, 0, io::Shuffle::kYes, -1, 2), ValueError);
  EXPECT_THROW(io::Sampler(10, 0, io::Shuffle::kYes, 0, 0), ValueError);
  EXPECT_THROW(io::Sampler(-1, 0, io::Shuffle::kYes), ValueError);
  EXPECT_THROW(io::Sampler(10, 0, io::Shuffle::kYes).indices(-1), ValueError);
}

TEST(PhiloxStreamTest, BoundedDrawsStayInRangeAndHitEveryValue) {
  io::PhiloxStream stream(3, 0);
  EXPECT_EQ(stream.below(1), 0u);
  std::vector<int> hits(7, 0);
  for (int i = 0; i < 7000; ++i) {
    const std::uint64_t v = stream.below(7);
    ASSERT_LT(v, 7u);
    ++hits[v];
  }
  for (const int h : hits) EXPECT_GT(h, 800);
  // A bound just above 2^63 rejects almost half of the draws; values stay below it.
  const std::uint64_t big = (1ull << 63) + 12345;
  for (int i = 0; i < 100; ++i) EXPECT_LT(stream.below(big), big);
}

// (pixel / 255 - mean) / std, in double, rounded to float once.
float normalised(int pixel, double mean, double std) {
  return static_cast<float>((pixel / 255.0 - mean) / std);
}

TEST(AugmenterTest, NormalisesEachChannelByHand) {
  // Two channels of 2x2: channel 0 with mean 0.5, std 0.25; channel 1 with mean 0.2, std 0.5.
  const std::vector<std::uint8_t> image = {0, 51, 255, 102, /*channel 1*/ 51, 0, 255, 204};
  const io::Augmenter augmenter({.mean = {0.5, 0.2}, .std = {0.25, 0.5}}, 2, 2, 2, {}, {}, 0);
  std::vector<float> out(8);
  augmenter.apply(image.data(), 0, 0, out.data());
  // 51/255 = 0.2, 102/255 = 0.4, 204/255 = 0.8.
  const std::vector<float> want = {-2.0f, -1.2f, 2.0f, -0.4f, 0.0f, -0.4f, 1.6f, 1.2f};
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(out[i], want[i], 1e-6) << i;
}

TEST(AugmenterTest, DefaultsToTheDataSetStatisticsAndBroadcastsOneValue) {
  const std::vector<std::uint8_t> image = {0, 255, 51, 102};
  std::vector<float> out(4);
  io::Augmenter({}, 1, 2, 2, {0.5}, {0.5}, 0).apply(image.data(), 0, 0, out.data());
  EXPECT_EQ(out, (std::vector<float>{-1.0f, 1.0f, normalised(51, 0.5, 0.5), normalised(102, 0.5, 0.5)}));
  // One given value applies to all three channels.
  const std::vector<std::uint8_t> rgb = {255, 0, 51};
  std::vector<float> out3(3);
  io::Augmenter({.mean = {0.0}, .std = {0.2}}, 3, 1, 1, {0.1, 0.1, 0.1}, {1, 1, 1}, 0)
      .apply(rgb.data(), 0, 0, out3.data());
  EXPECT_EQ(out3, (std::vector<float>{5.0f, 0.0f, normalised(51, 0.0, 0.2)}));
}

TEST(AugmenterTest, PadToCentresTheImage) {
  // 2x2 -> 4x4: the image sits in rows 1-2, columns 1-2; padding is pixel 0, i.e. -mean/std = -1.
  const std::vector<std::uint8_t> image = {255, 0, 0, 255};
  const io::Augmenter augmenter({.pad_to = 4, .mean = {0.5}, .std = {0.5}}, 1, 2, 2, {}, {}, 0);
  ASSERT_EQ(augmenter.out_height(), 4);
  ASSERT_EQ(augmenter.out_width(), 4);
  std::vector<float> out(16);
  augmenter.apply(image.data(), 0, 0, out.data());
  const std::vector<float> want = {-1, -1, -1, -1,  //
                                   -1, 1,  -1, -1,  //
                                   -1, -1, 1,  -1,  //
                                   -1, -1, -1, -1};
  EXPECT_EQ(out, want);
  // 3x2 -> 4x4: an odd margin puts the extra row / columns after the image (offsets floor((4-3)/2) = 0, 1).
  const std::vector<std::uint8_t> tall = {255, 255, 255, 255, 255, 255};
  std::vector<float> out2(16);
  io::Augmenter({.pad_to = 4, .mean = {0.5}, .std = {0.5}}, 1, 3, 2, {}, {}, 0)
      .apply(tall.data(), 0, 0, out2.data());
  const std::vector<float> want2 = {-1, 1,  1,  -1,  //
                                    -1, 1,  1,  -1,  //
                                    -1, 1,  1,  -1,  //
                                    -1, -1, -1, -1};
  EXPECT_EQ(out2, want2);
}

// Pixel value of a 3x3 test image with distinct values 10..90 (row-major), or 0 outside it.
int pixel_at(std::int64_t y, std::int64_t x) {
  return (y < 0 || y > 2 || x < 0 || x > 2) ? 0 : 10 * (1 + 3 * y + x);
}

TEST(AugmenterTest, CropWithPaddingShiftsAndFillsZeros) {
  std::vector<std::uint8_t> image(9);
  for (int i = 0; i < 9; ++i) image[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(10 * (i + 1));
  // Identity normalisation up to scale: mean 0, std 1/255 maps pixel p to p exactly.
  const io::Augmenter augmenter({.crop_padding = 1, .mean = {0.0}, .std = {1.0 / 255}}, 1, 3, 3, {}, {}, 11);
  std::set<std::pair<int, int>> shifts;
  for (std::int64_t sample = 0; sample < 200; ++sample) {
    std::vector<float> out(9);
    augmenter.apply(image.data(), 0, sample, out.data());
    // The output must be the image shifted by some (sy, sx) in [-1, 1]^2, zero where it leaves the image.
    int matched = 0;
    for (int sy = -1; sy <= 1; ++sy) {
      for (int sx = -1; sx <= 1; ++sx) {
        bool same = true;
        for (int y = 0; y < 3; ++y) {
          for (int x = 0; x < 3; ++x)
            same = same && std::lround(out[static_cast<std::size_t>(3 * y + x)]) == pixel_at(y + sy, x + sx);
        }
        if (same) {
          shifts.insert({sy, sx});
          ++matched;
        }
      }
    }
    EXPECT_EQ(matched, 1) << "sample " << sample;
  }
  EXPECT_EQ(shifts.size(), 9u) << "all nine crop positions occur";
}

TEST(AugmenterTest, FlipMirrorsAboutHalfTheSamples) {
  const std::vector<std::uint8_t> image = {1, 2, 3, 4, 5, 6};  // 2x3
  const io::Augmenter augmenter({.flip = io::Flip::kHorizontal, .mean = {0.0}, .std = {1.0 / 255}}, 1, 2, 3,
                                {}, {}, 4);
  const std::vector<float> plain = {1, 2, 3, 4, 5, 6}, mirrored = {3, 2, 1, 6, 5, 4};
  int flipped = 0;
  for (std::int64_t sample = 0; sample < 400; ++sample) {
    std::vector<float> out(6);
    augmenter.apply(image.data(), 7, sample, out.data());
    for (float& v : out) v = static_cast<float>(std::lround(v));
    ASSERT_TRUE(out == plain || out == mirrored) << "sample " << sample;
    flipped += out == mirrored;
  }
  EXPECT_GT(flipped, 150);
  EXPECT_LT(flipped, 250);
}

TEST(AugmenterTest, FlipAndCropWithPadToCombine) {
  // 1x2 image [a b] padded to 2x2 (row 0 = padding since floor((2-1)/2) = 0 puts the image in row 0).
  const std::vector<std::uint8_t> image = {7, 9};
  const io::Augmenter augmenter(
      {.pad_to = 2, .crop_padding = 1, .flip = io::Flip::kHorizontal, .mean = {0.0}, .std = {1.0 / 255}}, 1,
      1, 2, {}, {}, 1);
  std::set<std::vector<int>> outputs;
  for (std::int64_t sample = 0; sample < 400; ++sample) {
    std::vector<float> out(4);
    augmenter.apply(image.data(), 0, sample, out.data());
    std::vector<int> rounded;
    for (const float v : out) rounded.push_back(static_cast<int>(std::lround(v)));
    outputs.insert(rounded);
  }
  // Every output is a crop of the zero-padded 4x4 canvas [[0,0,0,0],[0,7,9,0],[0,0,0,0],[0,0,0,0]] at an
  // offset in [0,2]^2, possibly mirrored: enumerate them independently.
  const int canvas[4][4] = {{0, 0, 0, 0}, {0, 7, 9, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}};
  std::set<std::vector<int>> possible;
  for (int dy = 0; dy <= 2; ++dy) {
    for (int dx = 0; dx <= 2; ++dx) {
      for (const bool mirror : {false, true}) {
        std::vector<int> crop;
        for (int y = 0; y < 2; ++y) {
          for (int x = 0; x < 2; ++x) crop.push_back(canvas[dy + y][dx + (mirror ? 1 - x : x)]);
        }
        possible.insert(crop);
      }
    }
  }
  EXPECT_EQ(outputs, possible);
}

TEST(AugmenterTest, RandomnessDependsOnlyOnSeedEpochAndSample) {
  std::vector<std::uint8_t> image(64);
  for (std::size_t i = 0; i < image.size(); ++i) image[i] = static_cast<std::uint8_t>(3 * i + 1);
  const io::Augmentation options{
      .crop_padding = 2, .flip = io::Flip::kHorizontal, .mean = {0.1}, .std = {0.3}};
  const io::Augmenter a(options, 1, 8, 8, {}, {}, 5), b(options, 1, 8, 8, {}, {}, 5),
      other_seed(options, 1, 8, 8, {}, {}, 6);
  int epoch_differs = 0, seed_differs = 0;
  for (std::int64_t sample = 0; sample < 20; ++sample) {
    std::vector<float> x(64), y(64), z(64), w(64);
    a.apply(image.data(), 3, sample, x.data());
    b.apply(image.data(), 3, sample, y.data());
    EXPECT_EQ(x, y) << "sample " << sample;
    a.apply(image.data(), 4, sample, z.data());
    other_seed.apply(image.data(), 3, sample, w.data());
    epoch_differs += z != x;
    seed_differs += w != x;
  }
  EXPECT_GE(epoch_differs, 15);
  EXPECT_GE(seed_differs, 15);
}

TEST(AugmenterTest, RejectsBadOptions) {
  const auto make = [](const io::Augmentation& options, const std::vector<double>& mean,
                       const std::vector<double>& std) {
    return io::Augmenter(options, 3, 28, 28, mean, std, 0);
  };
  const std::vector<double> three = {0.5, 0.5, 0.5};
  try {
    make({.pad_to = 27}, three, three);
    ADD_FAILURE() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("pad_to"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make({.crop_padding = -1}, three, three), ValueError);
  EXPECT_THROW(make({}, {}, {}), ValueError);  // no statistics anywhere
  EXPECT_THROW(make({.mean = {0.5, 0.5}, .std = {0.5, 0.5}}, three, three),
               ValueError);                                       // 2 values, 3 channels
  EXPECT_THROW(make({.mean = {0.5}}, three, three), ValueError);  // mean without std
  EXPECT_THROW(make({.mean = {0.5}, .std = {0.0}}, three, three), ValueError);
  EXPECT_NO_THROW(make({.pad_to = 28}, three, three));
}

}  // namespace
}  // namespace lockstep
