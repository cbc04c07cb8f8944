// The NCCL process group: libnccl.so.2 loaded at run time, one communicator per group, collectives on the
// group's own non-blocking stream ordered against the default stream with CUDA events.
#include "distributed/nccl.h"

#include <cuda_runtime.h>
#include <dlfcn.h>
#include <nccl.h>

#include <chrono>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#include "src/backend/cuda/check.h"
#include "src/backend/cuda/device.h"
#include "src/core/error.h"
#include "src/core/strings.h"
#include "src/tensor/factories.h"

namespace lockstep::distributed {
namespace {

static_assert(sizeof(NcclUniqueId) == sizeof(ncclUniqueId), "NcclUniqueId must hold NCCL's unique id");

// The NCCL functions this group calls, from libnccl.so.2 (the header gives their types).
struct NcclApi {
  std::string error;  // why NCCL cannot be used ("" when it can)
  decltype(&ncclGetUniqueId) get_unique_id = nullptr;
  decltype(&ncclCommInitRank) comm_init_rank = nullptr;
  decltype(&ncclCommDestroy) comm_destroy = nullptr;
  decltype(&ncclCommAbort) comm_abort = nullptr;
  decltype(&ncclCommGetAsyncError) comm_get_async_error = nullptr;
  decltype(&ncclGetErrorString) error_string = nullptr;
  decltype(&ncclAllReduce) all_reduce = nullptr;
  decltype(&ncclBroadcast) broadcast = nullptr;
  decltype(&ncclAllGather) all_gather = nullptr;
  decltype(&ncclReduceScatter) reduce_scatter = nullptr;
};

const NcclApi& nccl_api() {
  static const NcclApi api = [] {
    NcclApi a;
    void* handle = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      a.error = str_cat("cannot load libnccl.so.2 (", dlerror(), "): put NCCL 2 on the loader's path");
      return a;
    }
    const auto load = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(handle, name));
      if (fn == nullptr && a.error.empty())
        a.error = str_cat("libnccl.so.2 lacks ", name, " (NCCL 2.10 or newer is needed)");
    };
    load(a.get_unique_id, "ncclGetUniqueId");
    load(a.comm_init_rank, "ncclCommInitRank");
    load(a.comm_destroy, "ncclCommDestroy");
    load(a.comm_abort, "ncclCommAbort");
    load(a.comm_get_async_error, "ncclCommGetAsyncError");
    load(a.error_string, "ncclGetErrorString");
    load(a.all_reduce, "ncclAllReduce");
    load(a.broadcast, "ncclBroadcast");
    load(a.all_gather, "ncclAllGather");
    load(a.reduce_scatter, "ncclReduceScatter");
    return a;
  }();
  return api;
}

const NcclApi& require_nccl(const char* where) {
  const NcclApi& api = nccl_api();
  if (!api.error.empty()) throw DistributedError(str_cat(where, ": ", api.error), 0, 1, where);
  return api;
}

ncclDataType_t nccl_dtype(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return ncclFloat32;
    case DType::f64:
      return ncclFloat64;
    case DType::i64:
      return ncclInt64;
    default:
      throw_unsupported_dtype("NcclProcessGroup", dtype);
  }
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return ncclSum;
    case ReduceOp::kAvg:
      return ncclAvg;
    case ReduceOp::kMax:
      return ncclMax;
    case ReduceOp::kMin:
      return ncclMin;
  }
  return ncclSum;
}

}  // namespace

bool nccl_available() { return nccl_api().error.empty(); }
std::string nccl_unavailable_reason() { return nccl_api().error; }

NcclUniqueId nccl_unique_id() {
  const NcclApi& api = require_nccl("nccl_unique_id");
  ncclUniqueId raw;
  const ncclResult_t r = api.get_unique_id(&raw);
  if (r != ncclSuccess)
    throw DistributedError(str_cat("ncclGetUniqueId: ", api.error_string(r)), 0, 1, "nccl_unique_id");
  NcclUniqueId id;
  std::memcpy(id.bytes, &raw, sizeof raw);
  return id;
}

