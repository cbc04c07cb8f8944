// The once-per-binary conversion of Fashion-MNIST to HDF5 (see fashion_mnist.h).
#include "tests/support/fashion_mnist.h"

#include <unistd.h>

#include <cstdlib>

#include "io/data/convert.h"
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

}  // namespace lockstep::test
