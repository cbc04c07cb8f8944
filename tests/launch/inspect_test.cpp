// Tests of `lockstep inspect`: a small data set written by the converter's writer (its array checksums,
// `--verify`, and warnings saying what `lockstep train` would say), a model file from write_model_file,
// committed and damaged checkpoints from CheckpointStore, a directory of them, and the errors for paths that
// are none of these.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "io/checkpoint/checkpoint_state.h"
#include "io/checkpoint/checkpoint_store.h"
#include "io/data/convert.h"
#include "io/data/dataset.h"
#include "io/h5/h5.h"
#include "io/model/model_file.h"
#include "launch/cli/commands.h"
#include "launch/cli/dispatch.h"
#include "launch/config/config.h"
#include "launch/train/run.h"
#include "src/core/rng.h"
#include "src/nn/container.h"
#include "src/nn/linear.h"
#include "src/nn/norm.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"
#include "tests/support/temp_dir.h"

namespace lockstep::launch {
namespace {

namespace fs = std::filesystem;

struct Output {
  int code = 0;
  std::string out;
};

// Runs `lockstep inspect args...` and captures what it prints.
Output inspect(const std::vector<std::string>& args) {
  std::ostringstream captured;
  std::streambuf* saved = std::cout.rdbuf(captured.rdbuf());
  Output result;
  try {
    result.code = run_inspect(args);
  } catch (...) {
    std::cout.rdbuf(saved);
    throw;
  }
  std::cout.rdbuf(saved);
  result.out = captured.str();
  return result;
}

bool contains(const std::string& text, const std::string& fragment) {
  return text.find(fragment) != std::string::npos;
}

#define EXPECT_CONTAINS(text, fragment) EXPECT_TRUE(contains(text, fragment)) << (text)
#define EXPECT_LACKS(text, fragment) EXPECT_FALSE(contains(text, fragment)) << (text)

// The first line of `text` whose first word is `first`, with runs of spaces squeezed to one ("" if none):
// column alignment aside, what a table row says.
std::string row(const std::string& text, const std::string& first) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string word, squeezed;
    words >> word;
    if (word != first) continue;
    squeezed = word;
    while (words >> word) squeezed += " " + word;
    return squeezed;
  }
  return "";
}

class Inspect : public test::TempDirTest {};

// N images of 1x2x2 pixels, each half 0 and half 255 (mean and std of pixel / 255 both 0.5).
io::ImageSet half_bright_images(std::vector<std::int64_t> labels) {
  const auto n = static_cast<std::int64_t>(labels.size());
  std::vector<std::uint8_t> pixels;
  for (std::int64_t i = 0; i < n; ++i) pixels.insert(pixels.end(), {0, 255, 255, 0});
  io::ImageSet set;
  set.images = from_vector(pixels, {n, 1, 2, 2});
  set.labels = from_vector(labels, {n});
  return set;
}

TEST_F(Inspect, DataSetShowsSplitsShapesClassesStatisticsAndSources) {
  const fs::path file = this->file("tiny.h5");
  io::ImageSet train = half_bright_images({0, 1, 2, 0, 1, 0});
  train.source_files = {"/data/tiny/train-images.idx", "/data/tiny/train-labels.idx"};
  train.source_xxh64 = {"0123456789abcdef", "fedcba9876543210"};
  const std::vector<std::string> classes = {"cat", "dog", "eel"};
  io::write_image_set(file, "train", train, classes, io::h5::Access::kTruncate, "tiny test set");
  io::write_image_set(file, "test", half_bright_images({2, 2}), classes, io::h5::Access::kReadWrite);

  const Output r = inspect({file.string()});
  EXPECT_EQ(r.code, 0);
  EXPECT_CONTAINS(r.out, "data set " + file.string() + " (Lockstep data-set format 1)");
  EXPECT_CONTAINS(r.out, "source: tiny test set");
  EXPECT_CONTAINS(r.out, "classes (3): cat, dog, eel");
  EXPECT_CONTAINS(r.out, "split 'train': 6 images");
  EXPECT_CONTAINS(r.out, "images u8 [6, 1, 2, 2], labels i64 [6]");
  EXPECT_CONTAINS(r.out, "split 'test': 2 images");
  EXPECT_CONTAINS(r.out, "mean [0.5000], std [0.5000]");
  EXPECT_CONTAINS(r.out, "images per class: cat 3, dog 2, eel 1");
  EXPECT_CONTAINS(r.out, "images per class: eel 2");
  EXPECT_CONTAINS(r.out, "/data/tiny/train-labels.idx  xxh64 fedcba9876543210");
}

