// Tests of the HDF5 layer: tensor and attribute round trips, row ranges, chunked storage, handle
// lifetimes, and the errors for missing, foreign and truncated files, missing objects and wrong dtypes.
#include "io/h5/h5.h"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "src/tensor/factories.h"
#include "tests/support/temp_dir.h"

namespace lockstep {
namespace {

namespace fs = std::filesystem;
using io::h5::Access;

// A fresh directory per test, removed afterwards.
class H5Test : public test::TempDirTest {};

// A tensor of `shape` and `dtype` with distinct, dtype-specific values (i64 beyond 32 bits, negative floats).
Tensor sample(const Shape& shape, DType dtype) {
  const std::int64_t n = numel_of(shape);
  std::vector<double> values(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    switch (dtype) {
      case DType::u8:
        values[static_cast<std::size_t>(i)] = static_cast<double>((i * 37 + 11) % 256);
        break;
      case DType::i64:
        values[static_cast<std::size_t>(i)] = static_cast<double>((i % 2 ? -1 : 1) * ((1LL << 40) + i));
        break;
      default:
        values[static_cast<std::size_t>(i)] = (static_cast<double>(i) - 7.25) / 3.0;
        break;
    }
  }
  return from_vector(values, shape, dtype);
}

void expect_same(const Tensor& actual, const Tensor& expected) {
  ASSERT_EQ(actual.dtype(), expected.dtype());
  ASSERT_EQ(actual.shape(), expected.shape());
  EXPECT_EQ(actual.to_vector<double>(), expected.to_vector<double>());
}

// Runs `fn`, expects an IoError naming `file` (in file() and in the message) and returns its message.
template <class Fn>
std::string expect_io_error(Fn&& fn, const fs::path& file) {
  try {
    fn();
  } catch (const IoError& e) {
    EXPECT_EQ(e.file(), file.string());
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected IoError, got another exception: " << e.what();
    return {};
  }
  ADD_FAILURE() << "expected IoError, nothing was thrown";
  return {};
}

// The number of HDF5 identifiers of any kind open in this process.
ssize_t open_hdf5_ids() { return H5Fget_obj_count(static_cast<hid_t>(H5F_OBJ_ALL), H5F_OBJ_ALL); }

TEST_F(H5Test, TensorsRoundTripForEveryDtypeAndShape) {
  const std::vector<DType> dtypes = {DType::u8, DType::i64, DType::f32, DType::f64};
  const std::vector<Shape> shapes = {{}, {1}, {7}, {3, 4}, {2, 3, 4, 5}, {0, 3}};
  {
    io::h5::File f(file("t.h5"), Access::kTruncate);
    io::h5::Group root = f.root();
    for (DType dtype : dtypes) {
      for (std::size_t s = 0; s < shapes.size(); ++s) {
        root.write_tensor(str_cat(dtype_name(dtype), "_", s), sample(shapes[s], dtype));
      }
    }
  }
  io::h5::File f(file("t.h5"), Access::kRead);
  io::h5::Group root = f.root();
  for (DType dtype : dtypes) {
    for (std::size_t s = 0; s < shapes.size(); ++s) {
      SCOPED_TRACE(str_cat(dtype_name(dtype), " ", shape_str(shapes[s])));
      io::h5::Dataset ds = root.dataset(str_cat(dtype_name(dtype), "_", s));
      EXPECT_EQ(ds.dtype(), dtype);
      EXPECT_EQ(ds.shape(), shapes[s]);
      expect_same(ds.read(), sample(shapes[s], dtype));
      expect_same(root.read_tensor(str_cat(dtype_name(dtype), "_", s)), sample(shapes[s], dtype));
    }
  }
}

TEST_F(H5Test, NonContiguousTensorsAreWrittenInLogicalOrder) {
  const Tensor base = sample({4, 6}, DType::f32);
  const Tensor strided = base.transpose(0, 1).slice(0, 1, 6, 2);  // [3, 4], non-contiguous
  ASSERT_FALSE(strided.is_contiguous());
  io::h5::File f(file("t.h5"), Access::kTruncate);
  f.root().write_tensor("x", strided);
  expect_same(f.root().read_tensor("x"), strided.contiguous());
}

TEST_F(H5Test, GroupsNestListAndResolvePaths) {
  io::h5::File f(file("g.h5"), Access::kTruncate);
  io::h5::Group root = f.root();
  EXPECT_EQ(root.object_path(), "/");
  io::h5::Group train = root.create_group("train");
  EXPECT_EQ(train.object_path(), "/train");
  io::h5::Group deep = root.create_group("a/b/c");  // intermediate groups are created
  EXPECT_EQ(deep.object_path(), "/a/b/c");
  train.write_tensor("labels", sample({5}, DType::i64));
  io::h5::Dataset images = train.create_dataset("images", DType::u8, {5, 1, 2, 2});
  EXPECT_EQ(images.object_path(), "/train/images");
  EXPECT_EQ(images.file_name(), file("g.h5").string());

  EXPECT_TRUE(root.contains("train"));
  EXPECT_TRUE(root.contains("train/labels"));
  EXPECT_TRUE(root.contains("/a/b/c"));
  EXPECT_TRUE(root.group("a").contains("b/c"));
  EXPECT_FALSE(root.contains("test"));
  EXPECT_FALSE(root.contains("a/x/y"));              // missing intermediate
  EXPECT_FALSE(root.contains("train/labels/more"));  // through a dataset
  EXPECT_TRUE(root.is_group("train"));
  EXPECT_TRUE(root.is_group("a/b"));
  EXPECT_FALSE(root.is_group("train/labels"));  // a dataset
  EXPECT_FALSE(root.is_group("test"));          // missing
  EXPECT_EQ(root.children(), (std::vector<std::string>{"a", "train"}));
  EXPECT_EQ(train.children(), (std::vector<std::string>{"images", "labels"}));
  EXPECT_TRUE(deep.children().empty());
  EXPECT_EQ(root.group("a/b").object_path(), "/a/b");
  expect_same(root.group("a").group("/train").read_tensor("labels"), sample({5}, DType::i64));
}

TEST_F(H5Test, AttributesOfEveryKindRoundTrip) {
  const std::vector<double> doubles = {0.5, -1.25, 1e300};
  const std::vector<std::int64_t> ints = {-3, 0, 1LL << 50};
  const std::vector<std::string> strings = {"zero", "", "üñí çødé"};
  {
    io::h5::File f(file("a.h5"), Access::kTruncate);
    io::h5::Group root = f.root();
    root.set_attribute("format_version", 1);
    root.set_attribute("big", std::int64_t{-(1LL << 60)});
    root.set_attribute("ratio", 0.1);
    root.set_attribute("source", "fashion-mnist");
    root.set_attribute("doubles", doubles);
    root.set_attribute("ints", ints);
    root.set_attribute("strings", strings);
    root.set_attribute("empty_doubles", std::vector<double>{});
    root.set_attribute("empty_strings", std::vector<std::string>{});
    root.set_attribute("replaced", "first");
    root.set_attribute("replaced", 42);  // replacing also changes the kind
    io::h5::Dataset ds = root.write_tensor("x", sample({2}, DType::f32));
    ds.set_attribute("unit", std::string("pixel/255"));
    ds.set_attribute("mean", std::vector<double>{0.2860});
  }
  io::h5::File f(file("a.h5"), Access::kRead);
  io::h5::Group root = f.root();
  EXPECT_EQ(root.attribute_int("format_version"), 1);
  EXPECT_EQ(root.attribute_int("big"), -(1LL << 60));
  EXPECT_EQ(root.attribute_double("ratio"), 0.1);
  EXPECT_EQ(root.attribute_double("format_version"), 1.0);  // integers read as doubles
  EXPECT_EQ(root.attribute_string("source"), "fashion-mnist");
  EXPECT_EQ(root.attribute_doubles("doubles"), doubles);
  EXPECT_EQ(root.attribute_ints("ints"), ints);
  EXPECT_EQ(root.attribute_strings("strings"), strings);
  EXPECT_TRUE(root.attribute_doubles("empty_doubles").empty());
  EXPECT_TRUE(root.attribute_strings("empty_strings").empty());
  EXPECT_EQ(root.attribute_int("replaced"), 42);
  EXPECT_EQ(root.attribute_doubles("ratio"), std::vector<double>{0.1});  // a scalar is a list of one
  EXPECT_TRUE(root.has_attribute("source"));
  EXPECT_FALSE(root.has_attribute("missing"));
  io::h5::Dataset ds = root.dataset("x");
  EXPECT_EQ(ds.attribute_string("unit"), "pixel/255");
  EXPECT_EQ(ds.attribute_doubles("mean"), std::vector<double>{0.2860});
  EXPECT_FALSE(ds.has_attribute("source"));  // attributes belong to their object

  const std::string missing = expect_io_error([&] { root.attribute_int("missing"); }, file("a.h5"));
  EXPECT_NE(missing.find("'missing'"), std::string::npos) << missing;
  EXPECT_THROW(root.attribute_int("source"), TypeError);      // string, not integer
  EXPECT_THROW(root.attribute_int("ratio"), TypeError);       // float, not integer
  EXPECT_THROW(root.attribute_string("ints"), TypeError);     // integers, not string
  EXPECT_THROW(root.attribute_double("doubles"), TypeError);  // a list of 3, not one value
  try {
    root.attribute_strings("doubles");
    ADD_FAILURE() << "expected TypeError";
  } catch (const TypeError& e) {
    EXPECT_NE(std::string(e.what()).find("'doubles'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(file("a.h5").string()), std::string::npos) << e.what();
  }
}

TEST_F(H5Test, ReadRowsMatchesSlicesOfTheFullRead) {
  const Tensor full = sample({10, 3, 4}, DType::f32);
  io::h5::File f(file("r.h5"), Access::kTruncate);
  io::h5::Dataset ds = f.root().write_tensor("images", full);
  for (auto [start, count] :
       std::vector<std::pair<std::int64_t, std::int64_t>>{{0, 10}, {3, 4}, {9, 1}, {0, 1}, {5, 0}}) {
    SCOPED_TRACE(str_cat("rows ", start, " + ", count));
    expect_same(ds.read_rows(start, count), full.slice(0, start, start + count).contiguous());
  }
  std::vector<float> buffer(2 * 3 * 4, -1.0f);
  ds.read_rows_into(7, 2, buffer.data());
  EXPECT_EQ(buffer, full.slice(0, 7, 9).to_vector<float>());

  Tensor out = empty({3, 3, 4}, DType::f32);
  ds.read_rows_into(2, out);
  expect_same(out, full.slice(0, 2, 5).contiguous());

  EXPECT_THROW(ds.read_rows(8, 3), IndexError);
  EXPECT_THROW(ds.read_rows(-1, 2), IndexError);
  EXPECT_THROW(ds.read_rows_into(0, empty({2, 4, 3}, DType::f32)), ValueError);
  try {
    ds.read_rows_into(0, empty({2, 3, 4}, DType::f64));
    ADD_FAILURE() << "expected TypeError";
  } catch (const TypeError& e) {
    EXPECT_NE(std::string(e.what()).find("'/images'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("f64"), std::string::npos) << e.what();
  }
  io::h5::Dataset scalar = f.root().write_tensor("scalar", scalar_tensor(2.0));
  EXPECT_THROW(scalar.read_rows(0, 1), IndexError);
}

TEST_F(H5Test, WriteRowsFillsADatasetPieceByPiece) {
  const Tensor full = sample({7, 2, 2}, DType::u8);
  {
    io::h5::File f(file("w.h5"), Access::kTruncate);
    io::h5::Dataset ds = f.root().create_dataset("images", DType::u8, {7, 2, 2});
    ds.write_rows(3, full.slice(0, 3, 7));
    ds.write_rows(0, full.slice(0, 0, 3));
    EXPECT_THROW(ds.write_rows(6, full.slice(0, 0, 2)), IndexError);
    EXPECT_THROW(ds.write_rows(0, sample({2, 4}, DType::u8)), ValueError);
    EXPECT_THROW(ds.write(sample({7, 2, 3}, DType::u8)), ValueError);
  }
  io::h5::File f(file("w.h5"), Access::kReadWrite);
  expect_same(f.root().read_tensor("images"), full);
  // Read-write access: overwrite one row in place.
  io::h5::Dataset ds = f.root().dataset("images");
  ds.write_rows(1, zeros({1, 2, 2}, DType::u8));
  f.flush();
  EXPECT_EQ(ds.read_rows(1, 1).to_vector<double>(), std::vector<double>(4, 0.0));
  expect_same(ds.read_rows(2, 5), full.slice(0, 2, 7).contiguous());
}

TEST_F(H5Test, ChunkedDeflateDatasetsRoundTripAndCompress) {
  // Compressible images: a smooth ramp per row.
  std::vector<std::uint8_t> pixels(100 * 28 * 28);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>((i / 28) % 7);
  const Tensor images = from_vector(pixels, {100, 28, 28});
  const Tensor values = sample({100, 5}, DType::f64);
  {
    io::h5::File f(file("c.h5"), Access::kTruncate);
    io::h5::Dataset ds =
        f.root().create_dataset("images", DType::u8, {100, 28, 28}, {.chunk = {16, 28, 28}, .deflate = 4});
    ds.write_rows(0, images.slice(0, 0, 50));
    ds.write_rows(50, images.slice(0, 50, 100));
    // A chunk larger than the extents is clamped.
    f.root().create_dataset("values", DType::f64, {100, 5}, {.chunk = {1000, 8}, .deflate = 9}).write(values);
  }
  EXPECT_LT(fs::file_size(file("c.h5")), 100u * 28 * 28 / 4);
  {
    io::h5::File f(file("c.h5"), Access::kRead);
    expect_same(f.root().read_tensor("images"), images);
    expect_same(f.root().dataset("images").read_rows(10, 20), images.slice(0, 10, 30).contiguous());
    expect_same(f.root().read_tensor("values"), values);
  }
  // The layout, as the HDF5 C API sees it.
  hid_t fid = H5Fopen(file("c.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(fid, 0);
  hid_t did = H5Dopen2(fid, "/values", H5P_DEFAULT);
  hid_t dcpl = H5Dget_create_plist(did);
  EXPECT_EQ(H5Pget_layout(dcpl), H5D_CHUNKED);
  hsize_t chunk[2] = {0, 0};
  EXPECT_EQ(H5Pget_chunk(dcpl, 2, chunk), 2);
  EXPECT_EQ(chunk[0], 100u);
  EXPECT_EQ(chunk[1], 5u);
  EXPECT_EQ(H5Pget_nfilters(dcpl), 2);  // shuffle + deflate
  unsigned flags = 0;
  std::size_t nelements = 1;
  unsigned level = 0;
  EXPECT_EQ(H5Pget_filter_by_id2(dcpl, H5Z_FILTER_DEFLATE, &flags, &nelements, &level, 0, nullptr, nullptr),
            0);
  EXPECT_EQ(level, 9u);
  H5Pclose(dcpl);
  H5Dclose(did);
  H5Fclose(fid);
}

TEST_F(H5Test, BadStorageOptionsAreValueErrors) {
  io::h5::File f(file("o.h5"), Access::kTruncate);
  io::h5::Group root = f.root();
  EXPECT_THROW(root.create_dataset("a", DType::u8, {4, 4}, {.chunk = {2}}), ValueError);
  EXPECT_THROW(root.create_dataset("b", DType::u8, {4, 4}, {.chunk = {2, 0}}), ValueError);
  EXPECT_THROW(root.create_dataset("c", DType::u8, {4, 4}, {.chunk = {2, 2}, .deflate = 10}), ValueError);
  EXPECT_THROW(root.create_dataset("d", DType::u8, {4, 4}, {.chunk = {}, .deflate = 3}), ValueError);
  EXPECT_THROW(root.create_dataset("e", DType::u8, {4, -1}), ValueError);
  EXPECT_THROW(root.create_dataset("f", DType::bf16, {4}), TypeError);
  EXPECT_TRUE(root.children().empty());
}

TEST_F(H5Test, NarrowerIntegersReadAsI64AndUnsupportedTypesAreTypeErrors) {
  const fs::path path = file("foreign.h5");
  {
    hid_t fid = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t dims[1] = {3};
    hid_t space = H5Screate_simple(1, dims, nullptr);
    const std::int32_t labels[3] = {-2, 7, 9};
    hid_t a = H5Dcreate2(fid, "labels32", H5T_STD_I32BE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(a, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels);
    const std::uint64_t big[3] = {1, 2, 3};
    hid_t b = H5Dcreate2(fid, "u64", H5T_STD_U64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(b, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, big);
    H5Dclose(a);
    H5Dclose(b);
    H5Sclose(space);
    H5Fclose(fid);
  }
  io::h5::File f(path, Access::kRead);
  io::h5::Dataset labels = f.root().dataset("labels32");
  EXPECT_EQ(labels.dtype(), DType::i64);
  EXPECT_EQ(labels.read().to_vector<std::int64_t>(), (std::vector<std::int64_t>{-2, 7, 9}));
  try {
    f.root().dataset("u64");
    ADD_FAILURE() << "expected TypeError";
  } catch (const TypeError& e) {
    EXPECT_NE(std::string(e.what()).find("'/u64'"), std::string::npos) << e.what();
  }
}

TEST_F(H5Test, MissingFileIsAnIoErrorNamingIt) {
  const fs::path path = file("nope.h5");
  expect_io_error([&] { io::h5::File f(path, Access::kRead); }, path);
  expect_io_error([&] { io::h5::File f(path, Access::kReadWrite); }, path);
  expect_io_error([&] { io::h5::File f(file("no_dir/x.h5"), Access::kTruncate); }, file("no_dir/x.h5"));
}

TEST_F(H5Test, TextFileRenamedH5IsAnIoErrorAndPrintsNothing) {
  const fs::path path = file("text.h5");
  std::ofstream(path) << "this is not an HDF5 file\n";
  ::testing::internal::CaptureStderr();
  const std::string message = expect_io_error([&] { io::h5::File f(path, Access::kRead); }, path);
  const std::string printed = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(printed, "") << "HDF5 printed its error stack";
  EXPECT_NE(message.find("h5: cannot open the file for reading in '"), std::string::npos) << message;
  EXPECT_NE(message.find("signature"), std::string::npos) << message;  // HDF5's innermost reason
}

TEST_F(H5Test, TruncatedFileIsAnIoErrorNamingIt) {
  const fs::path path = file("cut.h5");
  {
    io::h5::File f(path, Access::kTruncate);
    f.root().create_group("train").write_tensor("images", sample({64, 1, 16, 16}, DType::u8));
    f.root().set_attribute("source", "x");
  }
  fs::resize_file(path, fs::file_size(path) / 2);
  // Depending on where the cut falls the open or a later read fails: either way an IoError naming the file.
  expect_io_error(
      [&] {
        io::h5::File f(path, Access::kRead);
        f.root().group("train").read_tensor("images");
      },
      path);
}

TEST_F(H5Test, MissingObjectsAndWrongDtypesNameTheFileAndObject) {
  const fs::path path = file("m.h5");
  io::h5::File f(path, Access::kTruncate);
  io::h5::Group train = f.root().create_group("train");
  io::h5::Dataset images = train.create_dataset("images", DType::u8, {2, 3});

  std::string message = expect_io_error([&] { train.dataset("labels"); }, path);
  EXPECT_NE(message.find("h5: cannot open dataset '/train/labels' in '" + path.string() + "'"),
            std::string::npos)
      << message;
  try {
    train.dataset("labels");
  } catch (const IoError& e) {
    EXPECT_EQ(e.object(), "/train/labels");
  }
  message = expect_io_error([&] { f.root().group("test"); }, path);
  EXPECT_NE(message.find("group '/test'"), std::string::npos) << message;
  message = expect_io_error([&] { f.root().read_tensor("train/nothing"); }, path);
  EXPECT_NE(message.find("'/train/nothing'"), std::string::npos) << message;
  message = expect_io_error([&] { f.root().create_group("train"); }, path);  // already exists
  EXPECT_NE(message.find("create group '/train'"), std::string::npos) << message;

  try {
    images.write(sample({2, 3}, DType::f32));
    ADD_FAILURE() << "expected TypeError";
  } catch (const TypeError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'/train/images'"), std::string::npos) << what;
    EXPECT_NE(what.find(path.string()), std::string::npos) << what;
    EXPECT_NE(what.find("u8"), std::string::npos) << what;
  }
  EXPECT_THROW(images.write_rows(0, sample({1, 3}, DType::i64)), TypeError);
}

TEST_F(H5Test, WritingToAReadOnlyFileIsAnIoError) {
  const fs::path path = file("ro.h5");
  { io::h5::File f(path, Access::kTruncate); }
  io::h5::File f(path, Access::kRead);
  expect_io_error([&] { f.root().write_tensor("x", sample({2}, DType::f32)); }, path);
  expect_io_error([&] { f.root().set_attribute("a", 1); }, path);
}

TEST_F(H5Test, HandlesCloseWhenTheirOwnersGoAwayAndMoveWithoutDoubleClose) {
  const ssize_t before = open_hdf5_ids();
  {
    io::h5::File f(file("h.h5"), Access::kTruncate);
    io::h5::Group root = f.root();
    io::h5::Group moved = std::move(root);
    io::h5::Dataset ds = moved.write_tensor("x", sample({3}, DType::f64));
    io::h5::Dataset other = moved.write_tensor("y", sample({3}, DType::f64));
    other = std::move(ds);  // closes y, takes x
    EXPECT_EQ(other.object_path(), "/x");
    EXPECT_EQ(open_hdf5_ids() - before, 3);  // file, group, dataset
    io::h5::File g = std::move(f);
    g.flush();
  }
  EXPECT_EQ(open_hdf5_ids(), before);
  // Everything closed: the file can be truncated again.
  io::h5::File again(file("h.h5"), Access::kTruncate);
  EXPECT_TRUE(again.root().children().empty());
}

TEST_F(H5Test, H5dumpSeesStandardTypes) {
  if (std::system("command -v h5dump > /dev/null 2>&1") != 0) GTEST_SKIP() << "h5dump is not installed";
  const fs::path path = file("dump.h5");
  {
    io::h5::File f(path, Access::kTruncate);
    io::h5::Group train = f.root().create_group("train");
    train.write_tensor("labels", from_vector(std::vector<std::int64_t>{3, 1, 4}, {3}));
    train.set_attribute("source_files", std::vector<std::string>{"a.gz", "b.gz"});
  }
  const fs::path out = file("dump.txt");
  ASSERT_EQ(std::system(("h5dump '" + path.string() + "' > '" + out.string() + "' 2>&1").c_str()), 0);
  std::ifstream in(out);
  const std::string dump((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(dump.find("DATASET \"labels\""), std::string::npos) << dump;
  EXPECT_NE(dump.find("H5T_STD_I64LE"), std::string::npos) << dump;
  EXPECT_NE(dump.find("3, 1, 4"), std::string::npos) << dump;
  EXPECT_NE(dump.find("H5T_CSET_UTF8"), std::string::npos) << dump;
  EXPECT_NE(dump.find("\"a.gz\", \"b.gz\""), std::string::npos) << dump;
}

}  // namespace
}  // namespace lockstep
