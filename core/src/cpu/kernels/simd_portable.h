// Portable implementations of the ISA-specific primitives (vector extensions only), after the
// primitives file has defined vfma. A primitives file forwards to these where its instruction set
// has nothing better.
#pragma once

#include "simd_types.h"

UMFA_KERNELS_BEGIN

// exp(x) for f32 lanes: exp(-inf) = 0, exp(x < -87.3) = 0, NaN -> NaN; large x clamps to e^88
// (callers pass x <= 0 or NaN, except tanh, which tolerates both). About 2 ulp:
// exp(x) = 2^n * p(r), r = x - n*ln2, with Cephes' polynomial.
inline vfloat exp_polynomial(vfloat r) {
  const vfloat r2 = r * r;
  vfloat p = splat(1.9875691500e-4f);
  p = vfma(p, r, splat(1.3981999507e-3f));
  p = vfma(p, r, splat(8.3334519073e-3f));
  p = vfma(p, r, splat(4.1665795894e-2f));
  p = vfma(p, r, splat(1.6666665459e-1f));
  p = vfma(p, r, splat(5.0000001201e-1f));
  return vfma(p, r2, r + splat(1.0f));
}

inline vfloat vexp_portable(vfloat x) {
  const vfloat lo = splat(-87.33654475f);
  const vfloat hi = splat(88.0f);
  vfloat xc = x > hi ? hi : x;  // NaN compares false and stays
  xc = xc < lo ? lo : xc;
  const vfloat magic = splat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  const vfloat t = vfma(xc, splat(1.44269504088896341f), magic);
  const vfloat n = t - magic;
  vfloat r = vfma(n, splat(-0.693359375f), xc);
  r = vfma(n, splat(2.12194440e-4f), r);
  const vfloat p = exp_polynomial(r);
  const vint e = (reinterpret_cast<vint>(t) - reinterpret_cast<vint>(magic) + 127) << 23;
  const vfloat res = p * reinterpret_cast<vfloat>(e);
  return x < lo ? vfloat{} : res;
}

// True when every lane of a is exactly 1 (NaN is not 1).
inline bool all_one_portable(vfloat a) {
  bool one = true;
  for (int i = 0; i < kLanes; ++i) one = one && a[i] == 1.f;
  return one;
}

// dst[c*ldd + r] = src[r*lds + c] for r < kLanes, c < ncols (a kLanes x kLanes block; src rows
// hold at least kLanes readable floats each).
inline void transpose_block_portable(const float* src, int64_t lds, float* dst, int64_t ldd,
                                     int64_t ncols) {
  for (int64_t c = 0; c < ncols; ++c)
    for (int64_t r = 0; r < kLanes; ++r) dst[c * ldd + r] = src[r * lds + c];
}

// out[i] = sum of the lanes of x[i], i < 16.
inline void reduce16_portable(const vfloat* x, float* out) {
  for (int i = 0; i < 16; ++i) out[i] = hsum(x[i]);
}

// f32 lanes rounded to bf16 (to nearest, ties to even; NaN stays a quiet NaN), as the low 16 bits
// of 32-bit lanes.
inline vuint round_to_bf16(vfloat x) {
  const vuint u = reinterpret_cast<vuint>(x);
  const vuint rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const vuint quiet = (u >> 16) | 0x40u;
  return (x != x) ? quiet : rounded;
}

// Two f32 vectors as bf16 pairs: lane L = (bf16(lo[L]), bf16(hi[L])).
inline vuint bf16x2_from_f32_portable(vfloat lo, vfloat hi) {
  return round_to_bf16(lo) | (round_to_bf16(hi) << 16);
}

// dst[0..kLanes) = bf16(x) (dst 2-byte aligned).
inline void bf16_store_row_portable(uint16_t* dst, vfloat x) {
  typedef uint16_t vhalf __attribute__((vector_size(kLanes * 2)));
  *reinterpret_cast<vhalf_u*>(dst) = __builtin_convertvector(round_to_bf16(x), vhalf);
}

UMFA_KERNELS_END
