// Forward flash attention (FlashAttention-2 style) on tensor cores.
//
// One thread block computes BM query rows of one (batch, head) against the key range those rows
// can see, BN keys at a time. Each warp owns BM / NW rows; its scores S = Q K^T, the online
// softmax (running max and sum per row) and the output accumulator O live in registers, and the
// probabilities P go from the S accumulators straight into the A operand of O += P V.
//
// Pipeline (shared memory holds one Q, one K and one V tile): K(n) and Q arrive first; V(n) is
// fetched while S = Q K(n)^T runs, and K(n-1) while the softmax and P V(n) run. Tiles are walked
// from the last to the first so that the masked boundary tiles of causal rows come first.
//
// With num_splits > 1 (decode, or too few blocks to fill the GPU) the key range is divided into
// splits; each block writes its normalized partial output and LSE to f32 scratch, and
// combine_kernel merges them.
#pragma once

#include "common.cuh"

namespace umfa {
namespace cuda {

template <int D_, int BM_, int BN_, int NW_>
struct FwdCfg {
  static constexpr int D = D_, BM = BM_, BN = BN_, NW = NW_;
  static constexpr int kThreads = NW * 32;
  static constexpr int kPitchB = (D + 8) * 2;
  static constexpr int MT = BM / NW / 16;  // 16-row tiles per warp
  static constexpr int NT = BN / 8;        // 8-key tiles of S
  static constexpr int DT = D / 8;         // 8-column tiles of O
  static constexpr int KSQ = D / 16;       // k-steps of Q K^T
  static constexpr int KSP = BN / 16;      // k-steps of P V
  static constexpr int kSmem = (BM + 2 * BN) * kPitchB;
  static_assert(BM % (NW * 16) == 0, "rows per warp");
  static_assert(BM * (D + 8) * 4 <= kSmem, "the f32 output tile fits in shared memory");
};

template <typename T, class C>
__global__ void __launch_bounds__(C::kThreads) fwd_kernel(const __grid_constant__ KParams p) {
  constexpr int BM = C::BM, BN = C::BN, D = C::D, MT = C::MT, NT = C::NT, DT = C::DT;
  constexpr int PB = C::kPitchB;
  extern __shared__ __align__(128) unsigned char smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  const int mblocks = (p.nq + BM - 1) / BM;
  int idx = blockIdx.x;
  const int m_block = mblocks - 1 - idx % mblocks;
  idx /= mblocks;
  const int h = idx % p.hq;
  idx /= p.hq;
  const int b = idx % p.batch;
  const int split = idx / p.batch;

  const SeqInfo s = seq_info(p, b);
  const int m0 = m_block * BM;
  if (m0 >= s.nq) return;
  const int hk = h / p.group;
  const bool varlen = p.cu_q != nullptr;

  // Key tiles [n_begin, n_end) this block (and split) must visit.
  const int m_last = min(m0 + BM, s.nq) - 1;
  const int j_lo = p.wl < 0 ? 0 : max(0, m0 + s.off - p.wl);
  const int j_hi = p.wr < 0 ? s.nk : min(s.nk, m_last + s.off + p.wr + 1);
  int n_begin = j_lo / BN;
  int n_end = j_hi > j_lo ? (j_hi + BN - 1) / BN : n_begin;
  if (p.num_splits > 1) {
    const int per = (n_end - n_begin + p.num_splits - 1) / p.num_splits;
    const int first = n_begin + split * per;
    n_end = min(n_end, first + per);
    n_begin = first;
  }

  float acc_o[MT][DT][4];
  zero(acc_o);
  float row_max[MT][2], row_sum[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      row_max[mt][r] = neg_inf();
      row_sum[mt][r] = 0.f;
    }
  const int row_base = m0 + warp * MT * 16 + (lane >> 2);  // query row of c0 in tile mt = 0

  if (n_begin < n_end) {
    const uint32_t sQ = smem_u32(smem);
    const uint32_t sK = sQ + BM * PB;
    const uint32_t sV = sK + BN * PB;
    const T* qg = static_cast<const T*>(p.q.ptr) + view_row(p.q, varlen, b, s.q_row0 + m0, h);
    const T* kg = static_cast<const T*>(p.k.ptr) + view_row(p.k, varlen, b, s.k_row0, hk);
    const T* vg = static_cast<const T*>(p.v.ptr) + view_row(p.v, varlen, b, s.k_row0, hk);
    const float slope = alibi_slope(p, b, h);

    int n = n_end - 1;
    load_tile<BM, D, C::kThreads>(sQ, qg, p.q.ss, s.nq - m0, p.d, p.q.ptr, tid);
    load_tile<BN, D, C::kThreads>(sK, kg + int64_t(n) * BN * p.k.ss, p.k.ss, s.nk - n * BN, p.d,
                                  p.k.ptr, tid);
    cp_async_commit();

    const uint32_t a_q = sQ + warp * MT * 16 * PB + lane_off_a<false>(lane, PB);
    const uint32_t b_k = sK + lane_off_b<false>(lane, PB);
    const uint32_t b_v = sV + lane_off_b<true>(lane, PB);

    for (; n >= n_begin; --n) {
      cp_async_wait<0>();
      __syncthreads();  // K(n) (and Q) landed; every warp is done with V(n+1)
      load_tile<BN, D, C::kThreads>(sV, vg + int64_t(n) * BN * p.v.ss, p.v.ss, s.nk - n * BN, p.d,
                                    p.v.ptr, tid);
      cp_async_commit();

      float acc_s[MT][NT][4];
      zero(acc_s);
      gemm_ss<T, false, false, MT, NT, C::KSQ>(acc_s, a_q, PB, b_k, PB);

      cp_async_wait<0>();
      __syncthreads();  // V(n) landed; every warp is done with K(n)
      if (n > n_begin) {
        load_tile<BN, D, C::kThreads>(sK, kg + int64_t(n - 1) * BN * p.k.ss, p.k.ss,
                                      s.nk - (n - 1) * BN, p.d, p.k.ptr, tid);
        cp_async_commit();
      }

      // Scores in the log2 domain, masked where needed.
      const int n0 = n * BN;
      const bool full = n0 + BN <= s.nk &&
                        (p.wl < 0 || n0 >= m0 + BM - 1 + s.off - p.wl) &&
                        (p.wr < 0 || n0 + BN - 1 <= m0 + s.off + p.wr);
      scores_log2<MT, NT>(acc_s, nullptr, p, slope, row_base, n0, s.off, lane);
      if (!full) mask_scores<MT, NT>(acc_s, p, row_base, n0, s.off, s.nq, s.nk, false, lane);

      // Online softmax.
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          float mx = neg_inf();
#pragma unroll
          for (int nt = 0; nt < NT; ++nt)
            mx = fmaxf(mx, fmaxf(acc_s[mt][nt][2 * r], acc_s[mt][nt][2 * r + 1]));
          mx = quad_max(mx);
          const float m_new = fmaxf(row_max[mt][r], mx);
          const float m_use = m_new == neg_inf() ? 0.f : m_new;
          const float corr = fast_exp2(row_max[mt][r] - m_use);
          row_max[mt][r] = m_new;
          float sum = 0.f;
#pragma unroll
          for (int nt = 0; nt < NT; ++nt)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const float pr = fast_exp2(acc_s[mt][nt][2 * r + e] - m_use);
              acc_s[mt][nt][2 * r + e] = pr;
              sum += pr;
            }
          row_sum[mt][r] = row_sum[mt][r] * corr + sum;
#pragma unroll
          for (int dt = 0; dt < DT; ++dt) {
            acc_o[mt][dt][2 * r] *= corr;
            acc_o[mt][dt][2 * r + 1] *= corr;
          }
        }

      uint32_t pa[MT][C::KSP][4];
      acc_to_a<T, MT, C::KSP>(pa, acc_s);
      gemm_rs<T, true, MT, DT, C::KSP>(acc_o, pa, b_v, PB);
    }
  }

