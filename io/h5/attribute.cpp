// Attributes of groups and datasets: i64 and f64 scalars and lists, UTF-8 variable-length strings and
// string lists (fixed-length strings written by other tools are read too).
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "io/h5/h5.h"
#include "io/h5/h5_internal.h"
#include "src/core/strings.h"

namespace lockstep::io::h5 {

using internal::check_id;
using internal::check_status;

namespace {

// A variable-length UTF-8 string type.
Handle string_type(const std::string& file, const std::string& object) {
  Handle type(check_id(H5Tcopy(H5T_C_S1), "create a string type", file, object), H5Tclose);
  check_status(H5Tset_size(type.id(), H5T_VARIABLE), "create a string type", file, object);
  check_status(H5Tset_cset(type.id(), H5T_CSET_UTF8), "create a string type", file, object);
  return type;
}

// A scalar dataspace, or a 1-D one of `n` elements.
Handle dataspace(std::optional<std::size_t> n, const std::string& file, const std::string& object) {
  if (!n) return Handle(check_id(H5Screate(H5S_SCALAR), "create a scalar dataspace", file, object), H5Sclose);
  const hsize_t dims[1] = {static_cast<hsize_t>(*n)};
  return Handle(check_id(H5Screate_simple(1, dims, nullptr), "create a 1-D dataspace", file, object),
                H5Sclose);
}

// An open attribute with its type, element count and what the messages call it.
struct OpenAttribute {
  Handle attribute;
  Handle type;
  H5T_class_t cls = H5T_NO_CLASS;
  std::size_t count = 0;
  std::string what;
};

const char* class_name(H5T_class_t cls) {
  switch (cls) {
    case H5T_INTEGER:
      return "integer";
    case H5T_FLOAT:
      return "float";
    case H5T_STRING:
      return "string";
    default:
      return "other";
  }
}

void write_attribute(hid_t object, const std::string& name, hid_t file_type, hid_t memory_type,
                     const Handle& space, const void* data, const std::string& file,
                     const std::string& path) {
  internal::quiet();
  const std::string what = "write attribute " + in_quotes(name) + " of " + in_quotes(path);
  const htri_t exists = H5Aexists(object, name.c_str());
  if (exists < 0) internal::fail(what, file, path);
  if (exists > 0) check_status(H5Adelete(object, name.c_str()), what, file, path);
  Handle attribute(check_id(H5Acreate2(object, name.c_str(), file_type, space.id(), H5P_DEFAULT, H5P_DEFAULT),
                            what, file, path),
                   H5Aclose);
  // An empty list is the attribute's creation alone (HDF5 refuses a write with no buffer).
  if (H5Sget_simple_extent_npoints(space.id()) > 0) {
    check_status(H5Awrite(attribute.id(), memory_type, data), what, file, path);
  }
}

OpenAttribute open_attribute(hid_t object, const std::string& name, const std::string& file,
                             const std::string& path) {
  internal::quiet();
  OpenAttribute a;
  a.what = "read attribute " + in_quotes(name) + " of " + in_quotes(path);
  const htri_t exists = H5Aexists(object, name.c_str());
  if (exists < 0) internal::fail(a.what, file, path);
  if (exists == 0) {
    throw IoError(str_cat("h5: cannot ", a.what, " in '", file, "': no such attribute"), file, path);
  }
  a.attribute = Handle(check_id(H5Aopen(object, name.c_str(), H5P_DEFAULT), a.what, file, path), H5Aclose);
  a.type = Handle(check_id(H5Aget_type(a.attribute.id()), a.what, file, path), H5Tclose);
  a.cls = H5Tget_class(a.type.id());
  Handle space(check_id(H5Aget_space(a.attribute.id()), a.what, file, path), H5Sclose);
  const hssize_t points = H5Sget_simple_extent_npoints(space.id());
  if (points < 0) internal::fail(a.what, file, path);
  a.count = static_cast<std::size_t>(points);
  return a;
}

void expect_class(const OpenAttribute& a, bool ok, const char* expected, const std::string& file) {
  LOCKSTEP_CHECK(ok, TypeError, "h5: cannot ", a.what, " in '", file, "': expected ", expected, ", but got ",
                 class_name(a.cls), " data");
}

void expect_single(const OpenAttribute& a, const std::string& file) {
  LOCKSTEP_CHECK(a.count == 1, TypeError, "h5: cannot ", a.what, " in '", file,
                 "': expected a single value, but got a list of ", a.count);
}

template <class T>
std::vector<T> read_numbers(const OpenAttribute& a, hid_t memory_type, const std::string& file,
                            const std::string& path) {
  std::vector<T> values(a.count);
  if (!values.empty())
    check_status(H5Aread(a.attribute.id(), memory_type, values.data()), a.what, file, path);
  return values;
}

std::vector<std::string> read_strings(const OpenAttribute& a, const std::string& file,
                                      const std::string& path) {
  std::vector<std::string> values;
  if (a.count == 0) return values;
  values.reserve(a.count);
  const htri_t variable = H5Tis_variable_str(a.type.id());
  if (variable < 0) internal::fail(a.what, file, path);
  Handle memory(check_id(H5Tcopy(H5T_C_S1), a.what, file, path), H5Tclose);
  check_status(H5Tset_cset(memory.id(), H5Tget_cset(a.type.id())), a.what, file, path);
  if (variable > 0) {
    check_status(H5Tset_size(memory.id(), H5T_VARIABLE), a.what, file, path);
    std::vector<char*> pointers(a.count, nullptr);
    check_status(H5Aread(a.attribute.id(), memory.id(), pointers.data()), a.what, file, path);
    for (char* p : pointers) values.emplace_back(p != nullptr ? p : "");
    Handle space(check_id(H5Aget_space(a.attribute.id()), a.what, file, path), H5Sclose);
    check_status(H5Dvlen_reclaim(memory.id(), space.id(), H5P_DEFAULT, pointers.data()), a.what, file, path);
    return values;
  }
  const std::size_t size = H5Tget_size(a.type.id());
  check_status(H5Tset_size(memory.id(), size), a.what, file, path);
  std::vector<char> buffer(size * a.count);
  check_status(H5Aread(a.attribute.id(), memory.id(), buffer.data()), a.what, file, path);
  for (std::size_t i = 0; i < a.count; ++i) {
    const char* p = buffer.data() + i * size;
    std::size_t length = strnlen(p, size);
    while (length > 0 && p[length - 1] == ' ') --length;  // space-padded strings
    values.emplace_back(p, length);
  }
  return values;
}

}  // namespace

void Object::set_attribute(const std::string& name, std::int64_t value) const {
  internal::quiet();
  write_attribute(handle_.id(), name, H5T_STD_I64LE, H5T_NATIVE_INT64, dataspace(std::nullopt, file_, path_),
                  &value, file_, path_);
}

void Object::set_attribute(const std::string& name, double value) const {
  internal::quiet();
  write_attribute(handle_.id(), name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                  dataspace(std::nullopt, file_, path_), &value, file_, path_);
}

void Object::set_attribute(const std::string& name, const std::string& value) const {
  internal::quiet();
  Handle type = string_type(file_, path_);
  const char* pointer = value.c_str();
  write_attribute(handle_.id(), name, type.id(), type.id(), dataspace(std::nullopt, file_, path_), &pointer,
                  file_, path_);
}

void Object::set_attribute(const std::string& name, const std::vector<double>& values) const {
  internal::quiet();
  write_attribute(handle_.id(), name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                  dataspace(values.size(), file_, path_), values.data(), file_, path_);
}

void Object::set_attribute(const std::string& name, const std::vector<std::int64_t>& values) const {
  internal::quiet();
  write_attribute(handle_.id(), name, H5T_STD_I64LE, H5T_NATIVE_INT64, dataspace(values.size(), file_, path_),
                  values.data(), file_, path_);
}

void Object::set_attribute(const std::string& name, const std::vector<std::string>& values) const {
  internal::quiet();
  Handle type = string_type(file_, path_);
  std::vector<const char*> pointers;
  pointers.reserve(values.size());
  for (const std::string& v : values) pointers.push_back(v.c_str());
  write_attribute(handle_.id(), name, type.id(), type.id(), dataspace(values.size(), file_, path_),
                  pointers.data(), file_, path_);
}

bool Object::has_attribute(const std::string& name) const {
  internal::quiet();
  const htri_t exists = H5Aexists(handle_.id(), name.c_str());
  if (exists < 0)
    internal::fail("look up attribute " + in_quotes(name) + " of " + in_quotes(path_), file_, path_);
  return exists > 0;
}

namespace {
herr_t collect_attribute_name(hid_t /*object*/, const char* name, const H5A_info_t* /*info*/, void* names) {
  static_cast<std::vector<std::string>*>(names)->emplace_back(name);
  return 0;
}
}  // namespace

std::vector<std::string> Object::attribute_names() const {
  internal::quiet();
  std::vector<std::string> names;
  hsize_t index = 0;
  check_status(H5Aiterate2(handle_.id(), H5_INDEX_NAME, H5_ITER_INC, &index, collect_attribute_name, &names),
               "list the attributes of " + in_quotes(path_), file_, path_);
  return names;
}

std::int64_t Object::attribute_int(const std::string& name) const {
  OpenAttribute a = open_attribute(handle_.id(), name, file_, path_);
  expect_class(a, a.cls == H5T_INTEGER, "integer data", file_);
  expect_single(a, file_);
  return read_numbers<std::int64_t>(a, H5T_NATIVE_INT64, file_, path_)[0];
}

double Object::attribute_double(const std::string& name) const {
  OpenAttribute a = open_attribute(handle_.id(), name, file_, path_);
  expect_class(a, a.cls == H5T_FLOAT || a.cls == H5T_INTEGER, "numeric data", file_);
  expect_single(a, file_);
  return read_numbers<double>(a, H5T_NATIVE_DOUBLE, file_, path_)[0];
}

std::string Object::attribute_string(const std::string& name) const {
  OpenAttribute a = open_attribute(handle_.id(), name, file_, path_);
  expect_class(a, a.cls == H5T_STRING, "string data", file_);
  expect_single(a, file_);
  return read_strings(a, file_, path_)[0];
}

std::vector<double> Object::attribute_doubles(const std::string& name) const {
  OpenAttribute a = open_attribute(handle_.id(), name, file_, path_);
  expect_class(a, a.cls == H5T_FLOAT || a.cls == H5T_INTEGER, "numeric data", file_);
  return read_numbers<double>(a, H5T_NATIVE_DOUBLE, file_, path_);
}

std::vector<std::int64_t> Object::attribute_ints(const std::string& name) const {
  OpenAttribute a = open_attribute(handle_.id(), name, file_, path_);
  expect_class(a, a.cls == H5T_INTEGER, "integer data", file_);
  return read_numbers<std::int64_t>(a, H5T_NATIVE_INT64, file_, path_);
}

std::vector<std::string> Object::attribute_strings(const std::string& name) const {
  OpenAttribute a = open_attribute(handle_.id(), name, file_, path_);
  expect_class(a, a.cls == H5T_STRING, "string data", file_);
  return read_strings(a, file_, path_);
}

}  // namespace lockstep::io::h5
