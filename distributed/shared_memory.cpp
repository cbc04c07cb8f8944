// POSIX shared-memory buffers mapped by every rank of a node, their barrier, and the all-reduce through them.
#include "distributed/shared_memory.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "src/core/error.h"
#include "src/core/strings.h"

namespace lockstep::distributed {
namespace {

constexpr std::size_t kControlBytes = 4096;
// Pause iterations before a waiting rank yields: peers usually arrive within microseconds.
constexpr std::uint64_t kSpins = 2000;
// Elements reduced per block: a block of every rank's buffer and the accumulator stay in L1.
constexpr std::int64_t kBlockBytes = 4096;
static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "barrier counters must be lock-free in shared memory");

std::size_t round_to_pages(std::size_t bytes) {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

std::string errno_text(const char* what, const std::string& name) {
  return str_cat(what, " ", name, ": ", std::strerror(errno));
}

}  // namespace

// The control page's head. Written by its rank; `call` before the all-reduce's first barrier (whose release
// and acquire order it for the readers).
struct SharedBuffers::Control {
  std::atomic<std::uint64_t> barriers;
  std::atomic<std::uint64_t> failed;
  std::uint64_t nonce;
  std::uint64_t rank;
  std::uint64_t call[3];  // offset in bytes, count, dtype | op << 8
};
static_assert(sizeof(std::atomic<std::uint64_t>) == sizeof(std::uint64_t));

SharedBuffers::SharedBuffers(int rank, int world, std::size_t bytes)
    : rank_(rank),
      world_(world),
      bytes_(bytes),
      mapped_bytes_(round_to_pages(kControlBytes + bytes)),
      pages_(static_cast<std::size_t>(world), nullptr),
      data_(static_cast<std::size_t>(world), nullptr) {}

std::shared_ptr<SharedBuffers> SharedBuffers::create(const std::string& name, std::size_t bytes, int rank,
                                                     int world, std::uint64_t nonce, std::string& error) {
  std::shared_ptr<SharedBuffers> buffers(new SharedBuffers(rank, world, bytes));
  buffers->nonce_ = nonce;
  const int fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) {
    error = errno_text("shm_open", name);
    return nullptr;
  }
  buffers->name_ = name;  // unlinked by the destructor from here on
  const auto fail = [&](const char* what, int code) {
    close(fd);
    errno = code;
    error = errno_text(what, name);
    return nullptr;
  };
  if (ftruncate(fd, static_cast<off_t>(buffers->mapped_bytes_)) != 0) return fail("ftruncate", errno);
  // Reserving the pages now makes a full /dev/shm fail here instead of with SIGBUS on first touch.
  if (const int code = posix_fallocate(fd, 0, static_cast<off_t>(buffers->mapped_bytes_)); code != 0)
    return fail("posix_fallocate", code);
  void* p = mmap(nullptr, buffers->mapped_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return fail("mmap", errno);
  close(fd);
  const auto r = static_cast<std::size_t>(rank);
  buffers->pages_[r] = static_cast<std::byte*>(p);
  buffers->data_[r] = buffers->pages_[r] + kControlBytes;
  Control* control = new (buffers->pages_[r]) Control{};
  control->nonce = nonce;
  control->rank = static_cast<std::uint64_t>(rank);
  return buffers;
}

bool SharedBuffers::map_peers(const std::vector<std::string>& names, std::string& error) {
  for (int r = 0; r < world_; ++r) {
    const auto k = static_cast<std::size_t>(r);
    if (r == rank_) continue;
    const int fd = shm_open(names[k].c_str(), O_RDWR, 0600);
    if (fd < 0) {
      error = errno_text("shm_open", names[k]);
      return false;
    }
    struct stat status {};
    if (fstat(fd, &status) != 0 || static_cast<std::size_t>(status.st_size) != mapped_bytes_) {
      close(fd);
      error = str_cat(names[k], " holds ", status.st_size, " bytes, but ", mapped_bytes_,
                      " were expected: the ranks asked for buffers of different sizes");
      return false;
    }
    void* p = mmap(nullptr, mapped_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    const int saved = errno;
    close(fd);
    if (p == MAP_FAILED) {
      errno = saved;
      error = errno_text("mmap", names[k]);
      return false;
    }
    pages_[k] = static_cast<std::byte*>(p);
    data_[k] = pages_[k] + kControlBytes;
    if (control(r).nonce != nonce_ || control(r).rank != k) {
      error = str_cat(names[k], " was not made by rank ", r, " of this job");
      return false;
    }
  }
  return true;
}

void SharedBuffers::unlink() {
  if (!name_.empty()) shm_unlink(name_.c_str());
  name_.clear();
}

SharedBuffers::~SharedBuffers() {
  unlink();
  for (std::byte* p : pages_)
    if (p != nullptr) munmap(p, mapped_bytes_);
}

bool SharedBuffers::contains(const void* p, std::size_t n) const {
  const auto* b = static_cast<const std::byte*>(p);
  return b >= data() && b + n <= data() + bytes_;
}

SharedBuffers::Control& SharedBuffers::control(int r) const {
  return *reinterpret_cast<Control*>(pages_[static_cast<std::size_t>(r)]);
}

// Each rank counts the barriers it has entered on its own control page and waits until every rank's count
// has reached its own: spinning briefly (peers usually arrive within microseconds), then yielding the core,
// then sleeping in short naps (a peer still computing may take milliseconds, and this rank's compute
// threads need the core), until the collective's deadline.
// The ranks' barrier counts are out of step from here on: no later all-reduce on these buffers can be
// trusted, on this rank or (told through the control page) on its peers.
void SharedBuffers::give_up(const std::string& message) {
  broken_ = str_cat("an earlier all-reduce on these shared buffers failed: ", message);
  control(rank_).failed.store(1, std::memory_order_release);
  throw DistributedError(message, rank_, world_, collective_name(Collective::kAllReduce));
}

void SharedBuffers::barrier(std::chrono::steady_clock::time_point deadline, std::chrono::milliseconds timeout,
                            const std::function<std::string()>& what) {
  const std::uint64_t target = ++barriers_;
  control(rank_).barriers.store(target, std::memory_order_release);
  const auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < world_; ++r) {
    for (std::uint64_t spins = 0; control(r).barriers.load(std::memory_order_acquire) < target; ++spins) {
      if (spins < kSpins) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        continue;
      }
      const auto now = std::chrono::steady_clock::now();
      if (now - start < std::chrono::microseconds(200)) {
        sched_yield();
      } else {
        const timespec nap{0, 20000};
        nanosleep(&nap, nullptr);
      }
      for (int q = 0; q < world_; ++q) {
        if (control(q).failed.load(std::memory_order_acquire) != 0)
          give_up(str_cat(what(), " cannot finish: rank ", q,
                          " gave up on these shared buffers (an all-reduce on them timed out)"));
      }
      if (now < deadline) continue;
      std::string missing;
      for (int q = 0; q < world_; ++q)
        if (control(q).barriers.load(std::memory_order_acquire) < target)
          missing += str_cat(missing.empty() ? "" : ", ", q);
      if (missing.empty()) continue;  // arrived since the loop's check
      give_up(str_cat(what(), " has not finished after ", format_duration(timeout),
                      ": waiting in shared memory for rank",
                      missing.find(',') != std::string::npos ? "s " : " ", missing,
                      ", which may have failed, stopped, or called a different collective"));
    }
  }
}

