// The backward work items: per key block dV += Pᵀ·dO, dK += dSᵀ·Q (bwd_kv_tile, which also adds
// dQᵀ = Kᵀ·dSᵀ into a shared accumulator when asked), or dQ alone per query block (bwd_q_tile).
#pragma once

#include "score_transforms.h"

UMFA_KERNELS_BEGIN

// ---------------------------------------------------------------------------------------------
// Backward.
// ---------------------------------------------------------------------------------------------

constexpr int64_t kBwdBlocks = kBwdGroup;  // key blocks per backward item

struct BwdBufs {
  // Key blocks (rows = keys), one set per block of the item.
  float *kb[kBwdBlocks], *vb[kBwdBlocks];  // K, V rows converted: f32 [BN][d], or bf16 pairs along d [BN][d/2]
  uint32_t* kpj[kBwdBlocks];       // bf16: K pairs along keys [BN/2][d] (for dQᵀ)
  float *dk[kBwdBlocks], *dv[kBwdBlocks];  // [BN][dw] accumulators
  // Query block (lanes = queries).
  float *qt, *dot;       // Qᵀ, dOᵀ: f32 [d][BM], or pairs along d [d/2][BM]
  float *qr, *dor;       // Q, dO rows: f32 [BM][dw], or pairs along queries [BM/2][dw]
  float *s, *ds, *g;     // Sᵀ -> Pᵀ, dPᵀ -> dSᵀ, softcap derivative: [BN][BM]
  uint16_t *pb, *dsb;    // bf16: Pᵀ, dSᵀ as bf16 rows [BN][BM]
  uint32_t* dsp;         // bf16: dSᵀ pairs along keys [BN/2][BM]
  float* dqt;            // dQᵀ [d][BM]
  float *lse, *delta, *tmp;
  int64_t *lh, *li, *mrow;
  int32_t* ql;
  float* slope;
};

inline BwdBufs bwd_carve(unsigned char* base, int64_t d, size_t* bytes) {
  const int64_t dw = round_up(d, 32);
  Carver cv{base};
  BwdBufs b;
  for (int64_t k = 0; k < kBwdBlocks; ++k) {
    b.kb[k] = cv.take<float>(BN * dw);
    b.vb[k] = cv.take<float>(BN * dw);
    b.kpj[k] = kHasBf16Dot ? cv.take<uint32_t>(BN / 2 * dw) : nullptr;
    b.dk[k] = cv.take<float>(BN * dw);
    b.dv[k] = cv.take<float>(BN * dw);
  }
  b.qt = cv.take<float>(dw * BM);
  b.dot = cv.take<float>(dw * BM);
  b.qr = cv.take<float>(BM * dw);
  b.dor = cv.take<float>(BM * dw);
  b.s = cv.take<float>(BN * BM);
  b.ds = cv.take<float>(BN * BM);
  b.g = cv.take<float>(BN * BM);
  b.pb = kHasBf16Dot ? cv.take<uint16_t>(BN * BM) : nullptr;
  b.dsb = kHasBf16Dot ? cv.take<uint16_t>(BN * BM) : nullptr;
  b.dsp = kHasBf16Dot ? cv.take<uint32_t>(BN / 2 * BM) : nullptr;
  b.dqt = cv.take<float>(dw * BM);
  b.lse = cv.take<float>(BM);
  b.delta = cv.take<float>(BM);
  b.tmp = cv.take<float>(2 * dw);
  b.lh = cv.take<int64_t>(BM);
  b.li = cv.take<int64_t>(BM);
  b.mrow = cv.take<int64_t>(BM);
  b.ql = cv.take<int32_t>(BM);
  b.slope = cv.take<float>(BM);
  if (bytes) *bytes = cv.used;
  return b;
}

size_t bwd_scratch_bytes(int64_t d) {
  size_t bytes = 0;
  bwd_carve(nullptr, d, &bytes);
  return bytes;
}

