// Main of test_mpi, run whole under mpirun: creates the MPI world group, runs the tests on every rank (rank 0
// prints the usual report, the others only their failures), and exits with the same code on every rank.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "distributed/init.h"
#include "distributed/mpi.h"
#include "src/tensor/factories.h"
#include "tests/mpi/mpi_env.h"

namespace lockstep::test {
namespace {

std::shared_ptr<distributed::ProcessGroup>& world_slot() {
  static std::shared_ptr<distributed::ProcessGroup> world;
  return world;
}

// On ranks other than 0: prints each failed assertion, prefixed with the rank, and nothing else.
class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(std::string prefix) : prefix_(std::move(prefix)) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::ostringstream text;  // one write, so that lines of ranks do not interleave
    text << prefix_ << (result.file_name() ? result.file_name() : "?") << ":" << result.line_number()
         << ": failure in " << current_ << "\n"
         << result.summary() << "\n";
    std::cerr << text.str() << std::flush;
  }
  void OnTestStart(const ::testing::TestInfo& info) override {
    current_ = std::string(info.test_suite_name()) + "." + info.name();
  }

 private:
  std::string prefix_;
  std::string current_;
};

}  // namespace

std::shared_ptr<distributed::ProcessGroup> mpi_world() { return world_slot(); }

}  // namespace lockstep::test

int main(int argc, char** argv) {
  namespace dist = lockstep::distributed;
  try {
    // Shorter than the default watchdog: a rank stuck in a test fails the job in minutes, not five.
    dist::ProcessGroupOptions options;
    options.timeout = std::chrono::minutes(2);
    lockstep::test::world_slot() = dist::MpiProcessGroup::world(options);
  } catch (const std::exception& e) {
    dist::abort_job(std::string("test_mpi: cannot create the MPI world group: ") + e.what());
  }
  ::testing::InitGoogleTest(&argc, argv);
  int code = 0;
  {
    const auto world = lockstep::test::mpi_world();
    if (world->rank() != 0) {
      auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
      delete listeners.Release(listeners.default_result_printer());
      listeners.Append(new lockstep::test::FailurePrinter(dist::rank_prefix()));
    }
    try {
      const int local = RUN_ALL_TESTS();
      // Every rank returns the same code: non-zero when any rank failed.
      const lockstep::Tensor flag = lockstep::full({1}, local != 0 ? 1.0 : 0.0, lockstep::DType::i64);
      world->all_reduce(flag, dist::ReduceOp::kMax)->wait();
      code = flag.item() != 0.0 ? 1 : 0;
    } catch (const std::exception& e) {
      dist::abort_job(std::string("test_mpi: ") + e.what());
    }
  }
  // The last reference: stops the communication thread and finalises MPI.
  lockstep::test::world_slot().reset();
  return code;
}
