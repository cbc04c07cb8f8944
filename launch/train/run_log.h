// A training run's metrics, written by rank 0 into the run's output folder: <dir>/metrics.jsonl, one JSON
// object per record, and TensorBoard event files in <dir>/tensorboard/ (scalars, and images such as GAN
// sample grids). A run resumed from a checkpoint keeps the records up to the checkpoint's step.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "io/metrics/tensorboard.h"
#include "src/tensor/tensor.h"

namespace lockstep::launch {

// The TensorBoard tag of a metrics field: "train_<rest>" -> "train/<rest>", "test_<rest>" -> "test/<rest>"
// (so TensorBoard groups a run's train and test curves), any other name unchanged ("d_loss", "lr"; also
// "train_" and "test_" themselves).
std::string tensorboard_tag(const std::string& field);

// `value` in the shortest form that std::from_chars reads back to the same double (a JSON number).
std::string format_number(double value);

// One training run's metrics, written by rank 0: <dir>/metrics.jsonl (one JSON object per record) and a
// TensorBoard event file in <dir>/tensorboard/ (scalars and images).
//
// JSONL records are {"step": <step>, "<field>": <value>, ...}, fields in the order given, values in the
// shortest form that reads back to the same double (std::to_chars), non-finite values as null. Each record
// is appended as one whole line.
//
// Event files: each RunLog opens a new one, events.out.tfevents.<unix time>.<host>.<pid>.<n> (n counts the
// RunLogs of this process), so two RunLogs in one directory within one second never collide. Older event
// files in tensorboard/ are left alone and TensorBoard reads them all: a fresh run in a used folder shows
// the old curves too, and after a resume the killed run's file still holds its points past the checkpoint,
// which the resumed run writes again in its own file (TensorBoard's Python loader purges the older points
// when a run's steps go backwards; other readers show both).
class RunLog {
 public:
  // resumed_step < 0: a fresh run; metrics.jsonl is truncated (created when missing).
  // resumed_step >= 0: a run resumed from the checkpoint of that step; metrics.jsonl keeps the records whose
  //   "step" is <= resumed_step and the records without a numeric "step", and drops the later ones (written
  //   by the killed run after its checkpoint; the resumed run writes them again) and a torn last line (no
  //   newline: the killed run died while writing it). The file is rewritten through a temporary file renamed
  //   into place; new records are appended after the kept ones.
  // Creates `dir` and <dir>/tensorboard when needed. IoError naming the file that cannot be read, written or
  // created.
  explicit RunLog(std::filesystem::path dir, std::int64_t resumed_step = -1);

  // Appends the record {"step": step, fields...} to metrics.jsonl, and every field except "step" and
  // "epoch" as a TensorBoard scalar tagged tensorboard_tag(name) at `step` (stored as a float; non-finite
  // values stay NaN/inf there). A field named "step" is allowed only with the value `step` and is not
  // repeated. `json` fields (name, JSON text such as an array or a matrix) follow the numeric ones in
  // metrics.jsonl as given and do not go to TensorBoard. ValueError for an empty field name, a "step" field
  // with another value, or a `json` text that is not one JSON value; IoError naming the file when a write
  // fails.
  void write(std::int64_t step, const std::vector<std::pair<std::string, double>>& fields,
             const std::vector<std::pair<std::string, std::string>>& json = {});

  // Appends `image` (u8 [C,H,W], C = 1 gray or 3 RGB; e.g. io/image/grid.h image_grid of generator
  // samples) as a PNG image summary under `tag` (used as given) at `step`. ValueError for an empty tag,
  // TypeError/ValueError for another dtype or shape, IoError when the write fails.
  void image(const std::string& tag, const Tensor& image, std::int64_t step);

  // Forces metrics.jsonl and the event file to stable storage (fsync), e.g. before a checkpoint is
  // declared complete. IoError naming the file on failure.
  void flush();

  // <dir>/metrics.jsonl.
  const std::filesystem::path& jsonl_path() const { return jsonl_path_; }
  // This RunLog's event file in <dir>/tensorboard.
  const std::filesystem::path& events_path() const { return events_.path(); }

 private:
  std::filesystem::path jsonl_path_;
  io::EventWriter events_;
};

}  // namespace lockstep::launch