// The key-side operands of one key block, as the backward GEMMs read them.
struct KeyOps {
  Operand<float> k, v;        // f32 path: K, V rows (r = key, k = d)
  Operand<uint32_t> kp, vp;   // bf16 path: K, V pairs along d (r = key, k = d pair)
  const uint32_t* kpj;     // bf16 path: K pairs along keys [BN/2][d]
};

// Converts key block [j0, j0 + nc) into buffer set `slot`.
inline KeyOps bwd_pack_keys(const Plan& pl, const Seq& s, int64_t kvh, int64_t j0, int64_t nc,
                            bool dp, BwdBufs& B, int64_t slot) {
  const Problem& P = *pl.p;
  const int64_t d = pl.d;
  KeyOps o{};
  if (dp) {
    o.kp = rows_operand<uint32_t>(P.k, s.vb, s.k0 + j0, kvh, nc, d, reinterpret_cast<uint32_t*>(B.kb[slot]));
    o.vp = rows_operand<uint32_t>(P.v, s.vb, s.k0 + j0, kvh, nc, d, reinterpret_cast<uint32_t*>(B.vb[slot]));
    pack_pairs_rows(P.k, s.vb, s.k0 + j0, kvh, nc, d, reinterpret_cast<uint16_t*>(B.tmp), B.kpj[slot], d);
    o.kpj = B.kpj[slot];
  } else {
    o.k = rows_operand<float>(P.k, s.vb, s.k0 + j0, kvh, nc, d, B.kb[slot]);
    o.v = rows_operand<float>(P.v, s.vb, s.k0 + j0, kvh, nc, d, B.vb[slot]);
  }
  return o;
}

// Packs query block [i0, i0 + rows) of head h: Qᵀ, Q rows, dOᵀ, dO rows, lse, delta, lanes.
inline void bwd_pack_queries(const Plan& pl, const Seq& s, int64_t b, int64_t h, int64_t i0,
                             int64_t rows, bool dp, BwdBufs& B) {
  const Problem& P = *pl.p;
  const int64_t d = pl.d, dw = round_up(d, kLanes);
  const int64_t nv = ceil_div(rows, kLanes), nl = nv * kLanes;
  const float* lse = static_cast<const float*>(P.lse.data);
  const float* delta = pl.delta + (s.vb * pl.hq + h) * pl.q_rows + s.q0 + i0;
  for (int64_t L = 0; L < nl; ++L) {
    const bool live = L < rows;
    B.lh[L] = h;
    B.li[L] = i0 + (live ? L : 0);
    // A fully masked row (lse = -inf) has P = 0 everywhere: use +inf so exp(z - lse) = 0; padded
    // lanes likewise (their Q and dO are 0, so P = dS = 0 there exactly).
    const float l = live ? lse[voff(P.lse, s.vb, h, s.q0 + i0 + L)] : kInf;
    B.lse[L] = l == -kInf ? kInf : l;
    B.delta[L] = live ? delta[L] : 0.f;
  }
  const Lanes ln{B.lh, B.li, B.ql, B.slope, B.mrow};
  lanes_setup(pl, b, rows, nl, i0, ln);

  if (dp) {
#if UMFA_SIMD_BF16_DOT
    const int64_t dh = ceil_div(d, 2);
    uint16_t* t0 = reinterpret_cast<uint16_t*>(B.tmp);
    uint32_t* qp = reinterpret_cast<uint32_t*>(B.qt);
    uint32_t* dop = reinterpret_cast<uint32_t*>(B.dot);
    for (int pass = 0; pass < 2; ++pass) {
      const View& v = pass ? P.dout : P.q;
      uint32_t* tp = pass ? dop : qp;
      for (int64_t L = 0; L < rows; ++L) {
        load_row_u16(v, voff(v, s.vb, s.q0 + i0 + L, h), d, t0);
        if (d % 2) t0[d] = 0;
        for (int64_t c = 0; c < dh; ++c) tp[c * BM + L] = pair16(t0[2 * c], t0[2 * c + 1]);
      }
      for (int64_t c = 0; c < dh; ++c)
        for (int64_t L = rows; L < nl; ++L) tp[c * BM + L] = 0;
      // Rows paired along queries: [(L/2)][dw]; padded rows and columns are zero.
      uint32_t* rp = reinterpret_cast<uint32_t*>(pass ? B.dor : B.qr);
      pack_pairs_rows(v, s.vb, s.q0 + i0, h, rows, d, t0, rp, dw);
      for (int64_t r2 = 0; r2 < ceil_div(rows, 2); ++r2)
        for (int64_t c = d; c < dw; ++c) rp[r2 * dw + c] = 0;
      for (int64_t r2 = ceil_div(rows, 2); r2 < nl / 2; ++r2)
        for (int64_t c = 0; c < dw; ++c) rp[r2 * dw + c] = 0;
    }
#endif
  } else {
    // Rows (zero-padded to nl rows of dw), then their transposes.
    pack_rows(P.q, s.vb, s.q0 + i0, h, rows, d, dw, 1.f, B.qr, dw);
    pack_rows(P.dout, s.vb, s.q0 + i0, h, rows, d, dw, 1.f, B.dor, dw);
    for (int64_t x = rows * dw; x < nl * dw; ++x) B.qr[x] = B.dor[x] = 0.f;
    transpose_rows(B.qr, dw, nl, d, B.qt);
    transpose_rows(B.dor, dw, nl, d, B.dot);
  }
}

