// The files Lockstep writes open in h5py (Debian's python3-h5py, system interpreter) as documented: a data
// set, a model file and a checkpoint are read by h5py and by the tool's own readers, and every array must
// agree in path, dtype, shape and bytes; h5py's view of a data set's array also hashes (XXH64 through
// libxxhash) to the xxh64 attribute `lockstep convert` stores.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "io/checkpoint/checkpoint_state.h"
#include "io/checkpoint/checkpoint_store.h"
#include "io/data/convert.h"
#include "io/data/dataset.h"
#include "io/model/model_file.h"
#include "launch/config/config.h"
#include "src/core/rng.h"
#include "src/nn/container.h"
#include "src/nn/linear.h"
#include "src/nn/norm.h"
#include "src/tensor/factories.h"
#include "tests/support/command.h"
#include "tests/support/temp_dir.h"

namespace lockstep {
namespace {

namespace fs = std::filesystem;

// Lists every dataset of an HDF5 file as "path<TAB>dtype<TAB>shape<TAB>hex bytes" (C order), then one
// "xxh64<TAB>path<TAB>attribute<TAB>hash of h5py's bytes" line per dataset carrying an xxh64 attribute.
constexpr const char* kDumpScript = R"(
import ctypes, sys
import h5py
xxhash = ctypes.CDLL("libxxhash.so.0")
xxhash.XXH64.restype = ctypes.c_uint64
xxhash.XXH64.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
with h5py.File(sys.argv[1], "r") as f:
    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset):
            return
        data = obj[()]
        raw = data.tobytes()
        print("\t".join(["/" + name, obj.dtype.str, ",".join(str(s) for s in obj.shape), raw.hex()]))
        if "xxh64" in obj.attrs:
            stored = obj.attrs["xxh64"]
            stored = stored.decode() if isinstance(stored, bytes) else str(stored)
            print("\t".join(["xxh64", "/" + name, stored, "%016x" % xxhash.XXH64(raw, len(raw), 0)]))
    f.visititems(visit)
)";

struct H5pyArray {
  std::string dtype, shape, hex;
};

struct H5pyView {
  std::map<std::string, H5pyArray> arrays;
  std::map<std::string, std::pair<std::string, std::string>> xxh64;  // path -> (attribute, h5py's hash)
};

H5pyView h5py_view(const fs::path& script, const fs::path& file) {
  const test::CommandResult r = test::run_command(
      "/usr/bin/python3 " + test::quote(script.string()) + " " + test::quote(file.string()), 120);
  H5pyView view;
  EXPECT_EQ(r.status, 0) << "h5py could not read " << file
                         << " (python3-h5py is installed by launch/setup.sh):\n"
                         << r.output;
  for (const std::string& line : test::lines_of(r.output)) {
    std::vector<std::string> fields;
    std::istringstream in(line);
    for (std::string field; std::getline(in, field, '\t');) fields.push_back(field);
    if (fields.size() == 4 && fields[0] == "xxh64") {
      view.xxh64[fields[1]] = {fields[2], fields[3]};
    } else if (fields.size() == 4 || fields.size() == 3) {
      view.arrays[fields[0]] = {fields[1], fields[2], fields.size() == 4 ? fields[3] : ""};
    } else {
      ADD_FAILURE() << "unexpected line from the h5py script: " << line;
    }
  }
  return view;
}

std::string numpy_dtype(DType dtype) {
  switch (dtype) {
    case DType::u8:
      return "|u1";
    case DType::i64:
      return "<i8";
    case DType::f32:
      return "<f4";
    case DType::f64:
      return "<f8";
    default:
      return "?";
  }
}

std::string hex_of(const void* data, std::size_t bytes) {
  std::string out;
  char digits[3];
  for (std::size_t i = 0; i < bytes; ++i) {
    std::snprintf(digits, sizeof(digits), "%02x", static_cast<const unsigned char*>(data)[i]);
    out += digits;
  }
  return out;
}

// Expects h5py's array at `path` to be the tool's tensor `t`: dtype, shape and bytes.
void expect_same(const H5pyView& view, const std::string& path, const Tensor& tensor) {
  const auto it = view.arrays.find(path);
  ASSERT_NE(it, view.arrays.end()) << "h5py does not see " << path;
  const Tensor t = tensor.contiguous();
  std::string shape;
  for (std::size_t d = 0; d < t.shape().size(); ++d) {
    if (d > 0) shape += ',';
    shape += std::to_string(t.shape()[d]);
  }
  EXPECT_EQ(it->second.dtype, numpy_dtype(t.dtype())) << path;
  EXPECT_EQ(it->second.shape, shape) << path;
  EXPECT_EQ(it->second.hex, hex_of(t.data(), static_cast<std::size_t>(t.numel()) * element_size(t.dtype())))
      << path;
}

