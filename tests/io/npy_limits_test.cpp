// read_npy on a header whose version 2/3 length field is huge: an IoError naming the file, not an
// allocation of gigabytes (found by the npy fuzz harness in a labels file:
// tests/fuzz/crashes/npy/header_length_4gib_oom).
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "io/data/npy.h"
#include "src/core/error.h"
#include "tests/support/expect_error.h"
#include "tests/support/temp_dir.h"

namespace lockstep {
namespace {

TEST(NpyLimits, HugeHeaderLengthIsAnIoErrorNotAnAllocation) {
  const test::TempDir tmp;
  const std::string header = "{'descr': '|u1', 'fortran_order': False, 'shape': (1,), }\n";
  // Version 2: a 4-byte little-endian header length, here 0xfffffff0 (4 GiB), then a short real header.
  std::ofstream(tmp / "labels.npy", std::ios::binary)
      << std::string("\x93NUMPY\x02\x00\xf0\xff\xff\xff", 12) << header << '\x01';
  std::ofstream(tmp / "images.npy", std::ios::binary) << "not read";
  const auto error = test::expect_thrown<IoError>([&] { io::read_npy(tmp / "images.npy", tmp / "labels.npy"); },
                                                  {"read_npy", "header of at most", "4294967280"});
  if (error) {
    EXPECT_EQ(error->file(), (tmp / "labels.npy").string());
  }
}

}  // namespace
}  // namespace lockstep
