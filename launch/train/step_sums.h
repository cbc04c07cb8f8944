// A rank's running figures over an epoch (Task::sum_names: loss sums, steps, samples...), added to by every
// training step without making the step wait for its device.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "src/tensor/tensor.h"

namespace lockstep::launch {

// Each figure is a sum in f64, of what the steps add in the order they add it. Host numbers, and figures of
// tensors on the CPU, are added at once. A figure of a tensor on a GPU is added there, to an f64 accumulator
// that starts from the host sum, so that the step only queues work; values() reads the accumulators back
// (one wait for the device) when the loop needs the sums: to draw the progress bar, to check them for
// divergence, before a checkpoint and at the epoch's end. Either way the sums hold the bits of adding each
// figure on the host in turn. Not thread-safe.
class StepSums {
 public:
  explicit StepSums(std::size_t count) : values_(count, 0.0), pending_(count) {}

  std::size_t size() const { return values_.size(); }
  void add(std::size_t i, double value);
  // Adds `factor` x the one-element tensor `figure` (floating point or integer, any device; detached).
  void add(std::size_t i, const Tensor& figure, double factor = 1.0);
  // Whether some figure still waits on a device.
  bool pending() const;
  // The sums, once the figures that wait on a device have been read back.
  std::span<const double> values();
  // Replaces every sum (a new epoch, a resumed one): `sums` as size().
  void assign(std::span<const double> sums);

 private:
  std::vector<double> values_;
  std::vector<Tensor> pending_;  // f64 on a device (the sum so far), or undefined
};

}  // namespace lockstep::launch
