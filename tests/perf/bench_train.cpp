// Training-speed benchmark: trains the MLP, CifarResNet-20 (32x32x3 and 28x28x1), the 32x32 DCGAN, its
// class-conditional version, WGAN-GP, the MLP VAE, PixelCNN and CycleGAN on synthetic data (fixed seed) and prints images per second and peak resident memory per model, in the line
// format of its PyTorch peer tests/perf/train_peer.py; tests/perf/compare_training.sh sets them side by side.
#include <omp.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "src/core/error.h"
#include "src/core/precision.h"
#include "src/core/rng.h"
#include "src/models/autoencoder.h"
#include "src/models/conditional.h"
#include "src/models/cyclegan.h"
#include "src/models/dcgan.h"
#include "src/models/gan_loss.h"
#include "src/models/mlp.h"
#include "src/models/pixelcnn.h"
#include "src/models/recurrent.h"
#include "src/models/resnet.h"
#include "src/models/wgan.h"
#include "src/ops/elementwise.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/optim/adam.h"
#include "src/optim/sgd.h"
#include "src/tensor/factories.h"

extern char** environ;

namespace {

using lockstep::Tensor;
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kSeed = 1234;
constexpr std::int64_t kClassifierBatch = 128;
constexpr std::int64_t kGanBatch = 64;
constexpr std::int64_t kGenerativeBatch = 64;  // VAE and PixelCNN
constexpr std::int64_t kClasses = 10;
constexpr std::int64_t kLatent = 100;
const std::vector<std::string> kModels = {"mlp", "resnet20", "resnet20_28", "dcgan", "cgan", "wgan_gp", "vae", "pixelcnn", "cyclegan", "lstm"};

struct Options {
  std::string model = "all";
  int steps = 20;
  int warmup = 3;
  lockstep::MatmulPrecision precision = lockstep::MatmulPrecision::kF32;  // --precision f32|bf16
};

// One training iteration over the model's fixed synthetic batch, and the images it consumes.
struct Workload {
  std::int64_t batch = 0;
  std::function<void()> step;
};

// Random class labels in [0, kClasses) as i64 [n].
Tensor random_labels(std::int64_t n, lockstep::Generator& gen) {
  const Tensor u =
      lockstep::rand({n}, 0.0, static_cast<double>(kClasses), lockstep::DType::f32, lockstep::kCPU, &gen);
  std::vector<std::int64_t> labels;
  for (float v : u.to_vector<float>())
    labels.push_back(std::min<std::int64_t>(static_cast<std::int64_t>(v), kClasses - 1));
  return lockstep::from_vector(labels, {n});
}

// A classifier trained with cross-entropy and SGD on one fixed batch of uniform [-1, 1) images.
Workload classifier_workload(std::shared_ptr<lockstep::nn::Module> model, lockstep::Shape image,
                             lockstep::optim::SGDOptions sgd, lockstep::Generator& gen) {
  lockstep::Shape input_shape = {kClassifierBatch};
  input_shape.insert(input_shape.end(), image.begin(), image.end());
  const Tensor input = lockstep::rand(input_shape, -1.0, 1.0, lockstep::DType::f32, lockstep::kCPU, &gen);
  const Tensor labels = random_labels(kClassifierBatch, gen);
  auto optimizer = std::make_shared<lockstep::optim::SGD>(model->named_parameters(), sgd);
  return {kClassifierBatch, [model, optimizer, input, labels] {
            optimizer->zero_grad();
            lockstep::cross_entropy(model->forward(input), labels).backward();
            optimizer->step();
          }};
}

// The 32x32x1 GANs, per iteration one discriminator step on a real and a generated batch, then one generator
// step through the frozen discriminator (DCGAN's width 64 networks, Adam):
//   dcgan:   non-saturating BCE-with-logits losses, Adam(2e-4, 0.5, 0.999);
//   cgan:    the same, both networks conditioned on random class labels (src/models/conditional.h);
//   wgan_gp: a layer-norm WGAN critic under the Wasserstein loss plus the gradient penalty (lambda 10, a
//            double backward), Adam(1e-4, 0, 0.9).
Workload gan_workload(const std::string& kind, lockstep::Generator& gen) {
  namespace models = lockstep::models;
  const bool conditional = kind == "cgan", penalised = kind == "wgan_gp";
  std::shared_ptr<lockstep::nn::Module> generator =
      std::make_shared<models::DCGANGenerator>(kLatent + (conditional ? kClasses : 0), 1, 32, 64);
  std::shared_ptr<lockstep::nn::Module> discriminator;
  if (penalised) {
    discriminator = std::make_shared<models::WGANCritic>(1, 32, 64, models::DiscriminatorNorm::kLayerNorm);
  } else {
    discriminator = std::make_shared<models::DCGANDiscriminator>(conditional ? 2 : 1, 32, 64);
  }
  models::dcgan_init_(*generator, &gen);
  models::dcgan_init_(*discriminator, &gen);
  if (conditional) {
    generator = std::make_shared<models::ConditionalGenerator>(generator, kLatent, kClasses);
    discriminator = std::make_shared<models::ConditionalDiscriminator>(discriminator, 1, 32, 32, kClasses);
  }
  const lockstep::optim::AdamOptions adam = penalised ? lockstep::optim::AdamOptions{.lr = 1e-4, .beta1 = 0.0, .beta2 = 0.9}
                                                      : lockstep::optim::AdamOptions{.lr = 2e-4, .beta1 = 0.5, .beta2 = 0.999};
  auto opt_g = std::make_shared<lockstep::optim::Adam>(generator->named_parameters(), adam);
  auto opt_d = std::make_shared<lockstep::optim::Adam>(discriminator->named_parameters(), adam);
  const Tensor real =
      lockstep::rand({kGanBatch, 1, 32, 32}, -1.0, 1.0, lockstep::DType::f32, lockstep::kCPU, &gen);
  const Tensor labels = conditional ? random_labels(kGanBatch, gen) : Tensor();
  const models::GanLoss loss = penalised ? models::GanLoss::kWasserstein : models::GanLoss::kNonSaturating;
  auto noise_gen = std::make_shared<lockstep::Generator>(kSeed + 1);
  return {kGanBatch, [=] {
            const Tensor z = lockstep::randn({kGanBatch, kLatent}, 0.0, 1.0, lockstep::DType::f32,
                                             lockstep::kCPU, noise_gen.get());
            const Tensor fake = models::generate(*generator, z, labels);
            const auto critic = [&](const Tensor& x) { return models::discriminate(*discriminator, x, labels); };

            opt_d->zero_grad();
            Tensor loss_d = models::discriminator_loss(loss, critic(real), critic(fake.detach()));
            if (penalised) {
              const Tensor alpha = lockstep::rand({kGanBatch}, 0.0, 1.0, lockstep::DType::f64, lockstep::kCPU,
                                                  noise_gen.get());
              loss_d = loss_d + models::gradient_penalty(critic, real, fake, alpha, 10.0).penalty;
            }
            loss_d.backward();
            opt_d->step();

            opt_g->zero_grad();
            discriminator->requires_grad_(false);
            models::generator_loss(loss, critic(fake)).backward();
            discriminator->requires_grad_(true);
            opt_g->step();
          }};
}

// The VAE of examples/fashion_vae.toml (MLP 784-512-256, code 32, Bernoulli decoder) and the PixelCNN of
// examples/fashion_pixelcnn.toml (width 32, 4 blocks) on 28x28 intensities in [0, 1], Adam(1e-3): one step
// of the objective (negative ELBO; cross-entropy over 256 levels per pixel).
Workload generative_workload(const std::string& kind, lockstep::Generator& gen) {
  namespace models = lockstep::models;
  const Tensor x = lockstep::rand({kGenerativeBatch, 1, 28, 28}, 0.0, 1.0, lockstep::DType::f32, lockstep::kCPU, &gen);
  if (kind == "vae") {
    auto vae = std::make_shared<models::Autoencoder>(models::AutoencoderOptions{.code = 32, .variational = true});
    auto adam = std::make_shared<lockstep::optim::Adam>(vae->named_parameters(), lockstep::optim::AdamOptions{});
    auto noise_gen = std::make_shared<lockstep::Generator>(kSeed + 2);
    return {kGenerativeBatch, [=] {
              const models::Autoencoder::Posterior q = vae->posterior(x);
              const Tensor eps =
                  lockstep::randn(q.mean.shape(), 0.0, 1.0, lockstep::DType::f32, lockstep::kCPU, noise_gen.get());
              const Tensor z = q.mean + lockstep::exp(q.logvar * 0.5) * eps;
              adam->zero_grad();
              (models::reconstruction_loss(models::ReconstructionLoss::kBce, vae->decode(z), x) +
               lockstep::gaussian_kl(q.mean, q.logvar))
                  .backward();
              adam->step();
            }};
  }
  auto pixelcnn = std::make_shared<models::PixelCNN>(32, 4);
  auto adam = std::make_shared<lockstep::optim::Adam>(pixelcnn->named_parameters(), lockstep::optim::AdamOptions{});
  return {kGenerativeBatch, [=] {
            adam->zero_grad();
            models::pixel_nll(pixelcnn->forward(x), x).backward();
            adam->step();
          }};
}

// CycleGAN at 32x32x1 as examples/fashion_cyclegan.toml (generators of width 32 with 6 residual blocks,
// PatchGANs of width 64 with 2 layers, 8 images per domain, Adam(2e-4, 0.5)): per iteration the generators'
// step (least-squares adversarial, L1 cycle x 10, L1 identity x 5, through frozen discriminators), then both
// discriminators' steps on real and generated images (no image pool: its cost is a copy).
Workload cyclegan_workload(lockstep::Generator& gen) {
  namespace models = lockstep::models;
  using lockstep::Tensor;
  auto g = std::make_shared<models::CycleGANGenerator>();
  auto f = std::make_shared<models::CycleGANGenerator>();
  auto d_a = std::make_shared<models::PatchGANDiscriminator>();
  auto d_b = std::make_shared<models::PatchGANDiscriminator>();
  for (lockstep::nn::Module* m : {static_cast<lockstep::nn::Module*>(g.get()), static_cast<lockstep::nn::Module*>(f.get()),
                                  static_cast<lockstep::nn::Module*>(d_a.get()), static_cast<lockstep::nn::Module*>(d_b.get())})
    models::dcgan_init_(*m, &gen);
  const lockstep::optim::AdamOptions adam{.lr = 2e-4, .beta1 = 0.5, .beta2 = 0.999};
  std::vector<lockstep::nn::NamedTensor> generators = g->named_parameters();
  for (auto& p : f->named_parameters()) generators.emplace_back("f." + p.first, p.second);
  auto opt_g = std::make_shared<lockstep::optim::Adam>(generators, adam);
  auto opt_da = std::make_shared<lockstep::optim::Adam>(d_a->named_parameters(), adam);
  auto opt_db = std::make_shared<lockstep::optim::Adam>(d_b->named_parameters(), adam);
  constexpr std::int64_t kBatch = 8;
  const Tensor a = lockstep::rand({kBatch, 1, 32, 32}, -1.0, 1.0, lockstep::DType::f32, lockstep::kCPU, &gen);
  const Tensor b = lockstep::rand({kBatch, 1, 32, 32}, -1.0, 1.0, lockstep::DType::f32, lockstep::kCPU, &gen);
  const auto to_one = [](const Tensor& scores) { return lockstep::mean(lockstep::square(scores - 1.0)); };
  const auto to_zero = [](const Tensor& scores) { return lockstep::mean(lockstep::square(scores)); };
  return {kBatch, [=] {
            d_a->requires_grad_(false);
            d_b->requires_grad_(false);
            const Tensor fake_b = g->forward(a), fake_a = f->forward(b);
            const Tensor loss_g = to_one(d_b->forward(fake_b)) + to_one(d_a->forward(fake_a)) +
                                  (lockstep::l1_loss(f->forward(fake_b), a) + lockstep::l1_loss(g->forward(fake_a), b)) * 10.0 +
                                  (lockstep::l1_loss(g->forward(b), b) + lockstep::l1_loss(f->forward(a), a)) * 5.0;
            opt_g->zero_grad();
            loss_g.backward();
            opt_g->step();
            d_a->requires_grad_(true);
            d_b->requires_grad_(true);
            opt_da->zero_grad();
            ((to_one(d_a->forward(a)) + to_zero(d_a->forward(fake_a.detach()))) * 0.5).backward();
            opt_da->step();
            opt_db->zero_grad();
            ((to_one(d_b->forward(b)) + to_zero(d_b->forward(fake_b.detach()))) * 0.5).backward();
            opt_db->step();
          }};
}

Workload make_workload(const std::string& model, lockstep::Generator& gen) {
  using lockstep::optim::SGDOptions;
  const SGDOptions resnet_sgd{.lr = 0.1, .momentum = 0.9, .weight_decay = 5e-4};
  if (model == "mlp") {
    auto mlp = std::make_shared<lockstep::models::MLP>(784, std::vector<std::int64_t>{512, 256}, kClasses);
    return classifier_workload(mlp, {1, 28, 28}, SGDOptions{.lr = 0.01, .momentum = 0.9}, gen);
  }
  if (model == "resnet20") {
    return classifier_workload(std::make_shared<lockstep::models::CifarResNet>(20, 3, kClasses), {3, 32, 32},
                               resnet_sgd, gen);
  }
  if (model == "lstm") {  // Fashion-MNIST rows as 28 steps of 28 pixels, one LSTM layer of 128
    auto lstm = std::make_shared<lockstep::models::RowSequenceClassifier>(
        lockstep::nn::RecurrentKind::kLstm, 1, 28, 28, std::vector<std::int64_t>{128}, kClasses);
    return classifier_workload(lstm, {1, 28, 28}, SGDOptions{.lr = 0.01, .momentum = 0.9}, gen);
  }
  if (model == "resnet20_28") {
    return classifier_workload(std::make_shared<lockstep::models::CifarResNet>(20, 1, kClasses), {1, 28, 28},
                               resnet_sgd, gen);
  }
  if (model == "vae" || model == "pixelcnn") return generative_workload(model, gen);
  if (model == "cyclegan") return cyclegan_workload(gen);
  return gan_workload(model, gen);
}

// The process's peak resident set (VmHWM) in MiB.
double peak_rss_mb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0.0;
}

