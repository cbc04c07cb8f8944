// State dicts in HDF5: a dotted name becomes a path (`layer1.0.conv1.weight` -> `layer1/0/conv1/weight`), so
// model files open in h5dump and h5py as a tree. Used for trained models now and checkpoints later.
#pragma once

#include <filesystem>
#include <string>

#include "io/h5/h5.h"
#include "src/nn/state_dict.h"

namespace lockstep::io {

// Writes every entry of `state` under `group` (contiguous datasets of the tensor's dtype).
void write_state_dict(const h5::Group& group, const nn::StateDict& state);
// Reads every dataset below `group` back into a StateDict with dotted names (sorted by name).
nn::StateDict read_state_dict(const h5::Group& group);

}  // namespace lockstep::io