// From packed queries and keys: B.s = Pᵀ, B.ds = dSᵀ (the gradient with respect to the scaled
// scores x = scale·q·k, so dK = scale·dSᵀ·Q and dQ = scale·dS·K); the bf16 path also fills
// B.pb, B.dsb and B.dsp.
inline void bwd_scores(const Plan& pl, const Seq& s, int64_t i0, int64_t rows, int64_t j0,
                       int64_t nc, bool dp, const KeyOps& ko, BwdBufs& B) {
  const int64_t d = pl.d;
  const int64_t nv = ceil_div(rows, kLanes);
  const Lanes ln{B.lh, B.li, B.ql, B.slope, B.mrow};
  if (dp) {
    const int64_t dh = ceil_div(d, 2);
    gemm_bf16_pairs<false>(nc, nv, dh, ko.kp, reinterpret_cast<const uint32_t*>(B.qt), BM, B.s, BM);
    gemm_bf16_pairs<false>(nc, nv, dh, ko.vp, reinterpret_cast<const uint32_t*>(B.dot), BM, B.ds, BM);
  } else {
    gemm_f32<false>(nc, nv, d, ko.k, B.qt, BM, B.s, BM);
    gemm_f32<false>(nc, nv, d, ko.v, B.dot, BM, B.ds, BM);  // dPᵀ = V · dOᵀ
  }
  const float sc = score_transforms(pl, s, i0, rows, rows, ln, j0, nc, nv, B.s, pl.softcap ? B.g : nullptr);
  const vfloat vsc = splat(sc);
  for (int64_t c = 0; c < nv; ++c) {
    const vfloat nl = -vload(B.lse + c * kLanes);
    const vfloat delta = vload(B.delta + c * kLanes);
    for (int64_t j = 0; j < nc; ++j) {
      float* Sp = B.s + j * BM + c * kLanes;
      float* Dp = B.ds + j * BM + c * kLanes;
      const vfloat p = vexp(vfma(vload(Sp), vsc, nl));
      vstore(Sp, p);
      vfloat ds = p * (vload(Dp) - delta);
      if (pl.softcap) ds *= vload(B.g + j * BM + c * kLanes);
      vstore(Dp, ds);
    }
  }
#if UMFA_SIMD_BF16_DOT
  if (dp) {
    bf16_tile_rows(B.s, nc, nv, B.pb);
    bf16_tile_rows(B.ds, nc, nv, B.dsb);
    pair_tile_rows(B.ds, nc, nv, B.dsp);
    // Lanes [nv*kLanes, round_up(rows, 2)) are never read: nv*kLanes is even.
  }
#endif
}

