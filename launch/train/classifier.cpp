// The classifier task: cross-entropy on minibatches (label smoothing, gradient clipping), accuracy on the
// validation split (the score: best model, early stopping) and the test split (reported) after each epoch.
#include <algorithm>
#include <optional>

#include "distributed/data_parallel.h"
#include "distributed/sync_batch_norm.h"
#include "launch/train/evaluate.h"
#include "launch/train/task.h"
#include "src/ops/elementwise.h"
#include "src/ops/loss.h"
#include "src/ops/reduce.h"
#include "src/ops/shape.h"
#include "src/optim/clip.h"

namespace lockstep::launch {
namespace {

// How many rows of `logits` pick their label, on their device (the step need not wait for it).
Tensor count_correct(const Tensor& logits, const Tensor& labels) {
  return sum(eq(argmax(logits.detach(), 1), labels).to(DType::f32));
}

// Sums over an epoch's steps: [loss sum (per-batch mean loss x samples), steps, correct, samples]. The sums
// over ranks give the job's means per sample, the same at any world size.
enum Sum : std::size_t { kLoss, kSteps, kCorrect, kSamples };

class ClassifierTask final : public Task {
 public:
  explicit ClassifierTask(const TaskContext& c)
      : settings_(c.settings),
        run_(c.run),
        model_(on_device(make_classifier(c.settings.model.model, c.data.geometry), c.run.device)),
        synced_(synchronise_batch_norms(*model_, c.run)),
        dp_(model_, c.run.gradient_group(), c.run.reducer),
        optimizer_(make_optimizer(c.settings.model.optimizer, *model_)),
        params_(model_->parameters()),
        buckets_(dp_.reducer().num_buckets()),
        normalization_(input_normalization(*c.data.train, c.data.train_options)) {
    if (c.data.validation_options) validation_.emplace(c.data.train, *c.data.validation_options);
    if (c.data.test) test_.emplace(c.data.test, c.data.test_options);
    add_training_noise(c.settings.train, c.data);
  }

  TrainingParts parts() override {
    return {"classifier",
            {{"model", model_.get()}},
            {{"optimizer", optimizer_.get()}},
            {{"schedule", scheduler_.get()}}};
  }

  std::string describe() const override {
    return str_cat("model ", settings_.model.model.name, ": ", model_->num_parameters(), " parameters",
                   run_.world() > 1 ? str_cat(", ", buckets_, " gradient buckets") : "",
                   synced_ > 0 ? str_cat(", ", synced_, " synchronised batch norms") : "",
                   settings_.train.adversarial_epsilon > 0 ? str_cat(", FGSM adversarial training (epsilon ",
                                                                     settings_.train.adversarial_epsilon, ")")
                                                           : "");
  }

  void start(std::int64_t steps_per_epoch) override {
    steps_per_epoch_ = steps_per_epoch;
    scheduler_ = make_scheduler(settings_.model.schedule, *optimizer_, steps_per_epoch, run_.epochs);
  }

  std::vector<std::string> sum_names() const override { return {"loss", "steps", "correct", "samples"}; }

  std::int64_t step(const io::Batch& batch, std::int64_t step, StepSums& sums) override {
    // Adversarial training: this rank's FGSM examples of its own batch join it (the loss is the mean over
    // clean and adversarial samples). fgsm() takes only the input gradient, so the reducer sees one backward.
    const double epsilon = settings_.train.adversarial_epsilon;
    const Tensor clean = batch.images.to(run_.device), clean_labels = batch.labels.to(run_.device);
    const Tensor images =
        epsilon > 0 ? cat({clean, models::fgsm(*model_, clean, clean_labels, epsilon, normalization_)}, 0)
                    : clean;
    const Tensor labels = epsilon > 0 ? cat({clean_labels, clean_labels}, 0) : clean_labels;
    const Tensor logits = dp_(images);
    Tensor loss = cross_entropy(logits, labels, Reduction::kMean, settings_.train.label_smoothing);
    optimizer_->zero_grad();
    loss.backward();  // averages the gradients over the ranks
    if (settings_.model.clip_grad_norm > 0) optim::clip_grad_norm_(params_, settings_.model.clip_grad_norm);
    optimizer_->step();
    scheduler_->step();
    const std::int64_t n = batch.labels.numel();
    sums.add(kLoss, loss, static_cast<double>(n));
    sums.add(kSteps, 1);
    sums.add(kCorrect, count_correct(logits.slice(0, 0, n), clean_labels));  // clean ones
    sums.add(kSamples, static_cast<double>(n));
    // Every rank reaches this step at the same time (equal shards), so the reduction is collective.
    if (step == std::min<std::int64_t>(20, steps_per_epoch_)) {
      const std::span<const double> mine = sums.values();
      std::vector<double> job(mine.begin(), mine.end());
      sum_over_ranks(*run_.group, job);
      first_loss_ = job[kLoss] / std::max(job[kSamples], 1.0);
    }
    return n;
  }

