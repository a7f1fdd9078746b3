// The forward's online softmax: running maxima and sums per query lane, P = exp(S - m) written
// in place (or as bf16 pairs), and the rescale of the output accumulator when a maximum moves.
#pragma once

#include "micro_gemm.h"

UMFA_KERNELS_BEGIN

// Online softmax over one Sᵀ tile (nc keys x nv lane vectors): P = exp(sc*S - m_new) in place
// (or, when pp is set, as bf16 pairs along keys into pp), l and m updated, Oᵀ rescaled (skipped
// for a lane vector whose maxima did not move, the common case after the first blocks, and for
// the tile's first block, whose Oᵀ the caller overwrites). colmax: the column maxima of S when
// the GEMM already took them, else null.
inline void online_softmax(int64_t nc, int64_t nv, int64_t d, float sc, float* S, float* m,
                           float* l, float* ot, uint32_t* pp, const float* colmax, bool first) {
  const vfloat vsc = splat(sc);
  for (int64_t c = 0; c < nv; ++c) {
    vfloat mx;
    if (colmax) {
      mx = vload(colmax + c * kLanes);
    } else {
      // Four independent chains: vmax latency, not throughput, would bound one chain.
      vfloat m4[4] = {splat(-kInf), splat(-kInf), splat(-kInf), splat(-kInf)};
      int64_t j = 0;
      for (; j + 4 <= nc; j += 4)
        for (int u = 0; u < 4; ++u) m4[u] = vmax(m4[u], vload(S + (j + u) * BM + c * kLanes));
      for (; j < nc; ++j) m4[0] = vmax(m4[0], vload(S + j * BM + c * kLanes));
      mx = vmax(vmax(m4[0], m4[1]), vmax(m4[2], m4[3]));
    }
    const vfloat mold = vload(m + c * kLanes);
    const vfloat mnew = vmax(mold, mx * vsc);
    const vfloat muse = mnew == splat(-kInf) ? vfloat{} : mnew;
    const vfloat alpha = vexp(mold - muse);
    const vfloat nm = -muse;
    vfloat sum = vfloat{};
#if UMFA_SIMD_BF16_DOT
    if (pp) {
      for (int64_t j = 0; j < nc; j += 2) {
        const vfloat p0 = vexp(vfma(vload(S + j * BM + c * kLanes), vsc, nm));
        const vfloat p1 = j + 1 < nc ? vexp(vfma(vload(S + (j + 1) * BM + c * kLanes), vsc, nm)) : vfloat{};
        sum += p0 + p1;
        bf16x2_store(pp + (j / 2) * BM + c * kLanes, bf16x2_from_f32(p0, p1));
      }
    } else
#endif
    {
      (void)pp;
      vfloat sum2 = vfloat{};
      int64_t j = 0;
      for (; j + 2 <= nc; j += 2) {
        const vfloat p0 = vexp(vfma(vload(S + j * BM + c * kLanes), vsc, nm));
        const vfloat p1 = vexp(vfma(vload(S + (j + 1) * BM + c * kLanes), vsc, nm));
        vstore(S + j * BM + c * kLanes, p0);
        vstore(S + (j + 1) * BM + c * kLanes, p1);
        sum += p0;
        sum2 += p1;
      }
      if (j < nc) {
        const vfloat p = vexp(vfma(vload(S + j * BM + c * kLanes), vsc, nm));
        vstore(S + j * BM + c * kLanes, p);
        sum += p;
      }
      sum += sum2;
    }
    vstore(l + c * kLanes, first ? sum : vfma(vload(l + c * kLanes), alpha, sum));
    vstore(m + c * kLanes, mnew);
    if (!first && !all_one(alpha))
      for (int64_t r = 0; r < d; ++r) vstore(ot + r * BM + c * kLanes, vload(ot + r * BM + c * kLanes) * alpha);
  }
}

UMFA_KERNELS_END
