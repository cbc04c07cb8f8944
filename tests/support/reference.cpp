// Broadcasting maps for reference implementations.
#include "tests/support/reference.h"

namespace lockstep::test {

std::int64_t flat_of(const Shape& shape, const Index& idx) {
  std::int64_t f = 0;
  for (std::size_t d = 0; d < shape.size(); ++d) f = f * shape[d] + idx[d];
  return f;
}

RefArray ref_map(const RefArray& a, const std::function<double(double)>& f) {
  RefArray out(a.shape);
  for (std::size_t i = 0; i < a.data.size(); ++i) out.data[i] = f(a.data[i]);
  return out;
}

RefArray ref_map2(const RefArray& a, const RefArray& b, const std::function<double(double, double)>& f) {
  const Shape shape = broadcast_shapes("ref_map2", a.shape, b.shape);
  RefArray out(shape);
  const std::size_t nd = shape.size();
  const Shape sa = contiguous_strides(a.shape), sb = contiguous_strides(b.shape);
  std::vector<std::int64_t> idx(nd, 0);
  for (std::int64_t flat = 0; flat < out.numel(); ++flat) {
    std::int64_t rem = flat, ia = 0, ib = 0;
    for (std::size_t d = nd; d-- > 0;) {
      const std::int64_t i = rem % shape[d];
      rem /= shape[d];
      const std::size_t da = d + a.shape.size() - nd, db = d + b.shape.size() - nd;
      if (d + a.shape.size() >= nd && a.shape[da] != 1) ia += i * sa[da];
      if (d + b.shape.size() >= nd && b.shape[db] != 1) ib += i * sb[db];
    }
    out.data[static_cast<std::size_t>(flat)] = f(a.data[static_cast<std::size_t>(ia)], b.data[static_cast<std::size_t>(ib)]);
  }
  return out;
}

}  // namespace lockstep::test
