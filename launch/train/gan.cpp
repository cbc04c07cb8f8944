// The GAN task: k discriminator steps, then one generator step through the frozen discriminator; losses
// non-saturating (default), minimax, or Wasserstein with weight clipping (WGAN); per-network optimizers,
// schedules and gradient clipping (two time-scale updates), one-sided label smoothing, and a moving average
// of the generator's weights. Each network has its own DataParallel wrapper.
#include "launch/train/gan.h"

#include <cmath>

#include "distributed/data_parallel.h"
#include "distributed/sync_batch_norm.h"
#include "io/image/grid.h"
#include "io/image/png.h"
#include "launch/train/evaluate.h"
#include "launch/train/task.h"
#include "src/autograd/grad_mode.h"
#include "src/ops/elementwise.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/optim/clip.h"
#include "src/tensor/factories.h"

namespace lockstep::launch {
namespace {

enum class GanLoss { kNonSaturating, kMinimax, kWasserstein };

// Discriminator loss on its outputs for real and generated images; `real_label` < 1 is one-sided label
// smoothing of the real targets.
Tensor discriminator_loss(GanLoss kind, const Tensor& real_out, const Tensor& fake_out, double real_label) {
  if (kind == GanLoss::kWasserstein) return mean(fake_out) - mean(real_out);
  const Tensor real_target = real_label == 1.0 ? ones_like(real_out) : full_like(real_out, real_label);
  return binary_cross_entropy_with_logits(real_out, real_target) +
         binary_cross_entropy_with_logits(fake_out, zeros_like(fake_out));
}

// Generator loss on the discriminator's outputs for generated images.
Tensor generator_loss(GanLoss kind, const Tensor& fake_out) {
  switch (kind) {
    case GanLoss::kNonSaturating:  // -log D(G(z))
      return binary_cross_entropy_with_logits(fake_out, ones_like(fake_out));
    case GanLoss::kMinimax:  // log(1 - D(G(z)))
      return -binary_cross_entropy_with_logits(fake_out, zeros_like(fake_out));
    case GanLoss::kWasserstein:
      return -mean(fake_out);
  }
  return {};
}

void set_requires_grad(const std::vector<Tensor>& params, bool on) {
  for (Tensor p : params) p.requires_grad_(on);
}

// ema <- decay * ema + (1 - decay) * current for parameters; buffers (batch-norm statistics) copied.
void update_average(nn::Module& ema, const nn::Module& current, double decay) {
  NoGradGuard no_grad;
  const std::vector<nn::NamedTensor> from = current.named_parameters();
  const std::vector<nn::NamedTensor> to = ema.named_parameters();
  for (std::size_t i = 0; i < to.size(); ++i) {
    Tensor t = to[i].second;
    t.mul_(decay);
    t.add_(from[i].second.detach(), 1.0 - decay);
  }
  const std::vector<nn::NamedTensor> from_buffers = current.named_buffers();
  const std::vector<nn::NamedTensor> to_buffers = ema.named_buffers();
  for (std::size_t i = 0; i < to_buffers.size(); ++i) {
    Tensor t = to_buffers[i].second;
    t.copy_(from_buffers[i].second);
  }
}

// Sums over an epoch's steps: [D loss sum, D steps, G loss sum, G steps].
enum Sum : std::size_t { kDLoss, kDSteps, kGLoss, kGSteps };

class GanTask final : public Task {
 public:
  explicit GanTask(const TaskContext& c)
      : settings_(c.settings),
        gan_(c.settings.gan),
        run_(c.run),
        loss_(gan_.loss == "minimax"       ? GanLoss::kMinimax
              : gan_.loss == "wasserstein" ? GanLoss::kWasserstein
                                           : GanLoss::kNonSaturating),
        generator_(make_generator(c.settings.generator.model, c.data.geometry, gan_.latent)),
        discriminator_(make_discriminator(c.settings.discriminator.model, c.data.geometry)) {
    if (gan_.ema_decay > 0) {
      // Built before the ranks' random streams split, so identical everywhere; starts as the generator.
      ema_ = make_generator(c.settings.generator.model, c.data.geometry, gan_.latent);
      ema_->load_state_dict(clone_state(generator_->state_dict()));
    }
    if (run_.world() > 1 && run_.sync_batchnorm) {
      synced_ = distributed::convert_sync_batchnorm(*generator_, run_.group) +
                distributed::convert_sync_batchnorm(*discriminator_, run_.group);
    }
    dp_g_.emplace(generator_, run_.group, run_.reducer);
    dp_d_.emplace(discriminator_, run_.group, run_.reducer);
    g_optimizer_ = make_optimizer(c.settings.generator.optimizer, *generator_);
    d_optimizer_ = make_optimizer(c.settings.discriminator.optimizer, *discriminator_);
    g_params_ = generator_->parameters();
    d_params_ = discriminator_->parameters();
    fixed_z_ = fixed_noise(run_.seed, gan_.samples, gan_.latent);
  }

