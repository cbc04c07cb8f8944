// The registry of tasks: one line per task.
#include <functional>
#include <map>

#include "launch/train/task.h"

namespace lockstep::train {

std::unique_ptr<Task> make_classifier_task(const TaskContext& context);
std::unique_ptr<Task> make_gan_task(const TaskContext& context);

std::unique_ptr<Task> make_task(const TaskContext& context) {
  static const std::map<std::string, std::function<std::unique_ptr<Task>(const TaskContext&)>> kTasks = {
      {"classifier", make_classifier_task},
      {"gan", make_gan_task},
  };
  const auto it = kTasks.find(context.settings.task);
  LOCKSTEP_CHECK(it != kTasks.end(), ValueError, "train: expected a registered task, but got '",
                 context.settings.task, "'");
  return it->second(context);
}

}  // namespace lockstep::train
