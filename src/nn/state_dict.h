// StateDict: named tensors in insertion order — the one exchange format between modules, optimizers,
// schedules and checkpoints. Names are dotted paths (`layer1.0.conv1.weight`, `state.fc.weight.exp_avg`).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "src/tensor/tensor.h"

namespace lockstep::nn {

// Owns its entries (tensor handles share storage with their sources); not thread-safe.
class StateDict {
 public:
  using Entry = std::pair<std::string, Tensor>;

  // Adds `name`; a name already present is a ValueError (names are unique keys).
  void insert(std::string name, Tensor tensor);
  bool contains(std::string_view name) const { return find(name) != nullptr; }
  // Null when absent.
  const Tensor* find(std::string_view name) const;
  // IndexError naming the key (and the closest present key) when absent.
  const Tensor& at(std::string_view name) const;

  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  std::vector<Entry>::const_iterator begin() const { return entries_.begin(); }
  std::vector<Entry>::const_iterator end() const { return entries_.end(); }
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
};

}  // namespace lockstep::nn
