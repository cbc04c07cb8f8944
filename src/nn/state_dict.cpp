// StateDict: insertion-ordered named tensors with unique keys, and the error for an absent key that names
// the closest present one.
#include "src/nn/state_dict.h"

#include <algorithm>
#include <cstdint>

#include "src/core/error.h"
#include "src/core/strings.h"

namespace lockstep::nn {

void StateDict::insert(std::string name, Tensor tensor) {
  LOCKSTEP_CHECK(!contains(name), ValueError, "StateDict::insert: expected a new key, but '", name,
                 "' is already present. Keys are unique dotted names");
  LOCKSTEP_CHECK(tensor.defined(), ValueError, "StateDict::insert: expected a defined tensor for key '", name,
                 "', but got an undefined one");
  entries_.emplace_back(std::move(name), std::move(tensor));
}

const Tensor* StateDict::find(std::string_view name) const {
  for (const Entry& entry : entries_) {
    if (entry.first == name) return &entry.second;
  }
  return nullptr;
}

const Tensor& StateDict::at(std::string_view name) const {
  if (const Tensor* found = find(name)) return *found;
  if (entries_.empty()) {
    throw IndexError(str_cat("StateDict::at: expected key '", name, "', but the state dict is empty"));
  }
  const Entry* closest = &entries_.front();
  std::size_t best = edit_distance(name, closest->first);
  for (const Entry& entry : entries_) {
    const std::size_t d = edit_distance(name, entry.first);
    if (d < best) {
      best = d;
      closest = &entry;
    }
  }
  throw IndexError(str_cat("StateDict::at: expected key '", name, "', but it is absent among ",
                           entries_.size(), " keys. Did you mean '", closest->first, "'?"));
}

}  // namespace lockstep::nn