TEST_F(Inspect, ModelFileShowsKindConfigTensorsAndParameterCounts) {
  manual_seed(3);
  nn::Sequential model;
  model.push_back(std::make_shared<nn::Linear>(4, 3));
  model.push_back(std::make_shared<nn::BatchNorm1d>(3));
  const launch::Config cfg = launch::Config::parse(
      "task = \"classifier\"\n[run]\nseed = 11\nepochs = 2\n[model]\nname = \"mlp\"\n", "run.toml");
  const fs::path file = this->file("model.h5");
  io::write_model_file(file, "classifier", cfg.to_string(), {{"model", &model}});

  const Output r = inspect({file.string(), "--config-lines", "2"});
  EXPECT_EQ(r.code, 0);
  EXPECT_CONTAINS(r.out, "model file " + file.string() + ": kind classifier, format_version 1");
  // Linear(4, 3): 12 + 3; BatchNorm1d(3): weight and bias 3 + 3; buffers: running mean and var 3 + 3,
  // count 1.
  EXPECT_CONTAINS(r.out, "group 'model': 7 tensors: 21 parameters + 7 buffer values (batch-norm statistics)");
  EXPECT_EQ(row(r.out, "0.weight"), "0.weight f32 [3, 4]") << r.out;
  EXPECT_EQ(row(r.out, "0.bias"), "0.bias f32 [3]") << r.out;
  EXPECT_EQ(row(r.out, "1.num_batches_tracked"), "1.num_batches_tracked i64 []") << r.out;
  EXPECT_EQ(row(r.out, "1.running_var"), "1.running_var f32 [3]") << r.out;
  // The first two lines of the stored config, then how many were left out.
  const std::string config = cfg.to_string();
  const std::string first_line = config.substr(0, config.find('\n'));
  EXPECT_CONTAINS(r.out, "| " + first_line + "\n");
  EXPECT_CONTAINS(r.out, "more lines)");
}

// A checkpoint of `step` in `store`: state.h5 (model and optimizer groups) and trainer.h5.
fs::path save_checkpoint(const io::CheckpointStore& store, std::int64_t step) {
  const fs::path dir = store.begin(step);
  nn::StateDict model, optimizer;
  model.insert("fc.weight", from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3}));
  model.insert("fc.bias", from_vector(std::vector<float>{0, 0}, {2}));
  optimizer.insert("state.fc.weight.exp_avg", from_vector(std::vector<float>(6, 0.5f), {2, 3}));
  optimizer.insert("step", from_vector(std::vector<std::int64_t>{step}, {1}));
  io::write_state_groups(dir / "state.h5", {{"model", model}, {"optimizer", optimizer}});
  io::TrainerState trainer;
  trainer.step = step;
  trainer.epoch = 2;
  trainer.epoch_step = 5;
  trainer.samples_seen = 12800;
  trainer.global_batch = 64;
  trainer.seed = 7;
  trainer.world_size = 2;
  trainer.config = "[run]\nseed = 7\n";
  trainer.library_version = "0.1.0";
  trainer.rng["default"] = {7, 1234};
  trainer.rng["rank1.sampler"] = {8, 99, 3};
  trainer.values["best_accuracy"] = 0.5;
  io::write_trainer_state(dir / "trainer.h5", trainer);
  return store.commit(step).committed.path;
}

