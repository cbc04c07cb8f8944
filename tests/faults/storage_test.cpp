// Faults of the storage under a job: an output folder that cannot be written (read-only, or a path under a
// file), a disk that fills up during `lockstep convert` (a file-size limit: the writes fail with EFBIG as they
// do with ENOSPC), and a data file truncated or deleted while the loader reads it from disk (data.cache =
// "none"). Each ends with a clear error naming the key or file, or (deleted: the open file is still read
// whole) carries on exactly; no crash, nothing partial left.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "io/checkpoint/checkpoint_store.h"
#include "src/core/error.h"
#include "tests/faults/faults.h"
#include "tests/support/fashion_mnist.h"
#include "tests/support/job.h"
#include "tests/support/temp_dir.h"

namespace lockstep::test {
namespace {

namespace fs = std::filesystem;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(Faults, AnOutputFolderThatCannotBeWrittenIsAnErrorNamingRunOutput) {
  TempDir dir;
  // Read-only: the mode bits do not stop root, so as root the run is started as the user nobody (setpriv).
  const fs::path read_only = dir / "read_only";
  fs::create_directories(read_only);
  fs::permissions(read_only, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                                 fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  std::string as_user;
  if (::geteuid() == 0) {
    ASSERT_EQ(run_command("setpriv --version", 10).status, 0)
        << "as root, the test runs the job as nobody with setpriv (util-linux)";
    as_user = "setpriv --reuid=65534 --regid=65534 --clear-groups ";
  }
  const fs::path config = write_mlp_config(dir / "read_only.toml", read_only, "max_steps = 3\n");
  const CommandResult job = run_job(as_user + train_command(config), kJobLimitS);
  figure(str_cat("a read-only output folder: exit ", job.status, " after ", job.seconds, " s"));
  EXPECT_EQ(job.status, 1) << job.output;
  EXPECT_TRUE(contains(job.output, "'run.output'")) << job.output;
  EXPECT_TRUE(contains(job.output, str_cat("cannot write in the output folder '", read_only.string(),
                                           "': Permission denied")))
      << job.output;
  EXPECT_TRUE(fs::is_empty(read_only)) << "something was written in the read-only folder";

  // A path under a file (ENOTDIR, for root too), as a job of 2 ranks: only rank 0 creates the folder, while
  // rank 1 goes on into training and waits for it in the first collective.
  std::ofstream(dir / "not_a_directory") << "x";
  const fs::path under_file = dir / "not_a_directory" / "run";
  const fs::path two = write_mlp_config(dir / "under_file.toml", under_file, "max_steps = 3\n");
  const CommandResult job2 = run_job(mpirun_command(2, train_command(two)), kJobLimitS);
  expect_failed_within_bound(job2, kJobLimitS);
  figure(str_cat("an output path under a file, 2 ranks: exit ", job2.status, " after ", job2.seconds, " s"));
  EXPECT_TRUE(contains(job2.output, "[rank 0/2]")) << job2.output;
  EXPECT_TRUE(contains(job2.output, "'run.output'")) << job2.output;
  EXPECT_TRUE(contains(job2.output, str_cat("cannot create the output folder '", under_file.string(),
                                            "': Not a directory")))
      << job2.output;
}

// `lockstep convert --format fashion-mnist ... --output OUT` under a file-size limit of `kib` KiB.
CommandResult convert_limited(const fs::path& out, std::int64_t kib) {
  const char* env = std::getenv("LOCKSTEP_FASHION_MNIST");
  const std::string input = env != nullptr ? env : "/usr/share/datasets/fashion-mnist";
  const std::string convert = lockstep_command("convert --format fashion-mnist --input " + quote(input) +
                                               " --output " + quote(out.string()));
  return run_job(kib > 0 ? "bash -c " + quote(str_cat("ulimit -f ", kib, "; exec ", convert)) : convert, kJobLimitS);
}

TEST(Faults, DiskFullDuringConversionLeavesNoPartialFileAndKeepsTheEarlierOne) {
  TempDir dir;
  const fs::path complete = dir / "complete" / "fashion-mnist.h5";
  const CommandResult whole = convert_limited(complete, 0);
  ASSERT_EQ(whole.status, 0) << whole.output;
  const auto bytes = static_cast<std::int64_t>(fs::file_size(complete));
  const std::string earlier = read_text(complete);
  // The disk fills at 1%, 50%, 85% (the test split), 99% and 99.99% of the file (its last array).
  double slowest = 0.0;
  for (const double fraction : {0.01, 0.5, 0.85, 0.99, 0.9999}) {
    const std::int64_t kib = static_cast<std::int64_t>(fraction * static_cast<double>(bytes)) / 1024;
    for (const bool existing : {false, true}) {
      // Into an empty folder, then over a complete earlier conversion, which must survive untouched.
      const fs::path folder = dir / str_cat("at_", kib, existing ? "_over" : "_new");
      const fs::path out = folder / "fashion-mnist.h5";
      fs::create_directories(folder);
      if (existing) fs::copy_file(complete, out);
      const CommandResult job = convert_limited(out, kib);
      slowest = std::max(slowest, job.seconds);
      EXPECT_EQ(job.status, 1) << "limit " << kib << " KiB:\n" << job.output;
      EXPECT_TRUE(contains(job.output, str_cat("convert: could not write '", out.string(), "'"))) << job.output;
      EXPECT_TRUE(contains(job.output, "File too large")) << job.output;
      std::vector<std::string> names;
      for (const auto& entry : fs::directory_iterator(folder)) names.push_back(entry.path().filename().string());
      EXPECT_EQ(names, existing ? std::vector<std::string>{"fashion-mnist.h5"} : std::vector<std::string>{})
          << "limit " << kib << " KiB: left behind in " << folder;
      if (existing) {
        EXPECT_TRUE(read_text(out) == earlier) << "limit " << kib << " KiB: the earlier file changed";
      }
    }
  }
  figure(str_cat("disk full during conversion at 5 points of a ", bytes,
                 "-byte file: exit 1 each time, nothing partial left, an earlier file unchanged; the slowest in ",
                 slowest, " s"));
}

// A copy of the whole Fashion-MNIST in `dir` (the loader reads it from disk, and the test damages it).
fs::path data_copy(const TempDir& dir) {
  const fs::path copy = dir / "fashion-mnist.h5";
  fs::copy_file(fashion_mnist_h5(), copy);
  return copy;
}

// 600 steps of the MLP on `data` read from disk (data.cache = "none"), a checkpoint every 100.
fs::path disk_config(const fs::path& path, const fs::path& output, const fs::path& data) {
  return write_mlp_config(path, output, "max_steps = 600\n", "[checkpoint]\nevery_steps = 100\n",
                          "cache = \"none\"\n", data);
}

// Waits for `job`'s first checkpoint under `output`, then does `fault` (at *fault_at seconds) and waits for
// the run to end.
void run_with_fault(SpawnedJob& job, const fs::path& output, const std::function<void()>& fault,
                           double* fault_at) {
  const fs::path first = output / "checkpoints" / io::CheckpointStore::directory_name(100);
  while (!fs::exists(first) && !job.ended() && job.seconds() < kJobLimitS)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_FALSE(job.ended()) << "the run ended (status " << job.status() << ") before the fault:\n" << job.output();
  fault();
  *fault_at = job.seconds();
  if (!job.wait(kJobLimitS)) {
    ADD_FAILURE() << "the run was still going " << kJobLimitS << " s after the fault";
    job.kill_all();
  }
}

TEST(Faults, ADataFileTruncatedUnderTheLoaderIsAnIoErrorNamingIt) {
  TempDir dir;
  const fs::path data = data_copy(dir), out = dir / "run";
  const fs::path config = disk_config(dir / "run.toml", out, data);
  SpawnedJob job(train_command(config), dir / "run.log", config.string());
  double fault_at = 0.0;
  run_with_fault(job, out, [&] { fs::resize_file(data, fs::file_size(data) / 2); }, &fault_at);
  const std::string output = job.output();
  const double to_end = job.seconds() - fault_at;
  figure(str_cat("a data file truncated under the loader: exit ", job.status(), " ", to_end, " s after"));
  EXPECT_EQ(job.status(), 1) << output;
  EXPECT_LT(to_end, kEndBoundS) << output;
  EXPECT_TRUE(contains(output, str_cat("the data file ", data.string()))) << output;
  EXPECT_TRUE(contains(output, "it was truncated")) << output;
  // Nothing committed is lost: every checkpoint verifies.
  const std::vector<std::int64_t> saved = committed_steps(out / "checkpoints");
  EXPECT_FALSE(saved.empty());
  for (const std::int64_t step : saved) {
    std::string why;
    EXPECT_TRUE(io::CheckpointStore::verify(out / "checkpoints" / io::CheckpointStore::directory_name(step), &why))
        << why;
  }
}

TEST(Faults, ADataFileDeletedUnderTheLoaderIsStillReadWhole) {
  // The loader keeps the file open, so its data stay readable until the run ends: the run carries on and
  // ends exactly as one whose file was left alone.
  TempDir dir;
  const fs::path data = data_copy(dir), straight_out = dir / "straight", out = dir / "run";
  const CommandResult straight = run_job(train_command(disk_config(dir / "straight.toml", straight_out, data)));
  ASSERT_EQ(straight.status, 0) << straight.output;
  const fs::path config = disk_config(dir / "run.toml", out, data);
  SpawnedJob job(train_command(config), dir / "run.log", config.string());
  double fault_at = 0.0;
  run_with_fault(job, out, [&] { fs::remove(data); }, &fault_at);
  figure(str_cat("a data file deleted under the loader: exit ", job.status(), " ", job.seconds() - fault_at,
                 " s after, the run ends identical to the undisturbed one"));
  ASSERT_EQ(job.status(), 0) << job.output();
  expect_same_checkpoint_contents(straight_out / "checkpoints" / io::CheckpointStore::directory_name(600),
                                  out / "checkpoints" / io::CheckpointStore::directory_name(600), "model");
}

}  // namespace
}  // namespace lockstep::test
