// AVX-512 primitives plus AVX512-BF16 pair dot products (vdpbf16ps): a 32-bit lane holds two bf16
// values consecutive along the reduction, and one instruction adds both products into an f32
// lane. Conversions round to nearest even (vcvtne2ps2bf16, vcvtneps2bf16).
#pragma once

#define UMFA_SIMD_BF16_DOT 1
#include "simd_avx512.h"

UMFA_KERNELS_BEGIN

typedef __m512i vbf16x2;

inline vbf16x2 bf16x2_load(const uint32_t* p) { return _mm512_loadu_si512(p); }
inline void bf16x2_store(uint32_t* p, vbf16x2 v) { _mm512_storeu_si512(p, v); }
inline vbf16x2 bf16x2_broadcast(uint32_t x) { return _mm512_set1_epi32(static_cast<int>(x)); }
// acc[L] += a.lo[L]*b.lo[L] + a.hi[L]*b.hi[L]
inline vfloat bf16x2_dot(vfloat acc, vbf16x2 a, vbf16x2 b) {
  return reinterpret_cast<vfloat>(
      _mm512_dpbf16_ps(reinterpret_cast<__m512>(acc), (__m512bh)a, (__m512bh)b));
}
// Lane L = (bf16(lo[L]), bf16(hi[L])).
inline vbf16x2 bf16x2_from_f32(vfloat lo, vfloat hi) {
  // cvtne2ps puts bf16(lo) in the low 256 bits and bf16(hi) in the high; interleave them.
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                       23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i x = (__m512i)_mm512_cvtne2ps_pbh(reinterpret_cast<__m512>(hi), reinterpret_cast<__m512>(lo));
  return _mm512_permutexvar_epi16(idx, x);
}
// dst[0..16) = bf16(x).
inline void bf16_store_row(uint16_t* dst, vfloat x) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst),
                      (__m256i)_mm512_cvtneps_pbh(reinterpret_cast<__m512>(x)));
}

UMFA_KERNELS_END