// Runs `warmup` untimed and `steps` timed iterations; images per second come from the median step time, which
// load from other processes on a shared machine disturbs less than the mean.
void run_model(const std::string& model, const Options& options) {
  const lockstep::MatmulPrecisionScope precision(options.precision);
  lockstep::Generator gen(kSeed);
  Workload work = make_workload(model, gen);
  for (int i = 0; i < options.warmup; ++i) work.step();
  std::vector<double> seconds;
  for (int i = 0; i < options.steps; ++i) {
    const auto start = Clock::now();
    work.step();
    seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::nth_element(seconds.begin(), seconds.begin() + static_cast<std::ptrdiff_t>(seconds.size() / 2),
                   seconds.end());
  const double median = seconds[seconds.size() / 2];
  std::printf("model=%s threads=%d batch=%lld images_per_s=%.1f peak_rss_mb=%.1f precision=%s\n",
              model.c_str(), omp_get_max_threads(), static_cast<long long>(work.batch),
              static_cast<double>(work.batch) / median, peak_rss_mb(),
              lockstep::precision_name(options.precision));
  std::fflush(stdout);
}

// Runs every model in its own process (this program with --model <m>), so each peak RSS is its own.
int run_all(const Options& options) {
  int failures = 0;
  for (const std::string& model : kModels) {
    std::vector<std::string> args = {"/proc/self/exe",
                                     "--model",
                                     model,
                                     "--steps",
                                     std::to_string(options.steps),
                                     "--warmup",
                                     std::to_string(options.warmup),
                                     "--precision",
                                     lockstep::precision_name(options.precision)};
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    int status = 0;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0 ||
        waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "lockstep_bench_train: model %s failed\n", model.c_str());
      ++failures;
    }
  }
  return failures == 0 ? 0 : 1;
}

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    LOCKSTEP_CHECK(i + 1 < argc && (flag == "--model" || flag == "--steps" || flag == "--warmup" ||
                                    flag == "--precision"),
                   lockstep::ValueError,
                   "lockstep_bench_train: expected --model "
                   "mlp|resnet20|resnet20_28|dcgan|cgan|wgan_gp|vae|pixelcnn|cyclegan|lstm|all, ",
                   "--steps N, --warmup N or --precision f32|bf16, but got '", flag, "'");
    const std::string value = argv[++i];
    if (flag == "--model") {
      options.model = value;
    } else if (flag == "--precision") {
      LOCKSTEP_CHECK(value == "f32" || value == "bf16", lockstep::ValueError,
                     "lockstep_bench_train: expected --precision f32 or bf16, but got '", value, "'");
      options.precision =
          value == "bf16" ? lockstep::MatmulPrecision::kBf16 : lockstep::MatmulPrecision::kF32;
    } else if (flag == "--steps") {
      options.steps = std::stoi(value);
    } else {
      options.warmup = std::stoi(value);
    }
  }
  const bool known =
      options.model == "all" || std::find(kModels.begin(), kModels.end(), options.model) != kModels.end();
  LOCKSTEP_CHECK(known, lockstep::ValueError,
                 "lockstep_bench_train: expected --model mlp|resnet20|resnet20_28|dcgan|cgan|wgan_gp|vae|pixelcnn|cyclegan|lstm|all, but got '",
                 options.model, "'");
  LOCKSTEP_CHECK(options.steps > 0 && options.warmup >= 0, lockstep::ValueError,
                 "lockstep_bench_train: expected --steps > 0 and --warmup >= 0, but got steps=",
                 options.steps, ", warmup=", options.warmup);
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options options = parse(argc, argv);
    if (options.model == "all") return run_all(options);
    run_model(options.model, options);
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s\n", error.what());
    return 1;
  }
}