// The state dict's entries as h5py paths: "/<group>/" + dotted name with '.' -> '/'.
std::string h5_path(const std::string& group, std::string dotted) {
  for (char& c : dotted)
    if (c == '.') c = '/';
  std::string path = "/";
  path.append(group).append("/").append(dotted);
  return path;
}

class H5py : public ::testing::Test {
 protected:
  void SetUp() override {
    script_ = tmp_ / "h5py_dump.py";
    std::ofstream(script_) << kDumpScript;
  }
  test::TempDir tmp_;
  fs::path script_;
};

TEST_F(H5py, DataSetArraysAndChecksumsMatchTheToolsReading) {
  std::vector<std::uint8_t> pixels(3 * 2 * 4 * 5);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>(i * 7 + 1);
  io::ImageSet set;
  set.images = from_vector(pixels, {3, 2, 4, 5}, DType::u8);
  set.labels = from_vector(std::vector<std::int64_t>{2, 0, 1}, {3}, DType::i64);
  const fs::path file = tmp_ / "data.h5";
  io::write_image_set(file, "train", set, {"a", "b", "c"}, io::h5::Access::kTruncate, "test");

  const auto dataset = io::ImageDataset::open(file, "train", io::Cache::kMemory);
  std::vector<std::int64_t> all = {0, 1, 2};
  Tensor images = empty({3, 2, 4, 5}, DType::u8);
  Tensor labels = empty({3}, DType::i64);
  dataset->gather(all, images.data<std::uint8_t>(), labels.data<std::int64_t>());

  const H5pyView view = h5py_view(script_, file);
  EXPECT_EQ(view.arrays.size(), 2u);
  expect_same(view, "/train/images", images);
  expect_same(view, "/train/labels", labels);
  ASSERT_EQ(view.xxh64.size(), 2u);
  for (const auto& [path, hashes] : view.xxh64) EXPECT_EQ(hashes.first, hashes.second) << path;
}

TEST_F(H5py, ModelFileTensorsMatchTheToolsReading) {
  manual_seed(5);
  nn::Sequential model;
  model.push_back(std::make_shared<nn::Linear>(4, 3));
  model.push_back(std::make_shared<nn::BatchNorm1d>(3));
  const launch::Config cfg =
      launch::Config::parse("task = \"classifier\"\n[model]\nname = \"mlp\"\n", "run.toml");
  const fs::path file = tmp_ / "model.h5";
  io::write_model_file(file, "classifier", cfg.to_string(), {{"model", &model}});

  manual_seed(6);  // different initial weights: load_model must replace every one
  nn::Sequential loaded;
  loaded.push_back(std::make_shared<nn::Linear>(4, 3));
  loaded.push_back(std::make_shared<nn::BatchNorm1d>(3));
  io::load_model_group(file, "model", loaded);

  const H5pyView view = h5py_view(script_, file);
  const nn::StateDict state = loaded.state_dict();
  EXPECT_EQ(view.arrays.size(), state.size());
  for (const auto& [name, tensor] : state) expect_same(view, h5_path("model", name), tensor);
}

TEST_F(H5py, CheckpointStateMatchesTheToolsReading) {
  manual_seed(7);
  nn::Linear layer(3, 2);
  nn::StateDict optimizer;
  optimizer.insert("0.momentum", randn({2, 3}));
  optimizer.insert("0.step", from_vector(std::vector<std::int64_t>{12}, {1}, DType::i64));
  optimizer.insert("lr", from_vector(std::vector<double>{0.125}, {1}, DType::f64));
  const io::CheckpointStore store(tmp_ / "ckpt");
  const fs::path dir = store.begin(12);
  io::write_state_groups(dir / "state.h5", {{"model", layer.state_dict()}, {"optimizer", optimizer}});
  io::TrainerState trainer;
  trainer.step = 12;
  trainer.rng["default"] = {7, 3};
  io::write_trainer_state(dir / "trainer.h5", trainer);
  const io::CommitResult committed = store.commit(12);
  ASSERT_TRUE(io::CheckpointStore::verify(committed.committed.path));

  const io::StateGroups groups = io::read_state_groups(committed.committed.path / "state.h5");
  const H5pyView view = h5py_view(script_, committed.committed.path / "state.h5");
  std::size_t tensors = 0;
  for (const auto& [group, state] : groups) {
    for (const auto& [name, tensor] : state) {
      expect_same(view, h5_path(group, name), tensor);
      ++tensors;
    }
  }
  EXPECT_EQ(tensors, 5u);
  EXPECT_EQ(view.arrays.size(), tensors);

  const io::TrainerState read = io::read_trainer_state(committed.committed.path / "trainer.h5");
  const H5pyView rng = h5py_view(script_, committed.committed.path / "trainer.h5");
  expect_same(
      rng, "/trainer/rng/default",
      from_vector(std::vector<std::int64_t>(read.rng.at("default").begin(), read.rng.at("default").end()),
                  {2}, DType::i64));
}

}  // namespace
}  // namespace lockstep
