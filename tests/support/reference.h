// Small helpers for naive double-precision references: broadcasting element-wise maps over RefArrays.
#pragma once

#include <functional>

#include "tests/support/op_case.h"

namespace lockstep::test {

using Index = std::vector<std::int64_t>;

// Row-major position of the multi-index `idx` in `shape`.
std::int64_t flat_of(const Shape& shape, const Index& idx);

// out[i] = f(a[i]).
RefArray ref_map(const RefArray& a, const std::function<double(double)>& f);
// out = f(a, b) with numpy broadcasting.
RefArray ref_map2(const RefArray& a, const RefArray& b, const std::function<double(double, double)>& f);

}  // namespace lockstep::test