// The group's CUDA resources, freed by its destructor (also when the group's constructor throws half way).
struct NcclProcessGroup::State {
  explicit State(Device d) : device(d) {}
  ~State() {
    try {
      cuda::DeviceGuard guard(device);
      if (scratch != nullptr) cudaFree(scratch);
      if (ready != nullptr) cudaEventDestroy(ready);
      if (stream != nullptr) cudaStreamDestroy(stream);
    } catch (...) {  // a destructor must not throw; the driver's state is the process's to clean up
    }
  }
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  Device device;
  const NcclApi* api = nullptr;
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;  // non-blocking: it runs beside the default stream
  cudaEvent_t ready = nullptr;    // the default stream's work before a collective
  float* scratch = nullptr;       // the barrier's one element
  bool failed = false;            // a collective raised: the communicator may be stuck, abort it at the end
};

NcclProcessGroup::NcclProcessGroup(int rank, int size, Device device, const NcclUniqueId& id,
                                   ProcessGroupOptions options)
    : ProcessGroup(rank, size, options, Execution::kInline),
      device_(device),
      state_(std::make_unique<State>(device)) {
  State& s = *state_;
  s.api = &require_nccl("NcclProcessGroup");
  cuda::require_device("NcclProcessGroup", device);
  cuda::DeviceGuard guard(device);
  LOCKSTEP_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
  LOCKSTEP_CUDA_CHECK(cudaEventCreateWithFlags(&s.ready, cudaEventDisableTiming));
  LOCKSTEP_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&s.scratch), sizeof(float)));
  ncclUniqueId raw;
  std::memcpy(&raw, id.bytes, sizeof raw);
  const ncclResult_t r = s.api->comm_init_rank(&s.comm, size, raw, rank);
  if (r != ncclSuccess) {
    s.comm = nullptr;
    throw DistributedError(
        str_cat(prefix(), "ncclCommInitRank on ", device.str(), ": ", s.api->error_string(r)), rank, size,
        "init");
  }
}

NcclProcessGroup::~NcclProcessGroup() {
  stop();
  State& s = *state_;
  if (s.comm == nullptr) return;
  try {
    cuda::DeviceGuard guard(device_);
    ncclResult_t async = ncclSuccess;
    s.api->comm_get_async_error(s.comm, &async);
    // After a failure (ours, a peer's, or an exception on its way to abort the job) the communicator may
    // wait forever for a peer: abort it rather than wait for its stream.
    if (s.failed || async != ncclSuccess || std::uncaught_exceptions() > 0) {
      s.api->comm_abort(s.comm);
    } else {
      cudaStreamSynchronize(s.stream);
      s.api->comm_destroy(s.comm);
    }
  } catch (...) {  // a destructor must not throw
  }
}

