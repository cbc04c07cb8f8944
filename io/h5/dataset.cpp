// Datasets of the HDF5 layer: type and shape discovery, whole reads and writes, and row ranges of dim 0
// through hyperslab selections straight into tensor memory.
#include <algorithm>
#include <string>
#include <vector>

#include "io/h5/h5.h"
#include "io/h5/h5_internal.h"
#include "src/core/strings.h"
#include "src/tensor/factories.h"

namespace lockstep::io::h5 {

using internal::check_id;
using internal::check_status;

namespace {

enum class Direction { kRead, kWrite };

// The tensor dtype an HDF5 type reads as, or TypeError naming the dataset.
DType dtype_of_type(hid_t type, const std::string& file, const std::string& path) {
  const H5T_class_t cls = H5Tget_class(type);
  const std::size_t size = H5Tget_size(type);
  if (cls == H5T_INTEGER) {
    const H5T_sign_t sign = H5Tget_sign(type);
    if (size == 1 && sign == H5T_SGN_NONE) return DType::u8;
    if (size < 8 || (size == 8 && sign == H5T_SGN_2)) return DType::i64;
  } else if (cls == H5T_FLOAT) {
    if (size <= 4) return DType::f32;
    if (size == 8) return DType::f64;
  }
  throw TypeError(
      str_cat("h5: cannot use dataset ", in_quotes(path), " in '", file,
              "': expected an integer (at most 8 bytes, unsigned 64-bit excluded) or a float of at most "
              "8 bytes, but got HDF5 type class ",
              static_cast<int>(cls), " of ", size, " bytes"));
}

// Moves rows [start, start + count) of dim 0 between the dataset and `buffer` (count * row elements).
void transfer_rows(hid_t dataset, const Shape& shape, DType dtype, const std::string& file,
                   const std::string& path, std::int64_t start, std::int64_t count, void* buffer,
                   Direction direction) {
  const char* verb = direction == Direction::kRead ? "read" : "write";
  LOCKSTEP_CHECK(!shape.empty(), IndexError, "h5: cannot ", verb, " rows of dataset ", in_quotes(path),
                 " in '", file, "': expected a dataset of rank >= 1, but got a scalar");
  LOCKSTEP_CHECK(start >= 0 && count >= 0 && start + count <= shape[0], IndexError, "h5: cannot ", verb,
                 " rows of dataset ", in_quotes(path), " in '", file,
                 "': expected rows [start, start + count) within [0, ", shape[0], "), but got start ", start,
                 " and count ", count);
  if (count == 0 || numel_of(shape) == 0) return;
  std::vector<hsize_t> offset(shape.size(), 0);
  std::vector<hsize_t> extent(shape.begin(), shape.end());
  offset[0] = static_cast<hsize_t>(start);
  extent[0] = static_cast<hsize_t>(count);
  const std::string what =
      str_cat(verb, " rows [", start, ", ", start + count, ") of dataset ", in_quotes(path));
  Handle file_space(check_id(H5Dget_space(dataset), what, file, path), H5Sclose);
  check_status(
      H5Sselect_hyperslab(file_space.id(), H5S_SELECT_SET, offset.data(), nullptr, extent.data(), nullptr),
      what, file, path);
  Handle memory_space(
      check_id(H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr), what, file, path),
      H5Sclose);
  const hid_t type = internal::memory_type(dtype);
  const herr_t status =
      direction == Direction::kRead
          ? H5Dread(dataset, type, memory_space.id(), file_space.id(), H5P_DEFAULT, buffer)
          : H5Dwrite(dataset, type, memory_space.id(), file_space.id(), H5P_DEFAULT, buffer);
  check_status(status, what, file, path);
}

// `t` as a contiguous CPU tensor of `dtype`, or TypeError naming the dataset.
Tensor writable(const Tensor& t, DType dtype, const std::string& file, const std::string& path) {
  LOCKSTEP_CHECK(t.dtype() == dtype, TypeError, "h5: cannot write to dataset ", in_quotes(path), " in '",
                 file, "': expected a tensor of dtype ", dtype_name(dtype), ", but got ",
                 dtype_name(t.dtype()));
  Tensor host = t.device().is_cpu() ? t : t.to(kCPU);
  return host.is_contiguous() ? host : host.contiguous();
}

}  // namespace

