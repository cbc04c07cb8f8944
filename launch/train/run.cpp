// Run set-up and the sample audit log.
#include "launch/train/run.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "distributed/init.h"
#include "distributed/mpi.h"
#ifdef LOCKSTEP_WITH_NCCL
#include "distributed/nccl.h"
#endif
#include "distributed/sync_batch_norm.h"
#include "src/core/cuda_available.h"
#include "src/core/error.h"
#include "src/core/rng.h"
#include "src/core/threading.h"
#include "src/tensor/factories.h"

namespace lockstep::launch {

namespace {

constexpr double kMiB = 1024.0 * 1024.0;

// Empty when a file can be created in the folder `dir`, else why not: tried for real, since permission bits
// do not stop root and a read-only file system stops everyone.
std::string cannot_write_in(const std::filesystem::path& dir) {
  const std::filesystem::path probe = dir / str_cat(".lockstep_write_probe.", ::getpid());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return std::strerror(errno);
  ::close(fd);
  ::unlink(probe.c_str());
  return "";
}

// The threads per rank for run.threads = 0: OMP_NUM_THREADS when set, else this node's cores shared out
// over the ranks on it (at least 1).
int default_threads(const distributed::ProcessGroup& group) {
  if (std::getenv("OMP_NUM_THREADS") != nullptr) return num_threads();
  int local_ranks = 1;
  if (const auto* mpi = dynamic_cast<const distributed::MpiProcessGroup*>(&group))
    local_ranks = mpi->local_size();
  return std::max(1, num_threads() / std::max(1, local_ranks));
}

// What keeps this rank from training on CUDA ("" when nothing does): so far the classifier, GAN and PixelCNN
// tasks train there (several ranks over NCCL, one GPU each), not in deterministic mode.
std::string cuda_obstacle(const launch::Settings& settings, const RunSettings& run) {
  if (!cuda_available()) return cuda_unavailable_why();
  if (settings.task != "classifier" && settings.task != "gan" && settings.task != "pixelcnn")
    return str_cat(
        "the ", settings.task,
        " task trains on the CPU only so far (CUDA covers the classifier, GAN and PixelCNN tasks)");
  if (run.deterministic()) return "the deterministic mode runs on the CPU only so far";
  if (run.world() == 1) return "";
#ifdef LOCKSTEP_WITH_NCCL
  if (!distributed::nccl_available())
    return str_cat("this job has ", run.world(), " ranks, and ", distributed::nccl_unavailable_reason());
#else
  return str_cat("this job has ", run.world(), " ranks, and this binary was built without NCCL");
#endif
  const auto* mpi = dynamic_cast<const distributed::MpiProcessGroup*>(run.group.get());
  if (mpi != nullptr && mpi->local_size() > cuda_devices())
    return str_cat(mpi->local_size(), " ranks share this node's ", cuda_devices(),
                   " GPU(s): NCCL needs one GPU per rank");
  return "";
}

// run.device resolved: "cuda" is this rank's GPU (local rank mod the node's GPUs) or a ConfigError saying
// why it cannot be; "auto" is that GPU when nothing stands in the way, else the CPU. The ranks decide
// together (one all-reduce over the job's group): one rank that cannot use CUDA keeps every rank on the
// CPU ("auto") or fails the job ("cuda"), rather than some ranks joining an NCCL group the others never make.
Device resolve_device(const launch::Settings& settings, const RunSettings& run) {
  const std::string& wanted = settings.run.device;
  if (wanted == "cpu") return kCPU;
  const std::string obstacle = cuda_obstacle(settings, run);
  bool anyone = !obstacle.empty();
  if (run.world() > 1) {
    const Tensor flag = scalar_tensor(anyone ? 1.0 : 0.0, DType::f64);
    run.group->all_reduce(flag, distributed::ReduceOp::kMax)->wait();
    anyone = flag.item() > 0.0;
  }
  if (anyone) {
    if (wanted == "auto") return kCPU;
    settings.run.device_key.fail(str_cat(
        "cannot train on CUDA: ", obstacle.empty() ? "another rank cannot (its error says why)" : obstacle,
        ". Set run.device = \"cpu\" or \"auto\""));
  }
  int local_rank = 0;
  if (const auto* mpi = dynamic_cast<const distributed::MpiProcessGroup*>(run.group.get()))
    local_rank = mpi->local_rank();
  return Device{DeviceType::CUDA, local_rank % cuda_devices()};
}

}  // namespace

ResumeRequest ResumeRequest::parse(const std::string& text) {
  ResumeRequest r;
  if (text == "auto") {
    r.mode = Mode::kAuto;
  } else if (text == "none") {
    r.mode = Mode::kNone;
  } else if (text.empty()) {
    throw ValueError("--resume: expected auto, none or a checkpoint directory, but got an empty value");
  } else {
    r.mode = Mode::kPath;
    r.path = text;
  }
  return r;
}

std::shared_ptr<distributed::ProcessGroup> make_process_group(const launch::Settings& settings) {
  distributed::ProcessGroupOptions options;
  options.timeout = std::chrono::milliseconds(
      std::max<std::int64_t>(std::llround(settings.distributed.timeout_s * 1000.0), 1));
  return distributed::init_process_group(options);
}

RunSettings setup_run(const launch::Settings& settings) {
  return setup_run(settings, make_process_group(settings));
}

RunSettings setup_run(const launch::Settings& settings, std::shared_ptr<distributed::ProcessGroup> group) {
  LOCKSTEP_CHECK(group != nullptr, ValueError, "setup_run: expected a process group, but got null");
  RunSettings run;
  run.group = std::move(group);
  run.seed = settings.run.seed;
  run.threads = settings.run.threads;
  run.output = settings.run.output;
  run.epochs = settings.run.epochs;
  run.max_steps = settings.run.max_steps;
  run.reducer.bucket_bytes =
      std::max<std::int64_t>(static_cast<std::int64_t>(settings.distributed.bucket_mb * kMiB), 1);
  run.reducer.first_bucket_bytes = std::min(run.reducer.first_bucket_bytes, run.reducer.bucket_bytes);
  run.sync_batchnorm = settings.distributed.sync_batchnorm;
  run.micro_shards = settings.distributed.micro_shards;
  run.reducer.deterministic = run.deterministic();

  manual_seed(run.seed);
  if (run.threads == 0) run.threads = run.world() > 1 ? default_threads(*run.group) : 0;
  if (run.threads > 0) set_num_threads(run.threads);
  run.threads = num_threads();
  run.precision = settings.run.precision == "bf16" ? MatmulPrecision::kBf16 : MatmulPrecision::kF32;
  run.device = resolve_device(settings, run);
#ifdef LOCKSTEP_WITH_NCCL
  if (run.device.is_cuda() && run.world() > 1)
    run.device_group = distributed::make_nccl_group(*run.group, run.device, run.group->options());
#endif
  if (run.speaks()) {
    std::error_code error;
    std::filesystem::create_directories(run.output, error);
    if (error) {
      settings.output_key.fail(str_cat("cannot create the output folder '", run.output.string(),
                                       "': ", error.message()));
    }
    // Before any training: a read-only folder would otherwise fail at the first metrics line or checkpoint.
    if (const std::string why = cannot_write_in(run.output); !why.empty()) {
      settings.output_key.fail(
          str_cat("cannot write in the output folder '", run.output.string(), "': ", why));
    }
  }
  return run;
}

void sum_over_ranks(distributed::ProcessGroup& group, std::span<double> values) {
  if (group.size() == 1 || values.empty()) return;
  const Tensor t = from_vector(std::vector<double>(values.begin(), values.end()),
                               {static_cast<std::int64_t>(values.size())});
  group.all_reduce(t, distributed::ReduceOp::kSum)->wait();
  const std::vector<double> v = t.to_vector<double>();
  std::copy(v.begin(), v.end(), values.begin());
}

std::string describe_job(const RunSettings& run, std::int64_t per_rank_batch) {
  const int world = run.world();
  return str_cat("job: ", world, world == 1 ? " rank (" : " ranks (",
                 run.group ? run.group->backend() : "single", "), batch ", per_rank_batch,
                 " per rank = ", per_rank_batch * world, " global, ", run.threads,
                 run.threads == 1 ? " thread" : " threads", " per rank",
                 run.device.is_cpu() ? std::string() : str_cat(", on ", run.device.str()),
                 run.precision == MatmulPrecision::kF32
                     ? std::string()
                     : str_cat(", ", precision_name(run.precision), " convolutions and matrix products"),
                 run.deterministic() ? str_cat(", deterministic (", run.micro_shards, " micro-shards of ",
                                               per_rank_batch * world / run.micro_shards, ")")
                                     : std::string());
}

int synchronise_batch_norms(nn::Module& model, const RunSettings& run) {
  if (run.deterministic())
    return distributed::convert_sync_batchnorm(model, run.group, distributed::BatchNormSync::kDeterministic);
  // On GPUs the statistics travel over NCCL (the batch counts over MPI, for the check).
  return run.world() > 1 && run.sync_batchnorm
             ? distributed::convert_sync_batchnorm(model, run.gradient_group(),
                                                   distributed::BatchNormSync::kFast, run.group)
             : 0;
}

void split_random_streams(const RunSettings& run) {
  // Deterministic mode keeps one stream on every rank: its draws are made over the global batch.
  if (run.rank() == 0 || run.deterministic()) return;
  Generator& g = default_generator();
  g.set_state(mix64(run.seed ^ mix64(static_cast<std::uint64_t>(run.rank()))), g.offset());
}

SampleLog::SampleLog(bool on, const RunSettings& run) {
  if (!on) return;
  path_ = run.output / "samples" / str_cat("rank_", run.rank(), ".txt");
  std::filesystem::create_directories(path_.parent_path());
}

void SampleLog::write(std::int64_t step, const std::vector<std::int64_t>& indices) {
  if (path_.empty()) return;
  std::ofstream out(path_, std::ios::app);
  out << step;
  for (const std::int64_t i : indices) out << ' ' << i;
  out << '\n';
  if (!out.good())
    throw IoError(str_cat("sample log: cannot append to '", path_.string(), "'"), path_.string());
}

}  // namespace lockstep::launch
