// Score transforms between q·k and the softmax, on Sᵀ tiles (rows = keys, lanes = queries):
// scale, softcap (tanh), causal/sliding-window visibility, ALiBi and the additive or boolean mask.
#pragma once

#include "packing.h"

UMFA_KERNELS_BEGIN

// tanh(x): its odd Taylor series up to x^9 for |x| < 0.25 (relative error < 1e-8), else
// 1 - 2 / (exp(2x) + 1) (absolute error ~1e-7); +-1 at the extremes, NaN -> NaN.
inline vfloat vtanh(vfloat x) {
  const vfloat big = splat(1.0f) - splat(2.0f) / (vexp(x + x) + splat(1.0f));
  const vfloat x2 = x * x;
  vfloat p = splat(62.0f / 2835.0f);
  p = vfma(p, x2, splat(-17.0f / 315.0f));
  p = vfma(p, x2, splat(2.0f / 15.0f));
  p = vfma(p, x2, splat(-1.0f / 3.0f));
  const vfloat small = vfma(p * x2, x, x);
  return x2 < splat(0.0625f) ? small : big;
}

// ---------------------------------------------------------------------------------------------
// Score transforms on Sᵀ tiles: rows are keys j0 + jj (jj < nc), lanes are queries.
// ---------------------------------------------------------------------------------------------

// Per-lane facts of a tile: lane L is query row li[L] (within the sequence) of head lh[L];
// ql[L] = li[L] - i0 as int32 (for the vectorized window test).
struct Lanes {
  int64_t *lh, *li;
  int32_t* ql;
  float* slope;   // ALiBi slope per lane (when pl.alibi)
  int64_t* mrow;  // mask offset of (b, h, i, 0) per lane (when pl.mask)
};

inline void lanes_setup(const Plan& pl, int64_t b, int64_t lanes, int64_t nl, int64_t i0,
                        const Lanes& ln) {
  const Problem& P = *pl.p;
  for (int64_t L = 0; L < nl; ++L) {
    const bool live = L < lanes;
    ln.ql[L] = live ? static_cast<int32_t>(ln.li[L] - i0) : 0;
    if (pl.alibi) {
      const View& a = P.alibi;
      ln.slope[L] = live ? static_cast<const float*>(a.data)[b * a.strides[0] + ln.lh[L] * a.strides[1]] : 0.f;
    }
    if (pl.mask) {
      const View& m = P.mask;
      ln.mrow[L] = live ? b * m.strides[0] + ln.lh[L] * m.strides[1] + ln.li[L] * m.strides[2] : 0;
    }
  }
}

// s = cap * tanh(s / cap); when g is set, also g = 1 - tanh^2 (the derivative).
inline void softcap_tile(const Plan& pl, int64_t nc, int64_t nv, float* S, float* g) {
  const vfloat cap = splat(pl.cap), inv = splat(pl.inv_cap);
  for (int64_t j = 0; j < nc; ++j) {
    for (int64_t c = 0; c < nv; ++c) {
      float* p = S + j * BM + c * kLanes;
      const vfloat t = vtanh(vload(p) * inv);
      vstore(p, t * cap);
      if (g) vstore(g + j * BM + c * kLanes, splat(1.f) - t * t);
    }
  }
}

// Window / causal visibility, vectorized: key j0 + jj is visible to query i0 + ql when
// d = (j0 - i0 - off) + jj - ql lies in [-left, right]; invisible scores become -inf.
inline void window_tile(const Plan& pl, const Seq& s, int64_t i0, int64_t j0, int64_t nc,
                        int64_t nv, const int32_t* ql, float* S) {
  const int64_t base = j0 - i0 - s.off;
  const vfloat ninf = splat(-kInf);
  for (int64_t jj = 0; jj < nc; ++jj) {
    // Visible iff lo <= ql <= hi (clamped to the lane range, so int32 holds them).
    int64_t lo = pl.has_right ? base + jj - pl.right : -1;
    int64_t hi = pl.has_left ? base + jj + pl.left : BM + 1;
    lo = imax(-1, imin(lo, BM + 1));
    hi = imax(-1, imin(hi, BM + 1));
    const vint vlo = splat_int(static_cast<int32_t>(lo)), vhi = splat_int(static_cast<int32_t>(hi));
    float* row = S + jj * BM;
    for (int64_t c = 0; c < nv; ++c) {
      const vint q = *reinterpret_cast<const vint*>(ql + c * kLanes);
      const vint vis = (q >= vlo) & (q <= vhi);
      vstore(row + c * kLanes, vis ? vload(row + c * kLanes) : ninf);
    }
  }
}

// ALiBi and the mask, element by element (only called when either is present).
inline void bias_tile(const Plan& pl, const Seq& s, int64_t lanes, const Lanes& ln, int64_t j0,
                      int64_t nc, float* S) {
  const Problem& P = *pl.p;
  const View& m = P.mask;
  for (int64_t jj = 0; jj < nc; ++jj) {
    const int64_t j = j0 + jj;
    float* row = S + jj * BM;
    for (int64_t L = 0; L < lanes; ++L) {
      float v = row[L];
      if (pl.alibi) {
        int64_t dist = ln.li[L] + s.off - j;
        if (dist < 0) dist = -dist;
        v -= ln.slope[L] * static_cast<float>(dist);
      }
      if (pl.mask) {
        const int64_t idx = ln.mrow[L] + j * m.strides[3];
        if (pl.mask_bool) {
          if (!static_cast<const uint8_t*>(m.data)[idx]) v = -kInf;
        } else {
          v += load_elem(m.data, m.dtype, idx);
        }
      }
      row[L] = v;
    }
  }
}

// A "plain" tile needs nothing between q·k and the softmax but the (positive) scale.
inline bool plain_tile(const Plan& pl, const Seq& s, int64_t i0, int64_t qr, int64_t j0, int64_t nc) {
  return !pl.softcap && !pl.alibi && !pl.mask && pl.p->scale > 0.f &&
         tile_fully_visible(pl, s, i0, i0 + qr, j0, j0 + nc);
}

// Applies everything between q·k and the softmax to a raw Sᵀ tile, unless the tile is "plain"
// (fully visible, no softcap/ALiBi/mask, positive scale): then the caller folds the scale into
// the exponent and this returns the scale to use there (else 1).
inline float score_transforms(const Plan& pl, const Seq& s, int64_t i0, int64_t qr, int64_t lanes,
                              const Lanes& ln, int64_t j0, int64_t nc, int64_t nv, float* S,
                              float* g) {
  const float scale = pl.p->scale;
  const bool full = tile_fully_visible(pl, s, i0, i0 + qr, j0, j0 + nc);
  if (full && !pl.softcap && !pl.alibi && !pl.mask && scale > 0.f) return scale;
  const vfloat sc = splat(scale);
  for (int64_t j = 0; j < nc; ++j)
    for (int64_t c = 0; c < nv; ++c) vstore(S + j * BM + c * kLanes, vload(S + j * BM + c * kLanes) * sc);
  if (pl.softcap) softcap_tile(pl, nc, nv, S, g);
  if (!full) window_tile(pl, s, i0, j0, nc, nv, ln.ql, S);
  if (pl.alibi || pl.mask) bias_tile(pl, s, lanes, ln, j0, nc, S);
  return 1.f;
}

UMFA_KERNELS_END
