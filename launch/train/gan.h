// GAN training: k discriminator steps, then one generator step with the discriminator frozen.
// Losses: non-saturating (default), minimax, or Wasserstein with weight clipping (WGAN).
#pragma once

#include <cstdint>
#include <filesystem>

#include "launch/config/config.h"
#include "launch/train/progress.h"
#include "launch/train/run.h"
#include "src/nn/module.h"

namespace lockstep::train {

struct GanResult {
  double d_loss = 0;  // means over the last epoch
  double g_loss = 0;
  std::int64_t steps = 0;  // discriminator steps (the run's steps), resumed ones included
  std::int64_t generator_steps = 0;
  double images_per_s = 0;  // real images consumed per second
  double seconds = 0;
  std::int64_t resumed_step = -1;    // the checkpoint's step when the run resumed, else -1
  std::string stopped_by;            // "SIGUSR1" or "SIGTERM" when a signal stopped the run, else ""
  std::filesystem::path checkpoint;  // the last checkpoint written by this process (empty: none)
};

// The fixed noise of the sample grids: `count` x `latent` from a stream of its own, derived from the run
// seed.
Tensor fixed_noise(std::uint64_t seed, std::int64_t count, std::int64_t latent);
// Writes a grid of the generator's images for noise `z` (eval mode, no gradients) as a PNG and returns the
// grid (u8 [C,H,W]).
Tensor write_samples(nn::Module& generator, const Tensor& z, const std::filesystem::path& path);

GanResult train_gan(const launch::Config& cfg, const RunSettings& run, Progress& progress);

}  // namespace lockstep::train
