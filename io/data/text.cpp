// Text data sets: UTF-8 decoding, the folder-to-HDF5 converter, the reader and the bigram baseline.
#include "io/data/text.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <set>
#include <system_error>

#include "io/data/convert.h"
#include "io/data/dataset.h"
#include "io/h5/h5.h"
#include "src/core/error.h"
#include "src/core/strings.h"
#include "src/tensor/factories.h"

namespace lockstep::io {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void bad_text(const fs::path& file, std::size_t offset, const std::string& what) {
  throw IoError(str_cat("convert: expected UTF-8 text in ", in_quotes(file), ", but byte ", offset, " ", what,
                        ". Convert it to UTF-8 or exclude it (--exclude)."),
                file.string());
}

// The files convert_text reads, in name order.
std::vector<fs::path> text_files(const TextConvertOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(options.input, ec)) {
    throw IoError(str_cat("convert: expected a folder of text files, but ", in_quotes(options.input),
                          " is not a directory"),
                  options.input.string());
  }
  std::vector<fs::path> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(options.input)) {
    if (entry.is_symlink() || !entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    const bool excluded =
        std::any_of(options.exclude.begin(), options.exclude.end(),
                    [&](const std::string& p) { return ::fnmatch(p.c_str(), name.c_str(), 0) == 0; });
    if (!excluded) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}


struct Split {
  std::vector<std::string> names, hashes;
  std::vector<std::int64_t> lengths;
  std::u32string text;
};

}  // namespace

