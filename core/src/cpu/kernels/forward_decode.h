// The forward for few query rows (decode): lanes hold the head dimension instead of queries.
#pragma once

#include "forward_tile_state.h"

UMFA_KERNELS_BEGIN

// ---------------------------------------------------------------------------------------------
// Few query rows (decode): the lanes hold d instead of queries, so no lane is idle. Scores are
// dot products of query rows with key rows, reduced 16 at a time; P·V reads V rows directly.
// Used for tiles of at most kRowMax rows without softcap, ALiBi or mask.
// ---------------------------------------------------------------------------------------------
constexpr int64_t kRowMax = 8;

// S[q*BN + j] = qrows[q] · krows[j] for q < NQ, j < nc (rows of dvec vectors, zero-padded).
template <int NQ>
void row_dots(const float* qrows, int64_t ldq, const float* krows, int64_t ldk, int64_t nc,
              int64_t dvec, float* S) {
  constexpr int KK = 16 / NQ;  // keys per step: NQ * KK = 16 accumulators
  float sums[16];
  int64_t j = 0;
  for (; j + KK <= nc; j += KK) {
    vfloat acc[NQ * KK];
#pragma GCC unroll 16
    for (int i = 0; i < NQ * KK; ++i) acc[i] = vfloat{};
    for (int64_t c = 0; c < dvec; ++c) {
      if constexpr (NQ == 1) {
        const vfloat qv = vload(qrows + c * kLanes);
#pragma GCC unroll 16
        for (int k = 0; k < KK; ++k) acc[k] = vfma(qv, vload(krows + (j + k) * ldk + c * kLanes), acc[k]);
      } else {
        vfloat kv[KK];
#pragma GCC unroll 8
        for (int k = 0; k < KK; ++k) kv[k] = vload(krows + (j + k) * ldk + c * kLanes);
#pragma GCC unroll 4
        for (int q = 0; q < NQ; ++q) {
          const vfloat qv = vload(qrows + q * ldq + c * kLanes);
#pragma GCC unroll 8
          for (int k = 0; k < KK; ++k) acc[q * KK + k] = vfma(qv, kv[k], acc[q * KK + k]);
        }
      }
    }
    reduce16(acc, sums);
#pragma GCC unroll 4
    for (int q = 0; q < NQ; ++q)
      for (int k = 0; k < KK; ++k) S[q * BN + j + k] = sums[q * KK + k];
  }
  for (; j < nc; ++j) {
    for (int q = 0; q < NQ; ++q) {
      vfloat acc = vfloat{};
      for (int64_t c = 0; c < dvec; ++c) acc = vfma(vload(qrows + q * ldq + c * kLanes), vload(krows + j * ldk + c * kLanes), acc);
      S[q * BN + j] = hsum(acc);
    }
  }
}

// orows[q] += sum_j P[q*BN + j] * vrows[j] for q < NQ (dvec vectors per row).
template <int NQ>
void row_pv(const float* P, int64_t nc, const float* vrows, int64_t ldv, int64_t dvec,
            float* orows, int64_t ldo) {
  constexpr int CW = NQ >= 4 ? 4 : 8;  // vectors of d per pass: NQ * CW <= 16 accumulators
  for (int64_t c0 = 0; c0 < dvec; c0 += CW) {
    const int cw = static_cast<int>(imin(CW, dvec - c0));
    if (cw == CW) {
      vfloat acc[NQ][CW];
#pragma GCC unroll 4
      for (int q = 0; q < NQ; ++q)
#pragma GCC unroll 8
        for (int c = 0; c < CW; ++c) acc[q][c] = vload(orows + q * ldo + (c0 + c) * kLanes);
      for (int64_t j = 0; j < nc; ++j) {
        vfloat vv[CW];
#pragma GCC unroll 8
        for (int c = 0; c < CW; ++c) vv[c] = vload(vrows + j * ldv + (c0 + c) * kLanes);
#pragma GCC unroll 4
        for (int q = 0; q < NQ; ++q) {
          const vfloat p = splat(P[q * BN + j]);
#pragma GCC unroll 8
          for (int c = 0; c < CW; ++c) acc[q][c] = vfma(p, vv[c], acc[q][c]);
        }
      }
#pragma GCC unroll 4
      for (int q = 0; q < NQ; ++q)
#pragma GCC unroll 8
        for (int c = 0; c < CW; ++c) vstore(orows + q * ldo + (c0 + c) * kLanes, acc[q][c]);
    } else {
      for (int q = 0; q < NQ; ++q)
        for (int c = 0; c < cw; ++c) {
          vfloat acc = vload(orows + q * ldo + (c0 + c) * kLanes);
          for (int64_t j = 0; j < nc; ++j)
            acc = vfma(splat(P[q * BN + j]), vload(vrows + j * ldv + (c0 + c) * kLanes), acc);
          vstore(orows + q * ldo + (c0 + c) * kLanes, acc);
        }
    }
  }
}

