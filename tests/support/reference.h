// Small helpers for naive double-precision references: broadcasting element-wise maps over RefArrays.
#pragma once

#include <functional>

#include "tests/support/op_case.h"

namespace lockstep::test {

// out[i] = f(a[i]).
RefArray ref_map(const RefArray& a, const std::function<double(double)>& f);
// out = f(a, b) with numpy broadcasting.
RefArray ref_map2(const RefArray& a, const RefArray& b, const std::function<double(double, double)>& f);

}  // namespace lockstep::test
