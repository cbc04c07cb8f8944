// Tests of the checkpoint storage layer: commits (only step_N/ with a manifest appears, nothing temporary
// remains), crashes before commit, stale-temporary cleanup, verification of damaged checkpoints and the
// fallback of latest_valid, keep-last plus keep-every pruning, the manifest format, and bit-exact round
// trips of state-dict groups and trainer state.
#include <gtest/gtest.h>
#include <xxhash.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "io/checkpoint/checkpoint_state.h"
#include "io/checkpoint/checkpoint_store.h"
#include "io/checkpoint/manifest.h"
#include "io/h5/h5.h"
#include "src/core/error.h"
#include "src/nn/linear.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"
#include "tests/support/temp_dir.h"

namespace lockstep {
namespace {

namespace fs = std::filesystem;
using io::CheckpointInfo;
using io::CheckpointPolicy;
using io::CheckpointStore;

class CheckpointTest : public test::TempDirTest {
 protected:
  fs::path root() const { return file("checkpoints"); }
};

void write_bytes(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The XXH64 (seed 0) of `bytes` as 16 hex digits, straight from libxxhash.
std::string xxh64_hex(const std::string& bytes) {
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx",
                static_cast<unsigned long long>(XXH64(bytes.data(), bytes.size(), 0)));
  return hex;
}

// Names of the entries directly under `dir`, sorted.
std::set<std::string> entries(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

std::vector<std::int64_t> steps_of(const std::vector<CheckpointInfo>& infos) {
  std::vector<std::int64_t> out;
  for (const auto& info : infos) out.push_back(info.step);
  return out;
}

// The files a trainer would write for `step`: a small HDF5 state file, an opaque blob that depends on the
// step, a nested per-rank file and an empty one.
void fill(const fs::path& dir, std::int64_t step) {
  nn::StateDict model;
  model.insert("fc.weight", from_vector(std::vector<float>{1.5f, -2.0f, static_cast<float>(step)}, {3}));
  io::write_state_groups(dir / "model.h5", {{"model", model}});
  write_bytes(dir / "blob.bin", "step " + std::to_string(step) + std::string(100, 'x'));
  write_bytes(dir / "rank_1" / "rng.bin", "rank one " + std::to_string(step));
  write_bytes(dir / "empty.bin", "");
}

CheckpointInfo save(const CheckpointStore& store, std::int64_t step) {
  fill(store.begin(step), step);
  return store.commit(step).committed;
}

TEST_F(CheckpointTest, CommitCreatesOnlyTheStepDirectoryWithAManifestOfEveryFile) {
  const CheckpointStore store(root());
  const fs::path temporary = store.begin(1200);
  EXPECT_EQ(temporary, root() / "step_000001200.tmp");
  fill(temporary, 1200);
  const std::string blob = read_bytes(temporary / "blob.bin");
  const std::string model = read_bytes(temporary / "model.h5");
  const std::string rng = read_bytes(temporary / "rank_1" / "rng.bin");

  const io::CommitResult result = store.commit(1200);
  EXPECT_EQ(result.committed.step, 1200);
  EXPECT_EQ(result.committed.path, root() / "step_000001200");
  EXPECT_TRUE(result.pruned.empty());
  EXPECT_EQ(entries(root()), (std::set<std::string>{"step_000001200"}));
  EXPECT_EQ(entries(result.committed.path),
            (std::set<std::string>{"blob.bin", "empty.bin", "manifest.json", "model.h5", "rank_1"}));

  const io::Manifest manifest = io::read_manifest(result.committed.path / "manifest.json");
  EXPECT_EQ(manifest.format_version, 1);
  EXPECT_EQ(manifest.step, 1200);
  const std::vector<io::ManifestEntry> expected = {
      {"blob.bin", blob.size(), xxh64_hex(blob)},
      {"empty.bin", 0, "ef46db3751d8e999"},  // the published XXH64 of no input
      {"model.h5", model.size(), xxh64_hex(model)},
      {"rank_1/rng.bin", rng.size(), xxh64_hex(rng)},
  };
  EXPECT_EQ(manifest.files, expected);

  std::string why = "unset";
  EXPECT_TRUE(CheckpointStore::verify(result.committed.path, &why));
  EXPECT_EQ(why, "");
  EXPECT_EQ(store.list(), (std::vector<CheckpointInfo>{{1200, root() / "step_000001200"}}));
  std::vector<std::string> warnings;
  EXPECT_EQ(store.latest_valid(&warnings), (CheckpointInfo{1200, root() / "step_000001200"}));
  EXPECT_TRUE(warnings.empty());
}

TEST_F(CheckpointTest, DirectoryNamesHaveNineDigitsAndListingSortsByStep) {
  EXPECT_EQ(CheckpointStore::directory_name(0), "step_000000000");
  EXPECT_EQ(CheckpointStore::directory_name(1200), "step_000001200");
  EXPECT_EQ(CheckpointStore::directory_name(12345678901), "step_12345678901");
  test::expect_error<ValueError>([] { CheckpointStore::directory_name(-1); }, {"step >= 0", "-1"});

  const CheckpointStore store(root(), CheckpointPolicy{10, 0});
  for (const std::int64_t step : {12345678901LL, 7LL, 1000000000LL, 999999999LL}) save(store, step);
  // Not checkpoints: a non-canonical name, a file with a checkpoint name, a stranger.
  fs::create_directories(root() / "step_12");
  write_bytes(root() / "step_000000008", "a file");
  fs::create_directories(root() / "other");
  EXPECT_EQ(steps_of(store.list()), (std::vector<std::int64_t>{7, 999999999, 1000000000, 12345678901}));
}

TEST_F(CheckpointTest, ACrashBeforeCommitIsNeverListedAndCleanupRemovesOnlyTemporaries) {
  const CheckpointStore store(root());
  save(store, 100);
  fill(store.begin(200), 200);                                           // killed before commit
  fs::create_directories(root() / "step_000000300.tmp.replaced" / "x");  // killed while replacing
  write_bytes(root() / "notes.txt", "keep me");

  EXPECT_EQ(steps_of(store.list()), (std::vector<std::int64_t>{100}));
  std::vector<std::string> warnings;
  EXPECT_EQ(store.latest_valid(&warnings), (CheckpointInfo{100, root() / "step_000000100"}));
  EXPECT_TRUE(warnings.empty());

  const std::vector<fs::path> removed = store.cleanup_stale();
  EXPECT_EQ(removed,
            (std::vector<fs::path>{root() / "step_000000200.tmp", root() / "step_000000300.tmp.replaced"}));
  EXPECT_EQ(entries(root()), (std::set<std::string>{"notes.txt", "step_000000100"}));
  EXPECT_TRUE(CheckpointStore::verify(root() / "step_000000100"));
  EXPECT_TRUE(store.cleanup_stale().empty());
}

TEST_F(CheckpointTest, BeginStartsFromAnEmptyDirectoryAndDiscardRemovesIt) {
  const CheckpointStore store(root());
  write_bytes(store.begin(5) / "junk.bin", "from a killed run");
  const fs::path temporary = store.begin(5);
  EXPECT_TRUE(fs::is_empty(temporary));
  store.discard(5);
  EXPECT_FALSE(fs::exists(temporary));
  store.discard(5);  // nothing left: no error

  write_bytes(store.begin(5) / "a.bin", "a");
  store.commit(5);
  const io::Manifest manifest = io::read_manifest(root() / "step_000000005" / "manifest.json");
  ASSERT_EQ(manifest.files.size(), 1u);
  EXPECT_EQ(manifest.files[0].name, "a.bin");
}

TEST_F(CheckpointTest, CommittingAStepAgainReplacesItWhole) {
  const CheckpointStore store(root());
  write_bytes(store.begin(40) / "old_only.bin", "old");
  store.commit(40);
  write_bytes(store.begin(40) / "new.bin", "new");
  store.commit(40);
  EXPECT_EQ(entries(root()), (std::set<std::string>{"step_000000040"}));
  EXPECT_EQ(entries(root() / "step_000000040"), (std::set<std::string>{"manifest.json", "new.bin"}));
  EXPECT_TRUE(CheckpointStore::verify(root() / "step_000000040"));
}

// One kind of damage to the newest checkpoint and what verify must say about it.
struct Damage {
  std::string name;
  std::function<void(const fs::path&)> apply;  // given the checkpoint directory
  std::vector<std::string> reason;             // parts the reason must contain
};

// Failure messages name the damage rather than dumping its bytes.
void PrintTo(const Damage& damage, std::ostream* os) { *os << damage.name; }

class CheckpointDamageTest : public CheckpointTest, public ::testing::WithParamInterface<Damage> {};

TEST_P(CheckpointDamageTest, VerifyNamesTheProblemAndLatestValidFallsBackWithAWarning) {
  const CheckpointStore store(root());
  save(store, 100);
  const fs::path newest = save(store, 200).path;
  ASSERT_TRUE(CheckpointStore::verify(newest));

  GetParam().apply(newest);
  std::string why;
  EXPECT_FALSE(CheckpointStore::verify(newest, &why));
  for (const std::string& part : GetParam().reason) EXPECT_NE(why.find(part), std::string::npos) << why;
  EXPECT_TRUE(CheckpointStore::verify(root() / "step_000000100"));

  std::vector<std::string> warnings;
  const std::optional<CheckpointInfo> chosen = store.latest_valid(&warnings);
  ASSERT_TRUE(chosen.has_value());
  EXPECT_EQ(chosen->step, 100);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find(newest.string()), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find(why), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("falling back"), std::string::npos) << warnings[0];
}

void flip_byte(const fs::path& file) {
  std::string bytes = read_bytes(file);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x01);
  write_bytes(file, bytes);
}

INSTANTIATE_TEST_SUITE_P(
    CheckpointDamage, CheckpointDamageTest,
    ::testing::Values(
        Damage{"CorruptByte",
               [](const fs::path& d) { flip_byte(d / "model.h5"); },
               {"file 'model.h5' has XXH64", "but the manifest says"}},
        Damage{"Truncated",
               [](const fs::path& d) { fs::resize_file(d / "blob.bin", fs::file_size(d / "blob.bin") - 1); },
               {"file 'blob.bin' has 107 bytes, but the manifest says 108"}},
        Damage{"DeletedFile",
               [](const fs::path& d) { fs::remove(d / "rank_1" / "rng.bin"); },
               {"file 'rank_1/rng.bin' is in the manifest but missing"}},
        Damage{"ExtraFile",
               [](const fs::path& d) { write_bytes(d / "extra.bin", "?"); },
               {"file 'extra.bin' is not in the manifest"}},
        Damage{"NoManifest",
               [](const fs::path& d) { fs::remove(d / "manifest.json"); },
               {"manifest.json", "incomplete"}},
        Damage{"GarbledManifest",
               [](const fs::path& d) { write_bytes(d / "manifest.json", "{\"format_version\": 1,"); },
               {"manifest.json", "damaged"}},
        Damage{"EmptyManifest",
               [](const fs::path& d) { write_bytes(d / "manifest.json", ""); },
               {"manifest.json", "end of the file"}},
        Damage{"ManifestOfAnotherStep",
               [](const fs::path& d) {
                 std::string text = read_bytes(d / "manifest.json");
                 text.replace(text.find("\"step\": 200"), 11, "\"step\": 201");
                 write_bytes(d / "manifest.json", text);
               },
               {"the manifest is for step 201, but the directory is named step_000000200"}}),
    [](const ::testing::TestParamInfo<Damage>& info) { return info.param.name; });

TEST_F(CheckpointTest, NoCheckpointGivesNulloptAndOnlyDamagedOnesWarn) {
  const CheckpointStore store(root());
  std::vector<std::string> warnings;
  EXPECT_FALSE(store.latest_valid(&warnings).has_value());  // root does not even exist
  EXPECT_TRUE(warnings.empty());
  EXPECT_TRUE(store.list().empty());
  EXPECT_TRUE(store.cleanup_stale().empty());

  fill(store.begin(3), 3);  // a temporary is not a checkpoint
  EXPECT_FALSE(store.latest_valid(&warnings).has_value());
  EXPECT_TRUE(warnings.empty());

  const fs::path only = save(store, 4).path;
  fs::remove(only / "blob.bin");
  EXPECT_FALSE(store.latest_valid(&warnings).has_value());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("no older checkpoint"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find(only.string()), std::string::npos) << warnings[0];
}

TEST_F(CheckpointTest, PruningKeepsTheLastTwoAndEveryThousandthOnlyAfterCommit) {
  const CheckpointStore store(root(), CheckpointPolicy{2, 1000});
  const auto at = [this](std::int64_t step) { return root() / CheckpointStore::directory_name(step); };
  struct Expect {
    std::int64_t step;
    std::vector<std::int64_t> kept;
    std::vector<std::int64_t> pruned;
  };
  // By hand: the two newest survive, and so does every multiple of 1000.
  const std::vector<Expect> plan = {
      {500, {500}, {}},
      {1000, {500, 1000}, {}},
      {1500, {1000, 1500}, {500}},
      {2000, {1000, 1500, 2000}, {}},
      {2500, {1000, 2000, 2500}, {1500}},
      {2700, {1000, 2000, 2500, 2700}, {}},
      {3000, {1000, 2000, 2700, 3000}, {2500}},
  };
  std::vector<std::int64_t> before = {};
  for (const Expect& e : plan) {
    fill(store.begin(e.step), e.step);
    EXPECT_EQ(steps_of(store.list()), before) << "nothing is pruned before commit(" << e.step << ")";
    const io::CommitResult result = store.commit(e.step);
    std::vector<fs::path> pruned;
    for (const std::int64_t s : e.pruned) pruned.push_back(at(s));
    EXPECT_EQ(result.pruned, pruned) << "commit(" << e.step << ")";
    EXPECT_EQ(steps_of(store.list()), e.kept) << "after commit(" << e.step << ")";
    for (const std::int64_t s : e.pruned) EXPECT_FALSE(fs::exists(at(s)));
    before = e.kept;
  }
  for (const std::int64_t s : before) EXPECT_TRUE(CheckpointStore::verify(at(s)));
}

TEST_F(CheckpointTest, PruningNeverRemovesTheNewCheckpointEvenBelowNewerSteps) {
  // After falling back to step 100, a re-run commits 150 below the abandoned 200 and 300.
  const CheckpointStore store(root(), CheckpointPolicy{1, 0});
  save(store, 200);
  save(store, 300);
  EXPECT_EQ(steps_of(store.list()), (std::vector<std::int64_t>{300}));
  fill(store.begin(150), 150);
  const io::CommitResult result = store.commit(150);
  EXPECT_EQ(result.committed.step, 150);
  EXPECT_EQ(steps_of(store.list()), (std::vector<std::int64_t>{150, 300}));
}

TEST_F(CheckpointTest, BadPoliciesAndStepsAreValueErrors) {
  test::expect_error<ValueError>(
      [this] {
        static_cast<void>(CheckpointStore(root(), CheckpointPolicy{0, 0}));
      },
      {"keep_last >= 1", "0"});
  test::expect_error<ValueError>(
      [this] {
        static_cast<void>(CheckpointStore(root(), CheckpointPolicy{3, -5}));
      },
      {"keep_every >= 0", "-5"});
  const CheckpointStore store(root());
  test::expect_error<ValueError>([&] { store.begin(-2); }, {"CheckpointStore::begin", "step >= 0", "-2"});
  test::expect_error<ValueError>([&] { store.commit(-2); }, {"CheckpointStore::commit", "-2"});
}

TEST_F(CheckpointTest, CommitErrorsNameThePath) {
  const CheckpointStore store(root());
  const fs::path missing = root() / "step_000000007.tmp";
  const auto e = test::expect_thrown<IoError>([&] { store.commit(7); }, {missing.string(), "begin(7)"});
  if (e) {
    EXPECT_EQ(e->file(), missing.string());
  }

  write_bytes(store.begin(8) / "manifest.json", "{}");
  const fs::path reserved = root() / "step_000000008.tmp" / "manifest.json";
  const auto r = test::expect_thrown<IoError>([&] { store.commit(8); }, {"reserved", "manifest.json"});
  if (r) {
    EXPECT_EQ(r->file(), reserved.string());
  }

  const fs::path temporary = store.begin(9);
  write_bytes(temporary / "real.bin", "x");
  fs::create_symlink(temporary / "real.bin", temporary / "link.bin");
  test::expect_error<IoError>([&] { store.commit(9); }, {"link.bin", temporary.string()});
  EXPECT_TRUE(store.list().empty()) << "a failed commit leaves nothing visible";
}

TEST_F(CheckpointTest, ManifestRoundTripsAwkwardNamesAndRejectsMalformedOnes) {
  io::Manifest manifest;
  manifest.step = 42;
  manifest.files = {{"a \"quoted\" \\ name\twith\x01"
                     "control.bin",
                     18446744073709551615ull, "0123456789abcdef"},
                    {"dir/\xc3\xa9t\xc3\xa9.h5", 0, "ef46db3751d8e999"}};
  const fs::path path = file("manifest.json");
  io::write_manifest(path, manifest);
  EXPECT_EQ(io::read_manifest(path), manifest);
  test::expect_error<IoError>([&] { io::write_manifest(path, manifest); }, {path.string()});

  // Escapes another writer might use.
  write_bytes(path, R"({"files": [{"xxh64": "0000000000000000", "bytes": 1, "name": "\u00e9\/\ud83d\ude00"}],
                       "step": 3, "format_version": 1, "comment": [null, true, 1.5e3]})");
  const io::Manifest other = io::read_manifest(path);
  ASSERT_EQ(other.files.size(), 1u);
  EXPECT_EQ(other.files[0].name, "\xc3\xa9/\xf0\x9f\x98\x80");

