// The once-per-binary conversion of Fashion-MNIST to HDF5 (see fashion_mnist.h).
#include "tests/support/fashion_mnist.h"

#include <unistd.h>

#include <cstdlib>
#include <utility>

#include "io/data/convert.h"
#include "io/h5/h5.h"
#include "src/core/error.h"

namespace lockstep::test {
namespace {

namespace fs = std::filesystem;

// Owns the temporary folder holding the converted file.
class ConvertedFashionMnist {
 public:
  ConvertedFashionMnist() : dir_(fs::temp_directory_path() / str_cat("lockstep_fashion_", ::getpid())) {
    fs::create_directories(dir_);
    const char* env = std::getenv("LOCKSTEP_FASHION_MNIST");
    io::ConvertOptions options;
    options.format = io::SourceFormat::kFashionMnist;
    options.input = env != nullptr ? env : "/usr/share/datasets/fashion-mnist";
    options.output = dir_ / "fashion-mnist.h5";
    convert(options);
  }
  ~ConvertedFashionMnist() {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  ConvertedFashionMnist(const ConvertedFashionMnist&) = delete;
  ConvertedFashionMnist& operator=(const ConvertedFashionMnist&) = delete;
  fs::path path() const { return dir_ / "fashion-mnist.h5"; }

 private:
  fs::path dir_;
};

}  // namespace

std::filesystem::path fashion_mnist_h5() {
  static const ConvertedFashionMnist converted;
  return converted.path();
}

std::filesystem::path small_fashion_mnist_h5() {
  static const fs::path path = [] {
    const fs::path full = fashion_mnist_h5();
    const fs::path out_path = full.parent_path() / "fashion-mnist-small.h5";
    const io::h5::File in(full, io::h5::Access::kRead);
    const io::h5::File out(out_path, io::h5::Access::kTruncate);
    const io::h5::Group src = in.root(), dst = out.root();
    dst.set_attribute("format_version", src.attribute_int("format_version"));
    dst.set_attribute("class_names", src.attribute_strings("class_names"));
    for (const auto& [split, count] : {std::pair{"train", kSmallTrainImages}, std::pair{"test", kSmallTestImages}}) {
      const io::h5::Group from = src.group(split);
      const io::h5::Group to = dst.create_group(split);
      to.write_tensor("images", from.dataset("images").read_rows(0, count));
      to.write_tensor("labels", from.dataset("labels").read_rows(0, count));
      to.set_attribute("mean", from.attribute_doubles("mean"));
      to.set_attribute("std", from.attribute_doubles("std"));
    }
    out.flush();
    return out_path;
  }();
  return path;
}

}  // namespace lockstep::test
