// Data-parallel additions to the launch layer, without MPI: [distributed] and batch keys and their errors,
// loader sharding, evaluation reduced over a ThreadedWorld vs the single-process figures, per-rank random
// streams, the job line, --bucket-mb and the command line's failure hook.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "distributed/threaded.h"
#include "io/data/convert.h"
#include "launch/cli/commands.h"
#include "launch/cli/dispatch.h"
#include "launch/config/settings.h"
#include "launch/train/evaluate.h"
#include "launch/train/factory.h"
#include "launch/train/run.h"
#include "src/core/cuda_available.h"
#include "src/models/mlp.h"
#include "src/tensor/factories.h"
#include "tests/support/expect_error.h"
#include "tests/support/temp_dir.h"

namespace lockstep::launch {
namespace {

using test::expect_error;

launch::Config parse(const std::string& text, const std::vector<std::string>& overrides = {}) {
  return launch::Config::parse(text, "run.toml", overrides);
}

// The settings of `text` completed into a whole classifier config: the model and optimizer tables are
// appended, a data path and batch are given as overrides when the text has none.
launch::Settings settings_of(const std::string& text, std::vector<std::string> overrides = {}) {
  if (text.find("path =") == std::string::npos) overrides.emplace_back("data.path=\"data.h5\"");
  if (text.find("batch_size =") == std::string::npos) overrides.emplace_back("data.batch_size=8");
  return launch::read_settings(
      parse(text + "\n[model]\nname = \"mlp\"\n[optimizer]\nname = \"sgd\"\nlr = 0.1\n", overrides));
}

TEST(BatchSize, PerRankBatchIsTakenAsItIsAtAnyWorldSize) {
  const launch::DataSection cfg = settings_of("[data]\nbatch_size = 48\n").data;
  EXPECT_EQ(per_rank_batch_size(cfg, 1), 48);
  EXPECT_EQ(per_rank_batch_size(cfg, 3), 48);
}

TEST(BatchSize, GlobalBatchIsSplitOverTheRanks) {
  const launch::DataSection cfg = settings_of("[data]\nglobal_batch_size = 96\n").data;
  EXPECT_EQ(per_rank_batch_size(cfg, 1), 96);
  EXPECT_EQ(per_rank_batch_size(cfg, 3), 32);
  EXPECT_EQ(per_rank_batch_size(cfg, 4), 24);
}

TEST(BatchSize, GlobalBatchNotDivisibleByTheWorldNamesKeyValueAndWorld) {
  const launch::DataSection cfg = settings_of("[data]\nglobal_batch_size = 100\n").data;
  const std::string message = expect_error<ConfigError>(
      [&] { per_rank_batch_size(cfg, 3); }, {"data.global_batch_size", "run.toml:2", "100", "world size 3"});
  EXPECT_NE(message.find("99 or 102"), std::string::npos) << message;  // the nearest multiples
}

TEST(BatchSize, BothOrNeitherKeyOrANonPositiveValueIsAConfigError) {
  expect_error<ConfigError>(
      [&] { per_rank_batch_size(settings_of("[data]\nbatch_size = 64\nglobal_batch_size = 128\n").data, 2); },
      {"data.global_batch_size", "data.batch_size", "both", "64", "128"});
  expect_error<ConfigError>([&] { read_settings(parse("[data]\npath = \"x.h5\"\n")); },
                            {"data.batch_size"});
  expect_error<ConfigError>([&] { settings_of("[data]\nglobal_batch_size = 0\n"); },
                            {"data.global_batch_size", "at least 1", "0"});
  expect_error<ConfigError>([&] { settings_of("[data]\nbatch_size = -4\n"); },
                            {"data.batch_size", "at least 1", "-4"});
}

// A run in a fresh output folder, with `extra` TOML lines at the top level of the config.
class SetupRun : public test::TempDirTest {
 protected:
  launch::Settings config(const std::string& extra, const std::vector<std::string>& overrides = {}) {
    return settings_of(str_cat("[run]\noutput = \"", (dir_ / "out").string(), "\"\n", extra), overrides);
  }
};

TEST_F(SetupRun, DistributedDefaultsWithoutATable) {
  const RunSettings run = setup_run(config(""));
  ASSERT_NE(run.group, nullptr);
  EXPECT_EQ(run.world(), 1);
  EXPECT_EQ(run.rank(), 0);
  EXPECT_STREQ(run.group->backend(), "single");
  EXPECT_EQ(run.reducer.bucket_bytes, 4 << 20);
  EXPECT_TRUE(run.sync_batchnorm);
  EXPECT_EQ(run.group->options().timeout, std::chrono::seconds(300));
  EXPECT_GE(run.threads, 1);
  EXPECT_TRUE(std::filesystem::is_directory(dir_ / "out"));  // rank 0 creates it
}

TEST_F(SetupRun, DistributedKeysAreRead) {
  const RunSettings run = setup_run(config("[distributed]\nbucket_mb = 2.5\nsync_batchnorm = false\ntimeout_s = 12.5\n"));
  EXPECT_EQ(run.reducer.bucket_bytes, 5 << 19);  // 2.5 MiB
  EXPECT_LE(run.reducer.first_bucket_bytes, run.reducer.bucket_bytes);
  EXPECT_FALSE(run.sync_batchnorm);
  EXPECT_EQ(run.group->options().timeout, std::chrono::milliseconds(12500));
  // A small bucket also bounds the first one.
  EXPECT_EQ(setup_run(config("[distributed]\nbucket_mb = 0.25\n")).reducer.first_bucket_bytes, 1 << 18);
}

TEST_F(SetupRun, BadDistributedValuesAreConfigErrors) {
  expect_error<ConfigError>([&] { setup_run(config("[distributed]\nbucket_mb = 0\n")); },
                            {"distributed.bucket_mb", "run.toml:4", "0"});
  expect_error<ConfigError>([&] { setup_run(config("[distributed]\nbucket_mb = -3\n")); },
                            {"distributed.bucket_mb", "-3"});
  expect_error<ConfigError>([&] { setup_run(config("[distributed]\nbucket_mb = \"big\"\n")); },
                            {"distributed.bucket_mb"});
  expect_error<ConfigError>([&] { setup_run(config("[distributed]\ntimeout_s = 0\n")); },
                            {"distributed.timeout_s", "positive"});
  expect_error<ConfigError>([&] { setup_run(config("", {"distributed.bucket_mb=-1"})); },
                            {"distributed.bucket_mb", "command-line override", "-1"});
}

TEST_F(SetupRun, UnknownDistributedKeyIsRejectedWithASuggestion) {
  expect_error<ConfigError>([&] { config("[distributed]\nbucket_mbs = 8\n"); }, {"distributed.bucket_mbs", "bucket_mb"});
}

TEST_F(SetupRun, JobLineNamesWorldBatchesThreadsAndBackend) {
  RunSettings run =
      setup_run(settings_of(str_cat("[run]\nthreads = 1\noutput = \"", (dir_ / "o").string(), "\"\n")));
  EXPECT_EQ(run.threads, 1);
  EXPECT_EQ(describe_job(run, 64), "job: 1 rank (single), batch 64 per rank = 64 global, 1 thread per rank");
  auto world = std::make_shared<distributed::ThreadedWorld>(4);
  run.group = world->group(2);
  run.threads = 3;
  EXPECT_EQ(describe_job(run, 32),
            "job: 4 ranks (threaded), batch 32 per rank = 128 global, 3 threads per rank");
  EXPECT_FALSE(run.speaks());  // rank 2 writes nothing
  run.group.reset();
}

// run.device: "cpu" (the default) and "auto" without a usable GPU train on the CPU; "cuda" without one, or
// for what CUDA does not train yet, is a ConfigError naming the key and the reason. Where a GPU is present,
// "auto" picks it for a one-rank classifier and the job line says so.
TEST_F(SetupRun, RunDeviceIsTheCpuUnlessCudaIsThereAndUsable) {
  EXPECT_EQ(setup_run(config("")).device, kCPU);
  EXPECT_EQ(setup_run(config("", {"distributed.deterministic=true", "run.device=\"auto\""})).device, kCPU);
  const RunSettings automatic = setup_run(config("", {"run.device=\"auto\""}));
  if (!cuda_available()) {
    EXPECT_EQ(automatic.device, kCPU);
    expect_error<ConfigError>([&] { setup_run(config("", {"run.device=\"cuda\""})); },
                              {"run.device", "cannot train on CUDA", cuda_unavailable_why()});
    return;
  }
  EXPECT_EQ(automatic.device, (Device{DeviceType::CUDA, 0}));
  EXPECT_NE(describe_job(automatic, 8).find(", on cuda:0"), std::string::npos);
  expect_error<ConfigError>(
      [&] {
        setup_run(config("", {"distributed.deterministic=true", "run.device=\"cuda\""}));
      },
      {"run.device", "deterministic mode", "CPU only so far"});
}

TEST(SplitRandomStreams, RankZeroKeepsItsStreamOtherRanksGetTheirOwnDeterministicOnes) {
  auto world = std::make_shared<distributed::ThreadedWorld>(3);
  const auto draw = [&](int rank) {
    RunSettings run;
    run.seed = 9;
    run.group = world->group(rank);
    manual_seed(9);
    randn({4});  // the models' initialisation, the same on every rank
    split_random_streams(run);
    return randn({16}).to_vector<float>();
  };
  manual_seed(9);
  randn({4});
  const std::vector<float> single = randn({16}).to_vector<float>();
  EXPECT_EQ(draw(0), single);  // a single-process run draws what it drew before
  EXPECT_NE(draw(1), single);
  EXPECT_NE(draw(2), draw(1));
  EXPECT_EQ(draw(2), draw(2));  // reproducible
}

// A data-set file with a `train` split of `train_size` and a `test` split of `test_size` random 1x4x4
// images with random labels in [0, 10).
void write_data(const std::filesystem::path& path, std::int64_t train_size, std::int64_t test_size) {
  std::vector<std::string> classes;
  for (int c = 0; c < 10; ++c) classes.push_back(str_cat("class", c));
  std::uint64_t state = 12345;
  const auto next = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state >> 33;
  };
  for (const auto& [split, n] :
       {std::pair<std::string, std::int64_t>{"train", train_size}, {"test", test_size}}) {
    std::vector<std::uint8_t> pixels(static_cast<std::size_t>(n * 16));
    for (auto& p : pixels) p = static_cast<std::uint8_t>(next() & 0xFF);
    std::vector<std::int64_t> labels(static_cast<std::size_t>(n));
    for (auto& l : labels) l = static_cast<std::int64_t>(next() % 10);
    io::ImageSet set;
    set.images = from_vector(pixels, {n, 1, 4, 4});
    set.labels = from_vector(labels, {n});
    io::write_image_set(path, split, set, classes,
                        split == "train" ? io::h5::Access::kTruncate : io::h5::Access::kReadWrite, "random");
  }
}

class ShardedData : public test::TempDirTest {
 protected:
  void SetUp() override { write_data(file("data.h5"), 50, 10000); }
  launch::DataSection config() const {
    return settings_of(str_cat("[data]\npath = \"", file("data.h5").string(),
                               "\"\nglobal_batch_size = 24\neval_batch_size = 128\n"))
        .data;
  }
};

TEST_F(ShardedData, TrainingShardsArePaddedToTheSameStepCountEvaluationShardsCountEverySampleOnce) {
  const launch::DataSection cfg = config();
  std::int64_t test_samples = 0;
  for (std::int64_t rank = 0; rank < 3; ++rank) {
    const DataSplits d = make_data(cfg, 7, rank, 3);
    EXPECT_EQ(d.train_options.batch_size, 8);
    EXPECT_EQ(d.train_options.rank, rank);
    EXPECT_EQ(d.train_options.world, 3);
    EXPECT_EQ(d.train_options.pad, io::Pad::kYes);
    EXPECT_EQ(d.test_options.pad, io::Pad::kNo);
    EXPECT_EQ(d.test_options.shuffle, io::Shuffle::kNo);
    EXPECT_EQ(d.test_options.drop_last, io::DropLast::kNo);
    const io::DataLoader train(d.train, d.train_options), eval(d.test, d.test_options);
    EXPECT_EQ(train.samples_per_epoch(), 17);  // 50 padded to 51 over 3 ranks
    EXPECT_EQ(train.batches_per_epoch(), 2);   // 17 / 8, the last batch dropped
    test_samples += eval.samples_per_epoch();
  }
  EXPECT_EQ(test_samples, 10000);
  EXPECT_THROW(make_data(cfg, 7, 3, 3), ValueError);
}

TEST_F(ShardedData, AValidationHoldOutIsTheSameAtAnyWorldSizeAndDisjointFromTrainingShards) {
  const std::string text = str_cat("[data]\npath = \"", file("data.h5").string(),
                                   "\"\nglobal_batch_size = 6\nvalidation_fraction = 0.2\n");
  for (const std::int64_t world : {1, 2, 3}) {
    const launch::DataSection cfg = settings_of(text).data;
    std::set<std::int64_t> trained, validated;
    std::int64_t validation_count = 0;
    for (std::int64_t rank = 0; rank < world; ++rank) {
      const DataSplits d = make_data(cfg, 7, rank, world);
      EXPECT_EQ(d.train_size, 40);
      EXPECT_EQ(d.validation_size, 10);
      ASSERT_TRUE(d.validation_options.has_value());
      io::DataLoader train(d.train, d.train_options), validation(d.train, *d.validation_options);
      for (const std::int64_t epoch : {0, 1}) {
        train.start_epoch(epoch);
        while (const auto batch = train.next()) trained.insert(batch->indices.begin(), batch->indices.end());
      }
      validation.start_epoch(0);
      while (const auto batch = validation.next()) {
        validated.insert(batch->indices.begin(), batch->indices.end());
        validation_count += static_cast<std::int64_t>(batch->indices.size());
      }
    }
    const auto [held, rest] = io::holdout_split(50, 0.2, 7);
    EXPECT_EQ(validated, std::set<std::int64_t>(held.begin(), held.end())) << "world " << world;
    EXPECT_EQ(validation_count, 10) << "world " << world;  // every held-out sample once
    for (const std::int64_t i : trained) EXPECT_FALSE(validated.count(i)) << i << " at world " << world;
    EXPECT_EQ(trained.size(), 40u) << "world " << world;  // two epochs reach every training sample
  }
}

TEST_F(ShardedData, EvaluationOverThreeRanksEqualsTheSingleProcessFigures) {
  const launch::DataSection cfg = config();
  manual_seed(21);
  models::MLP single_model(16, {12}, 10);
  DataSplits single_data = make_data(cfg, 7);
  io::DataLoader single_loader(single_data.test, single_data.test_options);
  const Accuracy expected = evaluate_classifier(single_model, single_loader);
  ASSERT_EQ(expected.count, 10000);
  ASSERT_GT(expected.accuracy, 0.0);

  // Models, data and loaders are made here: the default generator and HDF5 are used by one thread only.
  constexpr int kWorld = 3;
  std::vector<std::unique_ptr<models::MLP>> models;
  std::vector<std::unique_ptr<io::DataLoader>> loaders;
  for (int rank = 0; rank < kWorld; ++rank) {
    manual_seed(21);
    models.push_back(std::make_unique<models::MLP>(16, std::vector<std::int64_t>{12}, 10));
    const DataSplits d = make_data(cfg, 7, rank, kWorld);
    loaders.push_back(std::make_unique<io::DataLoader>(d.test, d.test_options));
  }
  std::array<Accuracy, kWorld> got{};
  std::array<std::uint64_t, kWorld> collectives{};
  distributed::run_threaded(kWorld, [&](const std::shared_ptr<distributed::ProcessGroup>& group) {
    const int rank = group->rank();
    const std::uint64_t before = group->sequence();
    got[static_cast<std::size_t>(rank)] = evaluate_classifier(*models[rank], *loaders[rank], *group);
    collectives[static_cast<std::size_t>(rank)] = group->sequence() - before;
  });
  // Accuracy, loss, top-5 hits and the confusion matrix travel in one all-reduce.
  for (const std::uint64_t n : collectives) EXPECT_EQ(n, 1u);
  for (const Accuracy& a : got) {  // every rank has the whole split's figures
    EXPECT_EQ(a.count, 10000);
    EXPECT_EQ(std::llround(a.accuracy * 10000), std::llround(expected.accuracy * 10000));  // correct count
    EXPECT_EQ(a.accuracy, expected.accuracy);
    // Each batch's loss sum is an f32 reduction, and the ranks' batches group the samples differently.
    EXPECT_NEAR(a.loss, expected.loss, 1e-6 * expected.loss);
    EXPECT_EQ(a.report.confusion, expected.report.confusion);
    EXPECT_EQ(a.report.top_k_accuracy, expected.report.top_k_accuracy);
    EXPECT_EQ(a.report.precision, expected.report.precision);
    EXPECT_EQ(a.report.f1, expected.report.f1);
  }
  EXPECT_EQ(expected.report.confusion.size(), 10u);
  EXPECT_GT(expected.report.top_k_accuracy, expected.accuracy);
}

// The command line: a failure reaches the hook with its message before it is printed; usage errors don't.
std::vector<std::string> g_failures;
void record_failure(const std::string& message) { g_failures.push_back(message); }

TEST_F(SetupRun, TrainFailureReachesTheHookAndABadBucketMbFlagIsAUsageErrorNamingTheFlag) {
  const std::filesystem::path config_file = file("bad.toml");
  std::ofstream(config_file) << "[run]\noutput = \"" << file("out").string()
                             << "\"\n[distributed]\nbucket_mb = -8\n";
  constexpr launch::Command kCommands[] = {{"train", "train", launch::run_train}};
  std::ostringstream out, err;
  g_failures.clear();
  const int code = launch::run_cli(kCommands, {"train", config_file.string()}, out, err, record_failure);
  EXPECT_EQ(code, 1);
  ASSERT_EQ(g_failures.size(), 1U);
  EXPECT_NE(g_failures[0].find("distributed.bucket_mb"), std::string::npos) << g_failures[0];
  EXPECT_NE(g_failures[0].find("-8"), std::string::npos) << g_failures[0];
  EXPECT_NE(err.str().find("lockstep: error: "), std::string::npos) << err.str();

  for (const char* flag : {"--bucket-mb=-2", "--bucket-mb=0", "--bucket-mb=lots"}) {
    g_failures.clear();
    std::ostringstream flag_err;
    EXPECT_EQ(launch::run_cli(kCommands, {"train", config_file.string(), flag}, out, flag_err, record_failure), 2)
        << flag;
    EXPECT_TRUE(g_failures.empty()) << flag;
    EXPECT_NE(flag_err.str().find("bucket-mb"), std::string::npos) << flag_err.str();
    EXPECT_EQ(flag_err.str().find("distributed.bucket_mb"), std::string::npos) << flag_err.str();
  }
}

}  // namespace
}  // namespace lockstep::launch
