// The forward's per-item state: query tiles (Qᵀ, Oᵀ, softmax statistics, lane facts), the scratch
// layout, setting a tile up and storing its normalized output (or split-KV partial result).
#pragma once

#include "score_transforms.h"
#include "online_softmax.h"

UMFA_KERNELS_BEGIN

// ---------------------------------------------------------------------------------------------
// Forward.
// ---------------------------------------------------------------------------------------------

constexpr int64_t kFwdTiles = kFwdGroup;  // query tiles sharing one pass over the keys

// State of one query tile (up to BM lanes).
struct QTile {
  float *qt, *ot, *m, *l;  // Qᵀ [d][BM] (f32, or bf16 pairs [d/2][BM]), Oᵀ [d][BM], m, l
  int64_t *lh, *li, *mrow;
  int32_t* ql;
  float* slope;
  int64_t i0 = 0, qr = 0, lanes = 0, nv = 0;
  int64_t jlo = 0, jhi = 0;  // visible keys
  bool started = false;      // a key block has been accumulated into Oᵀ (else Oᵀ is undefined)
  Lanes lanes_view() const { return Lanes{lh, li, ql, slope, mrow}; }
};

struct FwdBufs {
  QTile q[kFwdTiles];
  float *s, *kb, *vb, *tmp, *rows, *colmax;
  uint32_t* pp;
};

inline FwdBufs fwd_carve(unsigned char* base, int64_t d, size_t* bytes) {
  const int64_t dw = round_up(d, 32);
  Carver cv{base};
  FwdBufs b;
  for (int64_t g = 0; g < kFwdTiles; ++g) {
    QTile& t = b.q[g];
    t.qt = cv.take<float>(dw * BM);
    t.ot = cv.take<float>(dw * BM);
    t.m = cv.take<float>(BM);
    t.l = cv.take<float>(BM);
    t.lh = cv.take<int64_t>(BM);
    t.li = cv.take<int64_t>(BM);
    t.mrow = cv.take<int64_t>(BM);
    t.ql = cv.take<int32_t>(BM);
    t.slope = cv.take<float>(BM);
  }
  b.s = cv.take<float>(BN * BM);    // Sᵀ / Pᵀ [BN][BM]
  b.pp = kHasBf16Dot ? cv.take<uint32_t>(BN / 2 * BM) : nullptr;  // Pᵀ pairs [BN/2][BM]
  b.kb = cv.take<float>(BN * dw);   // K rows converted (f32 [BN][d], or pairs [BN][d/2])
  b.vb = cv.take<float>(BN * dw);   // V rows converted (f32 [BN][d], or pairs [BN/2][d])
  b.tmp = cv.take<float>(2 * dw);
  b.rows = cv.take<float>(BM * dw);  // query rows before the transpose
  b.colmax = cv.take<float>(BM);
  if (bytes) *bytes = cv.used;
  return b;
}

size_t fwd_scratch_bytes(int64_t d) {
  size_t bytes = 0;
  fwd_carve(nullptr, d, &bytes);
  return bytes;
}

// Lanes, Qᵀ and the running state of query tile `q` (rows [q.i0, q.i0 + q.qr) of heads
// t.hbase .. t.hbase + t.hcnt, stacked).
inline void fwd_tile_setup(const Plan& pl, const FwdTile& t, bool dp, QTile& q, float* tmp,
                           float* rowbuf) {
  const Problem& P = *pl.p;
  const Seq& s = pl.seqs[t.b];
  const int64_t d = pl.d;
  q.lanes = q.qr * t.hcnt;
  q.nv = ceil_div(q.lanes, kLanes);
  const int64_t nl = q.nv * kLanes;
  for (int64_t L = 0; L < q.lanes; ++L) {
    q.lh[L] = t.hbase + L / q.qr;
    q.li[L] = q.i0 + L % q.qr;
  }
  lanes_setup(pl, t.b, q.lanes, nl, q.i0, q.lanes_view());
  // Qᵀ, unscaled: the scale is applied to the scores.
  if (dp) {
    uint32_t* qp = reinterpret_cast<uint32_t*>(q.qt);
    uint16_t* t16 = reinterpret_cast<uint16_t*>(tmp);
    const int64_t dh = ceil_div(d, 2);
    for (int64_t L = 0; L < q.lanes; ++L) {
      load_row_u16(P.q, voff(P.q, s.vb, s.q0 + q.li[L], q.lh[L]), d, t16);
      if (d % 2) t16[d] = 0;
      for (int64_t c = 0; c < dh; ++c) qp[c * BM + L] = pair16(t16[2 * c], t16[2 * c + 1]);
    }
    for (int64_t c = 0; c < dh; ++c)
      for (int64_t L = q.lanes; L < nl; ++L) qp[c * BM + L] = 0;
  } else {
    int64_t rowv[BM] = {};
    for (int64_t L = 0; L < q.lanes; ++L) rowv[L] = s.q0 + q.li[L];
    pack_rows_t(P.q, s.vb, rowv, q.lh, q.lanes, nl, d, 1.f, rowbuf, q.qt);
  }
  for (int64_t L = 0; L < nl; ++L) {
    q.m[L] = -kInf;
    q.l[L] = 0.f;
  }
  q.started = false;  // Oᵀ is written by the first key block (never read before)
  key_range(pl, s, q.i0, q.i0 + q.qr, &q.jlo, &q.jhi);
}

// Normalizes and stores query tile `q` (or its split-KV part). rowbuf: [BM][round_up(d, kLanes)].
inline void fwd_tile_store(const Plan& pl, const FwdTile& t, const QTile& q, float* rowbuf) {
  const Problem& P = *pl.p;
  const Seq& s = pl.seqs[t.b];
  const int64_t d = pl.d, dw = round_up(d, kLanes);
  const View& out = P.out;
  // Oᵀ back to rows (a tile that saw no key has no Oᵀ: all its rows are l == 0).
  if (q.started)
    for (int64_t l0 = 0; l0 < q.lanes; l0 += kLanes)
      for (int64_t c0 = 0; c0 < d; c0 += kLanes)
        transpose_block(q.ot + c0 * BM + l0, BM, rowbuf + l0 * dw + c0, dw, imin(kLanes, q.lanes - l0));
  // A row without any visible key (l == 0) gives zeros and lse = -inf; NaN inputs give NaN
  // (l is NaN then).
  for (int64_t L = 0; L < q.lanes; ++L) {
    const int64_t h = q.lh[L], i = q.li[L];
    const float l = q.l[L];
    const float* row = rowbuf + L * dw;
    if (t.split >= 0) {
      const int64_t pi = part_index(pl, s.vb, h, s.q0 + i, t.split);
      pl.part_m[pi] = q.m[L];
      pl.part_l[pi] = l;
      if (l != 0.f) {
        const float inv = 1.f / l;
        float* o = pl.part_o + pi * d;
        for (int64_t c = 0; c < d; ++c) o[c] = row[c] * inv;
      }
      continue;
    }
    const int64_t ooff = voff(out, s.vb, s.q0 + i, h);
    float lse;
    if (l == 0.f) {
      fill_row(out.data, out.dtype, ooff, out.strides[3], d, 0.f);
      lse = -kInf;
    } else {
      store_row(out.data, out.dtype, ooff, out.strides[3], d, 1.f / l, row);
      lse = q.m[L] + std::log(l);
    }
    if (P.lse.present()) static_cast<float*>(P.lse.data)[voff(P.lse, s.vb, h, s.q0 + i)] = lse;
  }
}

UMFA_KERNELS_END