  const auto rejects = [&](const std::string& text, const std::string& part) {
    write_bytes(path, text);
    test::expect_error<IoError>([&] { io::read_manifest(path); }, {path.string(), part});
  };
  const std::string head = R"({"format_version": 1, "step": 1, "files": [)";
  rejects(head + R"({"name": "../x", "bytes": 1, "xxh64": "0000000000000000"}]})", "relative path");
  rejects(head + R"({"name": "manifest.json", "bytes": 1, "xxh64": "0000000000000000"}]})", "relative path");
  rejects(head + R"({"name": "x", "bytes": 1, "xxh64": "0000000000000000"},
                    {"name": "x", "bytes": 1, "xxh64": "0000000000000000"}]})",
          "unique file names");
  rejects(head + R"({"name": "x", "bytes": 1, "xxh64": "ABC"}]})", "16 lowercase hex digits");
  rejects(head + R"({"name": "x", "bytes": -1, "xxh64": "0000000000000000"}]})", "integer in range");
  rejects(head + R"({"name": "x", "xxh64": "0000000000000000"}]})", "key \"bytes\"");
  rejects(R"({"format_version": 2, "step": 1, "files": []})", "format_version 1");
  rejects(R"({"format_version": 1, "step": 1, "files": []} trailing)", "end of the document");
  rejects(R"([1, 2])", "JSON object");
}

