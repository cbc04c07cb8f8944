// A real Slurm cluster on this machine (tests/slurm/cluster.sh: one node, or two in network namespaces) runs
// launch/slurm's sbatch templates: `srun --mpi=pmix lockstep train` as one MPI job of two ranks with one
// voice, with OpenMP threads from --cpus-per-task; and a job whose ranks get SIGUSR1 or SIGTERM mid-run
// stops with a checkpoint and exit code 3, is requeued by its script, resumes from that checkpoint, and ends
// with the parameters of an uninterrupted run, bit for bit; a job one of whose tasks dies at start-up ends,
// failed, instead of leaving the other waiting in MPI_Init.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "tests/support/command.h"
#include "tests/support/fashion_mnist.h"
#include "tests/support/temp_dir.h"

namespace lockstep::test {
namespace {

namespace fs = std::filesystem;

// Hard limits (the test ends what outlives them): bringing a cluster up or down, and one job from
// submission to its end.
constexpr int kClusterLimitS = 60;
constexpr int kJobLimitS = 120;

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The "Key=value" fields of one line of `scontrol show job -o` (whitespace-separated words; std::regex is
// avoided: GCC 12 warns falsely inside it in the sanitizer build).
std::map<std::string, std::string> fields_of(const std::string& line) {
  std::map<std::string, std::string> out;
  std::istringstream words(line);
  for (std::string word; words >> word;) {
    const std::size_t eq = word.find('=');
    if (eq != std::string::npos && eq > 0) out[word.substr(0, eq)] = word.substr(eq + 1);
  }
  return out;
}

bool is_final_state(const std::string& state) {
  static const std::set<std::string> kFinal = {"COMPLETED", "FAILED",    "CANCELLED",
                                               "TIMEOUT",   "NODE_FAIL", "PREEMPTED",
                                               "BOOT_FAIL", "DEADLINE",  "OUT_OF_MEMORY"};
  return kFinal.count(state) != 0;
}

// Whether this process may run a cluster at all (its daemons run as root), and make network namespaces.
std::string root_unavailable() {
  return ::geteuid() == 0 ? "" : "needs root to run slurmctld, slurmd and munged";
}
std::string netns_unavailable() {
  if (std::system("ip netns list >/dev/null 2>&1") != 0) return "`ip netns` is unavailable";
  return "";
}

// A finished (or abandoned) job: its scontrol fields and log.
struct JobEnd {
  std::string id;
  std::map<std::string, std::string> fields;  // JobState, ExitCode ("status:signal"), NodeList, NumNodes...
  std::string log;
  double seconds = 0.0;  // from submission
  // One field, "" when scontrol did not show it.
  std::string field(const std::string& name) const {
    const auto it = fields.find(name);
    return it == fields.end() ? "" : it->second;
  }
  bool ended() const { return is_final_state(field("JobState")); }
};

// Owns a throwaway cluster in `dir`/cluster, started from an empty folder by the constructor and torn down
// by the destructor (scancel, then the daemons by their pid files), also when a test fails. Not thread-safe.
class Cluster {
 public:
  // `kind` is "up1" (one node) or "up2" (two nodes in network namespaces).
  Cluster(const TempDir& dir, const std::string& kind) : dir_(dir / "cluster") {
    up_ = run_command(script() + " " + kind + " " + quote(dir_.string()), kClusterLimitS, "TERM", 10);
    std::printf("[ CLUSTER  ] %s in %.2f s, exit %d\n", kind.c_str(), up_.seconds, up_.status);
  }
  ~Cluster() {
    const CommandResult down =
        run_command(script() + " down " + quote(dir_.string()), kClusterLimitS, "TERM", 10);
    std::printf("[ CLUSTER  ] down in %.2f s, exit %d\n", down.seconds, down.status);
    if (down.status != 0) ADD_FAILURE() << "cluster.sh down failed:\n" << down.output;
  }
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  bool up() const { return up_.status == 0; }
  std::string why_not_up() const { return "cluster.sh failed:\n" + up_.output + logs(); }

  // A client command (sbatch, scontrol, scancel...) against this cluster, in its namespace if it has one.
  CommandResult client(const std::string& command, int limit_s = 30) const {
    return run_command(script() + " run " + quote(dir_.string()) + " " + command, limit_s, "TERM", 10);
  }

  // Submits `sbatch_file` (a template of launch/slurm) with `sbatch_options`, passing `script_args` to the
  // script (config overrides), CONFIG=`config` and LOCKSTEP=`program` (the lockstep tool), its
  // log in `log`. Returns the job id, "" after a failure reported to GoogleTest.
  std::string submit(const fs::path& sbatch_file, const std::string& sbatch_options,
                     const std::string& script_args, const fs::path& program, const fs::path& config,
                     const fs::path& log) const {
    const CommandResult sent =
        client("env CONFIG=" + quote(config.string()) + " LOCKSTEP=" + quote(program.string()) +
               " sbatch --parsable --output=" + quote(log.string()) +
               " --chdir=" + quote(log.parent_path().string()) + " " + sbatch_options + " " +
               quote(sbatch_file.string()) + " " + script_args);
    // `sbatch --parsable` prints "id" or "id;cluster" first.
    std::istringstream words(sent.output);
    std::string id;
    words >> id;
    id = id.substr(0, id.find(';'));
    if (sent.status != 0 || id.empty() || id.find_first_not_of("0123456789") != std::string::npos) {
      ADD_FAILURE() << "sbatch failed (exit " << sent.status << "):\n" << sent.output << logs();
      return "";
    }
    return id;
  }

  // The job's current scontrol fields (empty when scontrol fails).
  std::map<std::string, std::string> job_fields(const std::string& id) const {
    const CommandResult shown = client("scontrol show job -o " + id);
    return shown.status == 0 ? fields_of(shown.output) : std::map<std::string, std::string>{};
  }

  // Polls until the job reaches a final state or `limit_s` after `since` has passed; then cancels it, so
  // that nothing outlives the test, and reports it.
  JobEnd wait_for_end(const std::string& id, const fs::path& log, std::chrono::steady_clock::time_point since,
                      int limit_s = kJobLimitS) const {
    JobEnd end;
    end.id = id;
    const auto deadline = since + std::chrono::seconds(limit_s);
    while (true) {
      end.fields = job_fields(id);
      if (end.ended() || std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    end.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
    end.log = read_text(log);
    const std::string state = end.field("JobState");
    std::printf("[   JOB    ] %s %s, exit code %s, after %.2f s\n", id.c_str(), state.c_str(),
                end.field("ExitCode").c_str(), end.seconds);
    if (!end.ended()) {
      ADD_FAILURE() << "job " << id << " still " << state << " after " << limit_s << " s; cancelling it\n"
                    << end.log << logs();
      client("scancel --full " + id);
    }
    return end;
  }

  // The last lines of the daemons' logs, for failure messages.
  std::string logs() const {
    std::string out;
    std::error_code ignored;
    for (const auto& entry : fs::recursive_directory_iterator(dir_, ignored)) {
      const fs::path& path = entry.path();
      if (path.extension() != ".log" && path.filename() != "daemons.out") continue;
      const std::vector<std::string> lines = lines_of(read_text(path));
      out += "\n--- " + path.string() + " (last lines)\n";
      for (std::size_t i = lines.size() > 25 ? lines.size() - 25 : 0; i < lines.size(); ++i)
        out += lines[i] + "\n";
    }
    return out;
  }

 private:
  static std::string script() {
    return "bash " + quote((fs::path(LOCKSTEP_SOURCE_DIR) / "tests" / "slurm" / "cluster.sh").string());
  }

  fs::path dir_;
  CommandResult up_;
};

fs::path template_file(const std::string& name) {
  return fs::path(LOCKSTEP_SOURCE_DIR) / "launch" / "slurm" / name;
}

// A config for an MLP with hidden layers `hidden` (a TOML array) on the real Fashion-MNIST, written to
// `dir`/tiny.toml and writing to `output`: one epoch of batch 32 per rank, cut at `max_steps` steps (0:
// none), a checkpoint every `every_steps` steps (0: at the end), none of them pruned. Returns its path.
fs::path write_config(const fs::path& dir, const fs::path& output, int max_steps,
                      const std::string& hidden = "[64]", int every_steps = 0) {
  fs::create_directories(dir);
  const fs::path config = dir / "tiny.toml";
  std::ofstream(config) << "task = \"classifier\"\n"
                           "[run]\nseed = 3\nepochs = 1\nmax_steps = "
                        << max_steps << "\noutput = \"" << output.string()
                        << "\"\n"
                           "[data]\npath = \""
                        << fashion_mnist_h5().string()
                        << "\"\nbatch_size = 32\n"
                           "[model]\nname = \"mlp\"\nhidden = "
                        << hidden
                        << "\n"
                           "[optimizer]\nname = \"sgd\"\nlr = 0.05\nmomentum = 0.9\n"
                           "[checkpoint]\nevery_steps = "
                        << every_steps << "\nkeep_last = 100\n";
  return config;
}

// Waits until `text` appears `times` times in `log` (at most kJobLimitS / 2 from `since`); whether it did.
bool wait_for_log(const fs::path& log, const std::string& text, std::size_t times,
                  std::chrono::steady_clock::time_point since) {
  while (count(read_text(log), text) < times) {
    if (std::chrono::steady_clock::now() > since + std::chrono::seconds(kJobLimitS / 2)) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return true;
}

// What a finished two-rank training job must show: it completed with exit 0, wrote its model after
// `steps` steps (a config override given on sbatch's command line), and rank 0 spoke for the job once (the
// other rank printed nothing), with `threads` OpenMP threads per rank (--cpus-per-task).
void expect_trained_with_one_voice(const JobEnd& job, const fs::path& run_dir, int steps, int threads) {
  EXPECT_EQ(job.field("JobState"), "COMPLETED") << job.log;
  EXPECT_EQ(job.field("ExitCode"), "0:0") << job.log;
  EXPECT_EQ(job.field("Restarts"), "0") << job.log;
  EXPECT_TRUE(fs::exists(run_dir / "model.h5")) << job.log;
  // srun --mpi=pmix joined the two tasks into one MPI world, and OMP_NUM_THREADS reached the trainer.
  const std::string job_line = "job: 2 ranks (mpi), batch 32 per rank = 64 global, " +
                               std::to_string(threads) +
                               (threads == 1 ? " thread per rank" : " threads per rank");
  EXPECT_EQ(count(job.log, job_line), 1u) << job.log;
  EXPECT_EQ(count(job.log, "job: "), 1u) << job.log;
  EXPECT_EQ(count(job.log, "model mlp"), 1u) << job.log;
  EXPECT_EQ(count(job.log, "done: "), 1u) << job.log;
  EXPECT_NE(job.log.find(", " + std::to_string(steps) + " steps, "), std::string::npos) << job.log;
  EXPECT_NE(job.log.find("lockstep.sbatch: job " + job.id + " run 1: 2 tasks on " + job.field("NumNodes") +
                         " node(s) " + job.field("NodeList") + ", " + std::to_string(threads) +
                         " thread(s) per task"),
            std::string::npos)
      << job.log;
  EXPECT_NE(job.log.find("lockstep.sbatch: srun exited with status 0"), std::string::npos) << job.log;
  std::set<std::string> seen;
  for (const std::string& line : lines_of(job.log)) {
    EXPECT_TRUE(seen.insert(line).second) << "printed twice: " << line << "\n" << job.log;
  }
}

TEST(Slurm, SingleNodeJobTrainsAsTwoRanksWithOneVoice) {
  if (const std::string why = root_unavailable(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  const fs::path config = write_config(dir.path(), dir / "run", 1000);
  Cluster cluster(dir, "up1");
  ASSERT_TRUE(cluster.up()) << cluster.why_not_up();

  const auto t0 = std::chrono::steady_clock::now();
  const fs::path log = dir / "job.out";
  const std::string id = cluster.submit(template_file("single_node.sbatch"), "--cpus-per-task=1",
                                        "run.max_steps=20", LOCKSTEP_TOOL, config, log);
  ASSERT_FALSE(id.empty());
  const JobEnd job = cluster.wait_for_end(id, log, t0);
  ASSERT_TRUE(job.ended());
  EXPECT_EQ(job.field("NumNodes"), "1") << job.log;
  expect_trained_with_one_voice(job, dir / "run", 20, 1);
}

TEST(Slurm, TwoNodeJobInNamespacesTrainsAsOneRankPerNode) {
  if (const std::string why = root_unavailable(); !why.empty()) GTEST_SKIP() << why;
  if (const std::string why = netns_unavailable(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  const fs::path config = write_config(dir.path(), dir / "run", 1000);
  Cluster cluster(dir, "up2");
  ASSERT_TRUE(cluster.up()) << cluster.why_not_up();

  const auto t0 = std::chrono::steady_clock::now();
  const fs::path log = dir / "job.out";
  // One CPU of each node's two for its one rank: one OpenMP thread each (the trainer's own default would be
  // the node's two CPUs).
  const std::string id = cluster.submit(template_file("multi_node.sbatch"), "--cpus-per-task=1",
                                        "run.max_steps=20", LOCKSTEP_TOOL, config, log);
  ASSERT_FALSE(id.empty());
  const JobEnd job = cluster.wait_for_end(id, log, t0);
  ASSERT_TRUE(job.ended());
  // One task on each node (the template's --ntasks-per-node=1 over --nodes=2).
  EXPECT_EQ(job.field("NumNodes"), "2") << job.log;
  EXPECT_EQ(job.field("NodeList"), "node[1-2]") << job.log;
  expect_trained_with_one_voice(job, dir / "run", 20, 1);
}

TEST(Slurm, ARankKilledAtStartUpEndsTheStepInsteadOfLeavingTheOtherWaitingInMpiInit) {
  // Task 0 dies by SIGSEGV before it reaches MPI_Init (as a rank once did inside MPI_Init in CI); task 1
  // starts the trainer normally and waits in MPI_Init for a peer that never comes. The template's
  // `srun --wait` must end the step (and the job, failed, not requeued) instead of leaving task 1 there.
  if (const std::string why = root_unavailable(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  const fs::path config = write_config(dir.path(), dir / "run", 20);
  const fs::path wrapper = dir / "crash_task0.sh";
  std::ofstream(wrapper) << "#!/bin/sh\nif [ \"$SLURM_PROCID\" = 0 ]; then kill -SEGV $$; fi\nexec "
                         << quote(LOCKSTEP_TOOL) << " \"$@\"\n";
  fs::permissions(wrapper, fs::perms::owner_all, fs::perm_options::add);
  Cluster cluster(dir, "up1");
  ASSERT_TRUE(cluster.up()) << cluster.why_not_up();

  const auto t0 = std::chrono::steady_clock::now();
  const fs::path log = dir / "job.out";
  const std::string id =
      cluster.submit(template_file("single_node.sbatch"), "--cpus-per-task=1", "", wrapper, config, log);
  ASSERT_FALSE(id.empty());
  const JobEnd job = cluster.wait_for_end(id, log, t0);
  ASSERT_TRUE(job.ended());
  EXPECT_EQ(job.field("JobState"), "FAILED") << job.log;
  EXPECT_EQ(job.field("Restarts"), "0") << job.log;
  EXPECT_NE(job.log.find("lockstep.sbatch: srun exited with status "), std::string::npos) << job.log;
  EXPECT_EQ(job.log.find("lockstep.sbatch: srun exited with status 0"), std::string::npos) << job.log;
  EXPECT_EQ(job.log.find("requeueing"), std::string::npos) << job.log;
  EXPECT_FALSE(fs::exists(dir / "run" / "model.h5")) << job.log;
}

// The stop-and-resume runs: an MLP big enough, and enough steps (7-8 s for kStopSteps steps on two idle
// cores, 5-6 s of them after the first periodic checkpoint), that a signal sent once that checkpoint shows
// in the log lands mid-run, with a wide margin for scancel's latency on a busy machine. (300 steps, ~2 s
// after the checkpoint once all-reduces went through shared memory, once ended before the signal in CI.)
constexpr int kStopSteps = 900;
constexpr int kStopEvery = 150;
constexpr const char* kStopHidden = "[1024, 1024]";

// "step_000000050": the folder of checkpoint `step` (io::CheckpointStore's names).
std::string step_dir(long long step) {
  char text[32];
  std::snprintf(text, sizeof text, "step_%09lld", step);
  return text;
}

// The steps of the checkpoints (folders step_N) in `dir`, in order.
std::vector<long long> checkpoint_steps(const fs::path& dir) {
  std::vector<long long> steps;
  std::error_code ignored;
  for (const auto& entry : fs::directory_iterator(dir, ignored)) {
    const std::string name = entry.path().filename().string();
    if (name.size() == 14 && name.rfind("step_", 0) == 0 &&
        name.find_first_not_of("0123456789", 5) == std::string::npos) {
      steps.push_back(std::stoll(name.substr(5)));
    }
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

// `h5diff A B OBJECT OBJECT`: exit 0 when the object (a group with everything below it) is the same bit for
// bit in both files, 1 when it differs, 2 on an error (a file or object missing).
CommandResult h5diff(const fs::path& a, const fs::path& b, const std::string& object) {
  return run_command(
      "h5diff " + quote(a.string()) + " " + quote(b.string()) + " " + quote(object) + " " + quote(object),
      60);
}

// `needles` occur in `text` in this order; reports the first one missing.
void expect_in_order(const std::string& text, const std::vector<std::string>& needles) {
  std::size_t at = 0;
  for (const std::string& needle : needles) {
    const std::size_t found = text.find(needle, at);
    if (found == std::string::npos) {
      ADD_FAILURE() << "'" << needle << "' missing after offset " << at << ":\n" << text;
      return;
    }
    at = found + needle.size();
  }
}

// A stop and resume on a fresh cluster of `kind` ("up1" or "up2") with the template `sbatch_name`: job X
// trains kStopSteps steps of two ranks with one OpenMP thread each and a checkpoint every kStopEvery steps;
// once its first periodic checkpoint shows, `scancel --signal=SIGNAL` (USR1: what --signal=USR1@120 sends
// before the time limit; TERM: preemption) goes to its ranks. They stop at the next step with a checkpoint
// and exit code 3; the template requeues the job, whose second run resumes from that checkpoint and
// completes. Job R, submitted right after X with the same options and config (but its own output), trains
// uninterrupted; both are --exclusive, so R runs alone while X waits to run again, and never beside it. X's
// final parameters and optimizer state are R's, bit for bit.
void stop_requeue_resume(const std::string& kind, const std::string& sbatch_name, const std::string& signal) {
  TempDir dir;
  const fs::path stopped = dir / "stopped";
  const fs::path reference = dir / "reference";
  const fs::path config_x = write_config(stopped, stopped / "run", kStopSteps, kStopHidden, kStopEvery);
  const fs::path config_r = write_config(reference, reference / "run", kStopSteps, kStopHidden, kStopEvery);
  const fs::path checkpoints_x = stopped / "run" / "checkpoints";
  const fs::path checkpoints_r = reference / "run" / "checkpoints";
  Cluster cluster(dir, kind);
  ASSERT_TRUE(cluster.up()) << cluster.why_not_up();

  const auto t0 = std::chrono::steady_clock::now();
  const std::string options = "--cpus-per-task=1 --exclusive";
  const fs::path log_x = stopped / "job.out";
  const fs::path log_r = reference / "job.out";
  const std::string x =
      cluster.submit(template_file(sbatch_name), options, "", LOCKSTEP_TOOL, config_x, log_x);
  ASSERT_FALSE(x.empty());
  const std::string r =
      cluster.submit(template_file(sbatch_name), options, "", LOCKSTEP_TOOL, config_r, log_r);
  ASSERT_FALSE(r.empty());
  // Mid-run: saving a checkpoint is collective, so every rank is past installing its signal handlers (a
  // signal before that would end the rank).
  const std::string first = "checkpoint " + (checkpoints_x / step_dir(kStopEvery)).string() + " (";
  ASSERT_TRUE(wait_for_log(log_x, first, 1, t0)) << "job " << x << " did not save its first checkpoint:\n"
                                                 << read_text(log_x) << cluster.logs();
  const CommandResult signalled = cluster.client("scancel --signal=" + signal + " " + x);
  ASSERT_EQ(signalled.status, 0) << signalled.output;
  std::printf("[  SIGNAL  ] %s to job %s after %.2f s\n", signal.c_str(), x.c_str(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());

  // R usually ends first: it runs while X waits to run again.
  const JobEnd job_r = cluster.wait_for_end(r, log_r, t0);
  const JobEnd job_x = cluster.wait_for_end(x, log_x, t0);
  ASSERT_TRUE(job_x.ended());
  ASSERT_TRUE(job_r.ended());

  // X stopped after step S, between its first checkpoint and its last step, and said so once (rank 0).
  const std::string name = "SIG" + signal;
  const std::string stop_text = "stopped by " + name + ": checkpoint ";
  const std::size_t stop_at = job_x.log.find(stop_text);
  ASSERT_NE(stop_at, std::string::npos) << "job " << x << " did not stop on " << name
                                        << " (if it trained to the end first, the run is too short "
                                        << "for this machine):\n"
                                        << job_x.log;
  const std::size_t stop_end = job_x.log.find(" saved;", stop_at);
  ASSERT_NE(stop_end, std::string::npos) << job_x.log;
  const fs::path stop_dir =
      job_x.log.substr(stop_at + stop_text.size(), stop_end - stop_at - stop_text.size());
  ASSERT_EQ(stop_dir.parent_path(), checkpoints_x) << job_x.log;
  const std::string leaf = stop_dir.filename().string();
  ASSERT_TRUE(leaf.size() == 14 && leaf.rfind("step_", 0) == 0 &&
              leaf.find_first_not_of("0123456789", 5) == std::string::npos)
      << "expected a checkpoint folder step_NNNNNNNNN, but got " << stop_dir << "\n"
      << job_x.log;
  const long long stop_step = std::stoll(leaf.substr(5));
  EXPECT_GT(stop_step, kStopEvery) << job_x.log;
  EXPECT_LT(stop_step, kStopSteps) << job_x.log;
  for (const char* file : {"model.h5", "optimizer.h5", "trainer.h5", "manifest.json"}) {
    EXPECT_TRUE(fs::exists(stop_dir / file)) << stop_dir / file << " missing\n" << job_x.log;
  }
  const std::string s = std::to_string(stop_step);
  // In order, in one log: run 1 to its stop, the requeue, run 2 resuming there and finishing.
  expect_in_order(job_x.log,
                  {
                      "lockstep.sbatch: job " + x + " run 1: 2 tasks",
                      first,
                      stop_text + stop_dir.string() + " saved; ",
                      "Exit code 3\n",
                      "lockstep.sbatch: srun exited with status 3\n",
                      "lockstep.sbatch: the run stopped after a checkpoint; requeueing job " + x + "\n",
                      "lockstep.sbatch: job " + x + " run 2: 2 tasks",
                      "resumed from " + stop_dir.string() + ": step " + s + ", epoch 1 at step " + s + "/",
                      "done: ",
                      ", " + std::to_string(kStopSteps) + " steps, ",
                      "lockstep.sbatch: srun exited with status 0\n",
                  });
  // The ranks exited with 3 themselves (none was killed by the signal), and the batch shell, whose traps
  // would have said so, got no signal.
  EXPECT_GE(count(job_x.log, "Exited with exit code 3"), 1u) << job_x.log;
  if (kind == "up1") {
    EXPECT_NE(job_x.log.find("tasks 0-1: Exited with exit code 3"), std::string::npos) << job_x.log;
  }
  EXPECT_EQ(job_x.log.find("User defined signal"), std::string::npos) << job_x.log;
  EXPECT_EQ(job_x.log.find(": Terminated"), std::string::npos) << job_x.log;
  EXPECT_EQ(job_x.log.find("batch shell got"), std::string::npos) << job_x.log;
  EXPECT_EQ(job_x.field("NumNodes"), kind == "up2" ? "2" : "1") << job_x.log;
  EXPECT_EQ(job_x.field("JobState"), "COMPLETED") << job_x.log;
  EXPECT_EQ(job_x.field("ExitCode"), "0:0") << job_x.log;
  EXPECT_EQ(job_x.field("Restarts"), "1") << job_x.log;
  EXPECT_EQ(count(job_x.log, "requeueing"), 1u) << job_x.log;
  // One voice per run: rank 0's lines only.
  const std::string job_line = "job: 2 ranks (mpi), batch 32 per rank = 64 global, 1 thread per rank\n";
  EXPECT_EQ(count(job_x.log, job_line), 2u) << job_x.log;
  EXPECT_EQ(count(job_x.log, "job: "), 2u) << job_x.log;
  EXPECT_EQ(count(job_x.log, "stopped by "), 1u) << job_x.log;
  EXPECT_EQ(count(job_x.log, "resumed from "), 1u) << job_x.log;
  EXPECT_EQ(count(job_x.log, "done: "), 1u) << job_x.log;

  // R: one uninterrupted run.
  EXPECT_EQ(job_r.field("JobState"), "COMPLETED") << job_r.log;
  EXPECT_EQ(job_r.field("ExitCode"), "0:0") << job_r.log;
  EXPECT_EQ(job_r.field("Restarts"), "0") << job_r.log;
  EXPECT_EQ(count(job_r.log, job_line), 1u) << job_r.log;
  EXPECT_EQ(count(job_r.log, "stopped by "), 0u) << job_r.log;
  EXPECT_EQ(count(job_r.log, "resumed from "), 0u) << job_r.log;
  EXPECT_EQ(count(job_r.log, "done: "), 1u) << job_r.log;
  EXPECT_NE(job_r.log.find(", " + std::to_string(kStopSteps) + " steps, "), std::string::npos) << job_r.log;

  // Checkpoints every kStopEvery steps and at the end; X also at its stop (none pruned: keep_last).
  std::vector<long long> expected_r;
  for (long long step = kStopEvery; step <= kStopSteps; step += kStopEvery) expected_r.push_back(step);
  std::vector<long long> expected_x = expected_r;
  if (stop_step % kStopEvery != 0) {
    expected_x.insert(std::lower_bound(expected_x.begin(), expected_x.end(), stop_step), stop_step);
  }
  EXPECT_EQ(checkpoint_steps(checkpoints_x), expected_x) << job_x.log;
  EXPECT_EQ(checkpoint_steps(checkpoints_r), expected_r) << job_r.log;

  // The resumed run ends where the uninterrupted one does, bit for bit: the final checkpoint's model and
  // optimizer state, and the model file.
  const fs::path last_x = checkpoints_x / step_dir(kStopSteps);
  const fs::path last_r = checkpoints_r / step_dir(kStopSteps);
  for (const auto& [a, b, object] : std::vector<std::tuple<fs::path, fs::path, std::string>>{
           {last_x / "model.h5", last_r / "model.h5", "/model"},
           {last_x / "optimizer.h5", last_r / "optimizer.h5", "/optimizer"},
           {stopped / "run" / "model.h5", reference / "run" / "model.h5", "/model"},
       }) {
    const CommandResult diff = h5diff(a, b, object);
    EXPECT_EQ(diff.status, 0) << "expected " << object << " of " << a << " and " << b
                              << " to be equal bit for bit, but h5diff says:\n"
                              << diff.output;
  }
  // h5diff does see a difference: the model at the stop is not the final one.
  const CommandResult changed = h5diff(stop_dir / "model.h5", last_x / "model.h5", "/model");
  EXPECT_EQ(changed.status, 1) << "expected the model at step " << s << " to differ from the final one:\n"
                               << changed.output;
}

TEST(Slurm, Usr1MidRunStopsWithACheckpointThenTheRequeuedJobResumesAndEndsAsAnUninterruptedRun) {
  if (const std::string why = root_unavailable(); !why.empty()) GTEST_SKIP() << why;
  stop_requeue_resume("up1", "single_node.sbatch", "USR1");
}

TEST(Slurm, TwoNodeJobStoppedByTermMidRunResumesAfterItsRequeueAndEndsAsAnUninterruptedRun) {
  if (const std::string why = root_unavailable(); !why.empty()) GTEST_SKIP() << why;
  if (const std::string why = netns_unavailable(); !why.empty()) GTEST_SKIP() << why;
  stop_requeue_resume("up2", "multi_node.sbatch", "TERM");
}

}  // namespace
}  // namespace lockstep::test
