// The PixelCNN task: the images' negative log-likelihood under the autoregressive model (cross-entropy over
// 256 intensities per pixel), reported in bits per dimension for training and, after each epoch, for the
// validation and test splits; a grid of images sampled pixel by pixel.
#include "src/models/pixelcnn.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numbers>
#include <optional>

#include "distributed/data_parallel.h"
#include "io/image/grid.h"
#include "io/image/png.h"
#include "launch/train/task.h"
#include "src/autograd/grad_mode.h"
#include "src/optim/clip.h"

namespace lockstep::launch {
namespace {

// Sums over an epoch's steps: [nats per pixel x images, images, steps].
enum Sum : std::size_t { kNats, kImages, kSteps };

double bits(double nats_per_pixel) { return nats_per_pixel / std::numbers::ln2; }

class PixelCnnTask final : public Task {
 public:
  explicit PixelCnnTask(const TaskContext& c)
      : settings_(c.settings),
        run_(c.run),
        geometry_(c.data.geometry),
        model_(on_device(make_pixelcnn(c.settings.pixelcnn, c.data.geometry), c.run.device)),
        dp_(model_, c.run.gradient_group(), c.run.reducer),
        optimizer_(make_optimizer(c.settings.model.optimizer, *model_)),
        params_(model_->parameters()) {
    if (c.data.validation_options) validation_.emplace(c.data.train, *c.data.validation_options);
    if (c.data.test) test_.emplace(c.data.test, c.data.test_options);
  }

  TrainingParts parts() override {
    return {"pixelcnn",
            {{"model", model_.get()}},
            {{"optimizer", optimizer_.get()}},
            {{"schedule", scheduler_.get()}}};
  }

  std::string describe() const override {
    return str_cat("PixelCNN width ", settings_.pixelcnn.width, ", ", settings_.pixelcnn.blocks,
                   " residual blocks: ", model_->num_parameters(), " parameters");
  }

  void start(std::int64_t steps_per_epoch) override {
    scheduler_ = make_scheduler(settings_.model.schedule, *optimizer_, steps_per_epoch, run_.epochs);
  }

  std::vector<std::string> sum_names() const override {
    return {"the negative log-likelihood", "images", "steps"};
  }

  std::int64_t step(const io::Batch& batch, std::int64_t /*step*/, StepSums& sums) override {
    const Tensor x = batch.images.to(run_.device);
    const Tensor nll = models::pixel_nll(dp_(x), x);
    optimizer_->zero_grad();
    nll.backward();  // averages the gradients over the ranks
    if (settings_.model.clip_grad_norm > 0) optim::clip_grad_norm_(params_, settings_.model.clip_grad_norm);
    optimizer_->step();
    scheduler_->step();
    const auto n = static_cast<double>(batch.images.size(0));
    sums.add(kNats, nll, n);
    sums.add(kImages, n);
    sums.add(kSteps, 1);
    return batch.images.size(0);
  }

  std::string progress_text(std::span<const double> sums) const override {
    return str_cat(format_fixed(bits(sums[kNats] / std::max(sums[kImages], 1.0)), 3), " bits/dim");
  }

  EpochEnd end_epoch(std::int64_t epoch, std::int64_t step, std::span<const double> job,
                     RunLog* log) override {
    EpochEnd e;
    const double train_bits = bits(job[kNats] / std::max(job[kImages], 1.0));
    e.fields = {{"train_bits_per_dim", train_bits}};
    e.line = str_cat("train ", format_fixed(train_bits, 4), " bits/dim");
    // Validation (when held out) is the score, as for classifiers; the test split is only reported.
    for (auto [loader, name] : {std::pair{&validation_, "validation"}, std::pair{&test_, "test"}}) {
      if (!*loader) continue;
      const double held_out_bits = bits(mean_nats(**loader));
      e.fields.emplace_back(str_cat(name, "_bits_per_dim"), held_out_bits);
      e.line += str_cat("  ", name, " ", format_fixed(held_out_bits, 4), " bits/dim");
      if (e.score_name.empty()) {  // lower is better: the best model and early stopping watch it
        e.score = -held_out_bits;
        e.score_name = str_cat("negative ", name, " bits/dim");
      }
    }
    if (log != nullptr &&
        settings_.pixelcnn.samples > 0) {  // rank 0, its own stream: training streams untouched
      Generator stream(run_.seed ^ 0x5049584cULL ^ static_cast<std::uint64_t>(epoch));
      const auto start = std::chrono::steady_clock::now();
      const Tensor images = models::sample_pixelcnn(*model_, settings_.pixelcnn.samples, geometry_.height,
                                                    geometry_.width, &stream);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const std::filesystem::path path = run_.output / str_cat("samples_epoch_", epoch + 1, ".png");
      const auto columns =
          static_cast<std::int64_t>(std::ceil(std::sqrt(static_cast<double>(images.size(0)))));
      const Tensor grid = io::image_grid(images.to(kCPU), columns, 0.0, 1.0);
      io::write_png(path, grid);
      log->image("samples", grid, step);
      e.line += str_cat("  samples ", path.string(), " (", format_fixed(seconds, 1), " s)");
    }
    return e;
  }

  // 1e7 nats per image (thousands per pixel, against ln 256 = 5.5 for a uniform guess).
  std::string exploded(std::span<const double> added, std::int64_t n) const override {
    return beyond("the negative log-likelihood",
                  added[kNats] / static_cast<double>(std::max<std::int64_t>(n, 1)), 1e7, " per image");
  }

  std::string divergence_hint() const override { return "Lower optimizer.lr, or set train.clip_grad_norm"; }

  std::string summary(const std::vector<std::pair<std::string, double>>& last) const override {
    std::string text;
    for (const auto& [name, value] : last) {
      text += str_cat(text.empty() ? "" : ", ", name.substr(0, name.find('_')), " ", format_fixed(value, 4),
                      " bits/dim");
    }
    return text;
  }

 private:
  // A split's mean negative log-likelihood in nats per pixel, over every rank's shard.
  double mean_nats(io::DataLoader& loader) {
    NoGradGuard no_grad;
    model_->eval();
    std::vector<double> sums(2, 0.0);
    loader.start_epoch(0);
    while (std::optional<io::Batch> batch = loader.next()) {
      const auto n = static_cast<double>(batch->images.size(0));
      const Tensor x = batch->images.to(run_.device);
      sums[0] += models::pixel_nll(model_->forward(x), x).item() * n;
      sums[1] += n;
    }
    model_->train();
    sum_over_ranks(*run_.group, sums);
    return sums[0] / std::max(sums[1], 1.0);
  }

  const launch::Settings& settings_;
  const RunSettings& run_;
  DataGeometry geometry_;
  std::shared_ptr<models::PixelCNN> model_;
  distributed::DataParallel dp_;
  std::unique_ptr<optim::Optimizer> optimizer_;
  std::unique_ptr<optim::LRScheduler> scheduler_;
  std::vector<Tensor> params_;
  std::optional<io::DataLoader> validation_, test_;
};

}  // namespace

std::unique_ptr<Task> make_pixelcnn_task(const TaskContext& context) {
  return std::make_unique<PixelCnnTask>(context);
}

}  // namespace lockstep::launch
