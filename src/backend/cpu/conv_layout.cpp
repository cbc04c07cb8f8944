// The NCHW f32 -> NHWC bf16 transpose into oneDNN's bf16 convolutions, which take NHWC on AMX: oneDNN's
// generic reorder kernel (jit:uni) ran it at ~1.5 G elements/s, more time than the AMX convolutions
// themselves. Here 16x16 blocks are transposed in AVX-512 registers and rounded to bf16 (bf16_bits in vector
// form) on the way; the same results as the scalar loop, which takes the remainders and CPUs without
// AVX-512F. It is bound by memory bandwidth: four conversions per convolution (x and dy, each twice) cost
// about what four element-wise passes do.
#include <immintrin.h>

#include <cstdint>

#include "src/backend/cpu/conv_internal.h"
#include "src/core/precision.h"

namespace lockstep::cpu::conv_internal {

namespace {

bool has_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
}

// Per-function targets (GCC and clang alike); GCC 12's AVX-512 intrinsics start some results from
// _mm512_undefined_*, which its -Wmaybe-uninitialized flags.
#define LOCKSTEP_AVX512 __attribute__((target("avx512f")))
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// bf16_bits of 16 floats (round to nearest even; NaN kept quiet).
LOCKSTEP_AVX512 __m256i to_bf16x16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i high = _mm512_srli_epi32(u, 16);
  const __m512i bias =
      _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(high, _mm512_set1_epi32(1)));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, bias), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(high, _mm512_set1_epi32(0x40)));
  return _mm512_cvtepi32_epi16(r);
}

// One image: src [C, HW] f32 -> dst [HW, C] bf16, 16 channels at a time.
// r[i] (row i of a 16x16 block) becomes column i: three rounds of unpacks and lane shuffles.
LOCKSTEP_AVX512 void transpose16x16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int h = 0; h < 16; h += 8) {
    for (int i = 0; i < 4; ++i) {
      t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
      t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xdd);
    }
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
}

// One image: src [C, HW] f32 -> dst [HW, C] bf16 in 16x16 blocks (16 channels by 16 pixels): contiguous
// loads, a transpose in registers, one 32-byte store per pixel. (Gathering 16 channels per instruction was
// 15% of a bf16 ResNet-20 step.)
LOCKSTEP_AVX512 void to_nhwc_bf16_avx512(const float* src, std::uint16_t* dst, int64_t C, int64_t HW) {
  const int64_t c16 = C / 16 * 16;
  __m512 r[16];
  for (int64_t c0 = 0; c0 < c16; c0 += 16) {
    for (int64_t p0 = 0; p0 < HW; p0 += 16) {
      const int64_t width = p0 + 16 <= HW ? 16 : HW - p0;
      const __mmask16 m = static_cast<__mmask16>((1u << width) - 1u);
      for (int c = 0; c < 16; ++c) r[c] = _mm512_maskz_loadu_ps(m, src + (c0 + c) * HW + p0);
      transpose16x16(r);
      for (int64_t j = 0; j < width; ++j)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + (p0 + j) * C + c0), to_bf16x16(r[j]));
    }
  }
  for (int64_t c = c16; c < C; ++c)
    for (int64_t p = 0; p < HW; ++p) dst[p * C + c] = bf16_bits(src[c * HW + p]);
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#undef LOCKSTEP_AVX512

}  // namespace

void nchw_to_nhwc_bf16(const float* src, std::uint16_t* dst, int64_t N, int64_t C, int64_t HW) {
  const bool vector = has_avx512() && C >= 16 && C * HW < (int64_t{1} << 31);
  for (int64_t n = 0; n < N; ++n) {
    const float* s = src + n * C * HW;
    std::uint16_t* d = dst + n * C * HW;
    if (vector) {
      to_nhwc_bf16_avx512(s, d, C, HW);
    } else {
      for (int64_t p = 0; p < HW; ++p)
        for (int64_t c = 0; c < C; ++c) d[p * C + c] = bf16_bits(s[c * HW + p]);
    }
  }
}

}  // namespace lockstep::cpu::conv_internal