  std::string progress_text(std::span<const double> sums) const override {
    return str_cat("loss ", format_fixed(sums[kLoss] / std::max(sums[kSamples], 1.0), 4));
  }

  EpochEnd end_epoch(std::int64_t /*epoch*/, std::int64_t /*step*/, std::span<const double> job,
                     RunLog* /*log*/) override {
    const double samples = std::max(job[kSamples], 1.0);
    EpochEnd e;
    e.fields = {{"train_loss", job[kLoss] / samples},
                {"train_accuracy", job[kCorrect] / samples},
                {"lr", optimizer_->lr()}};
    e.line = str_cat("train loss ", format_fixed(job[kLoss] / samples, 4), "  train accuracy ",
                     format_fixed(job[kCorrect] / samples, 4));
    // Plain batch norm keeps per-rank running statistics: every rank evaluates rank 0's.
    if ((validation_ || test_) && run_.world() > 1 && !run_.sync_batchnorm) dp_.broadcast_state();
    // Validation (when held out) is the score; the test split is only reported. Without validation the
    // test split is the score, as before validation splits existed.
    for (auto [loader, name] : {std::pair{&validation_, "validation"}, std::pair{&test_, "test"}}) {
      if (!*loader) continue;
      const Accuracy acc = evaluate_classifier(*model_, **loader, *run_.group);
      e.fields.emplace_back(str_cat(name, "_loss"), acc.loss);
      e.fields.emplace_back(str_cat(name, "_accuracy"), acc.accuracy);
      append_report_fields(name, acc.report, e.fields, e.json);
      e.line += str_cat("  ", name, " loss ", format_fixed(acc.loss, 4), "  ", name, " accuracy ",
                        format_fixed(acc.accuracy, 4));
      if (!e.score) {
        e.score = acc.accuracy;
        e.score_name = str_cat(name, " accuracy");
      }
    }
    return e;
  }

  // A cross-entropy of 1e6 per sample: the logits have left any useful regime.
  std::string exploded(std::span<const double> added, std::int64_t n) const override {
    return beyond("the loss", added[kLoss] / static_cast<double>(std::max<std::int64_t>(n, 1)), 1e6,
                  " per sample");
  }

  std::string divergence_hint() const override { return "Lower optimizer.lr, or set train.clip_grad_norm"; }

  std::map<std::string, double> values() const override { return {{"first_loss", first_loss_}}; }
  void restore(const io::TrainerState& state) override { first_loss_ = value_of(state, "first_loss"); }

  std::string summary(const std::vector<std::pair<std::string, double>>& last) const override {
    std::string text;
    for (const auto& [name, value] : last)
      if (name == "test_accuracy" || name == "validation_accuracy")
        text += str_cat(name == "test_accuracy" ? "test" : "validation", " accuracy ", format_fixed(value, 4),
                        ", ");
    for (const auto& [name, value] : last)
      if (name == "train_loss") text += str_cat("final train loss ", format_fixed(value, 4));
    return text;
  }

 private:
  const launch::Settings& settings_;
  const RunSettings& run_;
  std::shared_ptr<nn::Module> model_;
  int synced_;
  distributed::DataParallel dp_;
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::unique_ptr<optim::LRScheduler> scheduler_;
  std::vector<Tensor> params_;
  std::int64_t buckets_;
  models::InputNormalization normalization_;
  std::optional<io::DataLoader> validation_, test_;
  std::int64_t steps_per_epoch_ = 0;
  double first_loss_ = 0.0;  // the job's mean loss over the first 20 steps
};

}  // namespace

std::unique_ptr<Task> make_classifier_task(const TaskContext& context) {
  return std::make_unique<ClassifierTask>(context);
}

}  // namespace lockstep::launch
