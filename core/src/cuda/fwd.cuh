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

template <int D_, int BM_, int BN_, int NW_, int kStages_ = 1, bool kEpi16_ = true,
          int kMinBlocks_ = 0, bool kPlain_ = false>
struct FwdCfg {
  static constexpr int D = D_, BM = BM_, BN = BN_, NW = NW_;
  // Blocks per SM the register budget targets (__launch_bounds__; 0 = no target).
  static constexpr int kMinBlocks = kMinBlocks_;
  // Plain scores (no softcap/ALiBi, scale > 0): the running max is taken on raw q.k and each
  // probability is one FFMA + ex2 (exp2(s * scale log2 e - max)) instead of a scaling pass.
  static constexpr bool kPlain = kPlain_;
  // Outputs in the compute dtype go through a 16-bit shared tile with 16-byte stores (else an
  // f32 tile); measured slower for the register-bound D = 128 shape, which keeps the f32 tile.
  static constexpr bool kEpi16 = kEpi16_;
  // 1: one K and one V buffer, V(n) fetched during S = Q K(n)^T and K(n-1) during softmax/PV
  // (two barriers per tile). 2: K/V double-buffered, tile n-1 fetched during all of tile n
  // (one barrier per tile).
  static constexpr int kStages = kStages_;
  static constexpr int kThreads = NW * 32;
  static constexpr int kPitchB = (D + 8) * 2;
  static constexpr int MT = BM / NW / 16;  // 16-row tiles per warp
  static constexpr int NT = BN / 8;        // 8-key tiles of S
  static constexpr int DT = D / 8;         // 8-column tiles of O
  static constexpr int KSQ = D / 16;       // k-steps of Q K^T
  static constexpr int KSP = BN / 16;      // k-steps of P V
  static constexpr int kSmem = (BM + 2 * BN * kStages) * kPitchB;
  static_assert(BM % (NW * 16) == 0, "rows per warp");
  static_assert(BM * (D + 8) * 4 <= kSmem, "the f32 output tile fits in shared memory");
};

