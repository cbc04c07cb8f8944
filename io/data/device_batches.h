// The training loop's batches on the device it trains on.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "io/data/loader.h"
#include "src/core/device.h"

namespace lockstep::io {

// `source` itself for the CPU. For a GPU, a source whose batches (images, labels, tokens) are already on it:
// each is copied while the step before it computes, one batch ahead, through pinned host memory on a copy
// stream of its own (src/backend/cuda/upload.h); the compute queued after next() returns is ordered after
// the copy. The host waits (sleeping) only to reuse a staging buffer, until the step two batches back has
// been computed: the GPU's queue stays two to three steps deep.
std::unique_ptr<BatchSource> on_device(std::unique_ptr<BatchSource> source, Device device);

}  // namespace lockstep::io
