// The classifier training loop, data-parallel over the run's process group (a single process is a group of
// one, where the wrapper and the reductions cost nothing and change no number).
#include "launch/train/classifier.h"

#include <array>
#include <chrono>
#include <cmath>
#include <optional>

#include "distributed/data_parallel.h"
#include "distributed/sync_batch_norm.h"
#include "launch/train/evaluate.h"
#include "launch/train/factory.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/optim/clip.h"
#include "src/tensor/factories.h"

namespace lockstep::train {
namespace {

// Training figures summed over steps: [loss sum (of per-step mean losses), steps, correct, images]. Every
// rank runs the same steps on equal batches, so the sums over ranks give the job's means.
struct TrainSums {
  std::array<double, 4> values{};
  void add(double loss, std::int64_t correct, std::int64_t images) {
    values[0] += loss;
    values[1] += 1;
    values[2] += static_cast<double>(correct);
    values[3] += static_cast<double>(images);
  }
  // The sums over every rank (collective; a group of one returns them unchanged).
  TrainSums reduced(distributed::ProcessGroup& group) const {
    if (group.size() == 1) return *this;
    const Tensor t = from_vector(std::vector<double>(values.begin(), values.end()), {4});
    group.all_reduce(t, distributed::ReduceOp::kSum)->wait();
    TrainSums total;
    const std::vector<double> v = t.to_vector<double>();
    std::copy(v.begin(), v.end(), total.values.begin());
    return total;
  }
  double loss() const { return values[0] / std::max(values[1], 1.0); }
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
  DataLoader train_loader(data.train, data.train_options);
  std::optional<DataLoader> test_loader;
  if (data.test) test_loader.emplace(data.test, data.test_options);
  const std::int64_t steps_per_epoch = train_loader.batches_per_epoch();
  std::unique_ptr<optim::LRScheduler> scheduler =
      make_scheduler(cfg, "schedule", *optimizer, steps_per_epoch, run.epochs);
  cfg.reject_unknown();

  progress.print(
      str_cat("model ", cfg.get_string("model.name"), ": ", model->num_parameters(), " parameters; ",
              data.train->size(), " training images, ", steps_per_epoch, " steps per epoch",
              world > 1 ? str_cat(" per rank, ", dp.reducer().num_buckets(), " gradient buckets",
                                  synced > 0 ? str_cat(", ", synced, " synchronised batch norms") : "")
                        : ""));
  std::optional<MetricsLog> metrics;
  if (run.speaks()) metrics.emplace(run.output / "metrics.jsonl");
  const std::vector<Tensor> params = model->parameters();

  ClassifierResult result;
  std::optional<nn::StateDict> best;  // deep copy of the best model's state
  std::int64_t epochs_without_gain = 0;
  std::int64_t images = 0;  // this rank's
  const auto t0 = std::chrono::steady_clock::now();
  bool done = false;
  for (std::int64_t epoch = 0; epoch < run.epochs && !done; ++epoch) {
    model->train();
    train_loader.start_epoch(epoch);
    progress.start(str_cat("epoch ", epoch + 1, "/", run.epochs), steps_per_epoch);
    TrainSums sums;  // this rank's, this epoch
    while (std::optional<Batch> batch = train_loader.next()) {
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
      images += n;
      // Every rank reaches this step at the same time (equal shards), so the reduction is collective.
      if (result.steps == std::min<std::int64_t>(20, steps_per_epoch))
        result.first_loss = sums.reduced(group).loss();
      // The bar shows rank 0's running loss (no communication per step); the logged figures are the job's.
      progress.update(static_cast<std::int64_t>(sums.values[1]), n * world,
                      str_cat("loss ", format_fixed(sums.loss(), 4)));
      if (run.max_steps > 0 && result.steps >= run.max_steps) {
        done = true;
        break;
      }
    }
    const TrainSums job = sums.reduced(group);
    result.last_loss = job.loss();
    std::vector<std::pair<std::string, double>> fields = {{"epoch", epoch + 1},
                                                          {"step", static_cast<double>(result.steps)},
                                                          {"train_loss", result.last_loss},
                                                          {"train_accuracy", job.accuracy()},
                                                          {"lr", optimizer->lr()}};
    std::string line = str_cat("train loss ", format_fixed(result.last_loss, 4), "  train accuracy ",
                               format_fixed(job.accuracy(), 4));
    if (test_loader) {
      // Plain batch norm keeps per-rank running statistics: every rank evaluates rank 0's.
      if (world > 1 && !run.sync_batchnorm) dp.broadcast_state();
      const Accuracy acc = evaluate_classifier(*model, *test_loader, group);
      fields.emplace_back("test_loss", acc.loss);
      fields.emplace_back("test_accuracy", acc.accuracy);
      line += str_cat("  test loss ", format_fixed(acc.loss, 4), "  test accuracy ",
                      format_fixed(acc.accuracy, 4));
      // The metrics are the same on every rank, so every rank makes the same decisions.
      if (acc.accuracy > result.best_accuracy) {
        result.best_accuracy = acc.accuracy;
        result.best_epoch = epoch + 1;
        best = clone_state(model->state_dict());
        epochs_without_gain = 0;
      } else if (patience > 0 && ++epochs_without_gain >= patience) {
        line += str_cat("  (no gain for ", patience, " epochs: stopping early)");
        done = true;
      }
    }
    if (metrics) metrics->write(fields);
    progress.finish(line);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.images_per_s = static_cast<double>(images * world) / std::max(result.seconds, 1e-9);
  if (best) model->load_state_dict(*best);
  if (run.speaks()) save_models(run.output / "model.h5", "classifier", cfg, {{"model", model.get()}});
  return result;
}

}  // namespace lockstep::train
