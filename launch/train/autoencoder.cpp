// The autoencoder task: autoencoders of every kind the course teaches (undercomplete; sparse with an L1 or
// KL penalty on the code; denoising with Gaussian or masking noise on the input and the clean image as the
// target; contractive with the encoder's Jacobian penalised) and the VAE (reparameterised Gaussian code,
// closed-form KL to N(0, I), a beta weight). Reports the training objective, and after each epoch the test
// split's reconstruction loss (the VAE: its negative ELBO in nats per image); draws reconstruction grids
// (the VAE also samples and latent interpolations).
#include "src/models/autoencoder.h"

#include <algorithm>
#include <optional>

#include "distributed/data_parallel.h"
#include "io/image/grid.h"
#include "io/image/png.h"
#include "launch/train/task.h"
#include "src/autograd/grad_mode.h"
#include "src/core/rng.h"
#include "src/ops/activation.h"
#include "src/ops/elementwise.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/ops/shape.h"
#include "src/optim/clip.h"
#include "src/tensor/factories.h"

namespace lockstep::launch {
namespace {

// Sums over an epoch's steps: [objective x images, reconstruction x images, KL or penalty x images, images,
// steps].
enum Sum : std::size_t { kObjective, kReconstruction, kExtra, kImages, kSteps };

class AutoencoderTask final : public Task {
 public:
  explicit AutoencoderTask(const TaskContext& c)
      : settings_(c.settings),
        ae_(c.settings.autoencoder),
        run_(c.run),
        loss_(ae_.loss == "mse" ? models::ReconstructionLoss::kMse : models::ReconstructionLoss::kBce),
        model_(make_autoencoder(ae_, c.data.geometry)),
        dp_(model_, c.run.group, c.run.reducer),
        optimizer_(make_optimizer(c.settings.model.optimizer, *model_)),
        params_(model_->parameters()),
        data_(c.data) {
    if (c.data.validation_options) validation_.emplace(c.data.train, *c.data.validation_options);
    if (c.data.test) test_.emplace(c.data.test, c.data.test_options);
  }

  TrainingParts parts() override {
    return {"autoencoder",
            {{"model", model_.get()}},
            {{"optimizer", optimizer_.get()}},
            {{"schedule", scheduler_.get()}}};
  }

  std::string describe() const override {
    std::string kind = ae_.variational ? str_cat("variational (beta ", ae_.beta, ")") : "autoencoder";
    if (ae_.sparsity != "none")
      kind += str_cat(", ", ae_.sparsity, " sparsity (weight ", ae_.sparsity_weight, ")");
    if (ae_.noise != "none") kind += str_cat(", ", ae_.noise, " noise ", ae_.noise_level);
    if (ae_.contractive_weight > 0) kind += str_cat(", contractive (weight ", ae_.contractive_weight, ")");
    return str_cat(ae_.architecture, " ", kind, ", code ", ae_.code, ", ", ae_.loss,
                   " reconstruction: ", model_->num_parameters(), " parameters");
  }

  void start(std::int64_t steps_per_epoch) override {
    scheduler_ = make_scheduler(settings_.model.schedule, *optimizer_, steps_per_epoch, run_.epochs);
  }

  std::vector<std::string> sum_names() const override {
    return {"the objective", "the reconstruction loss", ae_.variational ? "the KL" : "the penalty", "images",
            "steps"};
  }

  std::int64_t step(const io::Batch& batch, std::int64_t /*step*/, StepSums& sums) override {
    const Tensor& clean = batch.images;
    Tensor input = clean;
    if (ae_.noise == "gaussian") input = models::gaussian_noise(clean, ae_.noise_level);
    if (ae_.noise == "masking") input = models::masking_noise(clean, ae_.noise_level);
    auto& model = static_cast<models::Autoencoder&>(dp_.prepare_forward());
    Tensor objective, reconstruction, extra;
    if (ae_.variational) {
      const models::Autoencoder::Posterior q = model.posterior(input);
      const Tensor z = q.mean + exp(q.logvar * 0.5) * randn(q.mean.shape());
      reconstruction = models::negative_log_likelihood(loss_, model.decode(z), clean);
      extra = gaussian_kl(q.mean, q.logvar);
      objective = reconstruction + extra * ae_.beta;
    } else {
      const Tensor codes = model.encode(input);
      reconstruction = models::reconstruction_loss(loss_, model.decode(codes), clean);
      extra = zeros({});
      if (ae_.sparsity == "l1") extra = models::l1_sparsity(codes) * ae_.sparsity_weight;
      if (ae_.sparsity == "kl") {
        extra = models::kl_sparsity(codes, ae_.sparsity_target, global_mean(codes)) * ae_.sparsity_weight;
      }
      if (ae_.contractive_weight > 0) {
        extra = extra +
                models::jacobian_frobenius_estimate([&](const Tensor& x) { return model.encode(x); }, input) *
                    ae_.contractive_weight;
      }
      objective = reconstruction + extra;
    }
    optimizer_->zero_grad();
    objective.backward();  // averages the gradients over the ranks
    if (settings_.model.clip_grad_norm > 0) optim::clip_grad_norm_(params_, settings_.model.clip_grad_norm);
    optimizer_->step();
    scheduler_->step();
    const auto n = static_cast<double>(clean.size(0));
    sums.add(kObjective, objective, n);
    sums.add(kReconstruction, reconstruction, n);
    sums.add(kExtra, extra, n);
    sums.add(kImages, n);
    sums.add(kSteps, 1);
    return clean.size(0);
  }

