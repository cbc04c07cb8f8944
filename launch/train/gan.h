// What the GAN task (launch/train/gan.cpp) shares with `lockstep sample` and the tests: the fixed noise of
// the sample grids, and writing a grid of a generator's images.
#pragma once

#include <cstdint>
#include <filesystem>

#include "src/nn/module.h"
#include "src/tensor/tensor.h"

namespace lockstep::launch {

// What a sample grid is drawn from: noise, the labels of a conditional generator (undefined otherwise) and
// the grid's columns.
struct SampleInputs {
  Tensor z;       // [count, latent]
  Tensor labels;  // i64 [count]: row r of the grid is class r
  std::int64_t columns = 1;
};
// The fixed inputs of the sample grids, from a stream of their own derived from the run seed: `count` x
// `latent` noise in a square-ish grid, or for `classes` > 0 one row per class of ceil(count / classes)
// images each.
SampleInputs fixed_noise(std::uint64_t seed, std::int64_t count, std::int64_t latent, std::int64_t classes = 0);
// Writes a grid of the generator's images for `inputs` (eval mode, no gradients) as a PNG and returns the
// grid (u8 [C,H,W]).
Tensor write_samples(nn::Module& generator, const SampleInputs& inputs, const std::filesystem::path& path);

}  // namespace lockstep::launch
