// Data-parallel equivalence harness: trains a model for a few steps either in one process on a union batch,
// or on this rank's slice of it through DataParallel, so tests can compare the two (threaded and MPI groups).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "distributed/process_group.h"
#include "src/nn/module.h"
#include "src/nn/state_dict.h"

namespace lockstep::test {

using ModelFactory = std::function<std::shared_ptr<nn::Module>()>;

// Builds a model from the default generator seeded with `seed`, under a process-wide mutex (rank threads
// of a threaded world share the default generator). Every rank and the reference get the same weights.
std::shared_ptr<nn::Module> make_seeded(const ModelFactory& make, std::uint64_t seed);

struct ClassifierRun {
  Shape sample_shape;  // e.g. {1, 8, 8}
  std::int64_t classes = 10;
  std::int64_t per_rank_batch = 4;
  std::int64_t steps = 3;
  std::int64_t world = 1;  // ranks whose union batch the reference sees: global batch = world * per_rank
  bool sync_batchnorm = false;
  std::int64_t bucket_bytes = 4 << 20;
  std::uint64_t seed = 7;
  DType dtype = DType::f32;
  // > 0: adversarial training as the classifier task does it: each rank's FGSM examples of its own rows
  // (inputs read as pixels normalised with mean 0.5, std 0.25) join its batch.
  double adversarial_epsilon = 0.0;
  // When set (with a group): the collectives this rank issued in each step.
  std::vector<std::uint64_t>* collectives_per_step = nullptr;
};

// Trains with SGD (lr 0.1, momentum 0.9) on cross-entropy for run.steps steps. Without a group: one process
// on the global batch. With one: DataParallel on `group`, this rank taking rows [r B, (r + 1) B) of each
// global batch. Returns the model's parameters and buffers (copies).
nn::StateDict train_classifier(const ModelFactory& make, const ClassifierRun& run,
                               const std::shared_ptr<distributed::ProcessGroup>& group = nullptr);

struct GanRun {
  std::int64_t latent = 16;
  std::int64_t per_rank_batch = 4;
  std::int64_t steps = 2;
  std::int64_t world = 1;
  bool sync_batchnorm = true;
  std::uint64_t seed = 11;
  DType dtype = DType::f32;  // f64 separates algorithmic differences from f32 rounding
  // WGAN-GP instead of DCGAN's game: a layer-norm WGAN critic, the Wasserstein loss and a gradient penalty
  // (lambda 10) on interpolates whose mixing weights are drawn for the global batch and sliced like it.
  bool gradient_penalty = false;
};

// DCGAN 32x32 (width 8) step pairs with SGD: a D step on real and detached fake images, then a G step through
// the frozen D (called unwrapped); or WGAN-GP's (see GanRun::gradient_penalty). Returns G's then D's
// parameters and buffers, prefixed "g." and "d.".
nn::StateDict train_gan(const GanRun& run, const std::shared_ptr<distributed::ProcessGroup>& group = nullptr);

struct AutoencoderRun {
  std::int64_t per_rank_batch = 4;
  std::int64_t steps = 3;
  std::int64_t world = 1;
  bool variational = false;  // a VAE, its noise drawn for the global batch and sliced like it
  // The non-variational autoencoder's penalty: none, the exact Jacobian penalty (a double backward per code
  // unit), its one-probe estimate (the probes drawn for the global batch), or KL sparsity of sigmoid codes
  // against the global batch's mean code.
  enum class Penalty : std::uint8_t { kNone, kContractive, kContractiveProbe, kKlSparsity } penalty = Penalty::kNone;
  std::uint64_t seed = 13;
  DType dtype = DType::f32;
};

// An MLP autoencoder (8x8 images, hidden 12, code 3) trained with Adam on BCE reconstruction, plus the VAE's
// KL or the penalty. Without a group: one process on the global batch; with one: DataParallel,
// this rank taking its rows. Returns the parameters (copies).
nn::StateDict train_autoencoder(const AutoencoderRun& run,
                                const std::shared_ptr<distributed::ProcessGroup>& group = nullptr);

// A PixelCNN (width 4, one block) on 8x8 images, trained with Adam on the per-pixel cross-entropy; the
// global batch of `world` x `per_rank_batch` images split as train_classifier's. Returns the parameters.
nn::StateDict train_pixelcnn(std::int64_t world, std::int64_t per_rank_batch, std::int64_t steps,
                             const std::shared_ptr<distributed::ProcessGroup>& group = nullptr);

// The largest, over entries, of ||a - b|| / max(||b||, 1e-30) (floating entries; integer ones must be equal,
// else +inf), and the entry where it is; `overall` is ||a - b|| / ||b|| over all floating entries together
// (f32 rounding makes near-zero entries, e.g. a bias after two steps, meaningless one by one). Both must hold
// the same names.
struct Difference {
  double value = 0.0;
  std::string name;
  double overall = 0.0;
};
Difference max_relative_difference(const nn::StateDict& a, const nn::StateDict& b);
std::ostream& operator<<(std::ostream& out, const Difference& d);

}  // namespace lockstep::test
