// Text data sets: the folder converter round trip (whole files to train or test, the vocabulary), its errors
// for bad input, the add-one bigram baseline against an independent computation, and the truncated-BPTT
// streams (N ranks of B streams are the rows of one process of N B; consecutive chunks continue each stream).
#include "io/data/text.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <map>
#include <set>

#include "io/data/token_streams.h"
#include "tests/support/expect_error.h"
#include "tests/support/temp_dir.h"
#include "tests/support/text_corpus.h"

namespace lockstep::test {
namespace {

namespace fs = std::filesystem;

std::u32string decoded(const io::TextDataset& set) {
  std::u32string text;
  for (const std::uint8_t t : set.tokens()) text.push_back(set.vocabulary()[t]);
  return text;
}

std::u32string u32(const std::string& utf8) {
  return io::decode_utf8({reinterpret_cast<const std::uint8_t*>(utf8.data()), utf8.size()}, "test");
}

TEST(TextConvert, RoundTripsWholeFilesIntoTrainAndTest) {
  TempDir dir;
  std::map<std::string, std::string> texts = write_text_folder(dir / "in", 5, 300, 3);
  // Non-ASCII characters, a file the pattern excludes and a symbolic link (an alias) that are not read.
  std::ofstream(dir / "in" / "text_01", std::ios::app) << "Caf\xc3\xa9 \xe2\x82\xac 5.\n";
  texts["text_01"] += "Caf\xc3\xa9 \xe2\x82\xac 5.\n";
  std::ofstream(dir / "in" / "index.dat") << std::string("\0\1\2", 3);
  fs::create_symlink(dir / "in" / "text_00", dir / "in" / "text_00.u8");
  const io::TextConvertResult result = io::convert_text(
      {.input = dir / "in", .output = dir / "out.h5", .test_every = 2, .exclude = {"*.dat"}});
  // Files 1 and 3 of the name order go to test.
  EXPECT_EQ(result.train_files, (std::vector<std::string>{"text_00", "text_02", "text_04"}));
  EXPECT_EQ(result.test_files, (std::vector<std::string>{"text_01", "text_03"}));
  const auto train = io::TextDataset::open(dir / "out.h5", "train");
  const auto test = io::TextDataset::open(dir / "out.h5", "test");
  EXPECT_EQ(decoded(*train), u32(texts["text_00"] + texts["text_02"] + texts["text_04"]));
  EXPECT_EQ(decoded(*test), u32(texts["text_01"] + texts["text_03"]));
  EXPECT_EQ(train->files(), result.train_files);
  // The vocabulary: every character of both splits, ascending.
  std::set<char32_t> all;
  for (const auto& [name, text] : texts)
    for (const char32_t c : u32(text)) all.insert(c);
  EXPECT_EQ(train->vocabulary(), std::u32string(all.begin(), all.end()));
  EXPECT_EQ(result.vocabulary, static_cast<std::int64_t>(all.size()));
  EXPECT_TRUE(io::is_text_dataset(dir / "out.h5"));
  EXPECT_EQ(io::encode_utf8(train->vocabulary()).find("\xe2\x82\xac") != std::string::npos, true);
}

TEST(TextConvert, BadInputIsAnErrorNamingTheFile) {
  const auto convert_with = [](const fs::path& dir, const std::string& name, const std::string& bytes) {
    write_text_folder(dir, 3, 100, 1);
    std::ofstream(dir / name, std::ios::binary) << bytes;
    return [dir] { io::convert_text({.input = dir, .output = dir / "out.h5", .test_every = 2}); };
  };
  TempDir d1, d2, d3, d4, d5;
  expect_error<IoError>(convert_with(d1.path(), "empty", ""), {"empty", "the file is empty"});
  expect_error<IoError>(convert_with(d2.path(), "binary", std::string("ab\0cd", 5)),
                        {"binary", "byte 2 is NUL", "binary file"});
  expect_error<IoError>(convert_with(d3.path(), "latin1", "caf\xe9 au lait"),
                        {"latin1", "byte 3 starts a UTF-8 sequence that byte 4 does not continue"});
  std::string many;  // 300 distinct characters: more than the 256 token ids
  for (char32_t c = 0x100; c < 0x100 + 300; ++c) many += io::encode_utf8(std::u32string(1, c));
  expect_error<IoError>(convert_with(d4.path(), "many", many), {"many", "at most 256 distinct characters"});
  expect_error<IoError>(
      [&] { io::convert_text({.input = d5.path(), .output = d5 / "out.h5", .test_every = 2}); },
      {"at least 2 text files", "found 0"});
  EXPECT_FALSE(fs::exists(d4 / "out.h5"));
  EXPECT_FALSE(fs::exists(d4 / "out.h5.tmp"));
}

TEST(TextConvert, PromptCharactersOutsideTheVocabularyAreNamed) {
  const std::u32string vocabulary = U" Tabeh";
  EXPECT_EQ(io::encode_tokens(U"The", vocabulary, "--prompt"), (std::vector<std::int64_t>{1, 5, 4}));
  expect_error<ValueError>([&] { io::encode_tokens(U"The z", vocabulary, "--prompt"); },
                           {"--prompt", "character 4 ('z', U+7a)"});
}

// The bigram model computed independently: counts in a map, probabilities summed in log2 term by term.
double reference_bigram_bits(const std::vector<std::uint8_t>& train, const std::vector<std::uint8_t>& test,
                             int v) {
  std::map<std::pair<int, int>, int> pairs;
  std::map<int, int> firsts;
  for (std::size_t i = 0; i + 1 < train.size(); ++i) {
    ++pairs[{train[i], train[i + 1]}];
    ++firsts[train[i]];
  }
  long double bits = 0;
  for (std::size_t i = 0; i + 1 < test.size(); ++i) {
    const int a = test[i], b = test[i + 1];
    const auto pair = pairs.find({a, b});
    const auto first = firsts.find(a);
    const long double p = ((pair == pairs.end() ? 0 : pair->second) + 1.0L) /
                          ((first == firsts.end() ? 0 : first->second) + static_cast<long double>(v));
    bits -= std::log2(p);
  }
  return static_cast<double>(bits / static_cast<long double>(test.size() - 1));
}

TEST(TextBigram, MatchesAnIndependentComputation) {
  // By hand: train "abab" has pairs ab, ba, ab; p(b | a) = (2 + 1) / (2 + 2) over a vocabulary of 2.
  EXPECT_NEAR(
      io::bigram_bits_per_char(std::vector<std::uint8_t>{0, 1, 0, 1}, std::vector<std::uint8_t>{0, 1}, 2),
      -std::log2(0.75), 1e-12);
  const auto train = io::TextDataset::open(small_text_h5(), "train");
  const auto test = io::TextDataset::open(small_text_h5(), "test");
  const int v = static_cast<int>(train->vocabulary().size());
  const double bits = io::bigram_bits_per_char(train->tokens(), test->tokens(), v);
  EXPECT_NEAR(bits, reference_bigram_bits(train->tokens(), test->tokens(), v), 1e-9);
  // Far below a uniform guess over the vocabulary, as English-like text should be.
  EXPECT_LT(bits, 0.8 * std::log2(v));
  expect_error<ValueError>(
      [&] {
        io::bigram_bits_per_char(train->tokens(), std::vector<std::uint8_t>{0, 200}, v);
      },
      {"tokens below"});
}

TEST(TokenStreams, RanksTakeTheRowsOfOneProcessAndChunksContinueTheirStreams) {
  const auto train = io::TextDataset::open(small_text_h5(), "train");
  const std::int64_t steps = 7, per_rank = 2, world = 3;
  io::TokenStreams one(train, {.batch_size = per_rank * world, .steps = steps, .seed = 4});
  ASSERT_GT(one.batches_per_epoch(), 2);
  for (std::int64_t epoch : {0, 1}) {
    one.start_epoch(epoch, 0);
    std::vector<io::TokenStreams> ranks;
    for (std::int64_t r = 0; r < world; ++r) {
      ranks.emplace_back(
          train,
          io::StreamOptions{.batch_size = per_rank, .steps = steps, .seed = 4, .rank = r, .world = world});
      ranks.back().start_epoch(epoch, 0);
      EXPECT_EQ(ranks.back().batches_per_epoch(), one.batches_per_epoch());
    }
    const std::int64_t offset = one.offset(epoch);
    EXPECT_GE(offset, 0);
    EXPECT_LT(offset, steps);
    std::vector<std::int64_t> previous_last;
    for (std::int64_t k = 0; k < one.batches_per_epoch(); ++k) {
      const io::Batch all = *one.next();
      ASSERT_EQ(all.tokens.shape(), (Shape{per_rank * world, steps + 1}));
      const std::vector<std::int64_t> rows = all.tokens.to_vector<std::int64_t>();
      for (std::int64_t r = 0; r < world; ++r) {
        const std::vector<std::int64_t> mine = ranks[r].next()->tokens.to_vector<std::int64_t>();
        EXPECT_EQ(mine, std::vector<std::int64_t>(rows.begin() + r * per_rank * (steps + 1),
                                                  rows.begin() + (r + 1) * per_rank * (steps + 1)));
      }
      for (std::int64_t b = 0; b < per_rank * world; ++b) {
        // The row is the text at its index; the next chunk starts where this one's inputs end.
        EXPECT_EQ(all.indices[b], offset + b * one.stream_length() + k * steps);
        for (std::int64_t t = 0; t <= steps; ++t) {
          EXPECT_EQ(rows[b * (steps + 1) + t], train->tokens()[all.indices[b] + t]);
        }
        if (!previous_last.empty()) {
          EXPECT_EQ(rows[b * (steps + 1)], previous_last[b]);
        }
      }
      previous_last.clear();
      for (std::int64_t b = 0; b < per_rank * world; ++b)
        previous_last.push_back(rows[b * (steps + 1) + steps]);
    }
    EXPECT_FALSE(one.next().has_value());
  }
  EXPECT_NE(one.offset(0) * 1000 + one.offset(1) * 100 + one.offset(2) * 10 + one.offset(3), 0);
}

}  // namespace
}  // namespace lockstep::test