TEST_F(Inspect, CheckpointShowsVerificationFilesTrainerStateAndStateGroups) {
  const io::CheckpointStore store(file("ckpt"));
  const fs::path checkpoint = save_checkpoint(store, 1200);

  const Output r = inspect({checkpoint.string() + "/"});  // a trailing slash names the same directory
  EXPECT_EQ(r.code, 0);
  EXPECT_CONTAINS(r.out, "checkpoint " + checkpoint.string() + " (step 1200)");
  EXPECT_CONTAINS(r.out, "manifest: verified");
  EXPECT_CONTAINS(r.out, "files (3, ");
  EXPECT_CONTAINS(r.out, "manifest.json");
  EXPECT_CONTAINS(r.out, "trainer.h5");
  EXPECT_CONTAINS(
      r.out,
      "trainer state: step 1200, epoch 3 (5 of its steps done), samples seen 12,800, global batch 64, seed 7, "
      "world size 2, library 0.1.0");
  EXPECT_CONTAINS(r.out, "values: best_accuracy = 0.5");
  EXPECT_CONTAINS(r.out, "rng streams: default (2 words), rank1.sampler (3 words)");
  EXPECT_CONTAINS(r.out, "| seed = 7");
  EXPECT_CONTAINS(r.out, "group 'model': 2 tensors, 8 values");
  EXPECT_EQ(row(r.out, "fc.weight"), "fc.weight f32 [2, 3]") << r.out;
  EXPECT_CONTAINS(r.out, "group 'optimizer': 2 tensors, 7 values");
  EXPECT_EQ(row(r.out, "state.fc.weight.exp_avg"), "state.fc.weight.exp_avg f32 [2, 3]") << r.out;
  EXPECT_EQ(row(r.out, "step"), "step i64 [1]") << r.out;
}

TEST_F(Inspect, DamagedCheckpointReportsTheFailureAndExitsNonZero) {
  const io::CheckpointStore store(file("ckpt"));
  const fs::path good = save_checkpoint(store, 100);
  const fs::path damaged = save_checkpoint(store, 200);
  {  // One byte of the model's values changes; the size stays.
    std::fstream state(damaged / "state.h5", std::ios::in | std::ios::out | std::ios::binary);
    state.seekg(0, std::ios::end);
    const std::streamoff size = state.tellg();
    state.seekg(size / 2);
    char byte = 0;
    state.read(&byte, 1);
    state.seekp(size / 2);
    byte = static_cast<char>(byte ^ 0x5a);
    state.write(&byte, 1);
  }
  std::string why;
  ASSERT_FALSE(io::CheckpointStore::verify(damaged, &why));

  const Output one = inspect({damaged.string()});
  EXPECT_EQ(one.code, 1);
  EXPECT_CONTAINS(one.out, "manifest: FAILED: " + why);
  EXPECT_CONTAINS(one.out, "state.h5");

  // The root lists both, says which fails, and which one `--resume auto` would take.
  store.begin(300);  // a save that never finished
  const Output all = inspect({store.root().string()});
  EXPECT_EQ(all.code, 1);
  EXPECT_CONTAINS(all.out, "checkpoint root " + store.root().string() + ": 2 checkpoints");
  EXPECT_CONTAINS(row(all.out, "step_000000100"), "step_000000100 step 100 ok 3 files, ");
  EXPECT_CONTAINS(row(all.out, "step_000000200"), "step_000000200 step 200 FAILED 3 files");
  EXPECT_CONTAINS(row(all.out, "step_000000200"), why);
  EXPECT_CONTAINS(all.out, "newest valid: step_000000100 (step 100)");
  EXPECT_CONTAINS(all.out,
                  "left by interrupted saves (removed when the next run starts): step_000000300.tmp");
  EXPECT_EQ(good.filename().string(), "step_000000100");
}

TEST_F(Inspect, RootOfValidCheckpointsExitsZero) {
  const io::CheckpointStore store(file("ckpt"), {.keep_last = 5});
  save_checkpoint(store, 10);
  save_checkpoint(store, 20);
  const Output r = inspect({store.root().string()});
  EXPECT_EQ(r.code, 0);
  EXPECT_CONTAINS(r.out, ": 2 checkpoints");
  EXPECT_CONTAINS(r.out, "newest valid: step_000000020 (step 20)");
}