std::u32string decode_utf8(std::span<const std::uint8_t> bytes, const fs::path& file) {
  std::u32string out;
  out.reserve(bytes.size());
  std::size_t i = 0;
  while (i < bytes.size()) {
    const std::uint8_t b = bytes[i];
    if (b == 0) bad_text(file, i, "is NUL: it looks like a binary file");
    if (b < 0x80) {
      out.push_back(b);
      ++i;
      continue;
    }
    std::size_t length = 0;
    char32_t code = 0, least = 0;
    if ((b & 0xe0) == 0xc0) {
      length = 2, code = b & 0x1f, least = 0x80;
    } else if ((b & 0xf0) == 0xe0) {
      length = 3, code = b & 0x0f, least = 0x800;
    } else if ((b & 0xf8) == 0xf0) {
      length = 4, code = b & 0x07, least = 0x10000;
    } else {
      bad_text(file, i, str_cat("(0x", std::hex, int{b}, ") starts no UTF-8 sequence"));
    }
    if (i + length > bytes.size()) bad_text(file, i, "starts a sequence cut off by the end of the file");
    for (std::size_t k = 1; k < length; ++k) {
      if ((bytes[i + k] & 0xc0) != 0x80)
        bad_text(file, i, str_cat("starts a UTF-8 sequence that byte ", i + k, " does not continue"));
      code = (code << 6) | (bytes[i + k] & 0x3f);
    }
    if (code < least) bad_text(file, i, "starts an overlong UTF-8 sequence");
    if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
      bad_text(file, i, "starts a sequence of no Unicode character");
    out.push_back(code);
    i += length;
  }
  return out;
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  for (const char32_t c : text) {
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
      out.push_back(static_cast<char>(0xc0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
    } else if (c < 0x10000) {
      out.push_back(static_cast<char>(0xe0 | (c >> 12)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
    } else {
      out.push_back(static_cast<char>(0xf0 | (c >> 18)));
      out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
    }
  }
  return out;
}

TextConvertResult convert_text(const TextConvertOptions& options) {
  LOCKSTEP_CHECK(options.test_every >= 2, ValueError,
                 "convert_text: expected test_every >= 2 (every k-th file is a test file), but got ",
                 options.test_every);
  LOCKSTEP_CHECK(!options.output.empty(), ValueError, "convert_text: expected an output path, but got none");
  const std::vector<fs::path> files = text_files(options);
  if (static_cast<std::int64_t>(files.size()) < options.test_every) {
    throw IoError(str_cat("convert: expected at least ", options.test_every, " text files in ",
                          in_quotes(options.input), " (every ", options.test_every,
                          "th file is a test file), but found ", files.size(), ". Lower --test-every."),
                  options.input.string());
  }
  Split splits[2];  // train, test
  std::set<char32_t> characters;
  for (std::size_t i = 0; i < files.size(); ++i) {
    SourceFile source(files[i], "convert");
    const std::vector<std::uint8_t> bytes = source.read_to_end();
    if (bytes.empty()) {
      throw IoError(str_cat("convert: expected text in ", in_quotes(files[i]),
                            ", but the file is empty. Remove it ", "or exclude it (--exclude)."),
                    files[i].string());
    }
    const std::u32string text = decode_utf8(bytes, files[i]);
    characters.insert(text.begin(), text.end());
    if (static_cast<std::int64_t>(characters.size()) > kMaxVocabulary) {
      throw IoError(
          str_cat("convert: expected at most ", kMaxVocabulary, " distinct characters (tokens are stored ",
                  "as bytes), but with ", in_quotes(files[i]), " the files of ", in_quotes(options.input),
                  " hold ", characters.size(), ". Exclude the files of other scripts (--exclude)."),
          files[i].string());
    }
    Split& split = splits[(static_cast<std::int64_t>(i) + 1) % options.test_every == 0 ? 1 : 0];
    split.names.push_back(files[i].filename().string());
    split.hashes.push_back(bytes_xxh64(bytes));
    split.lengths.push_back(static_cast<std::int64_t>(text.size()));
    split.text += text;
  }
  const std::u32string vocabulary(characters.begin(), characters.end());
  std::vector<std::int64_t> code_points(vocabulary.begin(), vocabulary.end());

  const fs::path& out = options.output;
  const fs::path tmp = out.string() + ".tmp";
  std::error_code ec;
  if (out.has_parent_path()) fs::create_directories(out.parent_path(), ec);
  TextConvertResult result;
  result.vocabulary = static_cast<std::int64_t>(vocabulary.size());
  try {
    {
      h5::File file(tmp, h5::Access::kTruncate);
      const h5::Group root = file.root();
      root.set_attribute("kind", kTextKind);
      root.set_attribute("format_version", kTextFormatVersion);
      root.set_attribute("vocabulary", code_points);
      root.set_attribute("source", fs::absolute(options.input).lexically_normal().string());
      for (int s = 0; s < 2; ++s) {
        const Split& split = splits[s];
        std::vector<std::uint8_t> tokens(split.text.size());
        for (std::size_t t = 0; t < tokens.size(); ++t) {
          tokens[t] = static_cast<std::uint8_t>(
              std::lower_bound(vocabulary.begin(), vocabulary.end(), split.text[t]) - vocabulary.begin());
        }
        const h5::Group group = root.create_group(s == 0 ? "train" : "test");
        const h5::Dataset dataset = group.write_tensor(
            "tokens", from_vector(tokens, {static_cast<std::int64_t>(tokens.size())}, DType::u8));
        dataset.set_attribute(kArrayChecksumAttribute, bytes_xxh64(tokens));
        dataset.set_attribute("files", split.names);
        dataset.set_attribute("file_tokens", split.lengths);
        dataset.set_attribute("source_xxh64", split.hashes);
      }
      file.flush();
    }
    publish_file(tmp, out);
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
  result.train_files = splits[0].names;
  result.test_files = splits[1].names;
  result.train_tokens = static_cast<std::int64_t>(splits[0].text.size());
  result.test_tokens = static_cast<std::int64_t>(splits[1].text.size());
  return result;
}

bool is_text_dataset(const fs::path& path) {
  const h5::File file(path, h5::Access::kRead);
  const h5::Group root = file.root();
  return root.has_attribute("kind") && root.attribute_string("kind") == kTextKind;
}

std::shared_ptr<TextDataset> TextDataset::open(const fs::path& path, const std::string& split) {
  std::shared_ptr<TextDataset> set(new TextDataset());
  set->path_ = path;
  set->split_ = split;
  const h5::File file(path, h5::Access::kRead);
  const h5::Group root = file.root();
  if (!root.has_attribute("kind") || root.attribute_string("kind") != kTextKind) {
    throw IoError(
        str_cat("TextDataset: expected a text data set (root attribute kind = \"text\"), but ",
                in_quotes(path), " is not one. Convert text with `lockstep convert --format text`."),
        path.string(), "/");
  }
  const std::int64_t version = root.attribute_int("format_version");
  if (version != kTextFormatVersion) {
    throw IoError(str_cat("TextDataset: expected format_version ", kTextFormatVersion, " in ",
                          in_quotes(path), ", but got ", version),
                  path.string(), "/");
  }
  for (const std::int64_t c : root.attribute_ints("vocabulary")) {
    if (c < 0 || c > 0x10ffff || (!set->vocabulary_.empty() && c <= set->vocabulary_.back())) {
      throw IoError(str_cat("TextDataset: expected ascending Unicode code points in the vocabulary of ",
                            in_quotes(path), ", but found ", c),
                    path.string(), "/");
    }
    set->vocabulary_.push_back(static_cast<char32_t>(c));
  }
  const std::string object = str_cat("/", split, "/tokens");
  if (!root.contains(split + "/tokens")) {
    throw IoError(
        str_cat("TextDataset: expected the dataset ", object, " in ", in_quotes(path), ", but it is missing"),
        path.string(), object);
  }
  const h5::Dataset dataset = root.dataset(split + "/tokens");
  if (dataset.dtype() != DType::u8 || dataset.shape().size() != 1) {
    throw IoError(str_cat("TextDataset: expected u8 tokens [T] at ", object, " in ", in_quotes(path),
                          ", but got ", dtype_name(dataset.dtype()), " ", shape_str(dataset.shape())),
                  path.string(), object);
  }
  set->tokens_ = dataset.read().to_vector<std::uint8_t>();
  if (dataset.has_attribute(kArrayChecksumAttribute)) {
    const std::string expected = dataset.attribute_string(kArrayChecksumAttribute);
    const std::string actual = bytes_xxh64(set->tokens_);
    if (expected != actual) {
      throw IoError(str_cat("TextDataset: the tokens at ", object, " in ", in_quotes(path), " have checksum ",
                            actual, ", but the file records ", expected, ": the file is damaged"),
                    path.string(), object);
    }
  }
  if (dataset.has_attribute("files")) set->files_ = dataset.attribute_strings("files");
  const auto vocabulary = static_cast<std::int64_t>(set->vocabulary_.size());
  for (std::size_t t = 0; t < set->tokens_.size(); ++t) {
    if (set->tokens_[t] >= vocabulary) {
      throw IoError(str_cat("TextDataset: expected token ids below the vocabulary's ", vocabulary, " at ",
                            object, " in ", in_quotes(path), ", but token ", t, " is ", int{set->tokens_[t]}),
                    path.string(), object);
    }
  }
  return set;
}

std::vector<std::int64_t> encode_tokens(std::u32string_view text, const std::u32string& vocabulary,
                                        std::string_view what) {
  std::vector<std::int64_t> ids;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto it = std::lower_bound(vocabulary.begin(), vocabulary.end(), text[i]);
    if (it == vocabulary.end() || *it != text[i]) {
      throw ValueError(str_cat(what, ": expected characters of the model's vocabulary of ", vocabulary.size(),
                               ", but character ", i, " ('", encode_utf8(text.substr(i, 1)), "', U+",
                               std::hex, static_cast<std::uint32_t>(text[i]), std::dec,
                               ") never occurs in its text"));
    }
    ids.push_back(it - vocabulary.begin());
  }
  return ids;
}

double bigram_bits_per_char(std::span<const std::uint8_t> train, std::span<const std::uint8_t> test,
                            std::int64_t vocabulary) {
  LOCKSTEP_CHECK(test.size() >= 2, ValueError,
                 "bigram_bits_per_char: expected at least 2 test tokens, but got ", test.size());
  LOCKSTEP_CHECK(vocabulary >= 1 && vocabulary <= kMaxVocabulary, ValueError,
                 "bigram_bits_per_char: expected a vocabulary of 1 to ", kMaxVocabulary, ", but got ",
                 vocabulary);
  const auto v = static_cast<std::size_t>(vocabulary);
  std::vector<double> pairs(v * v, 0.0), firsts(v, 0.0);
  for (const std::span<const std::uint8_t> tokens : {train, test}) {
    for (const std::uint8_t t : tokens) {
      LOCKSTEP_CHECK(t < vocabulary, ValueError, "bigram_bits_per_char: expected tokens below ", vocabulary,
                     ", but got ", int{t});
    }
  }
  for (std::size_t i = 1; i < train.size(); ++i) {
    pairs[train[i - 1] * v + train[i]] += 1.0;
    firsts[train[i - 1]] += 1.0;
  }
  double nats = 0.0;
  for (std::size_t i = 1; i < test.size(); ++i) {
    const double p =
        (pairs[test[i - 1] * v + test[i]] + 1.0) / (firsts[test[i - 1]] + static_cast<double>(v));
    nats -= std::log(p);
  }
  return nats / static_cast<double>(test.size() - 1) / std::log(2.0);
}

}  // namespace lockstep::io
