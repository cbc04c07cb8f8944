// A training job's configuration as typed settings, read once from the config file and its overrides before
// anything is built: every key is read (and checked) here, so every config error comes out before the job
// starts, and nothing past this file sees the Config object. The keys are documented in README.md and
// examples/*.toml.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "launch/config/config.h"

namespace lockstep::launch {

// [run] seed, threads, output, epochs, max_steps, sample_log, device, precision.
struct RunSection {
  std::uint64_t seed = 0;
  int threads = 0;  // 0: automatic
  std::filesystem::path output = "runs/latest";
  std::int64_t epochs = 1;
  std::int64_t max_steps = 0;  // 0: no limit
  bool sample_log = false;
  // "cpu", "cuda" (local rank r trains on GPU r mod the node's GPUs) or "auto" (cuda where a GPU is usable).
  std::string device = "cpu";
  ConfigKey device_key;  // for a device that is not there, or a run that cannot use it
  // "f32", or "bf16": convolutions and matrix products on bf16 operands with f32 accumulation, everything
  // else f32 (src/core/precision.h).
  std::string precision = "f32";
};

// [distributed] bucket_mb, sync_batchnorm, timeout_s.
struct DistributedSection {
  double bucket_mb = 4.0;
  bool sync_batchnorm = true;
  double timeout_s = 300.0;
  // Deterministic mode (src/core/micro_shards.h): bitwise the same training at any world size and thread
  // count; the global batch is cut into micro_shards (a power of two that the world size must divide).
  bool deterministic = false;
  std::int64_t micro_shards = 0;  // set when deterministic
  ConfigKey micro_shards_key;     // for a world size that does not divide it
};

// [data]: the data set file, its splits, batches and augmentation.
struct DataSection {
  std::filesystem::path path;
  ConfigKey path_key;  // for a file of the wrong kind of data
  std::string train_split = "train";
  std::string test_split = "test";  // empty: none
  // Exactly one of the two is set; batch_key locates it (or data.batch_size when neither is given).
  std::optional<std::int64_t> batch_size;         // per rank
  std::optional<std::int64_t> global_batch_size;  // over all ranks
  ConfigKey batch_key;
  std::int64_t eval_batch_size = 500;
  bool cache_in_memory = true;
  std::int64_t pad_to = 0;
  std::int64_t crop_padding = 0;
  bool flip = false;
  // "dataset": the data set's mean and std; "tanh": to [-1, 1]; "none": pixel / 255 in [0, 1].
  std::string normalize = "dataset";
  bool drop_last = true;
  std::int64_t prefetch = 2;
  // A seeded hold-out carved out of the training split (0: none); the rest is trained on.
  double validation_fraction = 0.0;
  ConfigKey validation_key;
};

// [model] / [generator] / [discriminator]: architecture by name and its options.
struct ModelSection {
  std::string name;
  ConfigKey name_key;  // for checks against the data geometry
  std::vector<std::int64_t> hidden;  // mlp (classifier, GAN generator and discriminator); rnn, lstm, gru: layer widths
  double dropout = 0.0;              // mlp classifier
  std::string shortcut = "identity";  // CIFAR ResNets: identity | projection
  std::string stem = "small";         // ResNet-18/34/50: small | imagenet
  std::string block = "basic";        // ResNets: basic | preact (pre-activation blocks)
  std::int64_t width = 64;            // DCGAN networks, WGAN critic; CycleGAN networks (ngf / ndf)
  std::string norm = "none";          // WGAN critic: none | layer
  std::int64_t residual_blocks = 6;   // cyclegan-resnet
  std::int64_t layers = 2;            // patchgan: stride-2 stages
};

// [optimizer] (or [generator.optimizer], ...).
struct OptimizerSection {
  std::string name = "sgd";
  double lr = 0.0;
  double momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
  bool nesterov = false;
  bool decay_all = false;  // weight_decay_on = "all" (else weights only)
  double l1 = 0.0;         // L1 penalty's weight, on the parameters weight decay applies to
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double alpha = 0.99;  // rmsprop
  double rho = 0.9;     // adadelta
};

// [schedule] (or [generator.schedule], ...).
struct ScheduleSection {
  std::string name = "constant";  // constant | step | exponential | linear | cosine
  std::int64_t warmup_epochs = 0;
  double warmup_start_factor = 0.1;
  std::int64_t step_epochs = 0;  // step
  double gamma = 0.1;            // step; per epoch for exponential
  double end_factor = 0.0;       // linear
  double min_lr = 0.0;           // cosine
};

// One trained network: its architecture, optimizer, schedule and gradient clipping (0: none).
struct NetworkSection {
  ModelSection model;
  OptimizerSection optimizer;
  ScheduleSection schedule;
  double clip_grad_norm = 0.0;
};

// [train]: what the classifier loop does besides the optimizer.
struct TrainSection {
  double label_smoothing = 0.0;
  std::int64_t early_stopping_patience = 0;  // epochs without gain; 0: never stop early
  double adversarial_epsilon = 0.0;  // FGSM examples of this size (pixel units) join each batch; 0: off
  double input_noise = 0.0;                  // std of Gaussian noise added to the normalised training images
  double label_noise = 0.0;  // fraction of training labels replaced once by uniformly random classes
};

// [checkpoint] every_steps, keep_last, keep_every, dir.
struct CheckpointSection {
  std::int64_t every_steps = 0;  // 0: at every epoch's end
  int keep_last = 3;
  std::int64_t keep_every = 0;
  std::filesystem::path dir;  // default <run.output>/checkpoints
};

// [gan]: the adversarial game.
struct GanSection {
  std::int64_t latent = 100;
  std::string loss = "non-saturating";  // non-saturating | minimax | wasserstein | wasserstein-gp
  std::int64_t d_steps = 1;             // discriminator steps per generator step
  double weight_clip = 0.01;            // wasserstein
  double gp_lambda = 10.0;              // wasserstein-gp: the gradient penalty's weight
  // A class-conditional GAN: both networks get the class label (the data set's classes).
  bool conditional = false;
  ConfigKey conditional_key;  // for a data set without classes
  std::int64_t samples = 64;            // images in each epoch's sample grid
  double real_label = 1.0;              // one-sided label smoothing of the discriminator's real targets
  double ema_decay = 0.0;               // moving average of the generator's weights (0: none)
};

// [autoencoder]: the autoencoder task's networks and objective (autoencoders of every kind and the VAE).
struct AutoencoderSection {
  std::string architecture = "mlp";            // mlp | conv
  ConfigKey architecture_key;                  // for image sizes the architecture cannot take
  std::vector<std::int64_t> hidden{512, 256};  // fully connected layers (conv: after the convolutions; none)
  std::int64_t code = 32;
  std::string code_activation = "linear";  // linear | sigmoid
  std::string loss = "bce";                // bce (Bernoulli) | mse (Gaussian)
  std::string sparsity = "none";           // none | l1 | kl
  double sparsity_weight = 1e-3;
  double sparsity_target = 0.05;  // kl: rho
  std::string noise = "none";     // none | gaussian (noise_level = sigma) | masking (noise_level = p)
  double noise_level = 0.3;
  double contractive_weight = 0.0;  // > 0: the contractive penalty on the encoder's Jacobian
  bool variational = false;         // a VAE
  double beta = 1.0;                // the VAE's weight on the KL
  std::int64_t samples = 64;        // images in each epoch's grids
};

// [pixelcnn]: the PixelCNN task's network and its sample grids.
struct PixelCnnSection {
  std::int64_t width = 64;   // channels of the residual stream
  std::int64_t blocks = 5;   // residual blocks
  std::int64_t samples = 16;  // images drawn pixel by pixel after each epoch (0: none)
  ConfigKey task_key;         // for images with more than one channel
};

// [cyclegan]: unpaired translation between two domains, each given by a set of classes of a data set:
// domain A of data.path, domain B of data.path or of its own file (default: Fashion-MNIST's sneakers <->
// ankle boots).
struct CycleGanSection {
  std::vector<std::int64_t> classes_a = {7};  // domain_a.classes
  std::vector<std::int64_t> classes_b = {9};  // domain_b.classes; empty: every class (domain_b.path only)
  ConfigKey classes_a_key, classes_b_key;     // for classes the data set lacks
  std::filesystem::path path_b;               // domain_b.path: domain B from this file (empty: data.path)
  ConfigKey path_b_key;
  double lambda_cycle = 10.0;                 // weight of the L1 cycle losses
  double lambda_identity = 0.5;               // weight of the L1 identity losses, times lambda_cycle
  std::int64_t pool_size = 50;                // generated images kept per discriminator (0: none)
  std::int64_t samples = 8;                   // image pairs in each epoch's grid
  std::int64_t eval_images = 256;             // test images per domain for the epoch's cycle error
};

// [charlm]: the character-level language model (embedding -> LSTM stack -> linear), its truncated BPTT
// (train.bptt_steps) and the text it samples after each epoch.
struct CharLmSection {
  std::int64_t embedding = 64;   // the characters' embedding width
  std::int64_t hidden = 256;     // the LSTM's state width
  std::int64_t layers = 2;       // stacked LSTM layers
  std::int64_t bptt_steps = 64;  // train.bptt_steps: characters per chunk
  std::int64_t samples = 200;    // characters sampled after each epoch (0: none)
  double temperature = 0.8;      // of those samples
  std::string prompt = "The ";   // their start
  ConfigKey prompt_key;          // for a prompt outside the vocabulary
};

// The whole job.
struct Settings {
  std::string task = "classifier";  // a registered task (launch/train/tasks.cpp)
  RunSection run;
  DistributedSection distributed;
  DataSection data;
  CheckpointSection checkpoint;
  TrainSection train;
  NetworkSection model;  // classifier; the autoencoder's and PixelCNN's optimizer, schedule and clipping
  AutoencoderSection autoencoder;
  PixelCnnSection pixelcnn;
  NetworkSection generator, discriminator;  // gan; cyclegan (both generators, both discriminators)
  GanSection gan;
  CycleGanSection cyclegan;
  CharLmSection charlm;
  ConfigKey seed_key;    // run.seed, for a resume that would change it
  ConfigKey output_key;  // run.output, for a folder that cannot be created
  // The effective configuration (file, overrides and every default used) as TOML: stored in model files
  // and checkpoints.
  std::string config_text;
};

// Reads every section `task` uses from `cfg` into typed settings and checks them; then rejects every key no
// one read (a typo) with its line. ConfigError naming the file, line and key for any bad value.
Settings read_settings(const Config& cfg);

}  // namespace lockstep::launch
