// The real Fashion-MNIST (Debian's dataset-fashion-mnist, or the folder in $LOCKSTEP_FASHION_MNIST) converted
// to HDF5 once per test binary, for tests that train on real data.
#pragma once

#include <filesystem>

namespace lockstep::test {

// The converted file, made on first call (0.3 s) in a temporary folder removed when the binary exits.
std::filesystem::path fashion_mnist_h5();

}  // namespace lockstep::test