  TrainingParts parts() override {
    TrainingParts p{"gan",
                    {{"generator", generator_.get()}, {"discriminator", discriminator_.get()}},
                    {{"generator_optimizer", g_optimizer_.get()}, {"discriminator_optimizer", d_optimizer_.get()}},
                    {{"generator_schedule", g_scheduler_.get()}, {"discriminator_schedule", d_scheduler_.get()}}};
    if (ema_) p.models.emplace_back("generator_ema", ema_.get());
    return p;
  }

  std::string describe() const override {
    return str_cat("generator ", generator_->num_parameters(), " parameters, discriminator ",
                   discriminator_->num_parameters(), " parameters, loss ", gan_.loss,
                   gan_.d_steps > 1 ? str_cat(", ", gan_.d_steps, " discriminator steps per generator step") : "",
                   ema_ ? str_cat(", generator average (decay ", gan_.ema_decay, ")") : "",
                   synced_ > 0 ? str_cat(", ", synced_, " synchronised batch norms") : "");
  }

  void start(std::int64_t steps_per_epoch) override {
    // The generator updates once every d_steps steps.
    d_scheduler_ = make_scheduler(settings_.discriminator.schedule, *d_optimizer_, steps_per_epoch, run_.epochs);
    g_scheduler_ = make_scheduler(settings_.generator.schedule, *g_optimizer_,
                                  std::max<std::int64_t>(steps_per_epoch / gan_.d_steps, 1), run_.epochs);
  }

  std::vector<std::string> sum_names() const override {
    return {"the discriminator's loss", "discriminator steps", "the generator's loss", "generator steps"};
  }

  std::int64_t step(const io::Batch& batch, std::int64_t step, std::span<double> sums) override {
    const std::int64_t b = batch.images.size(0);
    // Discriminator step on a real batch and a generated one (the generator gets no gradient here).
    Tensor fake;
    {
      NoGradGuard no_grad;
      fake = dp_g_->module()(randn({b, gan_.latent}));
    }
    // Both forwards go through the wrapper: the one backward averages D's gradients over the ranks.
    Tensor d_loss = discriminator_loss(loss_, (*dp_d_)(batch.images), (*dp_d_)(fake), gan_.real_label);
    d_optimizer_->zero_grad();
    d_loss.backward();
    if (settings_.discriminator.clip_grad_norm > 0)
      optim::clip_grad_norm_(d_params_, settings_.discriminator.clip_grad_norm);
    d_optimizer_->step();
    d_scheduler_->step();
    if (loss_ == GanLoss::kWasserstein) optim::clip_parameters_(d_params_, gan_.weight_clip);
    sums[kDLoss] += d_loss.item();
    sums[kDSteps] += 1;
    // Generator step every d_steps discriminator steps, through a frozen discriminator called outside its
    // wrapper: only G's gradients are reduced and applied.
    if (step % gan_.d_steps == 0) {
      set_requires_grad(d_params_, false);
      Tensor g_loss = generator_loss(loss_, dp_d_->module()((*dp_g_)(randn({b, gan_.latent}))));
      g_optimizer_->zero_grad();
      g_loss.backward();
      if (settings_.generator.clip_grad_norm > 0)
        optim::clip_grad_norm_(g_params_, settings_.generator.clip_grad_norm);
      g_optimizer_->step();
      g_scheduler_->step();
      set_requires_grad(d_params_, true);
      if (ema_) update_average(*ema_, *generator_, gan_.ema_decay);
      sums[kGLoss] += g_loss.item();
      sums[kGSteps] += 1;
      ++generator_steps_;
    }
    return b;
  }

