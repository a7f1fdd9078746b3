// AVX-512 F/BW/VL/DQ primitives (16 lanes). The variant's .cpp compiles them for that target.
#pragma once

#include <immintrin.h>

#include "namespace.h"

UMFA_KERNELS_BEGIN
constexpr int kLanes = 16;
constexpr int kRegRows = 6;     // 6 x 4 accumulators of the 32 ZMM registers
constexpr int kRegColVecs = 4;
UMFA_KERNELS_END

#include "simd_types.h"

UMFA_KERNELS_BEGIN

inline vfloat vfma(vfloat a, vfloat b, vfloat c) {
  return reinterpret_cast<vfloat>(_mm512_fmadd_ps(reinterpret_cast<__m512>(a),
                                                  reinterpret_cast<__m512>(b),
                                                  reinterpret_cast<__m512>(c)));
}

UMFA_KERNELS_END

#include "simd_portable.h"

UMFA_KERNELS_BEGIN

#define UMFA_SIMD_F16 1
#ifndef UMFA_SIMD_BF16_DOT
#define UMFA_SIMD_BF16_DOT 0
#endif

// exp as in simd_portable.h, but vscalefps applies 2^n with correct overflow (large x gives
// +inf); one masked scalef zeroes x < lo (and -inf, whose r would be NaN) while NaN inputs stay
// NaN (the "not less than" compare is true for NaN).
inline vfloat vexp(vfloat x) {
  const vfloat lo = splat(-87.33654475f);
  const __m512 xv = reinterpret_cast<__m512>(x);
  // (The zero-masked form with every lane selected avoids GCC 12's -Wmaybe-uninitialized false
  // positive inside the unmasked intrinsic.)
  const __m512 n = _mm512_maskz_roundscale_ps(
      static_cast<__mmask16>(0xffff), _mm512_mul_ps(xv, _mm512_set1_ps(1.44269504088896341f)),
      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const vfloat nv = reinterpret_cast<vfloat>(n);
  vfloat r = vfma(nv, splat(-0.693359375f), x);
  r = vfma(nv, splat(2.12194440e-4f), r);
  const vfloat p = exp_polynomial(r);
  const __mmask16 keep = _mm512_cmp_ps_mask(xv, reinterpret_cast<__m512>(lo), _CMP_NLT_UQ);
  return reinterpret_cast<vfloat>(_mm512_maskz_scalef_ps(keep, reinterpret_cast<__m512>(p), n));
}

// True when every lane of a is exactly 1 (NaN is not 1).
inline bool all_one(vfloat a) {
  return _mm512_cmp_ps_mask(reinterpret_cast<__m512>(a), _mm512_set1_ps(1.f), _CMP_NEQ_UQ) == 0;
}

// dst[c*ldd + r] = src[r*lds + c] for r < 16, c < ncols (src rows hold 16 readable floats).
inline void transpose_block(const float* src, int64_t lds, float* dst, int64_t ldd, int64_t ncols) {
  // Zero-masked forms with every lane selected: the same instructions, without GCC 12's
  // -Wmaybe-uninitialized false positives inside the unmasked intrinsics.
  const __mmask16 kAll = 0xffff;
  __m512 r[16], t[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
  // Stage 1/2 work inside 128-bit lanes: u[4k+e] holds, in lane L, element 4L+e of rows 4k..4k+3.
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_maskz_unpacklo_ps(kAll, r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_maskz_unpackhi_ps(kAll, r[2 * k], r[2 * k + 1]);
  }
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    r[4 * k + 0] = _mm512_maskz_shuffle_ps(kAll, t[4 * k], t[4 * k + 2], 0x44);
    r[4 * k + 1] = _mm512_maskz_shuffle_ps(kAll, t[4 * k], t[4 * k + 2], 0xEE);
    r[4 * k + 2] = _mm512_maskz_shuffle_ps(kAll, t[4 * k + 1], t[4 * k + 3], 0x44);
    r[4 * k + 3] = _mm512_maskz_shuffle_ps(kAll, t[4 * k + 1], t[4 * k + 3], 0xEE);
  }
  // Stages 3/4 gather the four row groups across lanes: column 4L + e.
#pragma GCC unroll 4
  for (int e = 0; e < 4; ++e) {
    const __m512 v0 = _mm512_maskz_shuffle_f32x4(kAll, r[e], r[4 + e], 0x88);
    const __m512 w0 = _mm512_maskz_shuffle_f32x4(kAll, r[e], r[4 + e], 0xDD);
    const __m512 v1 = _mm512_maskz_shuffle_f32x4(kAll, r[8 + e], r[12 + e], 0x88);
    const __m512 w1 = _mm512_maskz_shuffle_f32x4(kAll, r[8 + e], r[12 + e], 0xDD);
    const __m512 col[4] = {_mm512_maskz_shuffle_f32x4(kAll, v0, v1, 0x88), _mm512_maskz_shuffle_f32x4(kAll, w0, w1, 0x88),
                           _mm512_maskz_shuffle_f32x4(kAll, v0, v1, 0xDD), _mm512_maskz_shuffle_f32x4(kAll, w0, w1, 0xDD)};
#pragma GCC unroll 4
    for (int L = 0; L < 4; ++L) {
      const int c = 4 * L + e;
      if (c < ncols) _mm512_storeu_ps(dst + c * ldd, col[L]);
    }
  }
}

// out[i] = sum of the lanes of x[i], i < 16.
inline void reduce16(const vfloat* x, float* out) {
  const __mmask16 kAll = 0xffff;
  __m512 p[8], q[4], r[2];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    const __m512 a = reinterpret_cast<__m512>(x[2 * i]), b = reinterpret_cast<__m512>(x[2 * i + 1]);
    p[i] = _mm512_add_ps(_mm512_maskz_unpacklo_ps(kAll, a, b), _mm512_maskz_unpackhi_ps(kAll, a, b));
  }
  // Per 128-bit lane: q[i] = partial sums of x[4i .. 4i+3], in order.
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i)
    q[i] = _mm512_add_ps(_mm512_maskz_shuffle_ps(kAll, p[2 * i], p[2 * i + 1], 0x44),
                         _mm512_maskz_shuffle_ps(kAll, p[2 * i], p[2 * i + 1], 0xEE));
#pragma GCC unroll 2
  for (int i = 0; i < 2; ++i)
    r[i] = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(kAll, q[2 * i], q[2 * i + 1], 0x88),
                         _mm512_maskz_shuffle_f32x4(kAll, q[2 * i], q[2 * i + 1], 0xDD));
  _mm512_storeu_ps(out, _mm512_add_ps(_mm512_maskz_shuffle_f32x4(kAll, r[0], r[1], 0x88),
                                      _mm512_maskz_shuffle_f32x4(kAll, r[0], r[1], 0xDD)));
}

// 16 f16 values to f32 (vcvtph2ps). The zero-masked form (all lanes selected) avoids GCC 12's
// -Wmaybe-uninitialized false positive inside _mm512_cvtph_ps.
inline vfloat load_f16(const uint16_t* p) {
  return reinterpret_cast<vfloat>(_mm512_maskz_cvtph_ps(
      static_cast<__mmask16>(0xffff), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
}

UMFA_KERNELS_END
