// Packing: carving the per-thread scratch, loading rows of any dtype and stride as f32 (or as raw
// bf16), transposing query rows into lanes, and the bf16 pair layouts the pair micro-GEMM reads.
#pragma once

#include "micro_gemm.h"

UMFA_KERNELS_BEGIN

// ---------------------------------------------------------------------------------------------
// Scratch carving.
// ---------------------------------------------------------------------------------------------
struct Carver {
  unsigned char* p;
  size_t used = 0;
  template <class T>
  T* take(int64_t count) {
    T* r = reinterpret_cast<T*>(p ? p + used : nullptr);
    used += round_up(static_cast<int64_t>(sizeof(T)) * count, 64);
    return r;
  }
};

// ---------------------------------------------------------------------------------------------
// Loading rows.
// ---------------------------------------------------------------------------------------------

// dst[0..n) = mul * src[off + k*stride] as f32: vector paths for unit stride, the portable scalar
// conversions otherwise (and for the tails).
inline void load_row_v(const void* base, int32_t dt, int64_t off, int64_t stride, int64_t n,
                       float mul, float* dst) {
  if (stride != 1) {
    load_row(base, dt, off, stride, n, mul, dst);
    return;
  }
  int64_t k = 0;
  const vfloat m = splat(mul);
  if (dt == UMFA_DTYPE_F32) {
    const float* s = static_cast<const float*>(base) + off;
    if (mul == 1.f) {
      for (; k + kLanes <= n; k += kLanes) vstore(dst + k, vload(s + k));
    } else {
      for (; k + kLanes <= n; k += kLanes) vstore(dst + k, vload(s + k) * m);
    }
  } else if (dt == UMFA_DTYPE_BF16) {
    const uint16_t* s = static_cast<const uint16_t*>(base) + off;
    for (; k + kLanes <= n; k += kLanes) vstore(dst + k, widen_bf16(s + k) * m);
  } else if (dt == UMFA_DTYPE_F16) {
#if UMFA_SIMD_F16
    const uint16_t* s = static_cast<const uint16_t*>(base) + off;
    for (; k + kLanes <= n; k += kLanes) vstore(dst + k, load_f16(s + k) * m);
#endif
  }
  if (k < n) load_row(base, dt, off + k, 1, n - k, mul, dst + k);
}

// Raw 16-bit elements of a bf16 row: dst[k] = src[off + k*stride], k < n.
inline void load_row_u16(const View& v, int64_t off, int64_t n, uint16_t* dst) {
  const uint16_t* s = static_cast<const uint16_t*>(v.data) + off;
  const int64_t st_ = v.strides[3];
  if (st_ == 1) {
    std::memcpy(dst, s, static_cast<size_t>(n) * 2);
  } else {
    for (int64_t k = 0; k < n; ++k) dst[k] = s[k * st_];
  }
}

// Rows [row0, row0 + rows) of head h as f32: dst[r*ldd + c] = mul * x (c < d; [d, dpad) zeroed).
inline void pack_rows(const View& v, int64_t vb, int64_t row0, int64_t h, int64_t rows, int64_t d,
                      int64_t dpad, float mul, float* dst, int64_t ldd) {
  for (int64_t r = 0; r < rows; ++r) {
    float* o = dst + r * ldd;
    load_row_v(v.data, v.dtype, voff(v, vb, row0 + r, h), v.strides[3], d, mul, o);
    for (int64_t c = d; c < dpad; ++c) o[c] = 0.f;
  }
}

// Transposes a row tile: dst[c*BM + L] = rows[L*ldr + c] for c < d, L < nl (nl a multiple of kLanes;
// rows holds nl rows of round_up(d, kLanes) readable floats).
inline void transpose_rows(const float* rows, int64_t ldr, int64_t nl, int64_t d, float* dst) {
  for (int64_t l0 = 0; l0 < nl; l0 += kLanes)
    for (int64_t c0 = 0; c0 < d; c0 += kLanes)
      transpose_block(rows + l0 * ldr + c0, ldr, dst + c0 * BM + l0, BM, imin(kLanes, d - c0));
}

// Transposed pack of `lanes` rows: dst[c*BM + L] = mul * row_L[c] for c < d, where row L is
// (row0[L], head[L]); lanes [lanes, nl) are zeroed. rowbuf: [BM][round_up(d, kLanes)] scratch.
inline void pack_rows_t(const View& v, int64_t vb, const int64_t* rowv, const int64_t* headv,
                        int64_t lanes, int64_t nl, int64_t d, float mul, float* rowbuf,
                        float* dst) {
  const int64_t dw = round_up(d, kLanes);
  for (int64_t L = 0; L < nl; ++L) {
    float* o = rowbuf + L * dw;
    int64_t c = 0;
    if (L < lanes) {
      load_row_v(v.data, v.dtype, voff(v, vb, rowv[L], headv[L]), v.strides[3], d, mul, o);
      c = d;
    }
    for (; c < dw; ++c) o[c] = 0.f;
  }
  transpose_rows(rowbuf, dw, nl, d, dst);
}

inline uint32_t pair16(uint16_t lo, uint16_t hi) {
  return static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
}