TEST_F(Inspect, AFileThatIsNotHdf5IsAnErrorNamingIt) {
  const fs::path notes = file("notes.txt");
  std::ofstream(notes) << "not a model\n";
  const auto error = test::expect_thrown<IoError>(
      [&] { inspect({notes.string()}); }, {"inspect: expected", notes.string(), "is not an HDF5 file"});
  if (error) {
    EXPECT_EQ(error->file(), notes.string());
  }

  // Through the command line: the message on the error stream and a non-zero exit code.
  constexpr Command kCommands[] = {{"inspect", "inspect", run_inspect}};
  std::ostringstream out, err;
  EXPECT_EQ(run_cli(kCommands, {"inspect", notes.string()}, out, err), 1);
  EXPECT_CONTAINS(err.str(), "lockstep: error: inspect: expected");
  EXPECT_CONTAINS(err.str(), notes.string());
}

TEST_F(Inspect, MissingPathsAndUnrelatedDirectoriesAreErrors) {
  const fs::path missing = file("nowhere.h5");
  test::expect_error<IoError>([&] { inspect({missing.string()}); }, {missing.string(), "does not exist"});

  const fs::path run = file("run");
  fs::create_directories(run / "logs");
  std::ofstream(run / "metrics.jsonl") << "{}\n";
  test::expect_error<IoError>([&] { inspect({run.string()}); },
                              {run.string(), "without a manifest.json", "logs/, metrics.jsonl"});

  // An HDF5 file of another program: named, with what its root holds.
  const fs::path other = file("other.h5");
  {
    io::h5::File out(other, io::h5::Access::kTruncate);
    out.root().write_tensor("values", from_vector(std::vector<float>{1, 2}, {2}));
  }
  test::expect_error<IoError>([&] { inspect({other.string()}); },
                              {other.string(), "Lockstep did not write", "values"});
}

// ---- data sets: array checksums, --verify, and what `lockstep train` would say ----

std::vector<std::uint8_t> pixel_values() {
  std::vector<std::uint8_t> v(4 * 1 * 3 * 5);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::uint8_t>(i * 29 + 3);
  return v;
}

void write_converted(const fs::path& path) {
  io::ImageSet set;
  set.images = from_vector(pixel_values(), {4, 1, 3, 5}, DType::u8);
  set.labels = from_vector(std::vector<std::int64_t>{0, 1, 2, 1}, {4}, DType::i64);
  io::write_image_set(path, "train", set, {"a", "b", "c"}, io::h5::Access::kTruncate, "test");
}

// The layout of an older conversion (no checksums), with the given images and labels.
void write_older(const fs::path& path, const Tensor& images, const std::vector<std::int64_t>& labels) {
  const io::h5::File file(path, io::h5::Access::kTruncate);
  const io::h5::Group root = file.root();
  root.set_attribute("format_version", std::int64_t{1});
  root.set_attribute("class_names", std::vector<std::string>{"a", "b", "c"});
  const io::h5::Group train = root.create_group("train");
  train.write_tensor("images", images);
  train.write_tensor("labels", from_vector(labels, {static_cast<std::int64_t>(labels.size())}, DType::i64));
}

TEST(InspectVerify, ConvertedFileSaysChecksumsAreStoredAndVerifies) {
  const test::TempDir tmp;
  write_converted(tmp / "d.h5");
  const Output plain = inspect({(tmp / "d.h5").string()});
  EXPECT_EQ(plain.code, 0);
  EXPECT_CONTAINS(plain.out, "array checksums: xxh64 stored");
  EXPECT_LACKS(plain.out, "warning");
  const Output verified = inspect({"--verify", (tmp / "d.h5").string()});
  EXPECT_EQ(verified.code, 0) << verified.out;
  const std::vector<std::uint8_t> pixels = pixel_values();
  EXPECT_CONTAINS(verified.out, "/train/images xxh64 " + io::bytes_xxh64(pixels) + ": verified");
  EXPECT_CONTAINS(verified.out, ": verified\n");
  EXPECT_LACKS(verified.out, "FAILED");
}

