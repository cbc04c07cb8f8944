// The GAN training loop, data-parallel over the run's process group: one DataParallel per network.
#include "launch/train/gan.h"

#include <array>
#include <chrono>
#include <cmath>
#include <optional>

#include "distributed/data_parallel.h"
#include "distributed/sync_batch_norm.h"
#include "io/image/grid.h"
#include "io/image/png.h"
#include "launch/train/checkpointing.h"
#include "launch/train/evaluate.h"
#include "launch/train/factory.h"
#include "launch/train/run_log.h"
#include "src/autograd/grad_mode.h"
#include "src/ops/elementwise.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/optim/clip.h"
#include "src/tensor/factories.h"

namespace lockstep::train {
namespace {

enum class GanLoss { kNonSaturating, kMinimax, kWasserstein };

// Discriminator loss on its outputs for real and generated images.
Tensor discriminator_loss(GanLoss kind, const Tensor& real_out, const Tensor& fake_out) {
  if (kind == GanLoss::kWasserstein) return mean(fake_out) - mean(real_out);
  return binary_cross_entropy_with_logits(real_out, ones_like(real_out)) +
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

}  // namespace

Tensor write_samples(nn::Module& generator, const Tensor& z, const std::filesystem::path& path) {
  NoGradGuard no_grad;
  generator.eval();
  const Tensor images = generator(z);
  generator.train();
  const auto columns = static_cast<std::int64_t>(std::ceil(std::sqrt(static_cast<double>(images.size(0)))));
  Tensor grid = image_grid(images, columns);
  write_png(path, grid);
  return grid;
}

Tensor fixed_noise(std::uint64_t seed, std::int64_t count, std::int64_t latent) {
  Generator stream(seed ^ 0x5a4d504c45ULL);
  return randn({count, latent}, 0.0, 1.0, DType::f32, kCPU, &stream);
}

GanResult train_gan(const launch::Config& cfg, const RunSettings& run, Progress& progress) {
  LOCKSTEP_CHECK(run.group != nullptr, ValueError,
                 "train_gan: expected run settings from setup_run (with a process group), but got none");
  distributed::ProcessGroup& group = *run.group;
  const int world = group.size();
  DataSplits data = make_data(cfg, run.seed, group.rank(), world);
  const std::int64_t latent = cfg.get_int("gan.latent", 100);
  const std::string loss_name =
      cfg.choice("gan.loss", {"non-saturating", "minimax", "wasserstein"}, "non-saturating");
  const GanLoss loss_kind = loss_name == "minimax"       ? GanLoss::kMinimax
                            : loss_name == "wasserstein" ? GanLoss::kWasserstein
                                                         : GanLoss::kNonSaturating;
  const std::int64_t d_steps = cfg.get_int("gan.d_steps", loss_kind == GanLoss::kWasserstein ? 5 : 1);
  const double clip = cfg.get_double("gan.weight_clip", 0.01);
  const std::int64_t sample_count = cfg.get_int("gan.samples", 64);
  if (d_steps < 1) cfg.fail("gan.d_steps", str_cat("expected at least 1, but got ", d_steps));

  std::shared_ptr<nn::Module> generator = make_generator(cfg, "generator", data.geometry, latent);
  std::shared_ptr<nn::Module> discriminator = make_discriminator(cfg, "discriminator", data.geometry);
  int synced = 0;
  if (world > 1 && run.sync_batchnorm) {
    synced = distributed::convert_sync_batchnorm(*generator, run.group) +
             distributed::convert_sync_batchnorm(*discriminator, run.group);
  }
  distributed::DataParallel dp_g(generator, run.group, run.reducer);
  distributed::DataParallel dp_d(discriminator, run.group, run.reducer);
  split_random_streams(run);  // every rank draws its own noise from here on
  std::unique_ptr<optim::Optimizer> g_optimizer = make_optimizer(cfg, "optimizer", *generator);
  std::unique_ptr<optim::Optimizer> d_optimizer = make_optimizer(cfg, "optimizer", *discriminator);
  Checkpointer checkpointer(cfg, run);
  const std::optional<io::TrainerState> resumed = checkpointer.find(progress);
  if (resumed)
    data.train_options.batch_size = resumed_batch_size(*resumed, data.train_options.batch_size, cfg, world);
  DataLoader loader(data.train, data.train_options);
  SampleLog sample_log(cfg, run);
  cfg.reject_unknown();
  progress.print(describe_job(run, data.train_options.batch_size));
  const TrainingParts parts{
      "gan",
      {{"generator", generator.get()}, {"discriminator", discriminator.get()}},
      {{"generator_optimizer", g_optimizer.get()}, {"discriminator_optimizer", d_optimizer.get()}},
      {}};

  const std::int64_t steps_per_epoch = loader.batches_per_epoch();
  progress.print(str_cat("generator ", generator->num_parameters(), " parameters, discriminator ",
                         discriminator->num_parameters(), " parameters; ", data.train->size(),
                         " training images, ", steps_per_epoch, " discriminator steps per epoch",
                         world > 1 ? " per rank" : "", ", loss ", loss_name,
                         synced > 0 ? str_cat(", ", synced, " synchronised batch norms") : ""));
  const Tensor fixed_z = fixed_noise(run.seed, sample_count, latent);
  const std::vector<Tensor> d_params = discriminator->parameters();
  const std::int64_t global_batch = data.train_options.batch_size * world;

  GanResult result;
  std::int64_t first_epoch = 0, first_step = 0;  // where this process starts
  // This epoch's [D loss sum, D steps, G loss sum, G steps]: this rank's.
  std::array<double, 4> sums{};
  const auto reduced = [&] {
    std::array<double, 4> total = sums;
    sum_over_ranks(group, total);
    return total;
  };
  checkpointer.set_steps_per_epoch(steps_per_epoch);
  if (resumed) {
    checkpointer.load(parts, *resumed);
    result.steps = resumed->step;
    result.generator_steps = result.steps / d_steps;
    first_epoch = resumed->epoch;
    first_step = resumed->epoch_step;
    result.resumed_step = resumed->step;
    result.checkpoint = checkpointer.resumed_from();
    load_rank_sums(*resumed, "epoch_sum", run.rank(), world, sums);
    progress.print(checkpointer.describe_resume(*resumed, global_batch));
  }
  std::optional<RunLog> log;
  if (run.speaks()) log.emplace(run.output, resumed ? resumed->step : -1);
  const auto save = [&](std::int64_t epoch, std::int64_t epoch_step) {
    io::TrainerState state = trainer_state_at(result.steps, epoch, epoch_step, global_batch);
    save_rank_sums(group, &state, "epoch_sum", epoch_step > 0 ? sums : std::array<double, 4>{});
    const SavedCheckpoint saved = checkpointer.save(parts, state);
    result.checkpoint = saved.dir;
    progress.print(saved.describe());
  };

  std::int64_t images = 0;  // this rank's, in this process
  const auto t0 = std::chrono::steady_clock::now();
  bool done = run.max_steps > 0 && result.steps >= run.max_steps;
  if (resumed && (done || first_epoch >= run.epochs))
    progress.print(nothing_left_to_train(run, result.steps, false));
  for (std::int64_t epoch = first_epoch; epoch < run.epochs && !done; ++epoch) {
    const std::int64_t start = epoch == first_epoch ? first_step : 0;
    if (epoch != first_epoch) sums = {};
    loader.start_epoch(epoch, start);
    progress.start(str_cat("epoch ", epoch + 1, "/", run.epochs), steps_per_epoch, start);
    std::int64_t epoch_step = start;
    while (std::optional<Batch> batch = loader.next()) {
      const std::int64_t b = batch->images.size(0);
      sample_log.write(result.steps + 1, batch->indices);
      // Discriminator step on a real batch and a generated one (the generator gets no gradient here).
      Tensor fake;
      {
        NoGradGuard no_grad;
        fake = dp_g.module()(randn({b, latent}));
      }
      // Both forwards go through the wrapper: the one backward averages D's gradients over the ranks.
      Tensor d_loss = discriminator_loss(loss_kind, dp_d(batch->images), dp_d(fake));
      d_optimizer->zero_grad();
      d_loss.backward();
      d_optimizer->step();
      if (loss_kind == GanLoss::kWasserstein) optim::clip_parameters_(d_params, clip);
      sums[0] += d_loss.item();
      sums[1] += 1;
      ++result.steps;
      ++epoch_step;
      images += b;
      // Generator step every d_steps discriminator steps, through a frozen discriminator called outside
      // its wrapper: only G's gradients are reduced and applied.
      if (result.steps % d_steps == 0) {
        set_requires_grad(d_params, false);
        Tensor g_loss = generator_loss(loss_kind, dp_d.module()(dp_g(randn({b, latent}))));
        g_optimizer->zero_grad();
        g_loss.backward();
        g_optimizer->step();
        set_requires_grad(d_params, true);
        sums[2] += g_loss.item();
        sums[3] += 1;
        ++result.generator_steps;
      }
      if (!std::isfinite(sums[0]) || !std::isfinite(sums[2])) {
        throw ValueError(str_cat("train: a GAN loss became non-finite at discriminator step ", result.steps,
                                 ". Lower optimizer.lr"));
      }
      // The bar shows rank 0's running losses; the logged ones are averaged over the ranks.
      progress.update(epoch_step, b * world,
                      str_cat("D ", format_fixed(sums[0] / std::max(sums[1], 1.0), 3), "  G ",
                              format_fixed(sums[2] / std::max(sums[3], 1.0), 3)));
      if (run.max_steps > 0 && result.steps >= run.max_steps) done = true;
      const bool stop = checkpointer.stop_requested();
      if (done || epoch_step == steps_per_epoch) break;  // the epoch's end saves
      if (stop || checkpointer.due(result.steps)) save(epoch, epoch_step);
      if (stop) {
        result.stopped_by = checkpointer.stop_signal();
        progress.finish(str_cat("interrupted at step ", result.steps));
        return result;
      }
    }
    const std::array<double, 4> job = reduced();
    result.d_loss = job[0] / std::max(job[1], 1.0);
    result.g_loss = job[2] / std::max(job[3], 1.0);
    if (run.speaks()) {  // rank 0 writes the samples, the metrics and the models
      const std::filesystem::path grid = run.output / str_cat("samples_epoch_", epoch + 1, ".png");
      const Tensor samples = write_samples(*generator, fixed_z, grid);
      log->write(
          result.steps,
          {{"epoch", static_cast<double>(epoch + 1)}, {"d_loss", result.d_loss}, {"g_loss", result.g_loss}});
      log->image("samples", samples, result.steps);
      save_models(run.output / "model.h5", "gan", cfg,
                  {{"generator", generator.get()}, {"discriminator", discriminator.get()}});
      progress.finish(str_cat("D loss ", format_fixed(result.d_loss, 4), "  G loss ",
                              format_fixed(result.g_loss, 4), "  samples ", grid.string()));
    }
    const bool stop = checkpointer.stop_requested();
    const bool complete = epoch_step == steps_per_epoch;
    // The state after a complete epoch is the start of the next one. The last epoch always saves.
    if (checkpointer.due_at_epoch_end(result.steps, stop || done || epoch + 1 == run.epochs))
      save(complete ? epoch + 1 : epoch, complete ? 0 : epoch_step);
    if (stop) {
      result.stopped_by = checkpointer.stop_signal();
      return result;
    }
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.images_per_s = static_cast<double>(images * world) / std::max(result.seconds, 1e-9);
  return result;
}

}  // namespace lockstep::train
