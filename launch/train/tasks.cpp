// The registry of tasks: one line per task.
#include <cmath>
#include <functional>
#include <map>

#include "launch/train/task.h"

namespace lockstep::launch {

std::unique_ptr<Task> make_classifier_task(const TaskContext& context);
std::unique_ptr<Task> make_gan_task(const TaskContext& context);
std::unique_ptr<Task> make_autoencoder_task(const TaskContext& context);
std::unique_ptr<Task> make_pixelcnn_task(const TaskContext& context);
std::unique_ptr<Task> make_cyclegan_task(const TaskContext& context);
std::unique_ptr<Task> make_charlm_task(const TaskContext& context);

std::unique_ptr<Task> make_task(const TaskContext& context) {
  static const std::map<std::string, std::function<std::unique_ptr<Task>(const TaskContext&)>> kTasks = {
      {"classifier", make_classifier_task},
      {"gan", make_gan_task},
      {"autoencoder", make_autoencoder_task},
      {"pixelcnn", make_pixelcnn_task},
      {"cyclegan", make_cyclegan_task},
      {"charlm", make_charlm_task},  // one per line
  };
  const auto it = kTasks.find(context.settings.task);
  // read_settings accepts only these names.
  LOCKSTEP_INTERNAL_ASSERT(it != kTasks.end(), "task '", context.settings.task, "' is not registered");
  return it->second(context);
}

DataKind task_data_kind(const std::string& task) {
  return task == "charlm" ? DataKind::kText : DataKind::kImages;
}

std::unique_ptr<io::BatchSource> Task::training_batches(const DataSplits& data) {
  return std::make_unique<io::DataLoader>(data.train, data.train_options);
}

std::string beyond(const std::string& figure, double value, double bound, const std::string& unit) {
  if (std::abs(value) <= bound) return "";
  return str_cat(figure, " reached ", value, unit, " (beyond ", bound, ", which no healthy run comes near)");
}

}  // namespace lockstep::launch
