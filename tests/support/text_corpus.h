// A small deterministic English-like text corpus for the character-model tests: a folder of files of
// sentences drawn from a fixed word list (fortune-style "%" lines between them), and that folder converted to
// a text data set once per test binary.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

namespace lockstep::test {

// Writes `files` files "text_00", "text_01", ... of about `chars` characters each into `dir` (created) from
// `seed`; returns their contents by name.
std::map<std::string, std::string> write_text_folder(const std::filesystem::path& dir, int files, int chars,
                                                     std::uint64_t seed);

// 6 files of about 6000 characters converted with test_every = 3 (text_02 and text_05 are the test split),
// made on first call in a temporary folder removed when the binary exits.
std::filesystem::path small_text_h5();

}  // namespace lockstep::test