void NcclProcessGroup::run(const CollectiveCall& call, const void* input, void* output) {
  State& s = *state_;
  const NcclApi& api = *s.api;
  const auto fail = [&](const std::string& why) {
    s.failed = true;
    throw DistributedError(str_cat(prefix(), call.describe(), " over NCCL: ", why), rank(), size(),
                           collective_name(call.kind));
  };
  if (call.op == ReduceOp::kAvg && call.dtype == DType::i64) fail("i64 averages are not supported by NCCL");
  // An earlier collective's asynchronous failure (a peer gone) ends the job here rather than in a hang.
  ncclResult_t async = ncclSuccess;
  api.comm_get_async_error(s.comm, &async);
  if (async != ncclSuccess && async != ncclInProgress)
    fail(str_cat("an earlier collective failed: ", api.error_string(async)));
  cuda::DeviceGuard guard(device_);
  LOCKSTEP_CUDA_CHECK(cudaEventRecord(s.ready, nullptr));
  LOCKSTEP_CUDA_CHECK(cudaStreamWaitEvent(s.stream, s.ready, 0));
  const auto count = static_cast<std::size_t>(call.count);
  const ncclDataType_t dtype = nccl_dtype(call.dtype);
  ncclResult_t r = ncclSuccess;
  switch (call.kind) {
    case Collective::kAllReduce:
      r = api.all_reduce(input, output, count, dtype, nccl_op(call.op), s.comm, s.stream);
      break;
    case Collective::kBroadcast:
      r = api.broadcast(input, output, count, dtype, call.root, s.comm, s.stream);
      break;
    case Collective::kAllGather:
      r = api.all_gather(input, output, count, dtype, s.comm, s.stream);
      break;
    case Collective::kReduceScatter:
      r = api.reduce_scatter(input, output, count, dtype, nccl_op(call.op), s.comm, s.stream);
      break;
    case Collective::kBarrier:
      r = api.all_reduce(s.scratch, s.scratch, 1, ncclFloat32, ncclSum, s.comm, s.stream);
      break;
  }
  if (r != ncclSuccess) fail(api.error_string(r));
  if (call.kind != Collective::kBarrier) return;
  // A barrier holds the host until every rank's GPU got there, within the group's timeout, watching for
  // NCCL's asynchronous errors (a peer gone) meanwhile.
  const auto deadline = std::chrono::steady_clock::now() + options().timeout;
  for (;;) {
    const cudaError_t q = cudaStreamQuery(s.stream);
    if (q == cudaSuccess) return;
    if (q != cudaErrorNotReady) {
      s.failed = true;
      cuda::check_cuda(q, "cudaStreamQuery (NCCL barrier)");
    }
    api.comm_get_async_error(s.comm, &async);
    if (async != ncclSuccess && async != ncclInProgress) fail(api.error_string(async));
    if (std::chrono::steady_clock::now() > deadline) {
      fail(str_cat("timed out after ", options().timeout.count(), " ms waiting for the other ranks"));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

// The collective just issued ends with an event on the group's stream; waiting for its Work makes the default
// stream wait for that event. Until then the default stream runs on (a bucket's all-reduce overlaps the rest
// of backward); whoever uses a collective's result waits for its Work first, as on every backend.
std::function<void()> NcclProcessGroup::on_wait() {
  State& s = *state_;
  cuda::DeviceGuard guard(device_);
  cudaEvent_t raw = nullptr;
  LOCKSTEP_CUDA_CHECK(cudaEventCreateWithFlags(&raw, cudaEventDisableTiming));
  std::shared_ptr<std::remove_pointer_t<cudaEvent_t>> done(raw, [](cudaEvent_t e) { cudaEventDestroy(e); });
  LOCKSTEP_CUDA_CHECK(cudaEventRecord(done.get(), s.stream));
  const Device device = device_;
  return [done, device] {
    cuda::DeviceGuard guard(device);
    LOCKSTEP_CUDA_CHECK(cudaStreamWaitEvent(nullptr, done.get(), 0));
  };
}

std::shared_ptr<NcclProcessGroup> make_nccl_group(ProcessGroup& bootstrap, Device device,
                                                  ProcessGroupOptions options) {
  constexpr std::int64_t kWords = sizeof(NcclUniqueId) / sizeof(std::int64_t);
  static_assert(sizeof(NcclUniqueId) % sizeof(std::int64_t) == 0, "the unique id travels as i64 words");
  NcclUniqueId id;
  if (bootstrap.rank() == 0) id = nccl_unique_id();
  const Tensor words = zeros({kWords}, DType::i64);
  std::memcpy(words.data(), id.bytes, sizeof id.bytes);
  bootstrap.broadcast(words, 0)->wait();
  std::memcpy(id.bytes, words.data(), sizeof id.bytes);
  return std::make_shared<NcclProcessGroup>(bootstrap.rank(), bootstrap.size(), device, id, options);
}

}  // namespace lockstep::distributed
