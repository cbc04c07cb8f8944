// Shapes and strides: small vectors of extents, with the helpers every op needs (numel, contiguous
// strides, broadcasting, dimension wrapping) and printing as "[2, 3]".
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace lockstep {

using Shape = std::vector<std::int64_t>;

std::int64_t numel_of(const Shape& shape);
Shape contiguous_strides(const Shape& shape);
std::string shape_str(const Shape& shape);

// Broadcasts two shapes numpy-style; throws ValueError naming `where` and both shapes when they conflict.
Shape broadcast_shapes(const char* where, const Shape& a, const Shape& b);

// Maps a possibly negative dimension into [0, ndim); throws IndexError naming `where` when out of range.
std::int64_t wrap_dim(const char* where, std::int64_t dim, std::int64_t ndim);

}  // namespace lockstep
