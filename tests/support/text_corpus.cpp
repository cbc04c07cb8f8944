// The test text corpus: sentences from a fixed word list, written and converted once per binary.
#include "tests/support/text_corpus.h"

#include <cstdlib>
#include <fstream>
#include <memory>
#include <vector>

#include "io/data/text.h"
#include "tests/support/temp_dir.h"

namespace lockstep::test {

std::map<std::string, std::string> write_text_folder(const std::filesystem::path& dir, int files, int chars,
                                                     std::uint64_t seed) {
  static const std::vector<std::string> kWords = {
      "the",   "a",     "cat", "dog",   "sat",    "ran",    "on",   "under", "mat",   "house", "and",
      "then",  "slept", "ate", "fish",  "bread",  "little", "old",  "big",   "quiet", "was",   "is",
      "where", "every", "day", "night", "friend", "of",     "with", "green", "hill",  "river"};
  std::filesystem::create_directories(dir);
  std::map<std::string, std::string> texts;
  std::uint64_t state = seed * 6364136223846793005ULL + 1442695040888963407ULL;
  const auto next = [&](std::uint64_t n) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (state >> 33) % n;
  };
  for (int f = 0; f < files; ++f) {
    std::string text;
    while (static_cast<int>(text.size()) < chars) {
      const std::uint64_t words = 3 + next(6);
      for (std::uint64_t w = 0; w < words; ++w) {
        std::string word = kWords[next(kWords.size())];
        if (w == 0) word[0] = static_cast<char>(word[0] - 'a' + 'A');
        text += (w == 0 ? "" : " ") + word;
      }
      text += next(4) == 0 ? "!\n%\n" : ".\n";
    }
    const std::string name = "text_0" + std::to_string(f);
    std::ofstream(dir / name) << text;
    texts[name] = text;
  }
  return texts;
}

std::filesystem::path small_text_h5() {
  static const std::unique_ptr<TempDir> dir = [] {
    auto d = std::make_unique<TempDir>();
    write_text_folder(*d / "texts", 6, 6000, 11);
    io::convert_text({.input = *d / "texts", .output = *d / "text.h5", .test_every = 3});
    return d;
  }();
  return *dir / "text.h5";
}

}  // namespace lockstep::test