  std::string progress_text(std::span<const double> sums) const override {
    return str_cat("D ", format_fixed(sums[kDLoss] / std::max(sums[kDSteps], 1.0), 3), "  G ",
                   format_fixed(sums[kGLoss] / std::max(sums[kGSteps], 1.0), 3));
  }

  EpochEnd end_epoch(std::int64_t epoch, std::int64_t step, std::span<const double> job, RunLog* log) override {
    EpochEnd e;
    const double d = job[kDLoss] / std::max(job[kDSteps], 1.0), g = job[kGLoss] / std::max(job[kGSteps], 1.0);
    e.fields = {{"d_loss", d}, {"g_loss", g}};
    e.line = str_cat("D loss ", format_fixed(d, 4), "  G loss ", format_fixed(g, 4));
    if (log != nullptr) {  // rank 0 draws the samples (from the average when kept)
      const std::filesystem::path grid = run_.output / str_cat("samples_epoch_", epoch + 1, ".png");
      log->image("samples", write_samples(ema_ ? *ema_ : *generator_, fixed_z_, grid), step);
      e.line += str_cat("  samples ", grid.string());
    }
    return e;
  }

  std::string divergence_hint() const override {
    return "Lower generator.optimizer.lr / discriminator.optimizer.lr, or set generator.clip_grad_norm / "
           "discriminator.clip_grad_norm";
  }

  std::map<std::string, double> values() const override {
    return {{"generator_steps", static_cast<double>(generator_steps_)}};
  }
  void restore(const io::TrainerState& state) override { generator_steps_ = state.step / gan_.d_steps; }

  std::string summary(const std::vector<std::pair<std::string, double>>& last) const override {
    std::string text;
    for (const auto& [name, value] : last)
      text += str_cat(text.empty() ? "" : ", ", name == "d_loss" ? "D loss " : "G loss ", format_fixed(value, 4));
    return str_cat(text, ", ", generator_steps_, " generator steps");
  }

 private:
  const launch::Settings& settings_;
  const launch::GanSection& gan_;
  const RunSettings& run_;
  GanLoss loss_;
  std::shared_ptr<nn::Module> generator_, discriminator_, ema_;
  int synced_ = 0;
  std::optional<distributed::DataParallel> dp_g_, dp_d_;
  std::unique_ptr<optim::Optimizer> g_optimizer_, d_optimizer_;
  std::unique_ptr<optim::LRScheduler> g_scheduler_, d_scheduler_;
  std::vector<Tensor> g_params_, d_params_;
  Tensor fixed_z_;
  std::int64_t generator_steps_ = 0;
};

}  // namespace

Tensor write_samples(nn::Module& generator, const Tensor& z, const std::filesystem::path& path) {
  NoGradGuard no_grad;
  generator.eval();
  const Tensor images = generator(z);
  generator.train();
  const auto columns = static_cast<std::int64_t>(std::ceil(std::sqrt(static_cast<double>(images.size(0)))));
  Tensor grid = io::image_grid(images, columns);
  io::write_png(path, grid);
  return grid;
}

Tensor fixed_noise(std::uint64_t seed, std::int64_t count, std::int64_t latent) {
  Generator stream(seed ^ 0x5a4d504c45ULL);
  return randn({count, latent}, 0.0, 1.0, DType::f32, kCPU, &stream);
}

std::unique_ptr<Task> make_gan_task(const TaskContext& context) { return std::make_unique<GanTask>(context); }

}  // namespace lockstep::launch
