// AVX2 + FMA + F16C primitives (8 lanes). The variant's .cpp compiles them for that target.
#pragma once

#include <immintrin.h>

#include "namespace.h"

UMFA_KERNELS_BEGIN
constexpr int kLanes = 8;
constexpr int kRegRows = 6;     // 6 x 2 accumulators of the 16 YMM registers
constexpr int kRegColVecs = 2;
UMFA_KERNELS_END

#include "simd_types.h"

UMFA_KERNELS_BEGIN

inline vfloat vfma(vfloat a, vfloat b, vfloat c) {
  return reinterpret_cast<vfloat>(_mm256_fmadd_ps(reinterpret_cast<__m256>(a),
                                                  reinterpret_cast<__m256>(b),
                                                  reinterpret_cast<__m256>(c)));
}

UMFA_KERNELS_END

#include "simd_portable.h"

UMFA_KERNELS_BEGIN

#define UMFA_SIMD_F16 1
#define UMFA_SIMD_BF16_DOT 0

inline vfloat vexp(vfloat x) { return vexp_portable(x); }
inline bool all_one(vfloat a) { return all_one_portable(a); }
inline void transpose_block(const float* src, int64_t lds, float* dst, int64_t ldd, int64_t ncols) {
  transpose_block_portable(src, lds, dst, ldd, ncols);
}
inline void reduce16(const vfloat* x, float* out) { reduce16_portable(x, out); }

// 8 f16 values to f32 (vcvtph2ps).
inline vfloat load_f16(const uint16_t* p) {
  return reinterpret_cast<vfloat>(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}

UMFA_KERNELS_END
