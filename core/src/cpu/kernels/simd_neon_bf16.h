// NEON primitives plus BFDOT (ARMv8.6 FEAT_BF16, optional from ARMv8.2): a 32-bit lane holds two
// bf16 values consecutive along the reduction, and BFDOT adds both products into an f32 lane,
// the same pair layout as AVX512-BF16's vdpbf16ps. Rounding to bf16 (P and dS) is done in
// integer lanes, to nearest even, so that no conversion intrinsic newer than GCC 10 is needed.
// The variant's .cpp compiles these for armv8.2-a+bf16.
#pragma once

#define UMFA_SIMD_BF16_DOT 1
#include "simd_neon.h"

UMFA_KERNELS_BEGIN

typedef vuint vbf16x2;

inline vbf16x2 bf16x2_load(const uint32_t* p) { return *reinterpret_cast<const vuint_u*>(p); }
inline void bf16x2_store(uint32_t* p, vbf16x2 v) { *reinterpret_cast<vuint_u*>(p) = v; }
inline vbf16x2 bf16x2_broadcast(uint32_t x) { return x - vuint{}; }
// acc[L] += a.lo[L]*b.lo[L] + a.hi[L]*b.hi[L] (BFDOT).
inline vfloat bf16x2_dot(vfloat acc, vbf16x2 a, vbf16x2 b) {
  return from_neon(vbfdotq_f32(to_neon(acc), reinterpret_cast<bfloat16x8_t>(a),
                               reinterpret_cast<bfloat16x8_t>(b)));
}
inline vbf16x2 bf16x2_from_f32(vfloat lo, vfloat hi) { return bf16x2_from_f32_portable(lo, hi); }
inline void bf16_store_row(uint16_t* dst, vfloat x) { bf16_store_row_portable(dst, x); }

UMFA_KERNELS_END
