// src/core/error.h: LOCKSTEP_CHECK throws the named user-error type with the message parts;
// LOCKSTEP_INTERNAL_ASSERT throws InternalError naming the file, line, function and condition as a Lockstep
// bug.
#include "src/core/error.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/support/expect_error.h"

namespace lockstep {
namespace {

int checked_square(int x) {
  LOCKSTEP_CHECK(x >= 0, ValueError, "checked_square: expected x >= 0, but got ", x);
  return x * x;
}

int assert_line = 0;  // the line of the assertion in internal_half

int internal_half(int even) {
  assert_line = __LINE__ + 1;
  LOCKSTEP_INTERNAL_ASSERT(even % 2 == 0, "internal_half got ", even);
  return even / 2;
}

void internal_no_parts(bool ok) { LOCKSTEP_INTERNAL_ASSERT(ok); }

TEST(Error, CheckThrowsTheNamedTypeOnlyWhenTheConditionFails) {
  EXPECT_EQ(checked_square(3), 9);
  test::expect_error<ValueError>([] { checked_square(-2); }, {"checked_square: expected x >= 0, but got -2"});
}

TEST(Error, InternalAssertNamesTheBugItsPlaceAndItsCondition) {
  EXPECT_EQ(internal_half(8), 4);
  const std::string what = test::expect_error<InternalError>(
      [] { internal_half(7); },
      {"Lockstep internal error at tests/core/error_test.cpp:" + std::to_string(assert_line),
       "in internal_half", "expected `even % 2 == 0`: internal_half got 7. This is a bug in Lockstep"});
  EXPECT_EQ(what.find("/work/"), std::string::npos) << "the path is relative to the repository root";
  EXPECT_EQ(what.find("../"), std::string::npos) << "no build-folder-relative prefix";
  EXPECT_NO_THROW(internal_no_parts(true));
  test::expect_error<InternalError>([] { internal_no_parts(false); },
                                    {"expected `ok`. This is a bug in Lockstep"});
}

TEST(Error, InternalErrorIsALockstepError) {
  try {
    internal_no_parts(false);
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_NE(dynamic_cast<const InternalError*>(&e), nullptr);
  }
}

}  // namespace
}  // namespace lockstep
