// The classifier training loop.
#include "launch/train/classifier.h"

#include <chrono>
#include <cmath>
#include <optional>

#include "launch/train/evaluate.h"
#include "launch/train/factory.h"
#include "src/ops/loss.h"
#include "src/optim/clip.h"

namespace lockstep::train {

ClassifierResult train_classifier(const launch::Config& cfg, const RunSettings& run, Progress& progress) {
  DataSplits data = make_data(cfg, run.seed);
  const double label_smoothing = cfg.get_double("train.label_smoothing", 0.0);
  const double clip_norm = cfg.get_double("train.clip_grad_norm", 0.0);
  const std::int64_t patience = cfg.get_int("train.early_stopping_patience", 0);

  std::shared_ptr<nn::Module> model = make_classifier(cfg, "model", data.geometry);
  std::unique_ptr<optim::Optimizer> optimizer = make_optimizer(cfg, "optimizer", *model);
  DataLoader train_loader(data.train, data.train_options);
  std::optional<DataLoader> test_loader;
  if (data.test) test_loader.emplace(data.test, data.test_options);
  const std::int64_t steps_per_epoch = train_loader.batches_per_epoch();
  std::unique_ptr<optim::LRScheduler> scheduler =
      make_scheduler(cfg, "schedule", *optimizer, steps_per_epoch, run.epochs);
  cfg.reject_unknown();

  progress.print(str_cat("model ", cfg.get_string("model.name"), ": ", model->num_parameters(),
                         " parameters; ", data.train->size(), " training images, ", steps_per_epoch,
                         " steps per epoch"));
  MetricsLog metrics(run.output / "metrics.jsonl");
  const std::vector<Tensor> params = model->parameters();

  ClassifierResult result;
  std::optional<nn::StateDict> best;  // deep copy of the best model's state
  std::int64_t epochs_without_gain = 0;
  std::int64_t images = 0;
  const auto t0 = std::chrono::steady_clock::now();
  bool done = false;
  for (std::int64_t epoch = 0; epoch < run.epochs && !done; ++epoch) {
    model->train();
    train_loader.start_epoch(epoch);
    progress.start(str_cat("epoch ", epoch + 1, "/", run.epochs), steps_per_epoch);
    double loss_sum = 0;
    std::int64_t batches = 0;
    while (std::optional<Batch> batch = train_loader.next()) {
      Tensor loss = cross_entropy((*model)(batch->images), batch->labels, Reduction::kMean, label_smoothing);
      optimizer->zero_grad();
      loss.backward();
      if (clip_norm > 0) optim::clip_grad_norm_(params, clip_norm);
      optimizer->step();
      scheduler->step();
      const double l = loss.item();
      if (!std::isfinite(l)) {
        throw ValueError(str_cat("train: the training loss became ", l, " at step ", result.steps + 1,
                                 ". Lower optimizer.lr or set train.clip_grad_norm"));
      }
      loss_sum += l;
      ++batches;
      ++result.steps;
      images += batch->labels.numel();
      if (result.steps == std::min<std::int64_t>(20, steps_per_epoch)) result.first_loss = loss_sum / batches;
      progress.update(batches, batch->labels.numel(), str_cat("loss ", format_fixed(loss_sum / batches, 4)));
      if (run.max_steps > 0 && result.steps >= run.max_steps) {
        done = true;
        break;
      }
    }
    result.last_loss = loss_sum / std::max<std::int64_t>(batches, 1);
    std::vector<std::pair<std::string, double>> fields = {{"epoch", epoch + 1},
                                                          {"step", static_cast<double>(result.steps)},
                                                          {"train_loss", result.last_loss},
                                                          {"lr", optimizer->lr()}};
    std::string line = str_cat("train loss ", format_fixed(result.last_loss, 4));
    if (test_loader) {
      const Accuracy acc = evaluate_classifier(*model, *test_loader);
      fields.emplace_back("test_loss", acc.loss);
      fields.emplace_back("test_accuracy", acc.accuracy);
      line += str_cat("  test loss ", format_fixed(acc.loss, 4), "  test accuracy ",
                      format_fixed(acc.accuracy, 4));
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
    metrics.write(fields);
    progress.finish(line);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.images_per_s = static_cast<double>(images) / std::max(result.seconds, 1e-9);
  if (best) model->load_state_dict(*best);
  save_models(run.output / "model.h5", "classifier", cfg, {{"model", model.get()}});
  return result;
}

}  // namespace lockstep::train