// A tensor's elements as raw bytes, for bit-exact comparison.
std::string raw(const Tensor& t) {
  const Tensor c = t.contiguous();
  const std::size_t bytes = static_cast<std::size_t>(c.numel()) * (c.dtype() == DType::f32 ? 4 : 8);
  if (bytes == 0) return {};
  return std::string(static_cast<const char*>(c.data()), bytes);
}

TEST_F(CheckpointTest, StateGroupsRoundTripBitExactlyWithDottedNamesAsPaths) {
  const float f_nan = std::bit_cast<float>(std::uint32_t{0x7fc01234});  // NaN with a payload
  const double d_nan = std::bit_cast<double>(std::uint64_t{0x7ff8000000abcdefull});
  nn::StateDict model;
  model.insert("layer1.0.conv1.weight",
               from_vector(std::vector<float>{-0.0f, std::numeric_limits<float>::denorm_min(), f_nan,
                                              -std::numeric_limits<float>::infinity(), 1.0f / 3.0f, 1e38f},
                           {2, 3}));
  model.insert(
      "layer1.0.bn1.running_var",
      from_vector(std::vector<double>{0.1, -0.0, d_nan, std::numeric_limits<double>::denorm_min()}, {4}));
  model.insert("layer1.0.bn1.num_batches_tracked",
               from_vector(std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::min()}, {}));
  model.insert("fc.bias", from_vector(std::vector<float>{}, {0, 3}));
  nn::StateDict optimizer;
  optimizer.insert("state.fc.weight.exp_avg",
                   from_vector(std::vector<double>{1e-300, 2.5, std::numeric_limits<double>::max()}, {3}));
  optimizer.insert("state.fc.weight.step",
                   from_vector(std::vector<std::int64_t>{std::numeric_limits<std::int64_t>::max(), -7}, {2}));
  const io::StateGroups groups = {{"model", model}, {"optimizer", optimizer}, {"schedule", nn::StateDict{}}};

  const fs::path path = file("state.h5");
  io::write_state_groups(path, groups);
  {
    const io::h5::File f(path, io::h5::Access::kRead);
    EXPECT_TRUE(f.root().contains("model/layer1/0/conv1/weight"));
    EXPECT_TRUE(f.root().contains("optimizer/state/fc/weight/exp_avg"));
    EXPECT_TRUE(f.root().is_group("schedule"));
  }
  const io::StateGroups back = io::read_state_groups(path);
  ASSERT_EQ(back.size(), groups.size());
  for (const auto& [group, state] : groups) {
    ASSERT_EQ(back.count(group), 1u) << group;
    const nn::StateDict& got = back.at(group);
    ASSERT_EQ(got.size(), state.size()) << group;
    for (const auto& [name, tensor] : state) {
      const Tensor* t = got.find(name);
      ASSERT_NE(t, nullptr) << group << "/" << name;
      EXPECT_EQ(t->dtype(), tensor.dtype()) << name;
      EXPECT_EQ(t->shape(), tensor.shape()) << name;
      EXPECT_EQ(raw(*t), raw(tensor)) << name << " is not bit-exact";
    }
  }

  test::expect_error<ValueError>([&] { io::write_state_groups(path, {{"a.b", model}}); }, {"\"a.b\""});
  test::expect_error<ValueError>([&] { io::write_state_groups(path, {{"", model}}); }, {"non-empty"});
}