  // Epilogue: normalize; O (or this split's partial, f32 [Hq][rows_q][d]) goes through shared
  // memory for coalesced stores; the LSE is written from registers.
  TView ov = p.o;
  float* lp = p.lse;
  int64_t l_sh = p.lse_sh, l_ss = p.lse_ss, l_base = varlen ? 0 : int64_t(b) * p.lse_sb;
  int64_t row0 = s.q_row0;
  bool flat = varlen;
  if (p.num_splits > 1) {
    const int64_t slab = int64_t(split) * p.hq * p.rows_q;
    ov.ptr = p.oacc + slab * p.d;
    ov.dtype = UMFA_DTYPE_F32;
    ov.ss = p.d;
    ov.sh = p.rows_q * p.d;
    ov.sd = 1;
    ov.vec = (p.d % 4) == 0 ? 3 : ((p.d % 2) == 0 ? 1 : 0);
    lp = p.lseacc + slab;
    l_sh = p.rows_q;
    l_ss = 1;
    l_base = 0;
    row0 = s.q_glob;
    flat = true;
  }
  __syncthreads();  // every warp is done with the K/V/Q tiles
  float* so = reinterpret_cast<float*>(smem);
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float sum = quad_sum(row_sum[mt][r]);
      const float inv = sum > 0.f ? 1.f / sum : 0.f;
      row_sum[mt][r] = inv;
      const int i = row_base + mt * 16 + r * 8;
      if (lp && (lane & 3) == 0 && i < s.nq)
        lp[l_base + int64_t(h) * l_sh + (row0 + i) * l_ss] =
            sum > 0.f ? (row_max[mt][r] + __log2f(sum)) * kLn2 : neg_inf();
    }
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int dt = 0; dt < DT; ++dt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int row = warp * MT * 16 + mt * 16 + (lane >> 2) + r * 8;
        const int col = dt * 8 + (lane & 3) * 2;
        *reinterpret_cast<float2*>(so + row * (D + 8) + col) =
            make_float2(acc_o[mt][dt][2 * r] * row_sum[mt][r], acc_o[mt][dt][2 * r + 1] * row_sum[mt][r]);
      }
  __syncthreads();
  smem_to_global<BM, D, C::kThreads>(so, s.nq - m0, ov, flat, b, row0 + m0, h, p.d, tid);
}

}  // namespace cuda
}  // namespace umfa
