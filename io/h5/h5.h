// RAII over the serial HDF5 1.10 C API: files, groups, datasets (whole and row-range reads/writes into
// tensors) and attributes. Every HDF5 failure becomes an IoError naming the file and the object path.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "src/core/dtype.h"
#include "src/core/shape.h"
#include "src/tensor/tensor.h"

namespace lockstep::io::h5 {

enum class Access { kRead, kReadWrite, kTruncate /*create or overwrite*/ };

// Storage layout of a new dataset: an empty `chunk` means contiguous; `deflate` (0-9, chunked only) is the
// zlib level, 0 = no compression.
struct Chunking {
  Shape chunk;
  int deflate = 0;
};

// Owns one HDF5 identifier and closes it with the matching H5*close. Move-only. Thread-safety is that of
// the HDF5 library: the serial 1.10 build used here has H5_HAVE_THREADSAFE (calls are serialised inside).
class Handle {
 public:
  using Id = std::int64_t;     // hid_t
  using Closer = int (*)(Id);  // H5Fclose, H5Gclose, H5Dclose, ...
  Handle() = default;
  Handle(Id id, Closer closer) : id_(id), closer_(closer) {}
  Handle(Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = -1; }
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }

  Id id() const { return id_; }
  void reset();

 private:
  Id id_ = -1;
  Closer closer_ = nullptr;
};

// A group or dataset: its handle plus the file name and absolute object path used in error messages.
// Owns its handle (move-only); not thread-safe for concurrent use of one object.
class Object {
 public:
  const std::string& file_name() const { return file_; }
  const std::string& object_path() const { return path_; }

  // Attributes: scalars, strings and 1-D lists. Setting an existing attribute replaces it.
  void set_attribute(const std::string& name, std::int64_t value) const;
  void set_attribute(const std::string& name, int value) const { set_attribute(name, std::int64_t{value}); }
  void set_attribute(const std::string& name, double value) const;
  void set_attribute(const std::string& name, const std::string& value) const;
  void set_attribute(const std::string& name, const char* value) const {
    set_attribute(name, std::string(value));
  }
  void set_attribute(const std::string& name, const std::vector<double>& values) const;
  void set_attribute(const std::string& name, const std::vector<std::int64_t>& values) const;
  void set_attribute(const std::string& name, const std::vector<std::string>& values) const;
  bool has_attribute(const std::string& name) const;
  // The names of every attribute, in name order.
  std::vector<std::string> attribute_names() const;
  // Getters raise IoError when the attribute is missing and TypeError when it holds another kind.
  std::int64_t attribute_int(const std::string& name) const;
  double attribute_double(const std::string& name) const;
  std::string attribute_string(const std::string& name) const;
  std::vector<double> attribute_doubles(const std::string& name) const;
  std::vector<std::int64_t> attribute_ints(const std::string& name) const;
  std::vector<std::string> attribute_strings(const std::string& name) const;

 protected:
  Object(Handle handle, std::string file, std::string path)
      : handle_(std::move(handle)), file_(std::move(file)), path_(std::move(path)) {}

  Handle handle_;
  std::string file_;
  std::string path_;
};

// An n-dimensional dataset of u8, i64, f32 or f64 (native little-endian). Shape and dtype are read once
// at open. Move-only; not thread-safe for concurrent use of one object.
class Dataset : public Object {
 public:
  const Shape& shape() const { return shape_; }
  // The tensor dtype the data reads as: u8, i64, f32, f64; narrower integers read as i64, f16 as f32.
  DType dtype() const { return dtype_; }

  Tensor read() const;
  // Rows [start, start + count) of dim 0 (a hyperslab) as a new tensor of shape [count, shape[1:]...].
  Tensor read_rows(std::int64_t start, std::int64_t count) const;
  // Same rows written to `out`, which must hold count * row size elements of dtype().
  void read_rows_into(std::int64_t start, std::int64_t count, void* out) const;
  // Rows [start, start + out.size(0)) into a pre-allocated contiguous CPU tensor [count, shape[1:]...] of
  // dtype() (TypeError naming the dataset otherwise).
  void read_rows_into(std::int64_t start, const Tensor& out) const;
  // Whole-dataset write; the tensor must match shape() and dtype() (non-contiguous tensors are copied).
  void write(const Tensor& t) const;
  // Writes t [count, shape[1:]...] to rows [start, start + count).
  void write_rows(std::int64_t start, const Tensor& t) const;

 private:
  friend class Group;
  Dataset(Handle handle, std::string file, std::string path);

  Shape shape_;
  DType dtype_ = DType::u8;
};

// A group. Names may be relative paths ("train/images"). Move-only; not thread-safe for concurrent use.
class Group : public Object {
 public:
  Group create_group(const std::string& name) const;
  Group group(const std::string& name) const;
  // True when every component of `path` exists (group, dataset or link).
  bool contains(const std::string& path) const;
  // True when `path` exists and is a group (false when missing or a dataset).
  bool is_group(const std::string& path) const;
  // Names of the direct members, in name order.
  std::vector<std::string> children() const;

  Dataset create_dataset(const std::string& name, DType dtype, const Shape& shape,
                         const Chunking& chunking = {}) const;
  Dataset dataset(const std::string& name) const;
  // Creates a contiguous dataset of t's shape and dtype and writes t.
  Dataset write_tensor(const std::string& name, const Tensor& t) const;
  Tensor read_tensor(const std::string& name) const;

 private:
  friend class File;
  Group(Handle handle, std::string file, std::string path)
      : Object(std::move(handle), std::move(file), std::move(path)) {}
};

// An open HDF5 file (default file locking). Objects opened from it keep the file open until they close.
// Move-only; not thread-safe for concurrent use of one object.
class File {
 public:
  File(const std::filesystem::path& path, Access access);

  Group root() const;
  const std::filesystem::path& path() const { return path_; }
  void flush() const;

 private:
  Handle handle_;
  std::filesystem::path path_;
};

}  // namespace lockstep::io::h5
