// POSIX shared-memory buffers mapped by every rank of a node, their barrier, and the all-reduce through them.
#include "distributed/shared_memory.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "src/core/error.h"
#include "src/core/strings.h"

namespace lockstep::distributed {
namespace {

constexpr std::size_t kControlBytes = 4096;
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

SharedBuffers::SharedBuffers(int rank, int world, std::size_t bytes)
    : rank_(rank),
      world_(world),
      bytes_(bytes),
      mapped_bytes_(round_to_pages(kControlBytes + bytes)),
      pages_(static_cast<std::size_t>(world), nullptr),
      data_(static_cast<std::size_t>(world), nullptr) {}

std::shared_ptr<SharedBuffers> SharedBuffers::create(const std::string& name, std::size_t bytes, int rank,
                                                     int world, std::string& error) {
  std::shared_ptr<SharedBuffers> buffers(new SharedBuffers(rank, world, bytes));
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
  new (buffers->pages_[r]) std::atomic<std::uint64_t>(0);
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

std::atomic<std::uint64_t>& SharedBuffers::counter(int r) const {
  return *reinterpret_cast<std::atomic<std::uint64_t>*>(pages_[static_cast<std::size_t>(r)]);
}

// Each rank counts the barriers it has entered on its own control page and waits until every rank's count
// has reached its own: spinning briefly (peers usually arrive within microseconds), then yielding the core
// (the rank's compute threads may need it), with the group's timeout as the watchdog.
void SharedBuffers::barrier(std::chrono::milliseconds timeout, const std::function<std::string()>& what) {
  const std::uint64_t target = ++barriers_;
  counter(rank_).store(target, std::memory_order_release);
  const auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < world_; ++r) {
    for (std::uint64_t spins = 0; counter(r).load(std::memory_order_acquire) < target; ++spins) {
      if (spins < 2000) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        continue;
      }
      sched_yield();
      if (spins % 256 == 0 && std::chrono::steady_clock::now() - start > timeout) {
        std::vector<int> missing;
        for (int q = 0; q < world_; ++q)
          if (counter(q).load(std::memory_order_acquire) < target) missing.push_back(q);
        std::string ranks;
        for (int q : missing) ranks += str_cat(ranks.empty() ? "" : ", ", q);
        throw DistributedError(
            str_cat(what(), " has not finished after ", format_duration(timeout),
                    ": waiting in shared memory for rank", missing.size() > 1 ? "s " : " ", ranks,
                    ", which may have failed, stopped, or called a different collective"),
            rank_, world_, collective_name(Collective::kAllReduce));
      }
    }
  }
}

void SharedBuffers::all_reduce(std::size_t offset, std::int64_t count, DType dtype, ReduceOp op,
                               std::chrono::milliseconds timeout, const std::function<std::string()>& what) {
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
  barrier(timeout, what);  // every rank's data is in its buffer
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
  barrier(timeout, what);  // every slice is reduced
  for (int r = 0; r < world_; ++r) {
    const auto [b, e] = slice(r);
    if (r != rank_ && e > b) std::memcpy(at(rank_, b), at(r, b), static_cast<std::size_t>((e - b) * element));
  }
  barrier(timeout, what);  // no rank reads this rank's slice any more: the caller may write its buffer
}

}  // namespace lockstep::distributed
