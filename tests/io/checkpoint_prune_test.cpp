// A job killed while old checkpoints are pruned: a child process commits a checkpoint that prunes a large
// older one and is killed with SIGKILL in the middle of deleting it. Every checkpoint the store still
// lists must verify, and the next start's cleanup_stale removes what the deletion left.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <thread>

#include "io/checkpoint/checkpoint_store.h"
#include "tests/support/temp_dir.h"

namespace lockstep {
namespace {

namespace fs = std::filesystem;
using io::CheckpointPolicy;
using io::CheckpointStore;

constexpr int kFiles = 1500;  // in the checkpoint to be pruned: its deletion takes a while

std::int64_t entries(const fs::path& dir) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return -1;
  std::int64_t n = 0;
  for (fs::directory_iterator end; it != end; it.increment(ec)) {
    if (ec) return -1;
    ++n;
  }
  return n;
}

TEST(CheckpointPrune, KilledWhileDeletingLeavesNoHalfDeletedCheckpoint) {
  const test::TempDir tmp;
  const CheckpointStore store(tmp.path() / "ckpt", CheckpointPolicy{1, 0});
  const fs::path data = store.begin(1) / "data";
  fs::create_directories(data);
  for (int i = 0; i < kFiles; ++i) std::ofstream(data / std::to_string(i)) << i;
  store.commit(1);
  const fs::path old_data = store.root() / CheckpointStore::directory_name(1) / "data";
  ASSERT_EQ(entries(old_data), kFiles);

  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Commits step 2, whose pruning deletes step 1 (keep_last 1); then waits to be killed.
    try {
      std::ofstream(store.begin(2) / "model.h5") << "weights";
      store.commit(2);
    } catch (...) {
      ::_exit(2);
    }
    ::pause();
    ::_exit(0);
  }
  // Kill the child once the deletion of step 1's files has begun (or step 1 left its committed name).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool killed_midway = false;
  while (std::chrono::steady_clock::now() < deadline) {
    const std::int64_t n = entries(old_data);
    if (n >= 0 && n < kFiles) {
      killed_midway = n > 0;
      break;
    }
    if (n < 0) break;  // step_1 is gone from its name (renamed aside or deleted)
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child ended by itself with status " << status;

  for (const auto& info : store.list()) {
    std::string why;
    EXPECT_TRUE(CheckpointStore::verify(info.path, &why))
        << info.path << " is listed but does not verify: " << why
        << (killed_midway ? " (killed in the middle of its deletion)" : "");
  }
  store.cleanup_stale();
  std::int64_t left = 0;
  for (const auto& entry : fs::directory_iterator(store.root())) {
    const std::string name = entry.path().filename().string();
    EXPECT_EQ(name.find(".tmp"), std::string::npos) << "cleanup_stale left " << name;
    ++left;
  }
  ASSERT_EQ(store.list().size(), static_cast<std::size_t>(left));
  for (const auto& info : store.list()) EXPECT_TRUE(CheckpointStore::verify(info.path)) << info.path;
  EXPECT_TRUE(fs::exists(store.root() / CheckpointStore::directory_name(2)));
}

}  // namespace
}  // namespace lockstep
