// Element types of tensors, their sizes and names, and the dispatch helper that turns a runtime DType
// into a compile-time C++ type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace lockstep {

// f32 everywhere, f64 on CPU (gradient checks), i64 and u8 for labels, indices, masks and images,
// bf16/f16 declared for the CUDA backend (mixed precision).
enum class DType : std::uint8_t { f32, f64, i64, u8, bf16, f16 };

constexpr std::size_t element_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::i64: return 8;
    case DType::u8: return 1;
    case DType::bf16: return 2;
    case DType::f16: return 2;
  }
  return 0;
}

constexpr const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::i64: return "i64";
    case DType::u8: return "u8";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
  }
  return "?";
}

constexpr bool is_floating(DType t) { return t == DType::f32 || t == DType::f64 || t == DType::bf16 || t == DType::f16; }

template <class T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::f32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::f64; };
template <> struct DTypeOf<std::int64_t> { static constexpr DType value = DType::i64; };
template <> struct DTypeOf<std::uint8_t> { static constexpr DType value = DType::u8; };
template <class T> inline constexpr DType dtype_of = DTypeOf<T>::value;

[[noreturn]] void throw_unsupported_dtype(const char* where, DType t);

// Calls fn(T{}) with T the C++ type of `t`, for the CPU dtypes (f32, f64, i64, u8).
template <class Fn> decltype(auto) dispatch_all(const char* where, DType t, Fn&& fn) {
  switch (t) {
    case DType::f32: return fn(float{});
    case DType::f64: return fn(double{});
    case DType::i64: return fn(std::int64_t{});
    case DType::u8: return fn(std::uint8_t{});
    default: throw_unsupported_dtype(where, t);
  }
}

// Calls fn(T{}) for the floating CPU dtypes (f32, f64); other dtypes raise a TypeError naming `where`.
template <class Fn> decltype(auto) dispatch_floating(const char* where, DType t, Fn&& fn) {
  switch (t) {
    case DType::f32: return fn(float{});
    case DType::f64: return fn(double{});
    default: throw_unsupported_dtype(where, t);
  }
}

}  // namespace lockstep
