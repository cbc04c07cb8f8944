// All-reduces through shared memory (distributed/shared_memory.h) at the real world size: the buffers the
// MPI group hands out for repeated collectives are mappings of POSIX shared-memory objects (read from
// /proc/self/maps, not from the group), their all-reduces give the rank-order reduction of every rank's
// values bit for bit, no object name outlives its creation, a rank that never arrives is named, and ranks
// that route one collective differently get the desync error.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "distributed/mpi.h"
#include "distributed/reducer.h"
#include "src/core/strings.h"
#include "src/nn/linear.h"
#include "src/ops/reduce.h"
#include "src/tensor/factories.h"
#include "tests/mpi/mpi_env.h"
#include "tests/support/expect_error.h"

namespace lockstep::distributed {
namespace {

// The file mapped at `p` in this process ("" when `p` is in no file mapping), from /proc/self/maps.
std::string mapped_file(const void* p) {
  std::ifstream maps("/proc/self/maps");
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  for (std::string line; std::getline(maps, line);) {
    std::istringstream fields(line);
    std::string range, perms, offset, dev, inode, path;
    fields >> range >> perms >> offset >> dev >> inode;
    std::getline(fields >> std::ws, path);
    const auto dash = range.find('-');
    const auto begin = std::stoull(range.substr(0, dash), nullptr, 16);
    const auto end = std::stoull(range.substr(dash + 1), nullptr, 16);
    if (address >= begin && address < end) return path;
  }
  return "";
}

bool in_shared_object(const Tensor& t) { return mapped_file(t.data()).starts_with("/dev/shm/lockstep-"); }

// Values of very different magnitudes and signs per rank and element: their f32 sum depends on the order.
Tensor values(std::int64_t n, DType dtype, int rank, int salt) {
  std::vector<double> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const double k = static_cast<double>((i * 7919 + rank * 104729 + salt * 13) % 1000);
    v[static_cast<std::size_t>(i)] = (k - 500.0) * (i % 3 == 0 ? 1e6 : 1.0) / 7.0;
  }
  return from_vector(v, {n}).to(dtype);
}

// All-reduces `t` (f32) with rank r's elements r + 1: every element must come back as 1 + 2 + ... + W.
void expect_rank_sum(ProcessGroup& group, Tensor t) {
  t.fill_(static_cast<double>(group.rank() + 1));
  group.all_reduce(t)->wait();
  const int w = group.size();
  EXPECT_EQ(t.to_vector<float>(),
            std::vector<float>(static_cast<std::size_t>(t.numel()), static_cast<float>(w * (w + 1) / 2)));
}

// Every rank on one node, or the test says why it cannot run.
std::shared_ptr<MpiProcessGroup> node_group(ProcessGroupOptions o = lockstep::test::test_group_options()) {
  auto group = MpiProcessGroup::world(o);
  if (group->local_size() != group->size()) return nullptr;
  return group;
}

TEST(SharedMemoryMpi, AllReducesGiveTheRankOrderReductionBitForBit) {
  const auto group = node_group();
  if (!group) GTEST_SKIP() << "the ranks are on several nodes: shared memory is for ranks of one node";
  const int world = group->size();
  const int rank = group->rank();
  for (const std::int64_t n :
       {std::int64_t{1}, std::int64_t{3}, std::int64_t{63}, std::int64_t{4099}, std::int64_t{300007}}) {
    for (const DType dtype : {DType::f32, DType::f64, DType::i64}) {
      Tensor buffer = group->empty_for_collectives(n, dtype);
      ASSERT_TRUE(in_shared_object(buffer)) << "mapped from '" << mapped_file(buffer.data()) << "'";
      for (const ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax, ReduceOp::kMin}) {
        const std::string what = str_cat(dtype_name(dtype), " x ", n, " ", reduce_op_name(op));
        const Tensor mine = values(n, dtype, rank, static_cast<int>(op));
        // The expected result from every rank's values, reduced here in rank order.
        const Tensor all = zeros({world * n}, dtype);
        group->all_gather(mine, all)->wait();
        const Tensor expected = all.slice(0, 0, n).clone();
        for (int r = 1; r < world; ++r)
          reduce_into(expected.data(), all.slice(0, r * n, (r + 1) * n).data(), n, dtype, op);
        if (op == ReduceOp::kAvg) divide_by(expected.data(), n, dtype, world);
        buffer.copy_(mine);
        group->all_reduce(buffer, op)->wait();
        const auto bytes = static_cast<std::size_t>(n) * element_size(dtype);
        EXPECT_EQ(std::memcmp(buffer.data(), expected.data(), bytes), 0) << what;
      }
    }
  }
  // The same part of the buffer on every rank (the reducer's views are whole buckets; any slice works).
  Tensor buffer = group->empty_for_collectives(1000, DType::f32);
  buffer.fill_(1.0);
  const Tensor part = buffer.slice(0, 100, 700);
  group->all_reduce(part)->wait();
  const std::vector<float> got = buffer.to_vector<float>();
  for (std::size_t i = 0; i < got.size(); ++i)
    ASSERT_EQ(got[i], i >= 100 && i < 700 ? static_cast<float>(world) : 1.0f) << "element " << i;
}

