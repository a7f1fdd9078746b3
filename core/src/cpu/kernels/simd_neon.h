// AArch64 Advanced SIMD (NEON) primitives, 4 lanes: FMLA, FCVTL for f16, TRN/ZIP transposes and
// pairwise-add reductions. ARMv8.0 (every AArch64 CPU has NEON and the f16 conversions); needs
// nothing newer than GCC 10's arm_neon.h.
#pragma once

#include <arm_neon.h>

#include "namespace.h"

UMFA_KERNELS_BEGIN
constexpr int kLanes = 4;
// 6 x 4 accumulators: 24 of the 32 vector registers, plus 4 for the B row and one broadcast A
// element per row. A 64-lane tile row is 16 vectors, so 4 divides every full tile.
constexpr int kRegRows = 6;
constexpr int kRegColVecs = 4;
UMFA_KERNELS_END

#include "simd_types.h"

UMFA_KERNELS_BEGIN

inline float32x4_t to_neon(vfloat v) { return reinterpret_cast<float32x4_t>(v); }
inline vfloat from_neon(float32x4_t v) { return reinterpret_cast<vfloat>(v); }

// a*b + c with one FMLA.
inline vfloat vfma(vfloat a, vfloat b, vfloat c) {
  return from_neon(vfmaq_f32(to_neon(c), to_neon(a), to_neon(b)));
}

UMFA_KERNELS_END

#include "simd_portable.h"

UMFA_KERNELS_BEGIN

#define UMFA_SIMD_F16 1
#ifndef UMFA_SIMD_BF16_DOT
#define UMFA_SIMD_BF16_DOT 0
#endif

inline vfloat vexp(vfloat x) { return vexp_portable(x); }

// True when every lane of a is exactly 1 (NaN is not 1): the minimum of the lane masks.
inline bool all_one(vfloat a) { return vminvq_u32(vceqq_f32(to_neon(a), vdupq_n_f32(1.f))) != 0; }

// dst[c*ldd + r] = src[r*lds + c] for r < 4, c < ncols (src rows hold 4 readable floats).
inline void transpose_block(const float* src, int64_t lds, float* dst, int64_t ldd, int64_t ncols) {
  const float32x4_t r0 = vld1q_f32(src), r1 = vld1q_f32(src + lds), r2 = vld1q_f32(src + 2 * lds),
                    r3 = vld1q_f32(src + 3 * lds);
  // t0 = a0 b0 a2 b2, t1 = a1 b1 a3 b3, t2 = c0 d0 c2 d2, t3 = c1 d1 c3 d3
  const float64x2_t t0 = vreinterpretq_f64_f32(vtrn1q_f32(r0, r1));
  const float64x2_t t1 = vreinterpretq_f64_f32(vtrn2q_f32(r0, r1));
  const float64x2_t t2 = vreinterpretq_f64_f32(vtrn1q_f32(r2, r3));
  const float64x2_t t3 = vreinterpretq_f64_f32(vtrn2q_f32(r2, r3));
  const float32x4_t col[4] = {vreinterpretq_f32_f64(vtrn1q_f64(t0, t2)),
                              vreinterpretq_f32_f64(vtrn1q_f64(t1, t3)),
                              vreinterpretq_f32_f64(vtrn2q_f64(t0, t2)),
                              vreinterpretq_f32_f64(vtrn2q_f64(t1, t3))};
  for (int64_t c = 0; c < ncols; ++c) vst1q_f32(dst + c * ldd, col[c]);
}

// out[i] = sum of the lanes of x[i], i < 16: two levels of pairwise adds per 4 vectors.
inline void reduce16(const vfloat* x, float* out) {
  for (int i = 0; i < 16; i += 4) {
    const float32x4_t p0 = vpaddq_f32(to_neon(x[i]), to_neon(x[i + 1]));
    const float32x4_t p1 = vpaddq_f32(to_neon(x[i + 2]), to_neon(x[i + 3]));
    vst1q_f32(out + i, vpaddq_f32(p0, p1));
  }
}

// 4 f16 values to f32 (FCVTL).
inline vfloat load_f16(const uint16_t* p) {
  return from_neon(vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))));
}

UMFA_KERNELS_END
