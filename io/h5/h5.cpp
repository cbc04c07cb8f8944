// Handles, error translation, files and groups of the HDF5 layer (datasets and attributes live in
// dataset.cpp and attribute.cpp).
#include "io/h5/h5.h"

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "io/h5/h5_internal.h"
#include "src/core/strings.h"

namespace lockstep::io::h5 {

namespace internal {

// HDF5 closes the files still open at exit from an atexit handler (H5_term_library). A file whose close
// failed (a full disk during a checkpoint: the error path has already discarded it) stays in its tables half
// closed, and that handler then crashes (SIGSEGV in H5F__close_cb). Every file here is closed by its RAII
// handle before exit, so the handler has nothing to do: it is not registered (this must precede any HDF5
// call, hence a static initializer).
const bool kNoExitHandler = H5dont_atexit() >= 0;

void quiet() {
  thread_local const bool silenced = H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr) >= 0;
  static_cast<void>(silenced);
}

namespace {

// H5Ewalk2 callback keeping the first (innermost, when walking upward) description.
herr_t keep_innermost(unsigned n, const H5E_error2_t* err, void* client) {
  if (n == 0 && err != nullptr) {
    auto* out = static_cast<std::string*>(client);
    *out = err->desc != nullptr && err->desc[0] != '\0' ? err->desc : (err->func_name ? err->func_name : "");
  }
  return 0;
}

}  // namespace

std::string innermost_error() {
  std::string message;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_innermost, &message);
  H5Eclear2(H5E_DEFAULT);
  // The file driver's report ("file write failed: time = ..., errno = 28, error message = 'No space left on
  // device', buf = 0x..., bytes actually written = 18446744073709551615, ...") comes down to its cause.
  const std::string_view marker = "error message = '";
  const std::size_t cause = message.find(marker);
  const std::size_t head = message.find(": time = ");
  if (cause != std::string::npos && head != std::string::npos) {
    const std::size_t begin = cause + marker.size();
    const std::size_t end = message.find('\'', begin);
    if (end != std::string::npos) message = message.substr(0, head) + ": " + message.substr(begin, end - begin);
  }
  return message;
}

void fail(const std::string& what, const std::string& file, const std::string& object) {
  std::string detail = innermost_error();
  if (detail.empty()) detail = "unknown HDF5 error";
  throw IoError(str_cat("h5: cannot ", what, " in '", file, "': ", detail), file, object);
}

hid_t check_id(hid_t id, const std::string& what, const std::string& file, const std::string& object) {
  if (id < 0) fail(what, file, object);
  return id;
}

void check_status(herr_t status, const std::string& what, const std::string& file,
                  const std::string& object) {
  if (status < 0) fail(what, file, object);
}

hid_t memory_type(DType dtype) {
  switch (dtype) {
    case DType::u8:
      return H5T_NATIVE_UINT8;
    case DType::i64:
      return H5T_NATIVE_INT64;
    case DType::f32:
      return H5T_NATIVE_FLOAT;
    case DType::f64:
      return H5T_NATIVE_DOUBLE;
    default:
      break;
  }
  throw TypeError(str_cat("h5: expected a dtype of u8, i64, f32 or f64, but got ", dtype_name(dtype)));
}

hid_t file_type(DType dtype) {
  switch (dtype) {
    case DType::u8:
      return H5T_STD_U8LE;
    case DType::i64:
      return H5T_STD_I64LE;
    case DType::f32:
      return H5T_IEEE_F32LE;
    case DType::f64:
      return H5T_IEEE_F64LE;
    default:
      break;
  }
  throw TypeError(str_cat("h5: expected a dtype of u8, i64, f32 or f64, but got ", dtype_name(dtype)));
}

std::string join_path(const std::string& base, const std::string& name) {
  if (!name.empty() && name.front() == '/') return name;
  if (base == "/") return "/" + name;
  return base + "/" + name;
}

}  // namespace internal

using internal::check_id;
using internal::check_status;

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    reset();
    id_ = other.id_;
    closer_ = other.closer_;
    other.id_ = -1;
  }
  return *this;
}

void Handle::reset() {
  if (id_ >= 0 && closer_ != nullptr) {
    internal::quiet();
    closer_(id_);
  }
  id_ = -1;
}