void SharedBuffers::all_reduce(std::size_t offset, std::int64_t count, DType dtype, ReduceOp op,
                               std::chrono::milliseconds timeout, const std::function<std::string()>& what) {
  if (!broken_.empty())
    throw DistributedError(str_cat(what(), " cannot run: ", broken_), rank_, world_,
                           collective_name(Collective::kAllReduce));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const auto element = static_cast<std::int64_t>(element_size(dtype));
  // Slices of whole cache lines, one per rank.
  const std::int64_t line = 64 / element;
  const std::int64_t per_rank = (count + world_ * line - 1) / (world_ * line) * line;
  const auto slice = [&](int r) {
    const std::int64_t begin = std::min(count, r * per_rank);
    return std::pair{begin, std::min(count, begin + per_rank)};
  };
  const auto at = [&](int r, std::int64_t index) {
    return data_[static_cast<std::size_t>(r)] + offset + static_cast<std::size_t>(index * element);
  };
  Control& mine = control(rank_);
  mine.call[0] = offset;
  mine.call[1] = static_cast<std::uint64_t>(count);
  mine.call[2] = static_cast<std::uint64_t>(dtype) | static_cast<std::uint64_t>(op) << 8;
  barrier(deadline, timeout, what);  // every rank's data is in its buffer, and its call on its page
  for (int r = 0; r < world_; ++r) {
    const Control& theirs = control(r);
    if (std::equal(std::begin(mine.call), std::end(mine.call), std::begin(theirs.call))) continue;
    // Every rank sees the same pages (no rank writes its next call before the barrier below): all throw
    // here, in step, and the buffers stay usable.
    std::string calls;
    for (int q = 0; q < world_; ++q) {
      const Control& c = control(q);
      calls += str_cat(q == 0 ? "" : ", ", "rank ", q, " ", dtype_name(static_cast<DType>(c.call[2] & 0xff)),
                       " x ", c.call[1], " at byte ", c.call[0]);
    }
    // No rank writes its next call on its page before every rank has read this one.
    barrier(deadline, timeout, what);
    throw DistributedError(str_cat(what(), ": the ranks all-reduce different parts of their shared buffers (",
                                   calls, "); every rank must pass the same part"),
                           rank_, world_, collective_name(Collective::kAllReduce));
  }
  alignas(64) std::byte block[kBlockBytes];
  const std::int64_t block_elements = kBlockBytes / element;
  const auto [begin, end] = slice(rank_);
  for (std::int64_t i = begin; i < end; i += block_elements) {
    const std::int64_t n = std::min(block_elements, end - i);
    const auto bytes = static_cast<std::size_t>(n * element);
    std::memcpy(block, at(0, i), bytes);
    for (int r = 1; r < world_; ++r) reduce_into(block, at(r, i), n, dtype, op);
    std::memcpy(at(rank_, i), block, bytes);
  }
  barrier(deadline, timeout, what);  // every slice is reduced
  for (int r = 0; r < world_; ++r) {
    const auto [b, e] = slice(r);
    if (r != rank_ && e > b) std::memcpy(at(rank_, b), at(r, b), static_cast<std::size_t>((e - b) * element));
  }
  barrier(deadline, timeout,
          what);  // no rank reads this rank's slice any more: the caller may write its buffer
}

}  // namespace lockstep::distributed
