// Reader of an image folder: lists the class directories and their PNG files, decodes the files in
// parallel, checks that they share one shape, and stacks them into one image tensor.
#include "io/data/image_folder.h"

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <system_error>

#include "io/image/png.h"
#include "src/core/error.h"
#include "src/tensor/factories.h"

namespace lockstep::io {
namespace {

bool hidden(const std::filesystem::path& p) { return p.filename().string().starts_with('.'); }

bool is_png(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".png";
}

// XXH64 over the name, a NUL, the 8-byte little-endian size and the bytes of each file, in order.
std::string hash_files(const std::vector<std::filesystem::path>& files) {
  std::unique_ptr<XXH64_state_t, XXH_errorcode (*)(XXH64_state_t*)> state(XXH64_createState(),
                                                                          &XXH64_freeState);
  XXH64_reset(state.get(), 0);
  std::vector<unsigned char> buffer(1 << 16);
  for (const std::filesystem::path& file : files) {
    const std::string name = file.filename().string();
    XXH64_update(state.get(), name.c_str(), name.size() + 1);
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> handle(std::fopen(file.c_str(), "rb"), &std::fclose);
    if (!handle) {
      throw IoError(str_cat("read_image_folder: expected a readable file, but opening '", file.string(),
                            "' failed: ", std::strerror(errno)),
                    file.string());
    }
    std::error_code ec;
    const std::uint64_t size = std::filesystem::file_size(file, ec);
    std::array<unsigned char, 8> size_bytes{};
    for (std::size_t i = 0; i < 8; ++i) size_bytes[i] = static_cast<unsigned char>(size >> (8 * i));
    XXH64_update(state.get(), size_bytes.data(), size_bytes.size());
    for (;;) {
      const std::size_t got = std::fread(buffer.data(), 1, buffer.size(), handle.get());
      XXH64_update(state.get(), buffer.data(), got);
      if (got < buffer.size()) break;
    }
  }
  std::array<char, 17> hex{};
  std::snprintf(hex.data(), hex.size(), "%016llx",
                static_cast<unsigned long long>(XXH64_digest(state.get())));
  return hex.data();
}

}  // namespace

std::vector<std::string> image_folder_classes(const std::filesystem::path& dir) {
  if (!std::filesystem::is_directory(dir)) {
    throw IoError(str_cat("read_image_folder: expected a directory of class folders, but '", dir.string(),
                          "' is not a directory"),
                  dir.string());
  }
  std::vector<std::string> classes;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.is_directory() && !hidden(entry.path())) classes.push_back(entry.path().filename().string());
  }
  if (classes.empty()) {
    throw IoError(str_cat("read_image_folder: expected one subdirectory per class in '", dir.string(),
                          "', but it has none"),
                  dir.string());
  }
  std::sort(classes.begin(), classes.end());
  return classes;
}

ImageSet read_image_folder(const std::filesystem::path& dir) {
  const std::vector<std::string> classes = image_folder_classes(dir);
  std::vector<std::filesystem::path> files;
  std::vector<std::int64_t> labels;
  ImageSet set;
  std::vector<std::vector<std::filesystem::path>> class_files(classes.size());
  for (std::size_t c = 0; c < classes.size(); ++c) {
    const std::filesystem::path class_dir = dir / classes[c];
    for (const auto& entry : std::filesystem::directory_iterator(class_dir)) {
      if (entry.is_regular_file() && !hidden(entry.path()) && is_png(entry.path()))
        class_files[c].push_back(entry.path());
    }
    if (class_files[c].empty()) {
      throw IoError(str_cat("read_image_folder: expected PNG files in class directory '", class_dir.string(),
                            "', but it has none"),
                    class_dir.string());
    }
    std::sort(class_files[c].begin(), class_files[c].end());
    files.insert(files.end(), class_files[c].begin(), class_files[c].end());
    labels.insert(labels.end(), class_files[c].size(), static_cast<std::int64_t>(c));
    set.source_files.push_back(std::filesystem::absolute(class_dir).lexically_normal().string());
  }

  const auto n = static_cast<std::int64_t>(files.size());
  std::vector<Tensor> decoded(files.size());
  std::vector<std::exception_ptr> errors(files.size());
#pragma omp parallel for schedule(dynamic, 16)
  for (std::int64_t i = 0; i < n; ++i) {
    try {
      decoded[static_cast<std::size_t>(i)] = read_png(files[static_cast<std::size_t>(i)]);
    } catch (...) {
      errors[static_cast<std::size_t>(i)] = std::current_exception();
    }
  }
  for (const std::exception_ptr& error : errors) {
    if (error) std::rethrow_exception(error);
  }
  const Shape& shape = decoded.front().shape();
  for (std::size_t i = 1; i < decoded.size(); ++i) {
    if (decoded[i].shape() != shape) {
      const Shape& odd = decoded[i].shape();
      throw IoError(str_cat("read_image_folder: expected every image to have ", shape[0], " channel(s) of ",
                            shape[1], "x", shape[2], " pixels like '", files.front().string(), "', but '",
                            files[i].string(), "' has ", odd[0], " channel(s) of ", odd[1], "x", odd[2],
                            ". Resize or convert the images to one size and color type first."),
                    files[i].string());
    }
  }

  const std::int64_t image_bytes = numel_of(shape);
  set.images = empty({n, shape[0], shape[1], shape[2]}, DType::u8);
  std::uint8_t* out = set.images.data<std::uint8_t>();
#pragma omp parallel for if (n * image_bytes > (1 << 22))
  for (std::int64_t i = 0; i < n; ++i) {
    std::memcpy(out + i * image_bytes, decoded[static_cast<std::size_t>(i)].data<std::uint8_t>(),
                static_cast<std::size_t>(image_bytes));
  }
  set.labels = from_vector(labels, {n}, DType::i64);
  set.source_xxh64.resize(classes.size());
  for (std::size_t c = 0; c < classes.size(); ++c) set.source_xxh64[c] = hash_files(class_files[c]);
  return set;
}

}  // namespace lockstep::io