// dQᵀ (+)= Kᵀ · dSᵀ for one key block.
template <bool ACC>
inline void bwd_dq(const Plan& pl, int64_t rows, int64_t nc, bool dp, const KeyOps& ko,
                   BwdBufs& B) {
  const int64_t d = pl.d, nv = ceil_div(rows, kLanes);
  if (dp) {
    gemm_bf16_pairs<ACC>(d, nv, ceil_div(nc, 2), Operand<uint32_t>{ko.kpj, 1, d}, B.dsp, BM, B.dqt, BM);
  } else {
    gemm_f32<ACC>(d, nv, nc, Operand<float>{ko.k.p, ko.k.ks, ko.k.rs}, B.ds, BM, B.dqt, BM);
  }
}

// One work item: up to kBwdBlocks key blocks of one kv head. Each query block of each query head in the
// group is packed once and used by every key block that it sees.
void bwd_kv_tile(const Plan& pl, const BwdKvTile& t, unsigned char* scratch) {
  const Problem& P = *pl.p;
  const Seq& s = pl.seqs[t.b];
  const int64_t d = pl.d, dw = round_up(d, kLanes), dvec = dw / kLanes;
  const bool dp = kHasBf16Dot && P.q.dtype == UMFA_DTYPE_BF16;
  BwdBufs B = bwd_carve(scratch, d, nullptr);

  const int64_t nblk = imin(kBwdBlocks, ceil_div(t.nc, BN));
  KeyOps ko[kBwdBlocks];
  int64_t kj0[kBwdBlocks], knc[kBwdBlocks], kilo[kBwdBlocks], kihi[kBwdBlocks];
  int64_t ilo = INT64_MAX, ihi = INT64_MIN;
  for (int64_t k = 0; k < nblk; ++k) {
    kj0[k] = t.j0 + k * BN;
    knc[k] = imin(BN, t.j0 + t.nc - kj0[k]);
    ko[k] = bwd_pack_keys(pl, s, t.kvh, kj0[k], knc[k], dp, B, k);
    for (int64_t x = 0; x < knc[k] * dw; ++x) {
      B.dk[k][x] = 0.f;
      B.dv[k][x] = 0.f;
    }
    query_range(pl, s, kj0[k], kj0[k] + knc[k], &kilo[k], &kihi[k]);
    if (kilo[k] < kihi[k]) {
      ilo = imin(ilo, kilo[k]);
      ihi = imax(ihi, kihi[k]);
    }
  }

  if (ilo < ihi) {
    const int64_t qb0 = ilo / BM, qb1 = ceil_div(ihi, BM), nqb = qb1 - qb0;
    // Neighbouring items start at different query blocks, so that threads adding into the
    // shared dQ accumulator rarely wait for the same lock.
    const int64_t start = (t.j0 / (BN * kBwdBlocks)) % nqb;
    for (int64_t g = 0; g < pl.group; ++g) {
      const int64_t h = t.kvh * pl.group + g;
      for (int64_t qi = 0; qi < nqb; ++qi) {
        const int64_t qb = qb0 + (start + qi) % nqb;
        const int64_t i0 = qb * BM;
        const int64_t rows = imin(BM, s.nq - i0);
        bool packed = false, have_dq = false;
        for (int64_t k = 0; k < nblk; ++k) {
          if (kilo[k] >= kihi[k] || i0 >= kihi[k] || i0 + rows <= kilo[k]) continue;
          if (!packed) {
            bwd_pack_queries(pl, s, t.b, h, i0, rows, dp, B);
            packed = true;
          }
          bwd_scores(pl, s, i0, rows, kj0[k], knc[k], dp, ko[k], B);
          if (dp) {
            const int64_t rp = ceil_div(rows, 2);
            // dV += Pᵀ·dO and dK += dSᵀ·Q, reducing over query pairs.
            gemm_bf16_pairs<true>(knc[k], dvec, rp, Operand<uint32_t>{reinterpret_cast<const uint32_t*>(B.pb), BM / 2, 1},
                          reinterpret_cast<const uint32_t*>(B.dor), dw, B.dv[k], dw);
            gemm_bf16_pairs<true>(knc[k], dvec, rp, Operand<uint32_t>{reinterpret_cast<const uint32_t*>(B.dsb), BM / 2, 1},
                          reinterpret_cast<const uint32_t*>(B.qr), dw, B.dk[k], dw);
          } else {
            gemm_f32<true>(knc[k], dvec, rows, Operand<float>{B.s, BM, 1}, B.dor, dw, B.dv[k], dw);
            gemm_f32<true>(knc[k], dvec, rows, Operand<float>{B.ds, BM, 1}, B.qr, dw, B.dk[k], dw);
          }
          if (pl.dq_acc) {
            if (have_dq) bwd_dq<true>(pl, rows, knc[k], dp, ko[k], B);
            else bwd_dq<false>(pl, rows, knc[k], dp, ko[k], B);
            have_dq = true;
          }
        }
        if (have_dq) {
          float* acc = pl.dq_acc + (s.vb * pl.hq + h) * d * pl.q_rows + s.q0 + i0;
          const int64_t lock = ((t.b * pl.hq + h) * pl.q_blocks + qb) % pl.nlocks;
          std::lock_guard<std::mutex> lk(pl.locks[lock]);
          for (int64_t c = 0; c < d; ++c) {
            float* a = acc + c * pl.q_rows;
            const float* x = B.dqt + c * BM;
            int64_t L = 0;
            for (; L + kLanes <= rows; L += kLanes) vstore(a + L, vload(a + L) + vload(x + L));
            for (; L < rows; ++L) a[L] += x[L];
          }
        }
      }
    }
  }

  for (int64_t k = 0; k < nblk; ++k) {
    for (int64_t j = 0; j < knc[k]; ++j) {
      const int64_t row = s.k0 + kj0[k] + j;
      store_row(P.dk.data, P.dk.dtype, voff(P.dk, s.vb, row, t.kvh), P.dk.strides[3], d, P.scale,
                B.dk[k] + j * dw);
      store_row(P.dv.data, P.dv.dtype, voff(P.dv, s.vb, row, t.kvh), P.dv.strides[3], d, 1.f,
                B.dv[k] + j * dw);
    }
  }
}