TEST_F(CheckpointTest, LoadingAReadBackStateDictNamesEveryMismatch) {
  nn::StateDict saved;
  saved.insert("weight", from_vector(std::vector<double>(6, 0.5), {2, 3}));  // f64 where the module has f32
  saved.insert("extra", from_vector(std::vector<float>{1.0f}, {1}));
  const fs::path path = file("model.h5");
  io::write_state_groups(path, {{"model", saved}});
  nn::Linear linear(3, 2);
  test::expect_error<ValueError>([&] { linear.load_state_dict(io::read_state_groups(path).at("model")); },
                                 {"missing key 'bias'", "unexpected key 'extra'", "'weight' has dtype f64"});
}

TEST_F(CheckpointTest, TrainerStateRoundTripsExactly) {
  io::TrainerState state;
  state.step = 123456789012;
  state.epoch = 17;
  state.samples_seen = 7'900'000'000;
  state.global_batch = 512;
  state.seed = std::numeric_limits<std::uint64_t>::max() - 5;  // above 2^63
  state.world_size = 4;
  state.config =
      "[train]\nlr = 0.1\nname = \"r\xc3\xa9seau\"\n" + std::string(200'000, '#');  // beyond 64 KiB
  state.library_version = "0.1.0";
  state.rng = {
      {"default", {state.seed, 987654321}}, {"rank1.sampler", {1, 0x8000000000000000ull, 3}}, {"empty", {}}};
  const fs::path path = file("trainer.h5");
  io::write_trainer_state(path, state);
  EXPECT_EQ(io::read_trainer_state(path), state);

  const io::h5::File f(path, io::h5::Access::kRead);
  const io::h5::Group g = f.root().group("trainer");
  EXPECT_EQ(g.attribute_int("seed"), -6) << "the same 64 bits, read as int64";
  EXPECT_EQ(g.attribute_int("step"), 123456789012);
  EXPECT_EQ(g.attribute_string("library_version"), "0.1.0");
  EXPECT_EQ(g.read_tensor("rng/default").to_vector<std::int64_t>(),
            (std::vector<std::int64_t>{-6, 987654321}));
}

// epoch_step and the trainer's figures (attributes of /trainer/values, names with dots and spaces kept
// whole) round-trip with their exact bits; an empty set of figures reads back empty.
TEST_F(CheckpointTest, TrainerStateKeepsTheEpochStepAndEveryValueBitExactly) {
  io::TrainerState state;
  state.step = 1234;
  state.epoch = 2;
  state.epoch_step = 59;
  state.samples_seen = 1234 * 96;
  state.global_batch = 96;
  state.seed = 42;
  state.world_size = 3;
  state.config = "[run]\nseed = 42\n";
  state.library_version = "0.1.0";
  state.rng = {{"rank0.default", {42, 7}}, {"rank1.default", {9, 8}}, {"rank2.default", {10, 11}}};
  state.values = {{"epoch_sum0", 1234.5678901234567},
                  {"best_accuracy", 0.8125},
                  {"first.loss", 1.0 / 3.0},
                  {"loss of epoch 3", -0.0},
                  {"tiny", std::numeric_limits<double>::denorm_min()},
                  {"huge", std::numeric_limits<double>::max()},
                  {"unbounded", -std::numeric_limits<double>::infinity()}};
  const fs::path path = file("trainer.h5");
  io::write_trainer_state(path, state);
  const io::TrainerState back = io::read_trainer_state(path);
  EXPECT_EQ(back, state);
  EXPECT_EQ(back.epoch_step, 59);
  ASSERT_EQ(back.values.size(), state.values.size());
  for (const auto& [name, value] : state.values) {
    ASSERT_EQ(back.values.count(name), 1u) << name;
    EXPECT_EQ(std::bit_cast<std::uint64_t>(back.values.at(name)), std::bit_cast<std::uint64_t>(value))
        << name;
  }
  {  // The layout: an attribute per value, under the names given.
    const io::h5::File f(path, io::h5::Access::kRead);
    const io::h5::Group trainer = f.root().group("trainer");
    EXPECT_EQ(trainer.attribute_int("epoch_step"), 59);
    const io::h5::Group values = trainer.group("values");
    EXPECT_EQ(values.attribute_names(),
              (std::vector<std::string>{"best_accuracy", "epoch_sum0", "first.loss", "huge",
                                        "loss of epoch 3", "tiny", "unbounded"}));
    EXPECT_EQ(values.attribute_double("first.loss"), 1.0 / 3.0);
    EXPECT_TRUE(values.children().empty()) << "values are attributes, not datasets";
  }

  io::TrainerState plain;
  plain.step = 5;
  io::write_trainer_state(path, plain);
  const io::TrainerState plain_back = io::read_trainer_state(path);
  EXPECT_TRUE(plain_back.values.empty());
  EXPECT_EQ(plain_back, plain);
}

// attribute_names lists every attribute of a group, a dataset or the root, whatever its kind, in name order.
TEST_F(CheckpointTest, AttributeNamesAreEveryAttributeSorted) {
  const fs::path path = file("attributes.h5");
  const io::h5::File f(path, io::h5::Access::kTruncate);
  const io::h5::Group root = f.root();
  EXPECT_TRUE(root.attribute_names().empty());
  const io::h5::Group g = root.create_group("g");
  g.set_attribute("zeta", std::int64_t{1});
  g.set_attribute("alpha", 2.5);
  g.set_attribute("Mixed Case", "text");
  g.set_attribute("list.of.ints", std::vector<std::int64_t>{1, 2});
  g.set_attribute("beta", std::vector<std::string>{"a", "b"});
  g.set_attribute("_under", std::vector<double>{0.5});
  g.set_attribute("alpha", 3.5);  // replaced, not added twice
  EXPECT_EQ(g.attribute_names(),
            (std::vector<std::string>{"Mixed Case", "_under", "alpha", "beta", "list.of.ints", "zeta"}));
  const io::h5::Dataset d = g.write_tensor("data", from_vector(std::vector<float>{1.0f}, {1}));
  d.set_attribute("unit", "m");
  d.set_attribute("scale", 2.0);
  EXPECT_EQ(d.attribute_names(), (std::vector<std::string>{"scale", "unit"}));
  EXPECT_TRUE(root.attribute_names().empty()) << "a group's attributes are its own";
  root.set_attribute("format_version", 1);
  EXPECT_EQ(root.attribute_names(), (std::vector<std::string>{"format_version"}));
}

TEST_F(CheckpointTest, StateReadErrorsNameTheFile) {
  const fs::path missing = file("nope.h5");
  const auto e = test::expect_thrown<IoError>([&] { io::read_state_groups(missing); }, {missing.string()});
  if (e) {
    EXPECT_EQ(e->file(), missing.string());
  }
  test::expect_error<IoError>([&] { io::read_trainer_state(missing); }, {missing.string()});

  const fs::path groups = file("groups.h5");
  io::write_state_groups(groups, {{"model", nn::StateDict{}}});
  test::expect_error<IoError>([&] { io::read_trainer_state(groups); }, {groups.string()});

  const fs::path flat = file("flat.h5");
  {
    const io::h5::File f(flat, io::h5::Access::kTruncate);
    f.root().write_tensor("weight", from_vector(std::vector<float>{1.0f}, {1}));
  }
  test::expect_error<IoError>([&] { io::read_state_groups(flat); },
                              {flat.string(), "'/weight' is a dataset"});

  io::TrainerState state;
  state.rng = {{"a/b", {1}}};
  test::expect_error<ValueError>([&] { io::write_trainer_state(file("t.h5"), state); },
                                 {"RNG stream", "\"a/b\""});

  const fs::path old = file("old.h5");
  io::write_trainer_state(old, io::TrainerState{});
  {
    const io::h5::File f(old, io::h5::Access::kReadWrite);
    f.root().group("trainer").set_attribute("format_version", 99);
  }
  test::expect_error<IoError>([&] { io::read_trainer_state(old); }, {old.string(), "format_version 1", "99"});
}

}  // namespace
}  // namespace lockstep
