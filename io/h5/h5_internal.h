// Helpers shared by the io/h5 sources (not part of the public API): error translation, silencing of
// HDF5's own error printing, dtype <-> HDF5 type mapping and object path joining.
#pragma once

#include <hdf5.h>

#include <string>
#include <type_traits>

#include "io/h5/h5.h"

namespace lockstep::io::h5::internal {

static_assert(std::is_same_v<hid_t, Handle::Id>, "Handle::Id must be hid_t");
static_assert(std::is_same_v<herr_t, int>, "Handle::Closer must return herr_t");

// Turns off HDF5's printing of its error stack for the calling thread (the stack is per thread).
void quiet();

// The innermost message of the calling thread's HDF5 error stack (empty when there is none); clears it.
std::string innermost_error();

// Throws IoError("h5: cannot <what> in '<file>': <innermost HDF5 message>", file, object).
[[noreturn]] void fail(const std::string& what, const std::string& file, const std::string& object);

// Returns `id` when it is valid, otherwise fails with `what`.
hid_t check_id(hid_t id, const std::string& what, const std::string& file, const std::string& object);
// Fails with `what` when `status` is negative.
void check_status(herr_t status, const std::string& what, const std::string& file, const std::string& object);

// The in-memory (native) and on-disk (little-endian) HDF5 types of a stored dtype (u8, i64, f32, f64).
hid_t memory_type(DType dtype);
hid_t file_type(DType dtype);

// `name` resolved against the absolute group path `base` ("/" + name for the root; absolute names unchanged).
std::string join_path(const std::string& base, const std::string& name);

}  // namespace lockstep::io::h5::internal
