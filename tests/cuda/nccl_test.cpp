// The NCCL process group at world size 1 (one GPU cannot host two NCCL ranks): every collective runs through
// NCCL on the group's stream and is ordered after the default stream's work and before what follows it;
// tensors off the group's GPU are refused naming the devices. Without NCCL on the loader's path, making a
// group is a DistributedError saying so (checked on every machine).
#include <gtest/gtest.h>

#include <cstring>

#ifdef LOCKSTEP_WITH_NCCL

#include "distributed/nccl.h"
#include "distributed/single.h"
#include "distributed/sync_batch_norm.h"
#include "src/autograd/grad_mode.h"
#include "src/nn/norm.h"
#include "src/ops/elementwise.h"
#include "src/ops/reduce.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/support/expect_error.h"

namespace lockstep::distributed {
namespace {

using test::cpu_rand;
using test::expect_identical;
using test::kGpu;

TEST(NcclGroup, WithoutNcclMakingAGroupSaysWhy) {
  if (nccl_available()) GTEST_SKIP() << "NCCL loads on this machine";
  SingleProcessGroup bootstrap;
  test::expect_error<DistributedError>([&] { make_nccl_group(bootstrap, kGpu); },
                                       {"libnccl.so.2", nccl_unavailable_reason()});
}

// Where NCCL loads, a unique id needs no GPU (it names this host's bootstrap endpoint): two differ. A group
// on a machine without a GPU is a DeviceError saying so.
TEST(NcclGroup, UniqueIdsAreFreshAndAGroupNeedsAGpu) {
  if (!nccl_available()) GTEST_SKIP() << "no NCCL: " << nccl_unavailable_reason();
  const NcclUniqueId a = nccl_unique_id(), b = nccl_unique_id();
  EXPECT_NE(std::memcmp(a.bytes, b.bytes, sizeof a.bytes), 0);
  ensure_backends_registered();
  if (cuda::cuda_is_available()) return;
  SingleProcessGroup bootstrap;
  test::expect_error<DeviceError>([&] { make_nccl_group(bootstrap, kGpu); },
                                  {"NcclProcessGroup", "no CUDA device is available"});
}

// A world-size-1 group on GPU 0, or a skip naming what is missing.
#define LOCKSTEP_REQUIRE_NCCL() \
  LOCKSTEP_REQUIRE_CUDA();      \
  if (!nccl_available()) GTEST_SKIP() << "no NCCL: " << nccl_unavailable_reason()

TEST(NcclGroup, CollectivesAtWorldSizeOneKeepTheirValuesInStreamOrder) {
  LOCKSTEP_REQUIRE_NCCL();
  NoGradGuard no_grad;
  SingleProcessGroup bootstrap;
  const std::shared_ptr<NcclProcessGroup> group = make_nccl_group(bootstrap, kGpu);
  EXPECT_STREQ(group->backend(), "nccl");
  EXPECT_EQ(group->tensor_device(), kGpu);
  for (DType dtype : {DType::f32, DType::f64}) {
    const Tensor x = cpu_rand({1000}, dtype, 1);
    for (ReduceOp op : {ReduceOp::kSum, ReduceOp::kAvg, ReduceOp::kMax, ReduceOp::kMin}) {
      // Written by a kernel on the default stream just before: the collective must see it.
      const Tensor t = x.to(kGpu) * 2.0;
      group->all_reduce(t, op)->wait();
      expect_identical(t, x * 2.0, std::string("all_reduce ") + reduce_op_name(op));
    }
    const Tensor b = x.to(kGpu);
    group->broadcast(b, 0)->wait();
    expect_identical(b, x, "broadcast");
    // Out of place, 8M elements written by kernels just before and read back at once: without the events
    // ordering the group's stream against the default stream, NCCL would copy stale input or the copy back
    // would read the output before NCCL wrote it.
    const Tensor big = cpu_rand({8 << 20}, dtype, 2);
    const Tensor gathered = zeros({8 << 20}, dtype, kGpu);
    group->all_gather(big.to(kGpu) * 2.0 + 1.0, gathered)->wait();
    expect_identical(gathered, big * 2.0 + 1.0, "all_gather");
    const Tensor scattered = zeros({8 << 20}, dtype, kGpu);
    group->reduce_scatter(big.to(kGpu) * 3.0 - 1.0, scattered, ReduceOp::kAvg)->wait();
    expect_identical(scattered, big * 3.0 - 1.0, "reduce_scatter");
  }
  group->barrier()->wait();
  EXPECT_EQ(group->sequence(), 2u * (4 + 3) + 1);
}

// Synchronised batch norm over NCCL (its statistics and gradient sums on the GPU, the batch counts over the
// host group): at world size 1 the same numbers as plain batch norm on the CPU, forward and backward, running
// statistics included. Without a host group it is refused.
TEST(NcclGroup, SyncBatchNormOverNcclMatchesPlainBatchNorm) {
  LOCKSTEP_REQUIRE_NCCL();
  auto bootstrap = std::make_shared<SingleProcessGroup>();
  const std::shared_ptr<NcclProcessGroup> group = make_nccl_group(*bootstrap, kGpu);
  test::expect_error<ValueError>([&] { SyncBatchNorm refused(group); },
                                 {"SyncBatchNorm", "batch counts", "nccl"});
  nn::BatchNorm2d cpu(6), gpu(6);
  gpu.to(kGpu);
  EXPECT_EQ(convert_sync_batchnorm(gpu, group, BatchNormSync::kFast, bootstrap), 1);
  const Tensor x = cpu_rand({4, 6, 5, 5}, DType::f32, 3, -2.0, 3.0),
               w = cpu_rand({4, 6, 5, 5}, DType::f32, 4);
  Tensor xc = x.clone(), xg = x.to(kGpu).detach();
  xc.requires_grad_(true);
  xg.requires_grad_(true);
  const Tensor yc = cpu(xc), yg = gpu(xg);
  sum(yc * w).backward();
  sum(yg * w.to(kGpu)).backward();
  test::expect_close(yg, yc, 1e-5, "output");
  test::expect_close(xg.grad(), xc.grad(), 1e-5, "input gradient");
  test::expect_close(gpu.weight().grad(), cpu.weight().grad(), 1e-5, "weight gradient");
  test::expect_close(gpu.running_var(), cpu.running_var(), 1e-6, "running variance");
}

TEST(NcclGroup, RefusesTensorsOffItsGpuAndIntegerAverages) {
  LOCKSTEP_REQUIRE_NCCL();
  SingleProcessGroup bootstrap;
  const std::shared_ptr<NcclProcessGroup> group = make_nccl_group(bootstrap, kGpu);
  test::expect_error<DeviceError>([&] { group->all_reduce(zeros({4})); }, {"all_reduce", "cuda:0", "cpu"});
  test::expect_error<DistributedError>(
      [&] { group->all_reduce(zeros({4}, DType::i64, kGpu), ReduceOp::kAvg)->wait(); }, {"i64 averages"});
}

}  // namespace
}  // namespace lockstep::distributed

#endif  // LOCKSTEP_WITH_NCCL