  std::string progress_text(std::span<const double> sums) const override {
    return str_cat("loss ", format_fixed(sums[kObjective] / std::max(sums[kImages], 1.0), 3));
  }

  EpochEnd end_epoch(std::int64_t epoch, std::int64_t step, std::span<const double> job,
                     RunLog* log) override {
    const double images = std::max(job[kImages], 1.0);
    EpochEnd e;
    e.fields = {{"train_loss", job[kObjective] / images},
                {"train_reconstruction", job[kReconstruction] / images}};
    if (ae_.variational) e.fields.emplace_back("train_kl", job[kExtra] / images);
    e.line = str_cat("train loss ", format_fixed(job[kObjective] / images, 3));
    // Validation (when held out) is the score, as for classifiers; the test split is only reported.
    for (auto [loader, name] : {std::pair{&validation_, "validation"}, std::pair{&test_, "test"}}) {
      if (!*loader) continue;
      const TestFigures t = evaluate(**loader, epoch);
      const double objective = t.reconstruction + t.kl;  // the VAE: -ELBO; otherwise the reconstruction
      e.fields.emplace_back(str_cat(name, "_reconstruction"), t.reconstruction);
      e.line += str_cat("  ", name, " reconstruction ", format_fixed(t.reconstruction, 3));
      if (ae_.variational) {
        e.fields.emplace_back(str_cat(name, "_kl"), t.kl);
        e.fields.emplace_back(str_cat(name, "_neg_elbo"), objective);
        e.line += str_cat("  ", name, " -ELBO ", format_fixed(objective, 2), " nats");
      }
      if (e.score_name.empty()) {  // lower is better: the best model and early stopping watch it
        e.score = -objective;
        e.score_name = str_cat("negative ", name, ae_.variational ? " -ELBO" : " reconstruction");
      }
    }
    if (log != nullptr) draw(epoch, step, *log, e.line);
    return e;
  }

  // 1e7 per image (thousands of nats per pixel): the outputs have left any useful regime.
  std::string exploded(std::span<const double> added, std::int64_t n) const override {
    return beyond("the objective", added[kObjective] / static_cast<double>(std::max<std::int64_t>(n, 1)), 1e7,
                  " per image");
  }

  std::string divergence_hint() const override { return "Lower optimizer.lr, or set train.clip_grad_norm"; }

  std::string summary(const std::vector<std::pair<std::string, double>>& last) const override {
    std::string text;
    for (const auto& [name, value] : last) {
      const bool held_out = name.starts_with("validation_") || name.starts_with("test_");
      if (name == "train_loss" ||
          (held_out && (name.ends_with("_reconstruction") || name.ends_with("_neg_elbo"))))
        text += str_cat(text.empty() ? "" : ", ", name, " ", format_fixed(value, 4));
    }
    return text;
  }

 private:
  struct TestFigures {
    double reconstruction = 0.0;  // per image
    double kl = 0.0;              // per image (VAE)
  };

  // A split's reconstruction loss of clean images and (a VAE) KL, over every rank's shard. A VAE's code is
  // sampled once per image from a stream of that image's and the epoch's own, so that the figures are the
  // same at any world size and evaluating never moves the training streams.
  TestFigures evaluate(io::DataLoader& loader, std::int64_t epoch) {
    NoGradGuard no_grad;
    model_->eval();
    std::vector<double> sums(3, 0.0);  // reconstruction x n, KL x n, n
    loader.start_epoch(0);
    while (std::optional<io::Batch> batch = loader.next()) {
      const Tensor& x = batch->images;
      const auto n = static_cast<double>(x.size(0));
      if (ae_.variational) {
        const models::Autoencoder::Posterior q = model_->posterior(x);
        std::vector<Tensor> eps;
        for (const std::int64_t index : batch->indices) {
          Generator stream(mix64(run_.seed ^ mix64(0x4556414cULL + static_cast<std::uint64_t>(epoch)) ^
                                 static_cast<std::uint64_t>(index)));
          eps.push_back(randn({1, ae_.code}, 0.0, 1.0, DType::f32, kCPU, &stream));
        }
        const Tensor z = q.mean + exp(q.logvar * 0.5) * cat(eps, 0);
        sums[0] += models::negative_log_likelihood(loss_, model_->decode(z), x).item() * n;
        sums[1] += gaussian_kl(q.mean, q.logvar).item() * n;
      } else {
        sums[0] += models::reconstruction_loss(loss_, model_->decode(model_->encode(x)), x).item() * n;
      }
      sums[2] += n;
    }
    model_->train();
    sum_over_ranks(*run_.group, sums);
    return {sums[0] / std::max(sums[2], 1.0), sums[1] / std::max(sums[2], 1.0)};
  }

