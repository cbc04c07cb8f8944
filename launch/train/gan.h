// What the GAN task (launch/train/gan.cpp) shares with `lockstep sample` and the tests: the fixed noise of
// the sample grids, and writing a grid of a generator's images.
#pragma once

#include <cstdint>
#include <filesystem>

#include "src/nn/module.h"
#include "src/tensor/tensor.h"

namespace lockstep::launch {

// The fixed noise of the sample grids: `count` x `latent` from a stream of its own, derived from the run
// seed.
Tensor fixed_noise(std::uint64_t seed, std::int64_t count, std::int64_t latent);
// Writes a grid of the generator's images for noise `z` (eval mode, no gradients) as a PNG and returns the
// grid (u8 [C,H,W]).
Tensor write_samples(nn::Module& generator, const Tensor& z, const std::filesystem::path& path);

}  // namespace lockstep::launch