TEST(InspectVerify, FlippedImageByteFailsVerificationNamingBothChecksums) {
  const test::TempDir tmp;
  write_converted(tmp / "d.h5");
  std::vector<char> bytes;
  {
    std::ifstream in(tmp / "d.h5", std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::vector<std::uint8_t> pixels = pixel_values();
  const auto found = std::search(bytes.begin(), bytes.end(), pixels.begin(), pixels.end(),
                                 [](char a, std::uint8_t b) { return static_cast<std::uint8_t>(a) == b; });
  ASSERT_NE(found, bytes.end());
  *(found + 7) ^= 0x01;
  std::ofstream(tmp / "d.h5", std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  const std::string expected = io::bytes_xxh64(pixels);
  pixels[7] ^= 0x01;
  const std::string actual = io::bytes_xxh64(pixels);

  const Output verified = inspect({"--verify", (tmp / "d.h5").string()});
  EXPECT_EQ(verified.code, 1) << verified.out;
  EXPECT_CONTAINS(verified.out, "FAILED");
  EXPECT_CONTAINS(verified.out, (tmp / "d.h5").string());
  EXPECT_CONTAINS(verified.out, "/train/images");
  EXPECT_CONTAINS(verified.out, "hash to xxh64 " + expected);
  EXPECT_CONTAINS(verified.out, "bytes hash to " + actual);
  EXPECT_CONTAINS(verified.out, "/train/labels xxh64 ");
  // Without --verify nothing reads the images: the damage is not seen (and not claimed absent).
  EXPECT_EQ(inspect({(tmp / "d.h5").string()}).code, 0);
}

TEST(InspectVerify, OlderFileWithoutChecksumsSaysSo) {
  const test::TempDir tmp;
  write_older(tmp / "old.h5", from_vector(pixel_values(), {4, 1, 3, 5}, DType::u8), {0, 1, 2, 1});
  const Output plain = inspect({(tmp / "old.h5").string()});
  EXPECT_EQ(plain.code, 0);
  EXPECT_CONTAINS(plain.out, "array checksums: none stored (converted by an older `lockstep convert`)");
  const Output verified = inspect({"--verify", (tmp / "old.h5").string()});
  EXPECT_EQ(verified.code, 0);
  EXPECT_CONTAINS(verified.out, "none stored (converted by an older `lockstep convert`), not verified");
  EXPECT_LACKS(verified.out, "warning");
}

TEST(InspectVerify, WarnsWhatTrainWouldSayAboutLabelsAndImageDtype) {
  const test::TempDir tmp;
  const Tensor pixels = from_vector(pixel_values(), {4, 1, 3, 5}, DType::u8);
  write_older(tmp / "labels.h5", pixels, {0, 1, 7, 1});
  const Output labels = inspect({(tmp / "labels.h5").string()});
  EXPECT_EQ(labels.code, 0);
  EXPECT_CONTAINS(labels.out, "warning: `lockstep train` would stop on this split: ");
  EXPECT_CONTAINS(labels.out, "expected labels in [0, 3)");
  EXPECT_CONTAINS(labels.out, "/train/labels[2] is 7");

  write_older(tmp / "f32.h5", pixels.to(DType::f32), {0, 1, 2, 1});
  const Output f32 = inspect({(tmp / "f32.h5").string()});
  EXPECT_CONTAINS(f32.out, "warning: `lockstep train` would stop on this split: ");
  EXPECT_CONTAINS(f32.out, "/train/images in " + (tmp / "f32.h5").string() + " to be u8 [N,C,H,W]");
  EXPECT_CONTAINS(f32.out, "its dtype is f32");
}

}  // namespace
}  // namespace lockstep::launch
