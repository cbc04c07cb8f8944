// Text data sets for character-level models: the HDF5 layout (/<split>/tokens u8 [T], the vocabulary of
// Unicode code points as a root attribute), its writer from a folder of UTF-8 text files (whole files go to
// the training or the test split), its reader, UTF-8 decoding and encoding, and the add-one-smoothed bigram
// baseline a character model is measured against.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lockstep::io {

// The layout, version 1:
//   / attributes  kind = "text", format_version = 1, vocabulary (i64 code points, ascending: token id i is
//                 vocabulary[i]), source (the folder converted)
//   /<split>/tokens  u8 [T]: the split's files decoded and concatenated in name order, one token per code
//                 point; attributes xxh64 (of the T bytes), files (names), file_tokens (i64 tokens per file),
//                 source_xxh64 (each file's bytes)
inline constexpr std::int64_t kTextFormatVersion = 1;
inline constexpr const char* kTextKind = "text";
// Token ids are stored as u8: at most 256 distinct characters.
inline constexpr std::int64_t kMaxVocabulary = 256;

// Decodes UTF-8 `bytes` into code points. IoError naming `file` and the byte offset for a NUL byte (a binary
// file), an invalid or overlong sequence, a surrogate or a truncated sequence at the end.
std::u32string decode_utf8(std::span<const std::uint8_t> bytes, const std::filesystem::path& file);
// Encodes code points as UTF-8 (code points are valid: they come from decode_utf8 or a vocabulary).
std::string encode_utf8(std::u32string_view text);

// `lockstep convert --format text`: every regular file directly in `input` (not in subfolders; symbolic
// links are skipped, so aliases such as fortune's *.u8 are not read twice; names matching a pattern of
// `exclude`, fnmatch syntax, e.g. "*.dat", are skipped), in name order. The files at positions test_every -
// 1, 2 test_every - 1, ... of that order form the test split, the rest the training split. The vocabulary is
// every character of both splits.
struct TextConvertOptions {
  std::filesystem::path input;
  std::filesystem::path output;
  std::int64_t test_every = 10;
  std::vector<std::string> exclude = {};
};

// What convert_text wrote.
struct TextConvertResult {
  std::vector<std::string> train_files, test_files;  // file names, in order
  std::int64_t train_tokens = 0, test_tokens = 0;
  std::int64_t vocabulary = 0;
};

// Reads the folder and writes the data-set file (through `<output>.tmp`, renamed when complete). IoError
// naming the file for a folder that is missing or holds fewer than test_every files to read, an empty file,
// a binary or non-UTF-8 file, or more than kMaxVocabulary distinct characters; ValueError for test_every < 2.
TextConvertResult convert_text(const TextConvertOptions& options);

// Whether the HDF5 file at `path` is a text data set (root attribute kind = "text"). IoError when it cannot
// be opened as HDF5.
bool is_text_dataset(const std::filesystem::path& path);

// One split of a text data-set file, read whole. Immutable after open: thread-safe.
class TextDataset {
 public:
  // IoError naming file and object when the file is not a text data set of a known version, the split or
  // its tokens are missing, the tokens differ from their checksum or hold an id outside the vocabulary.
  static std::shared_ptr<TextDataset> open(const std::filesystem::path& path, const std::string& split);

  std::int64_t size() const { return static_cast<std::int64_t>(tokens_.size()); }
  const std::vector<std::uint8_t>& tokens() const { return tokens_; }
  const std::u32string& vocabulary() const { return vocabulary_; }
  const std::vector<std::string>& files() const { return files_; }
  const std::filesystem::path& path() const { return path_; }
  const std::string& split() const { return split_; }

 private:
  std::filesystem::path path_;
  std::string split_;
  std::vector<std::uint8_t> tokens_;
  std::u32string vocabulary_;
  std::vector<std::string> files_;
};

// The token ids of `text` under `vocabulary` (ascending code points). ValueError naming the character, its
// position and `what` ("--prompt") when a character is not in the vocabulary.
std::vector<std::int64_t> encode_tokens(std::u32string_view text, const std::u32string& vocabulary,
                                        std::string_view what);

// The add-one-smoothed bigram model of `train` over a vocabulary of `vocabulary` ids:
// p(b | a) = (count(a b) + 1) / (count(a .) + vocabulary), counts over the consecutive pairs of `train`.
// Returns its cross-entropy in bits per character on `test`, over the predictions of test[1..T-1] from
// their predecessors. ValueError when `test` has fewer than 2 tokens or a token is outside the vocabulary.
double bigram_bits_per_char(std::span<const std::uint8_t> train, std::span<const std::uint8_t> test,
                            std::int64_t vocabulary);

}  // namespace lockstep::io
