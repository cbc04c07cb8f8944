// The classifier training loop, data-parallel over the run's process group (a single process is a group of
// one, where the wrapper and the reductions cost nothing and change no number).
#include "launch/train/classifier.h"

#include <array>
#include <chrono>
#include <cmath>
#include <optional>

#include "distributed/data_parallel.h"
#include "distributed/sync_batch_norm.h"
#include "launch/train/checkpointing.h"
#include "launch/train/evaluate.h"
#include "launch/train/factory.h"
#include "launch/train/run_log.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/optim/clip.h"
#include "src/tensor/factories.h"

namespace lockstep::train {
namespace {

// Training figures summed over steps: [loss sum (per-batch mean loss x images), steps, correct, images]. The
// sums over ranks give the job's means per image, the same at any world size.
struct TrainSums {
  std::array<double, 4> values{};
  void add(double loss, std::int64_t correct, std::int64_t images) {
    values[0] += loss * static_cast<double>(images);
    values[1] += 1;
    values[2] += static_cast<double>(correct);
    values[3] += static_cast<double>(images);
  }
  // The sums over every rank (collective; a group of one returns them unchanged).
  TrainSums reduced(distributed::ProcessGroup& group) const {
    TrainSums total = *this;
    sum_over_ranks(group, total.values);
    return total;
  }
  double loss() const { return values[0] / std::max(values[3], 1.0); }
  double accuracy() const { return values[2] / std::max(values[3], 1.0); }
};

std::int64_t count_correct(const Tensor& logits, const Tensor& labels) {
  const std::vector<std::int64_t> predicted = argmax(logits.detach(), 1).to_vector<std::int64_t>();
  const std::vector<std::int64_t> truth = labels.to_vector<std::int64_t>();
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < truth.size(); ++i) correct += predicted[i] == truth[i];
  return correct;
}

}  // namespace