void bwd_q_tile(const Plan& pl, const BwdQTile& t, unsigned char* scratch) {
  const Problem& P = *pl.p;
  const Seq& s = pl.seqs[t.b];
  const int64_t d = pl.d;
  const int64_t kvh = t.h / pl.group;
  const bool dp = kHasBf16Dot && P.q.dtype == UMFA_DTYPE_BF16;
  BwdBufs B = bwd_carve(scratch, d, nullptr);

  bwd_pack_queries(pl, s, t.b, t.h, t.i0, t.rows, dp, B);
  const int64_t nl = ceil_div(t.rows, kLanes) * kLanes;
  for (int64_t c = 0; c < d; ++c)
    for (int64_t L = 0; L < nl; ++L) B.dqt[c * BM + L] = 0.f;
  int64_t jlo, jhi;
  key_range(pl, s, t.i0, t.i0 + t.rows, &jlo, &jhi);
  for (int64_t j0 = jlo; j0 < jhi; j0 += BN) {
    const int64_t nc = imin(BN, jhi - j0);
    const KeyOps ko = bwd_pack_keys(pl, s, kvh, j0, nc, dp, B, 0);
    bwd_scores(pl, s, t.i0, t.rows, j0, nc, dp, ko, B);
    bwd_dq<true>(pl, t.rows, nc, dp, ko, B);
  }
  for (int64_t r = 0; r < t.rows; ++r) {
    for (int64_t c = 0; c < d; ++c) B.tmp[c] = B.dqt[c * BM + r];
    store_row(P.dq.data, P.dq.dtype, voff(P.dq, s.vb, s.q0 + t.i0 + r, t.h), P.dq.strides[3], d,
              P.scale, B.tmp);
  }
}

UMFA_KERNELS_END
