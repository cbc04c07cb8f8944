// A real Slurm cluster on this machine (tests/slurm/cluster.sh: one node, or two in network namespaces) runs
// launch/slurm's sbatch templates: `srun --mpi=pmix lockstep train` as one MPI job of two ranks with one
// voice, with OpenMP threads from --cpus-per-task, and a SIGUSR1 sent mid-run reaches the ranks.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
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
  // script (config overrides), CONFIG=`config` and LOCKSTEP=`program` (the lockstep tool, or a stand-in), its
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

// A config for a small MLP on the real Fashion-MNIST, writing to `output`: `max_steps` steps (0: all of
// `epochs` epochs). Returns its path.
fs::path write_config(const fs::path& dir, const fs::path& output, int max_steps, int epochs = 1) {
  const fs::path config = dir / "tiny.toml";
  std::ofstream(config) << "task = \"classifier\"\n"
                           "[run]\nseed = 3\nepochs = "
                        << epochs << "\nmax_steps = " << max_steps << "\noutput = \"" << output.string()
                        << "\"\n"
                           "[data]\npath = \""
                        << fashion_mnist_h5().string()
                        << "\"\nbatch_size = 32\n"
                           "[model]\nname = \"mlp\"\nhidden = [64]\n"
                           "[optimizer]\nname = \"sgd\"\nlr = 0.05\nmomentum = 0.9\n";
  return config;
}

// Waits until `text` appears `times` times in `log` (at most kJobLimitS / 2 from `since`); whether it did.
bool wait_for_log(const fs::path& log, const std::string& text, std::size_t times,
                  std::chrono::steady_clock::time_point since) {
  while (count(read_text(log), text) < times) {
    if (std::chrono::steady_clock::now() > since + std::chrono::seconds(kJobLimitS / 2)) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
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

// `scancel --signal=USR1` (what --signal=USR1@120 sends before the time limit) goes to every rank of the
// srun step and not to the batch shell. The trainer does not handle SIGUSR1 yet, so today the signal ends
// both ranks (once it checkpoints and exits with kExitRequeue, the template requeues the job instead: see
// the next test).
TEST(Slurm, Usr1MidRunReachesEveryRankButNotTheBatchShell) {
  if (const std::string why = root_unavailable(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  // Far longer than the test: only the signal ends it.
  const fs::path config = write_config(dir.path(), dir / "run", 0, 100);
  Cluster cluster(dir, "up1");
  ASSERT_TRUE(cluster.up()) << cluster.why_not_up();

  const auto t0 = std::chrono::steady_clock::now();
  const fs::path log = dir / "job.out";
  const std::string id = cluster.submit(template_file("single_node.sbatch"), "--cpus-per-task=1", "",
                                        LOCKSTEP_TOOL, config, log);
  ASSERT_FALSE(id.empty());
  // Mid-run: rank 0 has printed the job line, so both ranks joined the MPI world.
  ASSERT_TRUE(wait_for_log(log, "job: 2 ranks (mpi)", 1, t0)) << "training did not start:\n"
                                                              << read_text(log) << cluster.logs();
  const CommandResult signalled = cluster.client("scancel --signal=USR1 " + id);
  ASSERT_EQ(signalled.status, 0) << signalled.output;

  const JobEnd job = cluster.wait_for_end(id, log, t0);
  ASSERT_TRUE(job.ended());
  // srun reports both tasks ended by the signal, and exits with 128 + SIGUSR1; the batch shell was left
  // alone and reported that status itself, and the job failed with it.
  EXPECT_NE(job.log.find("tasks 0-1: User defined signal 1"), std::string::npos) << job.log;
  const std::string status = std::to_string(128 + SIGUSR1);
  EXPECT_NE(job.log.find("lockstep.sbatch: srun exited with status " + status + "\n"), std::string::npos)
      << job.log;
  EXPECT_EQ(job.log.find("batch shell got SIGUSR1"), std::string::npos) << job.log;
  EXPECT_EQ(job.field("JobState"), "FAILED") << job.log;
  EXPECT_EQ(job.field("ExitCode"), status + ":0") << job.log;
  EXPECT_EQ(job.field("Restarts"), "0") << job.log;
  EXPECT_EQ(job.log.find("done: "), std::string::npos) << job.log;
  EXPECT_FALSE(fs::exists(dir / "run" / "model.h5")) << job.log;
}

// The template's requeue path, with a stand-in for the trainer (tests/slurm/standin_train.sh) that does what
// `lockstep train` will do on SIGUSR1 after saving a checkpoint: exit with kExitRequeue (3). The signal comes
// as in production, from --signal=USR1@N before the time limit (here N = 50 s before a 1-minute limit,
// instead of the template's 120 s). The job is then requeued by its own script, runs again from the top
// under the same id (SLURM_RESTART_COUNT=1), appends to the same log, and completes.
TEST(Slurm, Usr1BeforeTheTimeLimitThenExitCode3RequeuesTheJobWhichRunsAgain) {
  if (const std::string why = root_unavailable(); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  const fs::path config = dir / "unused.toml";
  Cluster cluster(dir, "up1");
  ASSERT_TRUE(cluster.up()) << cluster.why_not_up();

  const auto t0 = std::chrono::steady_clock::now();
  const fs::path log = dir / "job.out";
  // srun runs it directly: a copy that is surely executable.
  const fs::path standin = dir / "standin_train.sh";
  fs::copy_file(fs::path(LOCKSTEP_SOURCE_DIR) / "tests" / "slurm" / "standin_train.sh", standin);
  fs::permissions(standin, fs::perms::owner_all, fs::perm_options::add);
  const std::string id =
      cluster.submit(template_file("single_node.sbatch"), "--cpus-per-task=1 --time=1 --signal=USR1@50",
                     "run.epochs=2", standin, config, log);
  ASSERT_FALSE(id.empty());
  const JobEnd job = cluster.wait_for_end(id, log, t0);
  ASSERT_TRUE(job.ended());
  EXPECT_EQ(job.field("JobState"), "COMPLETED") << job.log;
  EXPECT_EQ(job.field("ExitCode"), "0:0") << job.log;
  EXPECT_EQ(job.field("Restarts"), "1") << job.log;
  // The template called the program as `lockstep train CONFIG --progress lines OVERRIDES...`.
  const std::string args = "train " + config.string() + " --progress lines run.epochs=2";
  for (const std::string rank : {"0", "1"}) {
    EXPECT_NE(job.log.find("standin: rank " + rank + " waiting: " + args + "\n"), std::string::npos)
        << job.log;
    EXPECT_NE(job.log.find("standin: rank " + rank + " got SIGUSR1"), std::string::npos) << job.log;
    EXPECT_NE(job.log.find("standin: rank " + rank + " run 1 finished"), std::string::npos) << job.log;
  }
  // In order, in one log: the first run, its requeue, the second run.
  const std::vector<std::string> sequence = {
      "lockstep.sbatch: job " + id + " run 1: 2 tasks",
      "lockstep.sbatch: srun exited with status 3\n",
      "lockstep.sbatch: the run stopped after a checkpoint; requeueing job " + id,
      "lockstep.sbatch: job " + id + " run 2: 2 tasks",
      "lockstep.sbatch: srun exited with status 0\n",
  };
  std::size_t at = 0;
  for (const std::string& text : sequence) {
    const std::size_t found = job.log.find(text, at);
    ASSERT_NE(found, std::string::npos) << "'" << text << "' missing after offset " << at << ":\n" << job.log;
    at = found + text.size();
  }
  EXPECT_EQ(count(job.log, "requeueing"), 1u) << job.log;
}

}  // namespace
}  // namespace lockstep::test