namespace {

// A link-creation property list that creates missing intermediate groups ("a/b/c").
Handle intermediate_lcpl(const std::string& file, const std::string& object) {
  Handle lcpl(check_id(H5Pcreate(H5P_LINK_CREATE), "create a link property list", file, object), H5Pclose);
  check_status(H5Pset_create_intermediate_group(lcpl.id(), 1), "set up intermediate group creation", file,
               object);
  return lcpl;
}

herr_t collect_name(hid_t /*group*/, const char* name, const H5L_info_t* /*info*/, void* names) {
  static_cast<std::vector<std::string>*>(names)->emplace_back(name);
  return 0;
}

}  // namespace

File::File(const std::filesystem::path& path, Access access) : path_(path) {
  internal::quiet();
  const std::string name = path.string();
  if (access != Access::kTruncate) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      throw IoError(str_cat("h5: cannot open file '", name, "': no such file"), name, "/");
    }
  }
  hid_t id = -1;
  switch (access) {
    case Access::kRead:
      id = H5Fopen(name.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
      break;
    case Access::kReadWrite:
      id = H5Fopen(name.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
      break;
    case Access::kTruncate:
      id = H5Fcreate(name.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
      break;
  }
  const char* what = access == Access::kRead        ? "open the file for reading"
                     : access == Access::kReadWrite ? "open the file for reading and writing"
                                                    : "create the file";
  handle_ = Handle(check_id(id, what, name, "/"), H5Fclose);
}

Group File::root() const {
  internal::quiet();
  const std::string name = path_.string();
  return Group(
      Handle(check_id(H5Gopen2(handle_.id(), "/", H5P_DEFAULT), "open the root group", name, "/"), H5Gclose),
      name, "/");
}

void File::flush() const {
  internal::quiet();
  check_status(H5Fflush(handle_.id(), H5F_SCOPE_GLOBAL), "flush the file", path_.string(), "/");
}

Group Group::create_group(const std::string& name) const {
  internal::quiet();
  const std::string path = internal::join_path(path_, name);
  Handle lcpl = intermediate_lcpl(file_, path);
  hid_t id = H5Gcreate2(handle_.id(), name.c_str(), lcpl.id(), H5P_DEFAULT, H5P_DEFAULT);
  return Group(Handle(check_id(id, "create group " + in_quotes(path), file_, path), H5Gclose), file_, path);
}

Group Group::group(const std::string& name) const {
  internal::quiet();
  const std::string path = internal::join_path(path_, name);
  hid_t id = H5Gopen2(handle_.id(), name.c_str(), H5P_DEFAULT);
  return Group(Handle(check_id(id, "open group " + in_quotes(path), file_, path), H5Gclose), file_, path);
}

bool Group::contains(const std::string& path) const {
  internal::quiet();
  // H5Lexists fails (instead of answering false) when an intermediate component is missing, so walk the
  // prefixes one component at a time.
  std::string prefix = !path.empty() && path.front() == '/' ? "/" : "";
  std::size_t pos = 0;
  while (pos <= path.size()) {
    std::size_t next = std::min(path.find('/', pos), path.size());
    if (next > pos) {
      if (!prefix.empty() && prefix.back() != '/') prefix += '/';
      prefix += path.substr(pos, next - pos);
      if (H5Lexists(handle_.id(), prefix.c_str(), H5P_DEFAULT) <= 0) {
        internal::innermost_error();
        return false;
      }
    }
    pos = next + 1;
  }
  return true;
}

bool Group::is_group(const std::string& path) const {
  if (!contains(path)) return false;
  H5O_info_t info;
  check_status(H5Oget_info_by_name2(handle_.id(), path.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT),
               "look up the type of " + in_quotes(internal::join_path(path_, path)), file_,
               internal::join_path(path_, path));
  return info.type == H5O_TYPE_GROUP;
}

std::vector<std::string> Group::children() const {
  internal::quiet();
  std::vector<std::string> names;
  hsize_t index = 0;
  check_status(H5Literate(handle_.id(), H5_INDEX_NAME, H5_ITER_INC, &index, collect_name, &names),
               "list the members of group " + in_quotes(path_), file_, path_);
  return names;
}

Dataset Group::create_dataset(const std::string& name, DType dtype, const Shape& shape,
                              const Chunking& chunking) const {
  internal::quiet();
  const std::string path = internal::join_path(path_, name);
  const hid_t ftype = internal::file_type(dtype);
  for (std::int64_t d : shape) {
    LOCKSTEP_CHECK(d >= 0, ValueError, "h5: cannot create dataset ", in_quotes(path), " in '", file_,
                   "': expected non-negative extents, but got shape ", shape_str(shape));
  }
  LOCKSTEP_CHECK(chunking.deflate >= 0 && chunking.deflate <= 9, ValueError, "h5: cannot create dataset ",
                 in_quotes(path), " in '", file_, "': expected a deflate level in 0..9, but got ",
                 chunking.deflate);
  LOCKSTEP_CHECK(chunking.deflate == 0 || !chunking.chunk.empty(), ValueError, "h5: cannot create dataset ",
                 in_quotes(path), " in '", file_, "': expected a chunk shape with deflate ", chunking.deflate,
                 ", but got none. Compression needs a chunked layout");
  if (!chunking.chunk.empty()) {
    LOCKSTEP_CHECK(chunking.chunk.size() == shape.size() && !shape.empty(), ValueError,
                   "h5: cannot create dataset ", in_quotes(path), " in '", file_,
                   "': expected a chunk shape of rank ", shape.size(), ", but got ",
                   shape_str(chunking.chunk));
    for (std::int64_t c : chunking.chunk) {
      LOCKSTEP_CHECK(c > 0, ValueError, "h5: cannot create dataset ", in_quotes(path), " in '", file_,
                     "': expected positive chunk extents, but got ", shape_str(chunking.chunk));
    }
  }

  Handle space;
  if (shape.empty()) {
    space = Handle(check_id(H5Screate(H5S_SCALAR), "create a scalar dataspace", file_, path), H5Sclose);
  } else {
    std::vector<hsize_t> dims(shape.begin(), shape.end());
    space = Handle(check_id(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                            "create a dataspace of shape " + shape_str(shape), file_, path),
                   H5Sclose);
  }
  Handle dcpl(check_id(H5Pcreate(H5P_DATASET_CREATE), "create a dataset property list", file_, path),
              H5Pclose);
  // An empty dataset cannot be chunked (chunks must fit in fixed extents of 0); it stays contiguous.
  if (!chunking.chunk.empty() && numel_of(shape) > 0) {
    // Chunks of fixed-size datasets may not exceed the extents: clamp them.
    std::vector<hsize_t> chunk(shape.size());
    for (std::size_t i = 0; i < shape.size(); ++i)
      chunk[i] = static_cast<hsize_t>(std::min(chunking.chunk[i], shape[i]));
    check_status(H5Pset_chunk(dcpl.id(), static_cast<int>(chunk.size()), chunk.data()),
                 "set chunk shape " + shape_str(chunking.chunk) + " for dataset " + in_quotes(path), file_,
                 path);
    if (chunking.deflate > 0) {
      if (element_size(dtype) > 1) {
        check_status(H5Pset_shuffle(dcpl.id()), "enable the shuffle filter for dataset " + in_quotes(path),
                     file_, path);
      }
      check_status(H5Pset_deflate(dcpl.id(), static_cast<unsigned>(chunking.deflate)),
                   "enable deflate for dataset " + in_quotes(path), file_, path);
    }
  }
  Handle lcpl = intermediate_lcpl(file_, path);
  hid_t id = H5Dcreate2(handle_.id(), name.c_str(), ftype, space.id(), lcpl.id(), dcpl.id(), H5P_DEFAULT);
  return Dataset(Handle(check_id(id, "create dataset " + in_quotes(path), file_, path), H5Dclose), file_,
                 path);
}

Dataset Group::dataset(const std::string& name) const {
  internal::quiet();
  const std::string path = internal::join_path(path_, name);
  hid_t id = H5Dopen2(handle_.id(), name.c_str(), H5P_DEFAULT);
  return Dataset(Handle(check_id(id, "open dataset " + in_quotes(path), file_, path), H5Dclose), file_, path);
}

Dataset Group::write_tensor(const std::string& name, const Tensor& t) const {
  Dataset ds = create_dataset(name, t.dtype(), t.shape());
  ds.write(t);
  return ds;
}

Tensor Group::read_tensor(const std::string& name) const { return dataset(name).read(); }

}  // namespace lockstep::io::h5
