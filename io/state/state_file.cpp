// State dicts in HDF5 groups: dotted names <-> nested groups.
#include "io/state/state_file.h"

#include <algorithm>

namespace lockstep::io {
namespace {

// `layer1.0.conv1.weight` -> `layer1/0/conv1/weight` (the h5 layer creates the intermediate groups).
std::string path_of(std::string dotted) {
  std::replace(dotted.begin(), dotted.end(), '.', '/');
  return dotted;
}

void read_into(const h5::Group& group, const std::string& prefix, nn::StateDict& out) {
  for (const std::string& name : group.children()) {
    const std::string dotted = prefix.empty() ? name : prefix + "." + name;
    if (group.is_group(name)) {
      read_into(group.group(name), dotted, out);
    } else {
      out.insert(dotted, group.read_tensor(name));
    }
  }
}

}  // namespace

void write_state_dict(const h5::Group& group, const nn::StateDict& state) {
  for (const auto& [name, tensor] : state) group.write_tensor(path_of(name), tensor);
}

nn::StateDict read_state_dict(const h5::Group& group) {
  nn::StateDict out;
  read_into(group, "", out);
  return out;
}

}  // namespace lockstep::io
