// A directory of checkpoints, one subdirectory per step (step_000001200/): crash-safe commits (temporary
// directory, fsync, manifest last, atomic rename), verification against the manifest, the newest valid
// checkpoint for `--resume auto`, keep-last-k plus keep-every-n pruning, and removal of stale temporaries.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace lockstep::io {

// Which committed checkpoints survive pruning: the `keep_last` newest (>= 1) plus, when keep_every > 0,
// every checkpoint whose step is a multiple of keep_every. The one just committed always survives.
struct CheckpointPolicy {
  int keep_last = 3;
  std::int64_t keep_every = 0;
};

struct CheckpointInfo {
  std::int64_t step = 0;
  std::filesystem::path path;  // root / "step_000001200"
  bool operator==(const CheckpointInfo&) const = default;
};

struct CommitResult {
  CheckpointInfo committed;
  std::vector<std::filesystem::path> pruned;  // removed by the policy, oldest first
};

// Owns nothing but the root path and the policy; every call works on the file system afresh. Not
// thread-safe; at most one process may write (cleanup_stale, begin, commit, discard) to a root at a time.
//
// Layout under root: committed checkpoints `step_<step, 9+ digits>/` each holding the caller's files and a
// manifest.json written last; temporaries `step_<step>.tmp` (being filled), `step_<step>.tmp.replaced`
// (an older checkpoint of the same step being swapped out) and `step_<step>.tmp.pruned` (a pruned one being
// deleted). A directory named step_N is never incomplete: it appears by one rename after its files and
// manifest are on disk, and leaves by one rename before any of them is deleted.
//
// Multi-rank use (the agreement stays with the caller): rank 0 calls cleanup_stale() at start before any
// rank writes. To save: rank 0 calls begin(step); barrier; every rank writes the files it owns into the
// returned directory (rank 0 the replicated state; others only per-rank state, on a shared file system,
// closed and fsynced by their writer since rank 0's fsync may not reach another host's cache); all ranks
// agree that their writes succeeded (an all-reduce of a success flag); then rank 0 alone calls
// commit(step) (or discard(step) when some rank failed) and broadcasts the outcome. Any rank may call
// list(), verify() and latest_valid() (read-only) while no commit is in flight.
class CheckpointStore {
 public:
  // ValueError unless policy.keep_last >= 1 and policy.keep_every >= 0. The root is created by begin().
  CheckpointStore(std::filesystem::path root, CheckpointPolicy policy = {});

  const std::filesystem::path& root() const { return root_; }
  const CheckpointPolicy& policy() const { return policy_; }

  // "step_000001200": the committed directory name of `step` (at least 9 digits; ValueError when negative).
  static std::string directory_name(std::int64_t step);

  // Removes every `step_*.tmp*` entry under root (left by a run killed while saving) and returns their
  // paths, sorted. Committed checkpoints and unrelated files are never touched. Rank 0, at start.
  std::vector<std::filesystem::path> cleanup_stale() const;

  // Creates root (if needed) and a fresh, empty temporary directory for `step` (removing a stale one of the
  // same step) and returns it for the caller to fill. The name manifest.json at its top is reserved.
  std::filesystem::path begin(std::int64_t step) const;

  // Rank 0 only, after every rank's files are written and all ranks agreed. Fsyncs every file and
  // subdirectory in begin(step)'s directory, writes manifest.json (sizes, XXH64) last and fsyncs it,
  // renames the directory to step_NNNNNNNNN and fsyncs root. An existing checkpoint of the same step is
  // replaced (it is never merged). Then prunes by the policy, never the new checkpoint. IoError naming the
  // path on any failure (missing temporary, a symlink or special file inside, fsync or rename failure);
  // the temporary is then left for cleanup_stale or discard.
  CommitResult commit(std::int64_t step) const;

  // Removes begin(step)'s temporary directory, if any (a save that some rank failed).
  void discard(std::int64_t step) const;

  // Committed checkpoints (directories named step_<digits>), by step ascending; not verified. Empty when
  // root does not exist.
  std::vector<CheckpointInfo> list() const;

  // True when `checkpoint` holds a manifest that parses, names this step, and lists exactly the files in
  // the directory (no missing, no extra) with matching sizes and XXH64. Otherwise false, with the reason
  // in *why (when given), naming the file at fault.
  static bool verify(const std::filesystem::path& checkpoint, std::string* why = nullptr);

  // The newest checkpoint that verifies. Each newer one that fails adds a warning to *warnings (when
  // given) naming its path and why, before falling back to the next older. nullopt when none verifies
  // (start fresh when there are no warnings; every checkpoint is damaged otherwise).
  std::optional<CheckpointInfo> latest_valid(std::vector<std::string>* warnings = nullptr) const;

 private:
  std::filesystem::path temporary_path(std::int64_t step) const;
  std::vector<std::filesystem::path> prune(std::int64_t keep_step) const;

  std::filesystem::path root_;
  CheckpointPolicy policy_;
};

}  // namespace lockstep::io