// Rows [row0, row0 + n) of head h as f32 rows of dw floats (zero-padded past d) that vector
// loads may read whole: the view itself when it already is that, else a converted copy.
inline const float* rows_f32(const View& v, int64_t vb, int64_t row0, int64_t h, int64_t n,
                             int64_t d, int64_t dw, float* buf, int64_t* ld_out) {
  if (v.dtype == UMFA_DTYPE_F32 && v.strides[3] == 1 && d == dw) {
    *ld_out = v.strides[1];
    return static_cast<const float*>(v.data) + voff(v, vb, row0, h);
  }
  pack_rows(v, vb, row0, h, n, d, dw, 1.f, buf, dw);
  *ld_out = dw;
  return buf;
}

inline bool row_kernel_applies(const Plan& pl, const FwdTile& t) {
  return t.ntile == 1 && t.qr * t.hcnt <= kRowMax && !pl.softcap && !pl.alibi && !pl.mask;
}

// The few-rows forward of tile t (state in q, as the general path leaves it for fwd_tile_store).
void fwd_rows_tile(const Plan& pl, const FwdTile& t, FwdBufs& B, QTile& q) {
  const Problem& P = *pl.p;
  const Seq& s = pl.seqs[t.b];
  const int64_t d = pl.d, dw = round_up(d, kLanes), dvec = dw / kLanes;
  const float scale = P.scale;
  const int64_t nq = q.lanes;
  // Query rows (q.qt reused as [kRowMax][dw]) and output rows (q.ot reused likewise).
  float* qrows = q.qt;
  float* orows = q.ot;
  for (int64_t L = 0; L < kRowMax; ++L) {
    float* o = qrows + L * dw;
    int64_t c = 0;
    if (L < nq) {
      load_row_v(P.q.data, P.q.dtype, voff(P.q, s.vb, s.q0 + q.li[L], q.lh[L]), P.q.strides[3], d, 1.f, o);
      c = d;
    }
    for (; c < dw; ++c) o[c] = 0.f;
    for (int64_t x = 0; x < dw; ++x) orows[L * dw + x] = 0.f;
    q.m[L] = -kInf;
    q.l[L] = 0.f;
  }
  int64_t jlo = q.jlo, jhi = q.jhi;
  if (t.split >= 0 && jlo < jhi) {
    const int64_t nb = ceil_div(jhi - jlo, BN);
    const int64_t b0 = nb * t.split / pl.nsplit, b1 = nb * (t.split + 1) / pl.nsplit;
    const int64_t lo = jlo + b0 * BN;
    jhi = imin(jhi, jlo + b1 * BN);
    jlo = lo;
  }
  float* S = B.s;  // [kRowMax][BN]
  const int nq4 = nq > 4 ? 8 : nq > 2 ? 4 : nq > 1 ? 2 : 1;
  for (int64_t j0 = jlo; j0 < jhi; j0 += BN) {
    const int64_t nc = imin(BN, jhi - j0);
    int64_t ldk, ldv;
    const float* K = rows_f32(P.k, s.vb, s.k0 + j0, t.kvh, nc, d, dw, B.kb, &ldk);
    const float* V = rows_f32(P.v, s.vb, s.k0 + j0, t.kvh, nc, d, dw, B.vb, &ldv);
    switch (nq4) {
      case 1: row_dots<1>(qrows, dw, K, ldk, nc, dvec, S); break;
      case 2: row_dots<2>(qrows, dw, K, ldk, nc, dvec, S); break;
      case 4: row_dots<4>(qrows, dw, K, ldk, nc, dvec, S); break;
      default:
        row_dots<4>(qrows, dw, K, ldk, nc, dvec, S);
        row_dots<4>(qrows + 4 * dw, dw, K, ldk, nc, dvec, S + 4 * BN);
        break;
    }
    const bool full = tile_fully_visible(pl, s, q.i0, q.i0 + q.qr, j0, j0 + nc);
    const int64_t ncw = round_up(nc, kLanes);
    for (int64_t L = 0; L < nq; ++L) {
      float* row = S + L * BN;
      // The scale is folded into the exponent when that is exact (positive scale, no masked
      // keys); otherwise scores are scaled first and masked after, as score_transforms does.
      float sc = scale;
      if (!full || !(scale > 0.f)) {
        for (int64_t jj = 0; jj < nc; ++jj) row[jj] *= scale;
        if (!full)
          for (int64_t jj = 0; jj < nc; ++jj)
            if (!visible(pl, s, q.li[L], j0 + jj)) row[jj] = -kInf;
        sc = 1.f;
      }
      for (int64_t jj = nc; jj < ncw; ++jj) row[jj] = -kInf;
      vfloat mx = splat(-kInf);
      for (int64_t c = 0; c < ncw; c += kLanes) mx = vmax(mx, vload(row + c));
      float mloc = -kInf;
      for (int i = 0; i < kLanes; ++i) mloc = (mx[i] > mloc || mx[i] != mx[i]) ? mx[i] : mloc;
      mloc *= sc;
      const float mold = q.m[L];
      const float mnew = (mloc > mold || mloc != mloc) ? mloc : mold;
      const float muse = mnew == -kInf ? 0.f : mnew;
      const float alpha = std::exp(mold - muse);
      const vfloat vsc = splat(sc), nm = splat(-muse);
      vfloat sum = vfloat{};
      for (int64_t c = 0; c < ncw; c += kLanes) {
        const vfloat p = vexp(vfma(vload(row + c), vsc, nm));
        vstore(row + c, p);
        sum += p;
      }
      q.l[L] = q.l[L] * alpha + hsum(sum);
      q.m[L] = mnew;
      if (alpha != 1.f) {
        const vfloat av = splat(alpha);
        for (int64_t c = 0; c < dvec; ++c) vstore(orows + L * dw + c * kLanes, vload(orows + L * dw + c * kLanes) * av);
      }
    }
    switch (nq4) {
      case 1: row_pv<1>(S, nc, V, ldv, dvec, orows, dw); break;
      case 2: row_pv<2>(S, nc, V, ldv, dvec, orows, dw); break;
      case 4: row_pv<4>(S, nc, V, ldv, dvec, orows, dw); break;
      default:
        row_pv<4>(S, nc, V, ldv, dvec, orows, dw);
        row_pv<4>(S + 4 * BN, nc, V, ldv, dvec, orows + 4 * dw, dw);
        break;
    }
  }
  // Back to the layout fwd_tile_store reads: Oᵀ[c][L]. (Rows are copied out first: the two
  // layouts share q.ot.)
  float* tmp = B.rows;
  std::memcpy(tmp, orows, static_cast<size_t>(nq * dw) * sizeof(float));
  for (int64_t L = 0; L < nq; ++L)
    for (int64_t c = 0; c < d; ++c) q.ot[c * BM + L] = tmp[L * dw + c];
  q.started = true;
}

UMFA_KERNELS_END