template <typename T, class C>
__global__ void __launch_bounds__(C::kThreads, C::kMinBlocks)
    fwd_kernel(const __grid_constant__ KParams p) {
  constexpr int BM = C::BM, BN = C::BN, D = C::D, MT = C::MT, NT = C::NT, DT = C::DT;
  constexpr int PB = C::kPitchB;
  extern __shared__ __align__(128) unsigned char smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  QueryBlock qb;
  if (!query_block<BM, BN>(p, qb)) return;
  const SeqInfo& s = qb.s;
  const int b = qb.b, h = qb.h, hk = qb.hk, split = qb.split, m0 = qb.m0;
  const int n_begin = qb.n_begin, n_end = qb.n_end;  // key tiles this block (and split) visits
  const bool varlen = p.cu_q != nullptr;

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
    const uint32_t sK0 = sQ + BM * PB;  // stage s: K at sK0 + s * 2 * BN * PB, V right after K
    const T* qg = static_cast<const T*>(p.q.ptr) + view_row(p.q, varlen, b, s.q_row0 + m0, h);
    const T* kg = static_cast<const T*>(p.k.ptr) + view_row(p.k, varlen, b, s.k_row0, hk);
    const T* vg = static_cast<const T*>(p.v.ptr) + view_row(p.v, varlen, b, s.k_row0, hk);
    const float slope = alibi_slope(p, b, h);
    const uint32_t a_q = sQ + warp * MT * 16 * PB + lane_off_a<false>(lane, PB);
    const uint32_t lb_k = lane_off_b<false>(lane, PB), lb_v = lane_off_b<true>(lane, PB);

    auto load_k = [&](int n, int stage) {
      load_tile<BN, D, C::kThreads>(sK0 + stage * 2 * BN * PB, kg + int64_t(n) * BN * p.k.ss,
                                    p.k.ss, s.nk - n * BN, p.d, p.k.ptr, tid);
    };
    auto load_v = [&](int n, int stage) {
      load_tile<BN, D, C::kThreads>(sK0 + stage * 2 * BN * PB + BN * PB,
                                    vg + int64_t(n) * BN * p.v.ss, p.v.ss, s.nk - n * BN, p.d,
                                    p.v.ptr, tid);
    };
    // Plain scores: the scale is folded into the exponentials (see FwdCfg::kPlain).
    const bool plain = C::kPlain && p.softcap <= 0.f && !p.alibi && p.scale > 0.f;
    const float sl2 = plain ? p.scale_log2 : 1.f;
    // Scores -> probabilities (online softmax), in place in acc_s.
    auto softmax = [&](float (&acc_s)[MT][NT][4], int n) {
      const int n0 = n * BN;
      const bool full = n0 + BN <= s.nk &&
                        (p.wl < 0 || n0 >= m0 + BM - 1 + s.off - p.wl) &&
                        (p.wr < 0 || n0 + BN - 1 <= m0 + s.off + p.wr);
      if (!plain) scores_log2<MT, NT>(acc_s, nullptr, p, slope, row_base, n0, s.off, lane);
      if (!full) mask_scores<MT, NT>(acc_s, p, row_base, n0, s.off, s.nq, s.nk, false, lane);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          float mx = neg_inf();
#pragma unroll
          for (int nt = 0; nt < NT; ++nt)
            mx = fmaxf(mx, fmaxf(acc_s[mt][nt][2 * r], acc_s[mt][nt][2 * r + 1]));
          mx = quad_max(mx);
          if (C::kPlain) mx *= sl2;  // log2 domain (sl2 > 0, so the max is kept)
          const float m_new = fmaxf(row_max[mt][r], mx);
          const float m_use = m_new == neg_inf() ? 0.f : m_new;
          const float corr = fast_exp2(row_max[mt][r] - m_use);
          row_max[mt][r] = m_new;
          float sum = 0.f;
#pragma unroll
          for (int nt = 0; nt < NT; ++nt)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const float pr = C::kPlain ? fast_exp2(fmaf(acc_s[mt][nt][2 * r + e], sl2, -m_use))
                                         : fast_exp2(acc_s[mt][nt][2 * r + e] - m_use);
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
    };
    auto pv = [&](float (&acc_s)[MT][NT][4], uint32_t b_v) {
      uint32_t pa[MT][C::KSP][4];
      acc_to_a<T, MT, C::KSP>(pa, acc_s);
      gemm_rs<T, true, MT, DT, C::KSP>(acc_o, pa, b_v, PB);
    };

    int n = n_end - 1;
    load_tile<BM, D, C::kThreads>(sQ, qg, p.q.ss, s.nq - m0, p.d, p.q.ptr, tid);
    load_k(n, 0);
    if constexpr (C::kStages == 1) {
      cp_async_commit();
      const uint32_t b_k = sK0 + lb_k, b_v = sK0 + BN * PB + lb_v;
      for (; n >= n_begin; --n) {
        cp_async_wait<0>();
        __syncthreads();  // K(n) (and Q) landed; every warp is done with V(n+1)
        load_v(n, 0);
        cp_async_commit();
        float acc_s[MT][NT][4];
        zero(acc_s);
        gemm_ss<T, false, false, MT, NT, C::KSQ>(acc_s, a_q, PB, b_k, PB);
        cp_async_wait<0>();
        __syncthreads();  // V(n) landed; every warp is done with K(n)
        if (n > n_begin) {
          load_k(n - 1, 0);
          cp_async_commit();
        }
        softmax(acc_s, n);
        pv(acc_s, b_v);
      }
    } else {
      load_v(n, 0);
      cp_async_commit();
      for (int stage = 0; n >= n_begin; --n, stage ^= 1) {
        cp_async_wait<0>();
        __syncthreads();  // tile n landed; every warp is done with tile n + 1 (the other stage)
        if (n > n_begin) {
          load_k(n - 1, stage ^ 1);
          load_v(n - 1, stage ^ 1);
          cp_async_commit();
        }
        const uint32_t kb = sK0 + stage * 2 * BN * PB;
        float acc_s[MT][NT][4];
        zero(acc_s);
        gemm_ss<T, false, false, MT, NT, C::KSQ>(acc_s, a_q, PB, kb + lb_k, PB);
        softmax(acc_s, n);
        pv(acc_s, kb + BN * PB + lb_v);
      }
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
  if (C::kEpi16 && p.num_splits <= 1 && p.o.dtype == Elem<T>::kDtype) {
    // Output in the compute dtype: a 16-bit tile and 16-byte stores.
    const uint32_t so16 = smem_u32(smem);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const float sum = quad_sum(row_sum[mt][r]);
        const float inv = sum > 0.f ? 1.f / sum : 0.f;
        const int i = row_base + mt * 16 + r * 8;
        if (lp && (lane & 3) == 0 && i < s.nq)
          lp[l_base + int64_t(h) * l_sh + (row0 + i) * l_ss] =
              sum > 0.f ? (row_max[mt][r] + __log2f(sum)) * kLn2 : neg_inf();
#pragma unroll
        for (int dt = 0; dt < DT; ++dt) {
          acc_o[mt][dt][2 * r] *= inv;
          acc_o[mt][dt][2 * r + 1] *= inv;
        }
      }
    frag_to_smem16<T, D>(so16, acc_o, warp * MT * 16, 0, 1.f, lane);
    __syncthreads();
    smem16_to_global<BM, D, C::kThreads>(so16, s.nq - m0, ov, flat, b, row0 + m0, h, p.d, tid);
    return;
  }
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


// ---- small problems and decode ------------------------------------------------------------------
//
// fwd_small_kernel: one block of NW (4) warps per 16 query rows (of one batch and head). The warps
// split the block's key tiles between them (warp w takes tiles w, w + 4, ...), each with its own
// double-buffered K/V tiles and warp-level synchronization only; at the end the four partial
// (max, sum, O) are merged through shared memory. Used when the main kernel would launch too few
// blocks to fill the GPU (short sequences, decode), with split-KV on top for long key ranges.
template <int D_, int BN_, int kStages_, int NW_ = 4>
struct SmallCfg {
  static constexpr int D = D_, BM = 16, BN = BN_, NW = NW_, kThreads = NW * 32;
  static constexpr int kStages = kStages_;
  static constexpr int kPitchB = (D + 8) * 2;
  static constexpr int NT = BN / 8, DT = D / 8, KSQ = D / 16, KSP = BN / 16;
  static constexpr int kStageBytes = 2 * BN * kPitchB;               // K then V
  static constexpr int kWarpBytes = kStages * kStageBytes;
  static constexpr int kOffWarp = BM * kPitchB;                       // after Q
  static constexpr int kSmem = kOffWarp + NW * kWarpBytes;
  // Merge area (reuses the tiles): per warp 16 x (D + 8) floats of O, then 16 max and 16 sums.
  static constexpr int kMergeO = NW * BM * (D + 8) * 4;
  static_assert(kMergeO + 2 * NW * BM * 4 <= kSmem, "merge area fits");
};

template <typename T, class C>
__global__ void __launch_bounds__(C::kThreads) fwd_small_kernel(const __grid_constant__ KParams p) {
  constexpr int BM = C::BM, BN = C::BN, D = C::D, NT = C::NT, DT = C::DT, NW = C::NW;
  constexpr int PB = C::kPitchB;
  extern __shared__ __align__(128) unsigned char smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  QueryBlock qb;
  if (!query_block<BM, BN>(p, qb)) return;
  const SeqInfo& s = qb.s;
  const int b = qb.b, h = qb.h, hk = qb.hk, split = qb.split, m0 = qb.m0;
  const int n_begin = qb.n_begin, n_end = qb.n_end;  // key tiles this block (and split) visits
  const bool varlen = p.cu_q != nullptr;

  float acc_o[1][DT][4];
  zero(acc_o);
  float row_max[2] = {neg_inf(), neg_inf()}, row_sum[2] = {0.f, 0.f};
  const int row_base = m0 + (lane >> 2);
  const uint32_t sQ = smem_u32(smem);
  const uint32_t sW = sQ + C::kOffWarp + warp * C::kWarpBytes;

  const int my_first = n_begin + warp;
  const T* kg = static_cast<const T*>(p.k.ptr) + view_row(p.k, varlen, b, s.k_row0, hk);
  const T* vg = static_cast<const T*>(p.v.ptr) + view_row(p.v, varlen, b, s.k_row0, hk);
  auto load_kv = [&](int n, int stage) {
    const uint32_t st = sW + stage * C::kStageBytes;
    load_tile<BN, D, 32>(st, kg + int64_t(n) * BN * p.k.ss, p.k.ss, s.nk - n * BN, p.d, p.k.ptr,
                         lane);
    load_tile<BN, D, 32>(st + BN * PB, vg + int64_t(n) * BN * p.v.ss, p.v.ss, s.nk - n * BN, p.d,
                         p.v.ptr, lane);
    cp_async_commit();
  };
  if (n_begin < n_end) {  // uniform over the block
    // Q and every warp's first K/V tile in flight together (one memory latency, not two).
    const T* qg = static_cast<const T*>(p.q.ptr) + view_row(p.q, varlen, b, s.q_row0 + m0, h);
    load_tile<BM, D, C::kThreads>(sQ, qg, p.q.ss, s.nq - m0, p.d, p.q.ptr, tid);
    cp_async_commit();
    if (my_first < n_end) load_kv(my_first, 0);
    cp_async_wait<0>();
    __syncthreads();
  }
  if (my_first < n_end) {  // per warp
    const float slope = alibi_slope(p, b, h);
    const uint32_t a_q = sQ + lane_off_a<false>(lane, PB);
    int stage = 0;
    for (int n = my_first; n < n_end; n += NW) {
      const bool more = n + NW < n_end;
      if (C::kStages == 2 && more) {
        load_kv(n + NW, stage ^ 1);
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
      __syncwarp();
      const uint32_t kb = sW + stage * C::kStageBytes;
      float acc_s[1][NT][4];
      zero(acc_s);
      gemm_ss<T, false, false, 1, NT, C::KSQ>(acc_s, a_q, PB, kb + lane_off_b<false>(lane, PB), PB);
      const int n0 = n * BN;
      const bool full = n0 + BN <= s.nk &&
                        (p.wl < 0 || n0 >= m0 + BM - 1 + s.off - p.wl) &&
                        (p.wr < 0 || n0 + BN - 1 <= m0 + s.off + p.wr);
      scores_log2<1, NT>(acc_s, nullptr, p, slope, row_base, n0, s.off, lane);
      if (!full) mask_scores<1, NT>(acc_s, p, row_base, n0, s.off, s.nq, s.nk, false, lane);
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = neg_inf();
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
          mx = fmaxf(mx, fmaxf(acc_s[0][nt][2 * r], acc_s[0][nt][2 * r + 1]));
        mx = quad_max(mx);
        const float m_new = fmaxf(row_max[r], mx);
        const float m_use = m_new == neg_inf() ? 0.f : m_new;
        const float corr = fast_exp2(row_max[r] - m_use);
        row_max[r] = m_new;
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float pr = fast_exp2(acc_s[0][nt][2 * r + e] - m_use);
            acc_s[0][nt][2 * r + e] = pr;
            sum += pr;
          }
        row_sum[r] = row_sum[r] * corr + sum;
#pragma unroll
        for (int dt = 0; dt < DT; ++dt) {
          acc_o[0][dt][2 * r] *= corr;
          acc_o[0][dt][2 * r + 1] *= corr;
        }
      }
      uint32_t pa[1][C::KSP][4];
      acc_to_a<T, 1, C::KSP>(pa, acc_s);
      gemm_rs<T, true, 1, DT, C::KSP>(acc_o, pa, kb + BN * PB + lane_off_b<true>(lane, PB), PB);
      if (C::kStages == 1 && more) {
        __syncwarp();  // every lane is done with the tile before it is replaced
        load_kv(n + NW, 0);
      } else {
        __syncwarp();
      }
      if (C::kStages == 2) stage ^= 1;
    }
  }

  // Merge the warps' partials: O_w (unnormalized), max_w, sum_w -> shared memory.
  __syncthreads();
  float* mo = reinterpret_cast<float*>(smem);                 // [NW][16][D + 8]
  float* mmax = mo + NW * BM * (D + 8);                         // [NW][16]
  float* msum = mmax + NW * BM;                                 // [NW][16]
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float sum = quad_sum(row_sum[r]);
    if ((lane & 3) == 0) {
      mmax[warp * BM + (lane >> 2) + r * 8] = row_max[r];
      msum[warp * BM + (lane >> 2) + r * 8] = sum;
    }
  }
  frag_to_smem<D>(mo + warp * BM * (D + 8), acc_o, 0, 0, 1.f, lane);
  __syncthreads();

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
  constexpr int C4 = D / 4;
  for (int c = tid; c < BM * C4; c += C::kThreads) {
    const int r = c / C4, col = (c % C4) * 4;
    if (m0 + r >= s.nq) continue;
    float mx = neg_inf();
#pragma unroll
    for (int w = 0; w < NW; ++w) mx = fmaxf(mx, mmax[w * BM + r]);
    const float m_use = mx == neg_inf() ? 0.f : mx;
    float sum = 0.f;
    float4 o = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
    for (int w = 0; w < NW; ++w) {
      const float f = fast_exp2(mmax[w * BM + r] - m_use);
      sum += f * msum[w * BM + r];
      const float4 ow = *reinterpret_cast<const float4*>(mo + (w * BM + r) * (D + 8) + col);
      o.x += f * ow.x;
      o.y += f * ow.y;
      o.z += f * ow.z;
      o.w += f * ow.w;
    }
    const float inv = sum > 0.f ? 1.f / sum : 0.f;
    o.x *= inv;
    o.y *= inv;
    o.z *= inv;
    o.w *= inv;
    if (col < p.d) store_quad(ov, view_row(ov, flat, b, row0 + m0 + r, h), col, p.d, o);
    if (col == 0 && lp)
      lp[l_base + int64_t(h) * l_sh + (row0 + m0 + r) * l_ss] =
          sum > 0.f ? (m_use + __log2f(sum)) * kLn2 : neg_inf();
  }
}

}  // namespace cuda
}  // namespace umfa