  // The mean code over the global batch (every rank's codes; one all-reduce), for the KL sparsity penalty.
  Tensor global_mean(const Tensor& codes) const {
    NoGradGuard no_grad;
    const auto n = static_cast<double>(codes.size(0));
    std::vector<double> sums = (mean(codes, {0}).to(DType::f64) * n).to_vector<double>();
    sums.push_back(n);
    sum_over_ranks(*run_.group, sums);
    const double total = std::max(sums.back(), 1.0);
    sums.pop_back();
    for (double& v : sums) v /= total;
    return from_vector(sums, {static_cast<std::int64_t>(sums.size())});
  }

  // Rank 0's grids: rows of 8 test images over their (corrupted input and) reconstructions; for a VAE also
  // samples of the prior and interpolations between the codes of test images.
  void draw(std::int64_t epoch, std::int64_t step, RunLog& log, std::string& line) {
    NoGradGuard no_grad;
    model_->eval();
    const std::shared_ptr<io::ImageDataset>& source = data_.test ? data_.test : data_.train;
    io::LoaderOptions options = data_.test_options;
    options.rank = 0;
    options.world = 1;
    options.batch_size = std::min<std::int64_t>(ae_.samples, source->size());
    options.subset = nullptr;
    io::DataLoader loader(source, options);
    loader.start_epoch(0);
    const Tensor x = loader.next()->images;
    Generator stream(run_.seed ^ 0x475249445aULL);  // the same corruption and noise every epoch
    Tensor input = x;
    if (ae_.noise == "gaussian") input = models::gaussian_noise(x, ae_.noise_level, &stream);
    if (ae_.noise == "masking") input = models::masking_noise(x, ae_.noise_level, &stream);
    const Tensor reconstruction = sigmoid(model_->decode(model_->encode(input)));
    std::vector<Tensor> rows;
    constexpr std::int64_t kColumns = 8;
    for (std::int64_t start = 0; start < x.size(0); start += kColumns) {
      const std::int64_t end = std::min(x.size(0), start + kColumns);
      rows.push_back(x.slice(0, start, end));
      if (ae_.noise != "none") rows.push_back(clamp(input.slice(0, start, end), 0.0, 1.0));
      rows.push_back(reconstruction.slice(0, start, end));
    }
    write_grid(str_cat("reconstructions_epoch_", epoch + 1, ".png"), "reconstructions", cat(rows, 0),
               kColumns, step, log, line);
    if (ae_.variational) {
      const Tensor z = randn({ae_.samples, ae_.code}, 0.0, 1.0, DType::f32, kCPU, &stream);
      write_grid(str_cat("samples_epoch_", epoch + 1, ".png"), "samples", sigmoid(model_->decode(z)),
                 kColumns, step, log, line);
      // Rows from one test image's code to another's, in 8 steps.
      const Tensor codes = model_->encode(x);
      std::vector<Tensor> path;
      for (std::int64_t r = 0; r + 1 < std::min<std::int64_t>(x.size(0), 9); r += 2) {
        for (std::int64_t k = 0; k < kColumns; ++k) {
          const double t = static_cast<double>(k) / (kColumns - 1);
          path.push_back(codes.slice(0, r, r + 1) * (1.0 - t) + codes.slice(0, r + 1, r + 2) * t);
        }
      }
      if (!path.empty()) {
        write_grid(str_cat("interpolations_epoch_", epoch + 1, ".png"), "interpolations",
                   sigmoid(model_->decode(cat(path, 0))), kColumns, step, log, line);
      }
    }
    model_->train();
  }

  void write_grid(const std::string& name, const std::string& tag, const Tensor& images, std::int64_t columns,
                  std::int64_t step, RunLog& log, std::string& line) {
    const std::filesystem::path path = run_.output / name;
    const Tensor grid = io::image_grid(images, columns, 0.0, 1.0);
    io::write_png(path, grid);
    log.image(tag, grid, step);
    line += str_cat("  ", tag, " ", path.string());
  }

  const launch::Settings& settings_;
  const launch::AutoencoderSection& ae_;
  const RunSettings& run_;
  models::ReconstructionLoss loss_;
  std::shared_ptr<models::Autoencoder> model_;
  distributed::DataParallel dp_;
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::unique_ptr<optim::LRScheduler> scheduler_;
  std::vector<Tensor> params_;
  const DataSplits& data_;
  std::optional<io::DataLoader> validation_, test_;
};

}  // namespace

std::unique_ptr<Task> make_autoencoder_task(const TaskContext& context) {
  return std::make_unique<AutoencoderTask>(context);
}

}  // namespace lockstep::launch
