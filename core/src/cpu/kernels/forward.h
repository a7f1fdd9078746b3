// The forward work item: query tiles sharing one pass over their keys. Per key block: the score
// micro-GEMM (Sᵀ = K·Qᵀ), score transforms, online softmax, and the P·V micro-GEMM (Oᵀ += Vᵀ·Pᵀ).
#pragma once

#include "forward_decode.h"

UMFA_KERNELS_BEGIN

// One work item: t.ntile query tiles of BM rows (or one tile of stacked heads), one pass over
// their keys: each K/V block is converted once and used by every tile that sees it.
void fwd_tile(const Plan& pl, const FwdTile& t, unsigned char* scratch) {
  const Problem& P = *pl.p;
  const Seq& s = pl.seqs[t.b];
  const int64_t d = pl.d;
  const bool dp = kHasBf16Dot && P.q.dtype == UMFA_DTYPE_BF16;
  FwdBufs B = fwd_carve(scratch, d, nullptr);
  const int64_t nt = imax(1, imin(kFwdTiles, t.ntile));
  if (row_kernel_applies(pl, t)) {
    QTile& q = B.q[0];
    q.i0 = t.i0;
    q.qr = imin(t.qr, s.nq - q.i0);
    q.lanes = q.qr * t.hcnt;
    q.nv = ceil_div(q.lanes, kLanes);
    for (int64_t L = 0; L < q.lanes; ++L) {
      q.lh[L] = t.hbase + L / q.qr;
      q.li[L] = q.i0 + L % q.qr;
    }
    key_range(pl, s, q.i0, q.i0 + q.qr, &q.jlo, &q.jhi);
    fwd_rows_tile(pl, t, B, q);
    fwd_tile_store(pl, t, q, B.rows);
    return;
  }

  int64_t jlo = INT64_MAX, jhi = INT64_MIN;
  for (int64_t g = 0; g < nt; ++g) {
    QTile& q = B.q[g];
    q.i0 = t.i0 + g * t.qr;
    q.qr = imin(t.qr, s.nq - q.i0);
    fwd_tile_setup(pl, t, dp, q, B.tmp, B.rows);
    if (q.jlo < q.jhi) {
      jlo = imin(jlo, q.jlo);
      jhi = imax(jhi, q.jhi);
    }
  }
  if (t.split >= 0 && jlo < jhi) {
    const int64_t nb = ceil_div(jhi - jlo, BN);
    const int64_t b0 = nb * t.split / pl.nsplit, b1 = nb * (t.split + 1) / pl.nsplit;
    const int64_t lo = jlo + b0 * BN;
    jhi = imin(jhi, jlo + b1 * BN);
    jlo = lo;
  }
  for (int64_t j0 = jlo; j0 < jhi; j0 += BN) {
    const int64_t nc = imin(BN, jhi - j0);
    Operand<float> K{}, Vt{};
    Operand<uint32_t> Kp{};
    uint32_t* vp = reinterpret_cast<uint32_t*>(B.vb);
    if (dp) {
      Kp = rows_operand<uint32_t>(P.k, s.vb, s.k0 + j0, t.kvh, nc, d, reinterpret_cast<uint32_t*>(B.kb));
      pack_pairs_rows(P.v, s.vb, s.k0 + j0, t.kvh, nc, d, reinterpret_cast<uint16_t*>(B.tmp), vp, d);
    } else {
      K = rows_operand<float>(P.k, s.vb, s.k0 + j0, t.kvh, nc, d, B.kb);
      const Operand<float> Vr = rows_operand<float>(P.v, s.vb, s.k0 + j0, t.kvh, nc, d, B.vb);
      Vt = Operand<float>{Vr.p, Vr.ks, Vr.rs};  // A(r = d, k = key) = V[key][d]
    }
    for (int64_t g = 0; g < nt; ++g) {
      QTile& q = B.q[g];
      if (j0 >= q.jhi || j0 + nc <= q.jlo) continue;
      const Lanes ln = q.lanes_view();
      const bool first = !q.started;
      q.started = true;
      if (dp) {
        gemm_bf16_pairs<false>(nc, q.nv, ceil_div(d, 2), Kp, reinterpret_cast<const uint32_t*>(q.qt), BM, B.s, BM);
        const float sc = score_transforms(pl, s, q.i0, q.qr, q.lanes, ln, j0, nc, q.nv, B.s, nullptr);
        online_softmax(nc, q.nv, d, sc, B.s, q.m, q.l, q.ot, B.pp, nullptr, first);
        if (first) gemm_bf16_pairs<false>(d, q.nv, ceil_div(nc, 2), Operand<uint32_t>{vp, 1, d}, B.pp, BM, q.ot, BM);
        else gemm_bf16_pairs<true>(d, q.nv, ceil_div(nc, 2), Operand<uint32_t>{vp, 1, d}, B.pp, BM, q.ot, BM);
      } else {
        float* cm = nullptr;
        if (plain_tile(pl, s, q.i0, q.qr, j0, nc)) {
          cm = B.colmax;
          for (int64_t x = 0; x < q.nv * kLanes; ++x) cm[x] = -kInf;
          gemm_f32_colmax(nc, q.nv, d, K, q.qt, BM, B.s, BM, cm);
        } else {
          gemm_f32<false>(nc, q.nv, d, K, q.qt, BM, B.s, BM);
        }
        const float sc = score_transforms(pl, s, q.i0, q.qr, q.lanes, ln, j0, nc, q.nv, B.s, nullptr);
        online_softmax(nc, q.nv, d, sc, B.s, q.m, q.l, q.ot, nullptr, cm, first);
        if (first) gemm_f32<false>(d, q.nv, nc, Vt, B.s, BM, q.ot, BM);
        else gemm_f32<true>(d, q.nv, nc, Vt, B.s, BM, q.ot, BM);
      }
    }
  }
  for (int64_t g = 0; g < nt; ++g) fwd_tile_store(pl, t, B.q[g], B.rows);
}

UMFA_KERNELS_END