// "/dev/shm/lockstep-<nonce>-r<rank>-<serial> (deleted)" -> "lockstep-<nonce>-", and the serial.
std::pair<std::string, int> group_prefix_and_serial(const std::string& file) {
  const std::string name = file.substr(std::string("/dev/shm/").size());
  const auto rank_at = name.find("-r");
  const auto serial_at = name.find('-', rank_at + 2);
  return {name.substr(0, rank_at + 1), std::stoi(name.substr(serial_at + 1))};
}

TEST(SharedMemoryMpi, NoObjectNameOutlivesTheAllocation) {
  const auto group = node_group();
  if (!group) GTEST_SKIP() << "the ranks are on several nodes: shared memory is for ranks of one node";
  const Tensor buffer = group->empty_for_collectives(4096, DType::f32);
  const std::string file = mapped_file(buffer.data());
  ASSERT_TRUE(file.starts_with("/dev/shm/lockstep-")) << file;
  EXPECT_TRUE(file.ends_with(" (deleted)")) << file << ": the name should be gone once every rank mapped it";
  group->barrier()->wait();
  const std::string prefix = group_prefix_and_serial(file).first;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm"))
    EXPECT_FALSE(entry.path().filename().string().starts_with(prefix)) << entry.path() << " still exists";
}

// A rank whose object cannot be made (its name taken): every rank falls back to ordinary memory for this and
// later buffers, and the all-reduce still adds up.
TEST(SharedMemoryMpi, WhenOneRankCannotMakeItsObjectEveryRankFallsBack) {
  const auto group = node_group();
  if (!group) GTEST_SKIP() << "the ranks are on several nodes: shared memory is for ranks of one node";
  const Tensor first = group->empty_for_collectives(1000, DType::f32);
  ASSERT_TRUE(in_shared_object(first));
  const auto [prefix, serial] = group_prefix_and_serial(mapped_file(first.data()));
  const std::string taken = str_cat("/dev/shm/", prefix, "r0-", serial + 1);
  if (group->rank() == 0) {
    const int fd = open(taken.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    ASSERT_GE(fd, 0) << taken;
    close(fd);
  }
  group->barrier()->wait();
  Tensor second = group->empty_for_collectives(100000, DType::f32);
  Tensor third = group->empty_for_collectives(100000, DType::f32);
  if (group->rank() == 0) unlink(taken.c_str());
  EXPECT_FALSE(in_shared_object(second));
  EXPECT_FALSE(in_shared_object(third));
  EXPECT_TRUE(in_shared_object(first));
  expect_rank_sum(*group, second);
}

TEST(SharedMemoryMpi, SwitchedOffTheBuffersAreOrdinaryMemory) {
  ProcessGroupOptions off = lockstep::test::test_group_options();
  off.shared_memory = false;
  const auto group = MpiProcessGroup::world(off);
  Tensor buffer = group->empty_for_collectives(5000, DType::f32);
  EXPECT_FALSE(in_shared_object(buffer));
  expect_rank_sum(*group, buffer);
}

// The reducer's buckets are shared: after a synchronised backward each weight's .grad lies in a shared object
// and holds the ranks' average.
TEST(SharedMemoryMpi, ReducerBucketsAreSharedAndAverage) {
  const auto group = node_group();
  if (!group) GTEST_SKIP() << "the ranks are on several nodes: shared memory is for ranks of one node";
  nn::Linear layer(300, 200);
  Reducer reducer(layer.named_parameters(), group);
  reducer.prepare_for_backward();
  const Tensor x = full({4, 300}, static_cast<double>(group->rank() + 1));
  sum(layer.forward(x)).backward();
  const Tensor weight = layer.named_parameters().front().second;
  ASSERT_TRUE(in_shared_object(weight.grad())) << mapped_file(weight.grad().data());
  // d sum(x W^T + b) / dW = 4 * (rank + 1) everywhere; the average over ranks is 4 * (W + 1) / 2.
  const float expected = 4.0f * static_cast<float>(group->size() + 1) / 2.0f;
  for (const float g : weight.grad().to_vector<float>()) ASSERT_FLOAT_EQ(g, expected);
}

// A rank that never arrives: the others' all-reduce fails after the timeout (the desync check, which would
// catch it first in MPI, is off here). Work::wait's watchdog and the communication thread's barrier have the
// same timeout; whichever fires first (the barrier names the missing rank), the other rank's wait ends. The
// buffers are then broken everywhere: the next all-reduce on them fails at once on every rank, the late one
// included, instead of running with the ranks' barriers out of step.
TEST(SharedMemoryMpi, ARankThatNeverArrivesIsNamedAfterTheTimeoutAndTheBuffersAreBrokenEverywhere) {
  ProcessGroupOptions o = lockstep::test::test_group_options();
  o.check_desync = false;
  o.timeout = std::chrono::milliseconds(1500);
  auto group = node_group(o);
  if (!group) GTEST_SKIP() << "the ranks are on several nodes: shared memory is for ranks of one node";
  const int last = group->size() - 1;
  const std::string me = str_cat("[rank ", group->rank(), "/", group->size(), "] all_reduce #");
  const auto sync = [] { MpiProcessGroup::world(lockstep::test::test_group_options())->barrier()->wait(); };
  {
    const Tensor buffer = group->empty_for_collectives(100000, DType::f32);
    if (group->rank() != last) {
      // Timed out here, or told by a rank that timed out first.
      const auto error =
          test::expect_thrown<DistributedError>([&] { group->all_reduce(buffer)->wait(); }, {me});
      if (error) {
        const std::string what = error->what();
        EXPECT_TRUE(what.find("has not finished after 1.5 s") != std::string::npos ||
                    what.find("gave up on these shared buffers") != std::string::npos)
            << what;
      }
    }
    sync();
    test::expect_error<DistributedError>(
        [&] { group->all_reduce(buffer)->wait(); },
        {me, group->rank() == last ? "gave up on these shared buffers"
                                   : "an earlier all-reduce on these shared buffers failed"});
  }
  group.reset();
  sync();
}

// Ranks all-reducing different parts of their shared buffers: with the desync check the header's route
// differs; without it the control pages do. Every rank fails at the same point either way, and the buffers
// go on working.
TEST(SharedMemoryMpi, RanksReducingDifferentPartsFailTogether) {
  for (const bool check : {true, false}) {
    ProcessGroupOptions o = lockstep::test::test_group_options();
    o.check_desync = check;
    const auto group = node_group(o);
    if (!group) GTEST_SKIP() << "the ranks are on several nodes: shared memory is for ranks of one node";
    Tensor buffer = group->empty_for_collectives(10000, DType::f32);
    const std::int64_t start = 100 * group->rank();
    test::expect_error<DistributedError>(
        [&] { group->all_reduce(buffer.slice(0, start, start + 6000))->wait(); },
        {check ? "on different buffers (rank 0 through shared buffers #1 at byte 0, rank 1 through shared "
                 "buffers #1 at byte 400"
               : "the ranks all-reduce different parts of their shared buffers (rank 0 f32 x 6000 at byte 0, "
                 "rank 1 f32 x 6000 at byte 400"});
    buffer.fill_(1.0);
    group->all_reduce(buffer)->wait();
    EXPECT_EQ(buffer.to_vector<float>(), std::vector<float>(10000, static_cast<float>(group->size())));
  }
}

// One rank all-reduces a shared buffer, the others an ordinary tensor of the same shape: every rank gets the
// desync error (the header carries the route), and no data moves.
TEST(SharedMemoryMpi, RanksRoutingOneCollectiveDifferentlyGetTheDesyncError) {
  const auto group = node_group();
  if (!group) GTEST_SKIP() << "the ranks are on several nodes: shared memory is for ranks of one node";
  const Tensor shared = group->empty_for_collectives(1000, DType::f32);
  const Tensor ordinary = zeros({1000});
  test::expect_error<DistributedError>(
      [&] { group->all_reduce(group->rank() == 0 ? shared : ordinary)->wait(); },
      {"collectives out of step",
       "on different buffers (rank 0 through shared buffers #1 at byte 0, rank 1 through MPI"});
  const Tensor after = ones({1000});
  group->all_reduce(after)->wait();
  EXPECT_EQ(after.to_vector<float>(), std::vector<float>(1000, static_cast<float>(group->size())));
}

}  // namespace
}  // namespace lockstep::distributed
