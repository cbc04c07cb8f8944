// The real Fashion-MNIST (Debian's dataset-fashion-mnist, or the folder in $LOCKSTEP_FASHION_MNIST) converted
// to HDF5 once per test binary, for tests that train on real data.
#pragma once

#include <cstdint>
#include <filesystem>

namespace lockstep::test {

// The converted file, made on first call (0.3 s) in a temporary folder removed when the binary exits.
std::filesystem::path fashion_mnist_h5();

// The first 320 training and 200 test images of it in a file of their own (made once per binary, in the same
// folder; no array checksums): epochs of a few steps.
std::filesystem::path small_fashion_mnist_h5();
inline constexpr std::int64_t kSmallTrainImages = 320;
inline constexpr std::int64_t kSmallTestImages = 200;

}  // namespace lockstep::test
