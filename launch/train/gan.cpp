// The GAN task: k discriminator steps, then one generator step through the frozen discriminator; losses
// non-saturating (default), minimax, Wasserstein with weight clipping (WGAN) or with a gradient penalty
// (WGAN-GP); unconditional or class-conditional (cGAN); per-network optimizers, schedules and gradient
// clipping (two time-scale updates), one-sided label smoothing, and a moving average of the generator's
// weights. Each network has its own DataParallel wrapper.
#include "launch/train/gan.h"

#include <cmath>

#include "distributed/data_parallel.h"
#include "distributed/sync_batch_norm.h"
#include "io/image/grid.h"
#include "io/image/png.h"
#include "launch/train/evaluate.h"
#include "launch/train/task.h"
#include "src/autograd/grad_mode.h"
#include "src/models/conditional.h"
#include "src/models/gan_loss.h"
#include "src/ops/elementwise.h"
#include "src/ops/reduce.h"
#include "src/optim/clip.h"
#include "src/tensor/factories.h"

namespace lockstep::launch {
namespace {

// Uniform class labels i64 [n] in [0, classes) from the default generator (this rank's stream), drawn on
// `device` (the same numbers on every device; no copy from the host, which a GPU would wait for).
Tensor random_labels(std::int64_t n, std::int64_t classes, Device device) {
  const auto top = static_cast<double>(classes);
  return clamp(rand({n}, 0.0, top, DType::f64, device), 0.0, top - 1.0).to(DType::i64);  // truncated: floor
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

// Sums over an epoch's steps: [D loss sum, D steps, G loss sum, G steps(, gradient norm sum under a penalty)].
enum Sum : std::size_t { kDLoss, kDSteps, kGLoss, kGSteps, kPenaltyNorm };

class GanTask final : public Task {
 public:
  explicit GanTask(const TaskContext& c)
      : settings_(c.settings),
        gan_(c.settings.gan),
        run_(c.run),
        loss_(gan_.loss == "minimax"                 ? models::GanLoss::kMinimax
              : gan_.loss.starts_with("wasserstein") ? models::GanLoss::kWasserstein
                                                     : models::GanLoss::kNonSaturating),
        penalised_(gan_.loss == "wasserstein-gp"),
        classes_(gan_.conditional ? c.data.geometry.classes : 0),
        generator_(make_generator(c.settings, c.data.geometry)),
        discriminator_(make_discriminator(c.settings, c.data.geometry)) {
    if (gan_.ema_decay > 0) {
      // Built before the ranks' random streams split, so identical everywhere; starts as the generator.
      ema_ = make_generator(c.settings, c.data.geometry);
      ema_->load_state_dict(clone_state(generator_->state_dict()));
      ema_->to(run_.device);
    }
    generator_->to(run_.device);
    discriminator_->to(run_.device);
    synced_ = synchronise_batch_norms(*generator_, run_) + synchronise_batch_norms(*discriminator_, run_);
    dp_g_.emplace(generator_, run_.gradient_group(), run_.reducer);
    dp_d_.emplace(discriminator_, run_.gradient_group(), run_.reducer);
    g_optimizer_ = make_optimizer(c.settings.generator.optimizer, *generator_);
    d_optimizer_ = make_optimizer(c.settings.discriminator.optimizer, *discriminator_);
    g_params_ = generator_->parameters();
    d_params_ = discriminator_->parameters();
    fixed_ = fixed_noise(run_.seed, gan_.samples, gan_.latent, classes_);
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
    return str_cat(classes_ > 0 ? str_cat("conditional on ", classes_, " classes, ") : "", "generator ",
                   generator_->num_parameters(), " parameters, discriminator ", discriminator_->num_parameters(),
                   " parameters, loss ", gan_.loss, penalised_ ? str_cat(" (lambda ", gan_.gp_lambda, ")") : "",
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
    std::vector<std::string> names{"the discriminator's loss", "discriminator steps", "the generator's loss",
                                   "generator steps"};
    if (penalised_) names.emplace_back("the critic's gradient norm on interpolates");
    return names;
  }

  // A step's mean loss beyond 1e6 means logits of that size: the networks have left any useful regime.
  std::string exploded(std::span<const double> added, std::int64_t /*n*/) const override {
    // Per step: the sums since the last check may span many steps (on a GPU).
    const std::string d =
        beyond("the discriminator's loss", added[kDLoss] / std::max(added[kDSteps], 1.0), 1e6);
    return d.empty() ? beyond("the generator's loss", added[kGLoss] / std::max(added[kGSteps], 1.0), 1e6) : d;
  }

  std::int64_t step(const io::Batch& batch, std::int64_t step, StepSums& sums) override {
    const std::int64_t b = batch.images.size(0);
    const Device device = run_.device;
    const Tensor real = batch.images.to(device);
    // A conditional discriminator sees the real images with their labels and the generated ones with the
    // labels they were drawn for: in the discriminator step the real batch's, so that interpolates pair
    // images of one class.
    const Tensor real_labels = classes_ > 0 ? batch.labels.to(device) : Tensor();
    // Every forward goes through the wrapper: the synchronised backward averages D's gradients over the
    // ranks.
    const auto critic = [&](const Tensor& images) {
      return models::discriminate(dp_d_->prepare_forward(), images, real_labels);
    };
    // Discriminator step on a real batch and a generated one (the generator gets no gradient here). The
    // real batch's backward comes first and only accumulates on this rank: it needs nothing of the generator,
    // so the generator's all-reduce from the step before moves meanwhile. Then the generator's update is
    // applied, the batch generated, and its backward averages D's summed gradients.
    Tensor d_loss;
    if (run_.deterministic()) {
      const Tensor fake = generate_detached(b, real_labels);
      d_loss = deterministic_backward(real, fake, critic);
    } else {
      d_optimizer_->zero_grad();
      Tensor real_term;
      {
        const distributed::DataParallel::NoSync local(*dp_d_);
        real_term = models::discriminator_real_term(loss_, critic(real), gan_.real_label);
        real_term.backward();
      }
      finish_generator_step();
      const Tensor fake = generate_detached(b, real_labels);
      Tensor fake_term = models::discriminator_fake_term(loss_, critic(fake));
      d_loss = loss_ == models::GanLoss::kWasserstein ? fake_term.detach() + real_term.detach()
                                                      : real_term.detach() + fake_term.detach();
      if (penalised_) {
        const models::GradientPenalty penalty = models::gradient_penalty(
            critic, real, fake, rand({b}, 0.0, 1.0, DType::f64, device), gan_.gp_lambda);
        fake_term = fake_term + penalty.penalty;
        d_loss = d_loss + penalty.penalty.detach();
        sums.add(kPenaltyNorm, penalty.mean_norm);
      }
      dp_d_->reducer().defer_next_wait();
      fake_term.backward();
    }
    sums.add(kDLoss, d_loss);
    sums.add(kDSteps, 1);
    // Generator step every d_steps discriminator steps, through a frozen discriminator called outside its
    // wrapper: only G's gradients are reduced and applied. Its batch is generated while D's all-reduce is in
    // flight (it needs nothing of D), then D's update is applied. G's all-reduce is left in flight (but in
    // deterministic mode): its update is applied by the next discriminator step, or before anything reads
    // the generator (a checkpoint, the epoch's end).
    if (step % gan_.d_steps != 0) {
      finish_discriminator_step();
    } else {
      const Tensor labels = classes_ > 0 ? random_labels(b, classes_, device) : Tensor();
      const Tensor images = models::generate(dp_g_->prepare_forward(),
                                             randn({b, gan_.latent}, 0.0, 1.0, DType::f32, device), labels);
      finish_discriminator_step();
      discriminator_->requires_grad_(false);
      Tensor g_loss = models::generator_loss(loss_, models::discriminate(dp_d_->module(), images, labels));
      g_optimizer_->zero_grad();
      if (!run_.deterministic()) dp_g_->reducer().defer_next_wait();
      g_loss.backward();
      discriminator_->requires_grad_(true);
      generator_pending_ = true;
      if (run_.deterministic()) finish_generator_step();
      sums.add(kGLoss, g_loss);
      sums.add(kGSteps, 1);
      ++generator_steps_;
    }
    return b;
  }

  void before_save() override { finish_generator_step(); }

  // A batch of b generated images for the discriminator (no gradient reaches the generator).
  Tensor generate_detached(std::int64_t b, const Tensor& labels) {
    NoGradGuard no_grad;
    return models::generate(dp_g_->module(), randn({b, gan_.latent}, 0.0, 1.0, DType::f32, run_.device),
                            labels);
  }

  // The discriminator's update from its last backward, once its all-reduce has ended: clipping, the optimizer
  // and schedule, WGAN's weight clipping.
  void finish_discriminator_step() {
    dp_d_->reducer().wait();
    if (settings_.discriminator.clip_grad_norm > 0)
      optim::clip_grad_norm_(d_params_, settings_.discriminator.clip_grad_norm);
    d_optimizer_->step();
    d_scheduler_->step();
    if (gan_.loss == "wasserstein") optim::clip_parameters_(d_params_, gan_.weight_clip);
  }

  // The generator's update from its last backward, once its all-reduce has ended: clipping, the optimizer
  // and schedule, the moving average. Collective when the all-reduce is still in flight.
  void finish_generator_step() {
    if (!generator_pending_) return;
    generator_pending_ = false;
    dp_g_->reducer().wait();
    if (settings_.generator.clip_grad_norm > 0)
      optim::clip_grad_norm_(g_params_, settings_.generator.clip_grad_norm);
    g_optimizer_->step();
    g_scheduler_->step();
    if (ema_) update_average(*ema_, *generator_, gan_.ema_decay);
  }

  // Deterministic mode's discriminator gradients: one backward per batch (real, then generated), each reduced
  // on its own, their gradients added in that order; returns the loss (detached). A parameter's gradients
  // from two batches in one backward would be summed on each rank before the reduction, in an order that
  // depends on the world size.
  template <class Critic>
  Tensor deterministic_backward(const Tensor& real, const Tensor& fake, const Critic& critic) {
    d_optimizer_->zero_grad();
    const Tensor real_term = models::discriminator_real_term(loss_, critic(real), gan_.real_label);
    real_term.backward();
    std::vector<Tensor> real_grads;
    for (const Tensor& p : d_params_) real_grads.push_back(p.grad().defined() ? p.grad().clone() : Tensor());
    d_optimizer_->zero_grad();
    const Tensor fake_term = models::discriminator_fake_term(loss_, critic(fake));
    fake_term.backward();
    NoGradGuard no_grad;
    for (std::size_t i = 0; i < d_params_.size(); ++i) {
      if (!real_grads[i].defined()) continue;
      if (Tensor g = d_params_[i].grad(); g.defined()) {
        g.add_(real_grads[i]);
      } else {
        d_params_[i].set_grad(real_grads[i]);
      }
    }
    return loss_ == models::GanLoss::kWasserstein ? fake_term.detach() + real_term.detach()
                                                  : real_term.detach() + fake_term.detach();
  }

  std::string progress_text(std::span<const double> sums) const override {
    return str_cat("D ", format_fixed(sums[kDLoss] / std::max(sums[kDSteps], 1.0), 3), "  G ",
                   format_fixed(sums[kGLoss] / std::max(sums[kGSteps], 1.0), 3));
  }

  EpochEnd end_epoch(std::int64_t epoch, std::int64_t step, std::span<const double> job, RunLog* log) override {
    finish_generator_step();
    EpochEnd e;
    const double d = job[kDLoss] / std::max(job[kDSteps], 1.0), g = job[kGLoss] / std::max(job[kGSteps], 1.0);
    e.fields = {{"d_loss", d}, {"g_loss", g}};
    e.line = str_cat("D loss ", format_fixed(d, 4), "  G loss ", format_fixed(g, 4));
    if (penalised_) {  // WGAN-GP keeps it near 1
      const double norm = job[kPenaltyNorm] / std::max(job[kDSteps], 1.0);
      e.fields.emplace_back("grad_norm", norm);
      e.line += str_cat("  critic gradient norm ", format_fixed(norm, 3));
    }
    if (log != nullptr) {  // rank 0 draws the samples (from the average when kept)
      const std::filesystem::path grid = run_.output / str_cat("samples_epoch_", epoch + 1, ".png");
      log->image("samples", write_samples(ema_ ? *ema_ : *generator_, fixed_, grid), step);
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
    for (const auto& [name, value] : last) {
      text += str_cat(text.empty() ? "" : ", ",
                      name == "d_loss"   ? "D loss "
                      : name == "g_loss" ? "G loss "
                                         : "critic gradient norm ",
                      format_fixed(value, 4));
    }
    return str_cat(text, ", ", generator_steps_, " generator steps");
  }

 private:
  const launch::Settings& settings_;
  const launch::GanSection& gan_;
  const RunSettings& run_;
  models::GanLoss loss_;
  bool penalised_;
  std::int64_t classes_;  // 0: unconditional
  std::shared_ptr<nn::Module> generator_, discriminator_, ema_;
  int synced_ = 0;
  std::optional<distributed::DataParallel> dp_g_, dp_d_;
  std::unique_ptr<optim::Optimizer> g_optimizer_, d_optimizer_;
  std::unique_ptr<optim::LRScheduler> g_scheduler_, d_scheduler_;
  std::vector<Tensor> g_params_, d_params_;
  SampleInputs fixed_;
  std::int64_t generator_steps_ = 0;
  bool generator_pending_ = false;  // a generator backward whose update finish_generator_step has not applied
};

}  // namespace

Tensor write_samples(nn::Module& generator, const SampleInputs& inputs, const std::filesystem::path& path) {
  NoGradGuard no_grad;
  generator.eval();
  const Device device = device_of(generator);
  const Tensor images = models::generate(generator, inputs.z.to(device),
                                         inputs.labels.defined() ? inputs.labels.to(device) : Tensor())
                            .to(kCPU);
  generator.train();
  Tensor grid = io::image_grid(images, inputs.columns);
  io::write_png(path, grid);
  return grid;
}

SampleInputs fixed_noise(std::uint64_t seed, std::int64_t count, std::int64_t latent, std::int64_t classes) {
  Generator stream(seed ^ 0x5a4d504c45ULL);
  SampleInputs inputs;
  if (classes == 0) {
    inputs.columns = static_cast<std::int64_t>(std::ceil(std::sqrt(static_cast<double>(count))));
  } else {  // one row per class
    inputs.columns = (count + classes - 1) / classes;
    count = inputs.columns * classes;
    std::vector<std::int64_t> labels;
    for (std::int64_t i = 0; i < count; ++i) labels.push_back(i / inputs.columns);
    inputs.labels = from_vector(labels, {count});
  }
  inputs.z = randn({count, latent}, 0.0, 1.0, DType::f32, kCPU, &stream);
  return inputs;
}

std::unique_ptr<Task> make_gan_task(const TaskContext& context) { return std::make_unique<GanTask>(context); }

}  // namespace lockstep::launch