Dataset::Dataset(Handle handle, std::string file, std::string path)
    : Object(std::move(handle), std::move(file), std::move(path)) {
  Handle type(
      check_id(H5Dget_type(handle_.id()), "get the type of dataset " + in_quotes(path_), file_, path_),
      H5Tclose);
  dtype_ = dtype_of_type(type.id(), file_, path_);
  Handle space(
      check_id(H5Dget_space(handle_.id()), "get the dataspace of dataset " + in_quotes(path_), file_, path_),
      H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.id());
  if (rank < 0) internal::fail("get the rank of dataset " + in_quotes(path_), file_, path_);
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  if (rank > 0 && H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr) < 0) {
    internal::fail("get the shape of dataset " + in_quotes(path_), file_, path_);
  }
  shape_.assign(dims.begin(), dims.end());
}

Tensor Dataset::read() const {
  internal::quiet();
  Tensor out = empty(shape_, dtype_);
  if (out.numel() == 0) return out;
  check_status(
      H5Dread(handle_.id(), internal::memory_type(dtype_), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()),
      "read dataset " + in_quotes(path_), file_, path_);
  return out;
}

Tensor Dataset::read_rows(std::int64_t start, std::int64_t count) const {
  LOCKSTEP_CHECK(!shape_.empty(), IndexError, "h5: cannot read rows of dataset ", in_quotes(path_), " in '",
                 file_, "': expected a dataset of rank >= 1, but got a scalar");
  LOCKSTEP_CHECK(count >= 0, IndexError, "h5: cannot read rows of dataset ", in_quotes(path_), " in '", file_,
                 "': expected a non-negative count, but got ", count);
  Shape shape = shape_;
  shape[0] = count;
  Tensor out = empty(shape, dtype_);
  read_rows_into(start, count, out.data());
  return out;
}

void Dataset::read_rows_into(std::int64_t start, std::int64_t count, void* out) const {
  internal::quiet();
  transfer_rows(handle_.id(), shape_, dtype_, file_, path_, start, count, out, Direction::kRead);
}

void Dataset::read_rows_into(std::int64_t start, const Tensor& out) const {
  LOCKSTEP_CHECK(out.dtype() == dtype_, TypeError, "h5: cannot read dataset ", in_quotes(path_), " in '",
                 file_, "': expected an output tensor of dtype ", dtype_name(dtype_), ", but got ",
                 dtype_name(out.dtype()));
  LOCKSTEP_CHECK(out.device().is_cpu() && out.is_contiguous(), ValueError, "h5: cannot read dataset ",
                 in_quotes(path_), " in '", file_,
                 "': expected a contiguous CPU output tensor, but got one on ", out.device().str(),
                 out.is_contiguous() ? "" : " (non-contiguous)");
  LOCKSTEP_CHECK(out.dim() == static_cast<std::int64_t>(shape_.size()) && out.dim() >= 1 &&
                     std::equal(shape_.begin() + 1, shape_.end(), out.shape().begin() + 1),
                 ValueError, "h5: cannot read rows of dataset ", in_quotes(path_), " in '", file_,
                 "': expected an output tensor of rows shaped like the dataset ", shape_str(shape_),
                 ", but got ", shape_str(out.shape()));
  read_rows_into(start, out.size(0), out.data());
  out.bump_version();
}

void Dataset::write(const Tensor& t) const {
  internal::quiet();
  Tensor src = writable(t, dtype_, file_, path_);
  LOCKSTEP_CHECK(src.shape() == shape_, ValueError, "h5: cannot write to dataset ", in_quotes(path_), " in '",
                 file_, "': expected a tensor of shape ", shape_str(shape_), ", but got ",
                 shape_str(src.shape()));
  if (src.numel() == 0) return;
  check_status(
      H5Dwrite(handle_.id(), internal::memory_type(dtype_), H5S_ALL, H5S_ALL, H5P_DEFAULT, src.data()),
      "write dataset " + in_quotes(path_), file_, path_);
}

void Dataset::write_rows(std::int64_t start, const Tensor& t) const {
  internal::quiet();
  Tensor src = writable(t, dtype_, file_, path_);
  LOCKSTEP_CHECK(src.dim() == static_cast<std::int64_t>(shape_.size()) && src.dim() >= 1 &&
                     std::equal(shape_.begin() + 1, shape_.end(), src.shape().begin() + 1),
                 ValueError, "h5: cannot write rows of dataset ", in_quotes(path_), " in '", file_,
                 "': expected a tensor of rows shaped like the dataset ", shape_str(shape_), ", but got ",
                 shape_str(src.shape()));
  transfer_rows(handle_.id(), shape_, dtype_, file_, path_, start, src.size(0), src.data(),
                Direction::kWrite);
}

}  // namespace lockstep::io::h5