// ---------------------------------------------------------------------------------------------
// bf16 pairs (variants with bf16 dot products only).
// ---------------------------------------------------------------------------------------------
#if UMFA_SIMD_BF16_DOT
// Rows of an f32 tile [rows][BM] -> pairs along rows: dst[(r/2)*BM + L] = (x[r][L], x[r+1][L]);
// an odd last row is paired with 0. nv vectors per row.
inline void pair_tile_rows(const float* x, int64_t rows, int64_t nv, uint32_t* dst) {
  for (int64_t r = 0; r < rows; r += 2) {
    for (int64_t c = 0; c < nv; ++c) {
      const vfloat a = vload(x + r * BM + c * kLanes);
      const vfloat b = r + 1 < rows ? vload(x + (r + 1) * BM + c * kLanes) : vfloat{};
      bf16x2_store(dst + (r / 2) * BM + c * kLanes, bf16x2_from_f32(a, b));
    }
  }
}

// Rows of an f32 tile [rows][BM] -> bf16 rows [rows][BM] (pairs along lanes).
inline void bf16_tile_rows(const float* x, int64_t rows, int64_t nv, uint16_t* dst) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < nv; ++c) bf16_store_row(dst + r * BM + c * kLanes, vload(x + r * BM + c * kLanes));
}

// Interleaves two rows of n raw bf16 values: dst[c] = (a[c], b[c]) (b = null: zeros).
inline void pair_two_rows(const uint16_t* a, const uint16_t* b, int64_t n, uint32_t* dst) {
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes) {
    vuint x = __builtin_convertvector(*reinterpret_cast<const vhalf_u*>(a + c), vuint);
    if (b) x |= __builtin_convertvector(*reinterpret_cast<const vhalf_u*>(b + c), vuint) << 16;
    *reinterpret_cast<vuint_u*>(dst + c) = x;
  }
  for (; c < n; ++c) dst[c] = pair16(a[c], b ? b[c] : 0);
}
#endif

// Packs rows [row0, row0 + n) of head h of a bf16 view as pairs along the rows:
// dst[(r/2)*ldd + c] = (x[r][c], x[r+1][c]) for c < d (an odd last row pairs with 0).
inline void pack_pairs_rows(const View& v, int64_t vb, int64_t row0, int64_t h, int64_t n,
                            int64_t d, uint16_t* tmp, uint32_t* dst, int64_t ldd) {
#if UMFA_SIMD_BF16_DOT
  uint16_t* t0 = tmp;
  uint16_t* t1 = tmp + round_up(d, 32);
  for (int64_t r = 0; r < n; r += 2) {
    load_row_u16(v, voff(v, vb, row0 + r, h), d, t0);
    const bool two = r + 1 < n;
    if (two) load_row_u16(v, voff(v, vb, row0 + r + 1, h), d, t1);
    pair_two_rows(t0, two ? t1 : nullptr, d, dst + (r / 2) * ldd);
  }
#else
  (void)v; (void)vb; (void)row0; (void)h; (void)n; (void)d; (void)tmp; (void)dst; (void)ldd;
#endif
}

// Packs rows of a bf16 view as pairs along d: dst[r*ldd + c/2] = (x[r][c], x[r][c+1]); an odd d
// pairs its last element with 0.
inline void pack_pairs_d(const View& v, int64_t vb, int64_t row0, int64_t h, int64_t n, int64_t d,
                         uint32_t* dst, int64_t ldd) {
  const uint16_t* s = static_cast<const uint16_t*>(v.data);
  const int64_t st_ = v.strides[3];
  for (int64_t r = 0; r < n; ++r) {
    const int64_t off = voff(v, vb, row0 + r, h);
    uint32_t* o = dst + r * ldd;
    if (st_ == 1 && d % 2 == 0) {
      std::memcpy(o, s + off, static_cast<size_t>(d) * 2);
    } else {
      for (int64_t c = 0; c < d; c += 2)
        o[c / 2] = pair16(s[off + c * st_], c + 1 < d ? s[off + (c + 1) * st_] : 0);
    }
  }
}

// Key-side operand along d for rows [row0, row0 + n) of head h, in the form the score GEMMs read
// (f32 elements, or bf16 pairs along d): the view itself when its rows are already contiguous
// and in that form, else a contiguous copy. (Reading rows in place at a large stride would walk
// the GEMM through addresses 4 KiB apart, e.g. BSHD with 8 heads of 128 f32, which all share one
// L1 set.)
template <class T>
inline Operand<T> rows_operand(const View& v, int64_t vb, int64_t row0, int64_t h, int64_t n,
                            int64_t d, T* buf) {
  if constexpr (std::is_same<T, float>::value) {
    if (v.dtype == UMFA_DTYPE_F32 && v.strides[3] == 1 && v.strides[1] == d)
      return {static_cast<const float*>(v.data) + voff(v, vb, row0, h), d, 1};
    pack_rows(v, vb, row0, h, n, d, d, 1.f, buf, d);
    return {buf, d, 1};
  } else {
    const int64_t dh = ceil_div(d, 2);
    if (v.strides[3] == 1 && d % 2 == 0 && v.strides[1] == d) {
      const uint16_t* base = static_cast<const uint16_t*>(v.data) + voff(v, vb, row0, h);
      return {reinterpret_cast<const uint32_t*>(base), dh, 1};
    }
    pack_pairs_d(v, vb, row0, h, n, d, buf, dh);
    return {buf, dh, 1};
  }
}

UMFA_KERNELS_END