ClassifierResult train_classifier(const launch::Config& cfg, const RunSettings& run, Progress& progress) {
  LOCKSTEP_CHECK(
      run.group != nullptr, ValueError,
      "train_classifier: expected run settings from setup_run (with a process group), but got none");
  distributed::ProcessGroup& group = *run.group;
  const int world = group.size();
  DataSplits data = make_data(cfg, run.seed, group.rank(), world);
  const double label_smoothing = cfg.get_double("train.label_smoothing", 0.0);
  const double clip_norm = cfg.get_double("train.clip_grad_norm", 0.0);
  const std::int64_t patience = cfg.get_int("train.early_stopping_patience", 0);

  std::shared_ptr<nn::Module> model = make_classifier(cfg, "model", data.geometry);
  const int synced =
      world > 1 && run.sync_batchnorm ? distributed::convert_sync_batchnorm(*model, run.group) : 0;
  distributed::DataParallel dp(model, run.group, run.reducer);
  split_random_streams(run);
  std::unique_ptr<optim::Optimizer> optimizer = make_optimizer(cfg, "optimizer", *model);
  Checkpointer checkpointer(cfg, run);
  const std::optional<io::TrainerState> resumed = checkpointer.find(progress);
  if (resumed)
    data.train_options.batch_size = resumed_batch_size(*resumed, data.train_options.batch_size, cfg, world);
  DataLoader train_loader(data.train, data.train_options);
  std::optional<DataLoader> test_loader;
  if (data.test) test_loader.emplace(data.test, data.test_options);
  const std::int64_t steps_per_epoch = train_loader.batches_per_epoch();
  std::unique_ptr<optim::LRScheduler> scheduler =
      make_scheduler(cfg, "schedule", *optimizer, steps_per_epoch, run.epochs);
  SampleLog sample_log(cfg, run);
  cfg.reject_unknown();
  progress.print(describe_job(run, data.train_options.batch_size));
  const TrainingParts parts{"classifier",
                            {{"model", model.get()}},
                            {{"optimizer", optimizer.get()}},
                            {{"schedule", scheduler.get()}}};

  progress.print(
      str_cat("model ", cfg.get_string("model.name"), ": ", model->num_parameters(), " parameters; ",
              data.train->size(), " training images, ", steps_per_epoch, " steps per epoch",
              world > 1 ? str_cat(" per rank, ", dp.reducer().num_buckets(), " gradient buckets",
                                  synced > 0 ? str_cat(", ", synced, " synchronised batch norms") : "")
                        : ""));
  const std::vector<Tensor> params = model->parameters();
  const std::int64_t global_batch = data.train_options.batch_size * world;

  ClassifierResult result;
  std::optional<nn::StateDict> best;  // deep copy of the best model's state
  std::int64_t epochs_without_gain = 0;
  std::int64_t first_epoch = 0, first_step = 0;  // where this process starts
  TrainSums sums;                                // this rank's, this epoch
  checkpointer.set_steps_per_epoch(steps_per_epoch);
  if (resumed) {
    io::StateGroups extra = checkpointer.load(parts, *resumed);
    if (auto it = extra.find("best_model"); it != extra.end()) best = std::move(it->second);
    result.best_accuracy = value_of(*resumed, "best_accuracy");
    result.best_epoch = static_cast<std::int64_t>(value_of(*resumed, "best_epoch"));
    result.first_loss = value_of(*resumed, "first_loss");
    epochs_without_gain = static_cast<std::int64_t>(value_of(*resumed, "epochs_without_gain"));
    load_rank_sums(*resumed, "epoch_sum", run.rank(), world, sums.values);
    result.steps = resumed->step;
    first_epoch = resumed->epoch;
    first_step = resumed->epoch_step;
    result.resumed_step = resumed->step;
    result.checkpoint = checkpointer.resumed_from();
    progress.print(checkpointer.describe_resume(*resumed, global_batch));
  }
  std::optional<RunLog> log;
  if (run.speaks()) log.emplace(run.output, resumed ? resumed->step : -1);
  // The trainer state at this point of the run (collective: every rank's epoch sums are gathered).
  const auto trainer_state = [&](std::int64_t epoch, std::int64_t epoch_step) {
    io::TrainerState state = trainer_state_at(result.steps, epoch, epoch_step, global_batch);
    save_rank_sums(group, &state, "epoch_sum", epoch_step > 0 ? sums.values : std::array<double, 4>{});
    state.values["best_accuracy"] = result.best_accuracy;
    state.values["best_epoch"] = static_cast<double>(result.best_epoch);
    state.values["first_loss"] = result.first_loss;
    state.values["epochs_without_gain"] = static_cast<double>(epochs_without_gain);
    return state;
  };
  const auto save = [&](std::int64_t epoch, std::int64_t epoch_step) {
    io::StateGroups extra;
    if (best) extra.emplace("best_model", *best);
    const SavedCheckpoint saved = checkpointer.save(parts, trainer_state(epoch, epoch_step), extra);
    result.checkpoint = saved.dir;
    progress.print(saved.describe());
  };

  std::int64_t images = 0;  // this rank's, in this process
  const auto t0 = std::chrono::steady_clock::now();
  const bool stopped_early = patience > 0 && epochs_without_gain >= patience;
  bool done = stopped_early || (run.max_steps > 0 && result.steps >= run.max_steps);
  if (resumed && (done || first_epoch >= run.epochs))
    progress.print(nothing_left_to_train(run, result.steps, stopped_early));
  for (std::int64_t epoch = first_epoch; epoch < run.epochs && !done; ++epoch) {
    model->train();
    const std::int64_t start = epoch == first_epoch ? first_step : 0;
    if (epoch != first_epoch) sums = TrainSums{};
    train_loader.start_epoch(epoch, start);
    progress.start(str_cat("epoch ", epoch + 1, "/", run.epochs), steps_per_epoch, start);
    std::int64_t epoch_step = start;
    while (std::optional<Batch> batch = train_loader.next()) {
      sample_log.write(result.steps + 1, batch->indices);
      const Tensor logits = dp(batch->images);
      Tensor loss = cross_entropy(logits, batch->labels, Reduction::kMean, label_smoothing);
      optimizer->zero_grad();
      loss.backward();  // averages the gradients over the ranks
      if (clip_norm > 0) optim::clip_grad_norm_(params, clip_norm);
      optimizer->step();
      scheduler->step();
      const double l = loss.item();
      if (!std::isfinite(l)) {
        throw ValueError(str_cat("train: the training loss became ", l, " at step ", result.steps + 1,
                                 ". Lower optimizer.lr or set train.clip_grad_norm"));
      }
      const std::int64_t n = batch->labels.numel();
      sums.add(l, count_correct(logits, batch->labels), n);
      ++result.steps;
      ++epoch_step;
      images += n;
      // Every rank reaches this step at the same time (equal shards), so the reduction is collective.
      if (result.steps == std::min<std::int64_t>(20, steps_per_epoch))
        result.first_loss = sums.reduced(group).loss();
      // The bar shows rank 0's running loss (no communication per step); the logged figures are the job's.
      progress.update(epoch_step, n * world, str_cat("loss ", format_fixed(sums.loss(), 4)));
      if (run.max_steps > 0 && result.steps >= run.max_steps) done = true;
      const bool stop = checkpointer.stop_requested();
      if (done || epoch_step == steps_per_epoch) break;  // the epoch's end evaluates and saves
      if (stop || checkpointer.due(result.steps)) save(epoch, epoch_step);
      if (stop) {
        result.stopped_by = checkpointer.stop_signal();
        progress.finish(str_cat("interrupted at step ", result.steps));
        return result;
      }
    }
    const TrainSums job = sums.reduced(group);
    result.last_loss = job.loss();
    std::vector<std::pair<std::string, double>> fields = {{"epoch", static_cast<double>(epoch + 1)},
                                                          {"train_loss", result.last_loss},
                                                          {"train_accuracy", job.accuracy()},
                                                          {"lr", optimizer->lr()}};
    std::string line = str_cat("train loss ", format_fixed(result.last_loss, 4), "  train accuracy ",
                               format_fixed(job.accuracy(), 4));
    // The best model and early stopping count complete epochs only: an epoch cut short by run.max_steps
    // is evaluated and reported, but a run that later resumes it must decide as an uninterrupted one would.
    const bool complete = epoch_step == steps_per_epoch;
    if (test_loader) {
      // Plain batch norm keeps per-rank running statistics: every rank evaluates rank 0's.
      if (world > 1 && !run.sync_batchnorm) dp.broadcast_state();
      const Accuracy acc = evaluate_classifier(*model, *test_loader, group);
      fields.emplace_back("test_loss", acc.loss);
      fields.emplace_back("test_accuracy", acc.accuracy);
      line += str_cat("  test loss ", format_fixed(acc.loss, 4), "  test accuracy ",
                      format_fixed(acc.accuracy, 4));
      result.final_accuracy = acc.accuracy;
      // The metrics are the same on every rank, so every rank makes the same decisions.
      if (!complete) {
        line += "  (part of an epoch)";
      } else if (acc.accuracy > result.best_accuracy) {
        result.best_accuracy = acc.accuracy;
        result.best_epoch = epoch + 1;
        best = clone_state(model->state_dict());
        epochs_without_gain = 0;
      } else if (patience > 0 && ++epochs_without_gain >= patience) {
        line += str_cat("  (no gain for ", patience, " epochs: stopping early)");
        done = true;
      }
    }
    if (log) log->write(result.steps, fields);
    progress.finish(line);
    const bool stop = checkpointer.stop_requested();
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
  if (best) model->load_state_dict(*best);
  if (run.speaks()) save_models(run.output / "model.h5", "classifier", cfg, {{"model", model.get()}});
  return result;
}

}  // namespace lockstep::train
