// Backward flash attention (FlashAttention-2 style) on tensor cores.
//
// bwd_kernel: one block of 8 warps owns BN keys of one (batch, kv head) and walks every query
// head of its GQA group and every query block that can see those keys. Per query block:
//   S = Q K^T, dP = dO V^T                 (warps tiled WMS x WNS over BM x BN)
//   P = exp2(S' - LSE2), dS = P (dP - Delta) f'(.)   -> shared memory as 16-bit
//   dV += P^T dO, dK += dS^T Q             (warps tiled WNKV x WDKV over BN x D; in registers)
//   dQ += dS K                             (warps tiled WMQ x WDQ over BM x D; f32 atomics)
// Q/dO tiles are double-buffered with cp.async when shared memory allows (p.dbuf).
// dK and dV of a kv head sum all heads of its group in registers, so they are written once,
// without atomics. With UMFA_FLAG_DETERMINISTIC the dQ atomics are off and dq_kernel computes
// dQ per query block by walking the key blocks (S, dP and dS recomputed; fixed order).
#pragma once

#include <type_traits>

#include "common.cuh"

namespace umfa {
namespace cuda {

// kOpt bits of BwdCfg.
constexpr int kBwdPlain = 1;    // a second instantiation for plain scores (no softcap/ALiBi,
                                // scale > 0): P = exp2(S * scale log2e - LSE2) fused, no softcap
                                // state live across the dP GEMM
constexpr int kBwdSplitKV = 2;  // warps [0, NW/2) accumulate dV, the others dK, each on the whole
                                // BN x D tile (larger warp tiles: fewer ldmatrix per mma)
constexpr int kBwdHalfS = 4;    // plain steps: dP first, then S, P and dS in two column halves
                                // (16 fewer live registers across the GEMMs, Q fragments
                                // loaded twice); tuning builds only so far

template <int D_, int BM_, int BN_, int WMS_, int WNS_, int WNKV_, int WDKV_, int WMQ_, int WDQ_,
          int NW_ = 8, bool kDbuf_ = true, int kMinBlocks_ = 1, bool kDqStage_ = false,
          int kOpt_ = 0>
struct BwdCfg {
  static constexpr bool kPlain = (kOpt_ & kBwdPlain) != 0;
  static constexpr bool kSplitKV = (kOpt_ & kBwdSplitKV) != 0;
  static constexpr bool kHalfS = (kOpt_ & kBwdHalfS) != 0;
  static constexpr int kOpt = kOpt_;
  // Warps sharing one dK/dV tile (all of them, or half with kSplitKV).
  static constexpr int NWKV = kSplitKV ? NW_ / 2 : NW_;
  // Stage dQ through shared memory so that its f32 reductions go out as whole rows (16-byte
  // atomics over consecutive columns) instead of fragment-shaped pieces.
  static constexpr bool kDqStage = kDqStage_;
  static constexpr int D = D_, BM = BM_, BN = BN_, NW = NW_;
  static constexpr int WMS = WMS_, WNS = WNS_, WNKV = WNKV_, WDKV = WDKV_, WMQ = WMQ_, WDQ = WDQ_;
  static constexpr bool kDbuf = kDbuf_;       // double-buffer Q/dO when shared memory allows
  static constexpr int kMinBlocks = kMinBlocks_;  // blocks per SM the register budget targets
  static constexpr int kThreads = NW * 32;
  static constexpr int kPitchB = (D + 8) * 2;    // Q, dO, K, V tiles
  static constexpr int kPitchPB = (BN + 8) * 2;  // P, dS tiles
  static constexpr int MT_S = BM / WMS / 16, NT_S = BN / WNS / 8;
  static constexpr int MT_KV = BN / WNKV / 16, NT_KV = D / WDKV / 8;
  static constexpr int MT_Q = BM / WMQ / 16, NT_Q = D / WDQ / 8;
  // Layout: K | V | P | dS | [dQ f32] | Q0 | dO0 | Q1 | dO1 (the second Q/dO stage only when
  // double-buffered).
  static constexpr int kOffV = BN * kPitchB;
  static constexpr int kOffP = 2 * BN * kPitchB;
  static constexpr int kOffDS = kOffP + BM * kPitchPB;
  static constexpr int kOffDQ = kOffDS + BM * kPitchPB;
  static constexpr int kOffQ = kOffDQ + (kDqStage ? BM * (D + 8) * 4 : 0);
  static constexpr int kStage = 2 * BM * kPitchB;
  static constexpr int kSmemSingle = kOffQ + kStage;
  static constexpr int kSmem = kOffQ + 2 * kStage;
  static_assert(WMS * WNS == NW && WNKV * WDKV == NWKV && WMQ * WDQ == NW, "warp tilings");
  static_assert(MT_S >= 1 && NT_S >= 2 && MT_KV >= 1 && NT_KV >= 2 && MT_Q >= 1 && NT_Q >= 2,
                "warp tiles");
  static_assert(BN * (D + 8) * 4 <= kSmemSingle, "the f32 dK/dV tile fits in shared memory");
};

// Per-element score, probability and dS for a (BM x BN) tile held as C fragments.
// acc_s: raw q.k in, P out; acc_dp: dP in, dS (times f') out.
template <int MT, int NT>
__device__ __forceinline__ void scores_to_p_ds(float (&acc_s)[MT][NT][4], float (&acc_dp)[MT][NT][4],
                                               const float (&lse_r)[MT][2],
                                               const float (&dlt_r)[MT][2], const KParams& p,
                                               const SeqInfo& s, float slope, int row_base,
                                               int col_base, bool full, int lane) {
  if (p.softcap > 0.f) {
    float fp[MT][NT][4];
    scores_log2<MT, NT>(acc_s, fp, p, slope, row_base, col_base, s.off, lane);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          acc_dp[mt][nt][e] = (acc_dp[mt][nt][e] - dlt_r[mt][e >> 1]) * fp[mt][nt][e];
  } else {
    scores_log2<MT, NT>(acc_s, nullptr, p, slope, row_base, col_base, s.off, lane);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc_dp[mt][nt][e] -= dlt_r[mt][e >> 1];
  }
  if (!full) mask_scores<MT, NT>(acc_s, p, row_base, col_base, s.off, s.nq, s.nk, true, lane);
  // Masked scores are -inf, so P = exp2(-inf - lse) = 0 and dS = 0 there (lse2 is finite or
  // +inf only on rows that see no key at all, which are masked too).
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float pr = fast_exp2(acc_s[mt][nt][e] - lse_r[mt][e >> 1]);
        acc_s[mt][nt][e] = pr;
        acc_dp[mt][nt][e] *= pr;
      }
}

__device__ __forceinline__ void atomic_add4(float* dst, float4 v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  atomicAdd(reinterpret_cast<float4*>(dst), v);
#else
  atomicAdd(dst, v.x);
  atomicAdd(dst + 1, v.y);
  atomicAdd(dst + 2, v.z);
  atomicAdd(dst + 3, v.w);
#endif
}

__device__ __forceinline__ void atomic_add2(float* dst, float a, float b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  atomicAdd(reinterpret_cast<float2*>(dst), make_float2(a, b));
#else
  atomicAdd(dst, a);
  atomicAdd(dst + 1, b);
#endif
}

template <typename T, class C>
__global__ void __launch_bounds__(C::kThreads, C::kMinBlocks)
    bwd_kernel(const __grid_constant__ KParams p) {
  constexpr int BM = C::BM, BN = C::BN, D = C::D;
  constexpr int PB = C::kPitchB, PPB = C::kPitchPB;
  constexpr int MT_S = C::MT_S, NT_S = C::NT_S, MT_KV = C::MT_KV, NT_KV = C::NT_KV;
  constexpr int MT_Q = C::MT_Q, NT_Q = C::NT_Q;
  extern __shared__ __align__(128) unsigned char smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  KeyBlock kb;
  if (!key_block<BM, BN>(p, kb)) return;
  const SeqInfo& s = kb.s;
  const int b = kb.b, hk = kb.hk, n0 = kb.n0, m_begin = kb.m_begin, m_count = kb.m_count;
  const bool varlen = p.cu_q != nullptr;
  const int steps = m_count * p.group;

  const uint32_t base = smem_u32(smem);
  const uint32_t sK = base, sV = base + C::kOffV, sP = base + C::kOffP, sdS = base + C::kOffDS;

  float acc_dk[MT_KV][NT_KV][4], acc_dv[MT_KV][NT_KV][4];
  zero(acc_dk);
  zero(acc_dv);

  auto load_step = [&](int h, int m0, int stage) {
    const uint32_t sQ = base + C::kOffQ + stage * C::kStage;
    const uint32_t sdO = sQ + BM * PB;
    const T* qg = static_cast<const T*>(p.q.ptr) + view_row(p.q, varlen, b, s.q_row0 + m0, h);
    const T* dg =
        static_cast<const T*>(p.dout.ptr) + view_row(p.dout, varlen, b, s.q_row0 + m0, h);
    load_tile<BM, D, C::kThreads>(sQ, qg, p.q.ss, s.nq - m0, p.d, p.q.ptr, tid);
    load_tile<BM, D, C::kThreads>(sdO, dg, p.dout.ss, s.nq - m0, p.d, p.dout.ptr, tid);
  };

  // Warp coordinates in the three tilings.
  const int wsm = warp / C::WNS, wsn = warp % C::WNS;
  const int wkn = warp / C::WDKV, wkd = warp % C::WDKV;
  const int wqm = warp / C::WDQ, wqd = warp % C::WDQ;

  int h = hk * p.group, m0 = m_begin * BM;
  if (steps > 0) {
    const T* kg = static_cast<const T*>(p.k.ptr) + view_row(p.k, varlen, b, s.k_row0 + n0, hk);
    const T* vg = static_cast<const T*>(p.v.ptr) + view_row(p.v, varlen, b, s.k_row0 + n0, hk);
    load_tile<BN, D, C::kThreads>(sK, kg, p.k.ss, s.nk - n0, p.d, p.k.ptr, tid);
    load_tile<BN, D, C::kThreads>(sV, vg, p.v.ss, s.nk - n0, p.d, p.v.ptr, tid);
    load_step(h, m0, 0);
    cp_async_commit();
  }

  for (int t = 0; t < steps; ++t) {
    const int stage = p.dbuf ? (t & 1) : 0;
    const uint32_t sQ = base + C::kOffQ + stage * C::kStage;
    const uint32_t sdO = sQ + BM * PB;
    int h1 = h, m1 = m0;  // the next step
    kb.next_step(h1, m1);

    cp_async_wait<0>();
    __syncthreads();  // this step's Q/dO landed; the previous step's readers are done
    if (p.dbuf && t + 1 < steps) {
      load_step(h1, m1, stage ^ 1);
      cp_async_commit();
    }

    const int row_base = m0 + wsm * MT_S * 16 + (lane >> 2);
    float lse_r[MT_S][2], dlt_r[MT_S][2];
#pragma unroll
    for (int mt = 0; mt < MT_S; ++mt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int64_t k = int64_t(h) * p.rows_pad + s.q_glob + row_base + mt * 16 + r * 8;
        lse_r[mt][r] = p.lse2[k];
        dlt_r[mt][r] = p.delta[k];
      }
    const bool full = m0 + BM <= s.nq && n0 + BN <= s.nk &&
                      (p.wl < 0 || n0 >= m0 + BM - 1 + s.off - p.wl) &&
                      (p.wr < 0 || n0 + BN - 1 <= m0 + s.off + p.wr);
    const int col_base = n0 + wsn * NT_S * 8;
    const bool softcap = p.softcap > 0.f;

    // S = Q K^T, then P right away (its exponentials overlap the dP GEMM), stored as 16-bit.
    float acc_s[MT_S][NT_S][4];
    zero(acc_s);
    gemm_ss<T, false, false, MT_S, NT_S, D / 16>(
        acc_s, sQ + wsm * MT_S * 16 * PB + lane_off_a<false>(lane, PB), PB,
        sK + wsn * NT_S * 8 * PB + lane_off_b<false>(lane, PB), PB);
    float fp[MT_S][NT_S][4];  // softcap only: d score / d (scale q.k)
    if (softcap)
      scores_log2<MT_S, NT_S>(acc_s, fp, p, alibi_slope(p, b, h), row_base, col_base, s.off, lane);
    else
      scores_log2<MT_S, NT_S>(acc_s, nullptr, p, alibi_slope(p, b, h), row_base, col_base, s.off,
                              lane);
    if (!full) mask_scores<MT_S, NT_S>(acc_s, p, row_base, col_base, s.off, s.nq, s.nk, true, lane);
    // Masked scores are -inf, so P = exp2(-inf - lse2) = 0 there (lse2 is finite, or +inf only
    // on rows that see no key at all, which are masked too).
#pragma unroll
    for (int mt = 0; mt < MT_S; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT_S; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc_s[mt][nt][e] = fast_exp2(acc_s[mt][nt][e] - lse_r[mt][e >> 1]);
    auto store16 = [&](uint32_t tile, const float (&v)[MT_S][NT_S][4]) {
#pragma unroll
      for (int mt = 0; mt < MT_S; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT_S; ++nt)
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const int row = wsm * MT_S * 16 + mt * 16 + (lane >> 2) + r * 8;
            const int col = wsn * NT_S * 8 + nt * 8 + (lane & 3) * 2;
            const uint32_t w = Elem<T>::pack(v[mt][nt][2 * r], v[mt][nt][2 * r + 1]);
            asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(tile + uint32_t(row * PPB + col * 2)),
                         "r"(w)
                         : "memory");
          }
    };
    store16(sP, acc_s);

    // dP = dO V^T, dS = P (dP - Delta) f'.
    float acc_dp[MT_S][NT_S][4];
    zero(acc_dp);
    gemm_ss<T, false, false, MT_S, NT_S, D / 16>(
        acc_dp, sdO + wsm * MT_S * 16 * PB + lane_off_a<false>(lane, PB), PB,
        sV + wsn * NT_S * 8 * PB + lane_off_b<false>(lane, PB), PB);
#pragma unroll
    for (int mt = 0; mt < MT_S; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT_S; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float ds = acc_s[mt][nt][e] * (acc_dp[mt][nt][e] - dlt_r[mt][e >> 1]);
          if (softcap) ds *= fp[mt][nt][e];
          acc_dp[mt][nt][e] = ds;
        }
    store16(sdS, acc_dp);
    __syncthreads();

    // dV += P^T dO.
    gemm_ss<T, true, true, MT_KV, NT_KV, BM / 16>(
        acc_dv, sP + wkn * MT_KV * 16 * 2 + lane_off_a<true>(lane, PPB), PPB,
        sdO + wkd * NT_KV * 8 * 2 + lane_off_b<true>(lane, PB), PB);

    // dQ += dS K, accumulated in f32 scratch (the reductions overlap the dK GEMM below).
    if (p.dq_atomic) {
      float acc_dq[MT_Q][NT_Q][4];
      zero(acc_dq);
      gemm_ss<T, false, true, MT_Q, NT_Q, BN / 16>(
          acc_dq, sdS + wqm * MT_Q * 16 * PPB + lane_off_a<false>(lane, PPB), PPB,
          sK + wqd * NT_Q * 8 * 2 + lane_off_b<true>(lane, PB), PB);
      if constexpr (C::kDqStage) {
        float* sq = reinterpret_cast<float*>(smem + C::kOffDQ);
        frag_to_smem<D>(sq, acc_dq, wqm * MT_Q * 16, wqd * NT_Q * 8, 1.f, lane);
        __syncthreads();
        constexpr int C4 = D / 4;
        for (int c = tid; c < BM * C4; c += C::kThreads) {
          const int r = c / C4, col = (c % C4) * 4;
          if (m0 + r >= s.nq) continue;
          atomic_add4(p.dq_acc + ((s.q_glob + m0 + r) * p.hq + h) * p.dq_pitch + col,
                      *reinterpret_cast<const float4*>(sq + r * (D + 8) + col));
        }
      } else {
#pragma unroll
        for (int mt = 0; mt < MT_Q; ++mt)
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const int i = m0 + wqm * MT_Q * 16 + mt * 16 + (lane >> 2) + r * 8;
            if (i >= s.nq) continue;
            float* dst = p.dq_acc + ((s.q_glob + i) * p.hq + h) * p.dq_pitch + wqd * NT_Q * 8 +
                         (lane & 3) * 2;
#pragma unroll
            for (int nt = 0; nt < NT_Q; ++nt)
              atomic_add2(dst + nt * 8, acc_dq[mt][nt][2 * r], acc_dq[mt][nt][2 * r + 1]);
          }
      }
    }

    // dK += dS^T Q.
    gemm_ss<T, true, true, MT_KV, NT_KV, BM / 16>(
        acc_dk, sdS + wkn * MT_KV * 16 * 2 + lane_off_a<true>(lane, PPB), PPB,
        sQ + wkd * NT_KV * 8 * 2 + lane_off_b<true>(lane, PB), PB);

    if (!p.dbuf && t + 1 < steps) {
      __syncthreads();  // single buffer: everyone is done with Q/dO before they are replaced
      load_step(h1, m1, 0);
      cp_async_commit();
    }
    h = h1;
    m0 = m1;
  }

  // Epilogue: dV and dK (times the softmax scale) through shared memory: 16-bit tiles in the
  // K/V areas when the outputs have the compute dtype, else f32 tiles one after the other.
  const int kv_rows = min(BN, s.nk - n0);
  __syncthreads();  // every warp is done with the tiles
  if (p.dk.dtype == Elem<T>::kDtype && p.dv.dtype == Elem<T>::kDtype) {
    frag_to_smem16<T, D>(sV, acc_dv, wkn * MT_KV * 16, wkd * NT_KV * 8, 1.f, lane);
    frag_to_smem16<T, D>(sK, acc_dk, wkn * MT_KV * 16, wkd * NT_KV * 8, p.scale, lane);
    __syncthreads();
    smem16_to_global<BN, D, C::kThreads>(sV, kv_rows, p.dv, varlen, b, s.k_row0 + n0, hk, p.d,
                                         tid);
    smem16_to_global<BN, D, C::kThreads>(sK, kv_rows, p.dk, varlen, b, s.k_row0 + n0, hk, p.d,
                                         tid);
    return;
  }
  float* so = reinterpret_cast<float*>(smem);
  frag_to_smem<D>(so, acc_dv, wkn * MT_KV * 16, wkd * NT_KV * 8, 1.f, lane);
  __syncthreads();
  smem_to_global<BN, D, C::kThreads>(so, kv_rows, p.dv, varlen, b, s.k_row0 + n0, hk, p.d, tid);
  __syncthreads();
  frag_to_smem<D>(so, acc_dk, wkn * MT_KV * 16, wkd * NT_KV * 8, p.scale, lane);
  __syncthreads();
  smem_to_global<BN, D, C::kThreads>(so, kv_rows, p.dk, varlen, b, s.k_row0 + n0, hk, p.d, tid);
}

// Probabilities of a plain-score tile (no softcap, no ALiBi, scale > 0): P = exp2(S * scale log2 e
// - LSE2) with one FFMA per element; invisible keys (and rows >= nq when check_rows) give 0.
template <int MT, int NT>
__device__ __forceinline__ void plain_probs(float (&s)[MT][NT][4], const float (&lse_r)[MT][2],
                                            const KParams& p, int row_base, int col_base, int off,
                                            int nq, int nk, bool full, int lane) {
  const float sl2 = p.scale_log2;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[mt][nt][e] = fast_exp2(fmaf(s[mt][nt][e], sl2, -lse_r[mt][e >> 1]));
  if (full) return;
  const int wl = p.wl < 0 ? (1 << 30) : p.wl;
  const int wr = p.wr < 0 ? (1 << 30) : p.wr;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = row_base + mt * 16 + (e >> 1) * 8;
        const int j = col_base + nt * 8 + (lane & 3) * 2 + (e & 1);
        const int d = j - i - off;
        const bool vis = (d >= -wl) & (d <= wr) & (j < nk) & (i < nq);
        s[mt][nt][e] = vis ? s[mt][nt][e] : 0.f;
      }
}

// bwd_kernel with the kOpt features (kBwdSplitKV). kPlainK: the instantiation for plain scores
// (no softcap, no ALiBi, scale > 0; the host picks it, see KernelInfo::fn_plain), whose step
// computes P = exp2(S * scale log2 e - LSE2) with one FFMA and has no softcap state.
template <typename T, class C, bool kPlainK>
__global__ void __launch_bounds__(C::kThreads, C::kMinBlocks)
    bwd_opt_kernel(const __grid_constant__ KParams p) {
  constexpr int BM = C::BM, BN = C::BN, D = C::D;
  constexpr int PB = C::kPitchB, PPB = C::kPitchPB;
  constexpr int MT_S = C::MT_S, NT_S = C::NT_S, MT_KV = C::MT_KV, NT_KV = C::NT_KV;
  constexpr int MT_Q = C::MT_Q, NT_Q = C::NT_Q;
  constexpr int NACC = C::kSplitKV ? 1 : 2;  // dK/dV accumulator tiles per thread
  extern __shared__ __align__(128) unsigned char smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  KeyBlock kb;
  if (!key_block<BM, BN>(p, kb)) return;
  const SeqInfo& s = kb.s;
  const int b = kb.b, hk = kb.hk, n0 = kb.n0, m_begin = kb.m_begin, m_count = kb.m_count;
  const bool varlen = p.cu_q != nullptr;
  const int steps = m_count * p.group;

  const uint32_t base = smem_u32(smem);
  const uint32_t sK = base, sV = base + C::kOffV, sP = base + C::kOffP, sdS = base + C::kOffDS;

  // acc_kv[0] = dV and acc_kv[1] = dK; with kSplitKV one tile per thread: dV in warps
  // [0, NW/2), dK in the others.
  float acc_kv[NACC][MT_KV][NT_KV][4];
#pragma unroll
  for (int a = 0; a < NACC; ++a) zero(acc_kv[a]);

  auto load_step = [&](int h, int m0, int stage) {
    const uint32_t sQ = base + C::kOffQ + stage * C::kStage;
    const uint32_t sdO = sQ + BM * PB;
    const T* qg = static_cast<const T*>(p.q.ptr) + view_row(p.q, varlen, b, s.q_row0 + m0, h);
    const T* dg =
        static_cast<const T*>(p.dout.ptr) + view_row(p.dout, varlen, b, s.q_row0 + m0, h);
    load_tile<BM, D, C::kThreads>(sQ, qg, p.q.ss, s.nq - m0, p.d, p.q.ptr, tid);
    load_tile<BM, D, C::kThreads>(sdO, dg, p.dout.ss, s.nq - m0, p.d, p.dout.ptr, tid);
  };

  // Warp coordinates in the three tilings.
  const int wsm = warp / C::WNS, wsn = warp % C::WNS;
  const int wkv = warp % C::NWKV;            // index within the dK/dV warp group
  const int wgrp = C::kSplitKV ? warp / C::NWKV : 0;  // kSplitKV: 0 = dV warps, 1 = dK warps
  const int wkn = wkv / C::WDKV, wkd = wkv % C::WDKV;
  const int wqm = warp / C::WDQ, wqd = warp % C::WDQ;

  // dQ accumulator: element offsets of this thread's rows relative to row m0 of head h.
  const int64_t dq_row = int64_t(p.hq) * p.dq_pitch;
  const int dq_col = wqd * NT_Q * 8 + (lane & 3) * 2;
  const int dq_r0 = wqm * MT_Q * 16 + (lane >> 2);

  int h = hk * p.group, m0 = m_begin * BM;
  if (steps > 0) {
    const T* kg = static_cast<const T*>(p.k.ptr) + view_row(p.k, varlen, b, s.k_row0 + n0, hk);
    const T* vg = static_cast<const T*>(p.v.ptr) + view_row(p.v, varlen, b, s.k_row0 + n0, hk);
    load_tile<BN, D, C::kThreads>(sK, kg, p.k.ss, s.nk - n0, p.d, p.k.ptr, tid);
    load_tile<BN, D, C::kThreads>(sV, vg, p.v.ss, s.nk - n0, p.d, p.v.ptr, tid);
    load_step(h, m0, 0);
    cp_async_commit();
  }

  // One step; kPlainStep selects the plain-score copy.
  auto step = [&](auto plain_tag, int t) {
    constexpr bool kPlainStep = decltype(plain_tag)::value;
    const int stage = p.dbuf ? (t & 1) : 0;
    const uint32_t sQ = base + C::kOffQ + stage * C::kStage;
    const uint32_t sdO = sQ + BM * PB;
    int h1 = h, m1 = m0;  // the next step
    kb.next_step(h1, m1);

    cp_async_wait<0>();
    __syncthreads();  // this step's Q/dO landed; the previous step's readers are done
    if (p.dbuf && t + 1 < steps) {
      load_step(h1, m1, stage ^ 1);
      cp_async_commit();
    }

    const int row_base = m0 + wsm * MT_S * 16 + (lane >> 2);
    float lse_r[MT_S][2], dlt_r[MT_S][2];
#pragma unroll
    for (int mt = 0; mt < MT_S; ++mt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int64_t k = int64_t(h) * p.rows_pad + s.q_glob + row_base + mt * 16 + r * 8;
        lse_r[mt][r] = p.lse2[k];
        dlt_r[mt][r] = p.delta[k];
      }
    const bool full = m0 + BM <= s.nq && n0 + BN <= s.nk &&
                      (p.wl < 0 || n0 >= m0 + BM - 1 + s.off - p.wl) &&
                      (p.wr < 0 || n0 + BN - 1 <= m0 + s.off + p.wr);
    const int col_base = n0 + wsn * NT_S * 8;

    // S = Q K^T, then P right away (its exponentials overlap the dP GEMM), stored as 16-bit.
    constexpr bool kHalf = kPlainStep && C::kHalfS && NT_S % 4 == 0;  // halves of n-tile pairs
    float acc_s[MT_S][NT_S][4];
    if constexpr (!kHalf) {
      zero(acc_s);
      gemm_ss<T, false, false, MT_S, NT_S, D / 16>(
          acc_s, sQ + wsm * MT_S * 16 * PB + lane_off_a<false>(lane, PB), PB,
          sK + wsn * NT_S * 8 * PB + lane_off_b<false>(lane, PB), PB);
    }
    // Stores an (MT_S x NTW) fragment tile starting at n-tile nt0 of this warp's columns.
    auto store16w = [&](uint32_t tile, const auto& v, auto ntw_tag, int nt0) {
      constexpr int NTW = decltype(ntw_tag)::value;
#pragma unroll
      for (int mt = 0; mt < MT_S; ++mt)
#pragma unroll
        for (int nt = 0; nt < NTW; ++nt)
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const int row = wsm * MT_S * 16 + mt * 16 + (lane >> 2) + r * 8;
            const int col = wsn * NT_S * 8 + (nt0 + nt) * 8 + (lane & 3) * 2;
            const uint32_t w = Elem<T>::pack(v[mt][nt][2 * r], v[mt][nt][2 * r + 1]);
            asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(tile + uint32_t(row * PPB + col * 2)),
                         "r"(w)
                         : "memory");
          }
    };
    auto store16 = [&](uint32_t tile, const float (&v)[MT_S][NT_S][4]) {
      store16w(tile, v, std::integral_constant<int, NT_S>{}, 0);
    };
    float acc_dp[MT_S][NT_S][4];
    if constexpr (kHalf) {
      // dP = dO V^T first; then, per half of the columns, S, P (stored) and dS (in acc_dp).
      constexpr int NH = NT_S / 2;
      zero(acc_dp);
      gemm_ss<T, false, false, MT_S, NT_S, D / 16>(
          acc_dp, sdO + wsm * MT_S * 16 * PB + lane_off_a<false>(lane, PB), PB,
          sV + wsn * NT_S * 8 * PB + lane_off_b<false>(lane, PB), PB);
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        float sh[MT_S][NH][4];
        zero(sh);
        gemm_ss<T, false, false, MT_S, NH, D / 16>(
            sh, sQ + wsm * MT_S * 16 * PB + lane_off_a<false>(lane, PB), PB,
            sK + (wsn * NT_S + half * NH) * 8 * PB + lane_off_b<false>(lane, PB), PB);
        plain_probs<MT_S, NH>(sh, lse_r, p, row_base, col_base + half * NH * 8, s.off, s.nq, s.nk,
                              full, lane);
        store16w(sP, sh, std::integral_constant<int, NH>{}, half * NH);
#pragma unroll
        for (int mt = 0; mt < MT_S; ++mt)
#pragma unroll
          for (int nt = 0; nt < NH; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e)
              acc_dp[mt][half * NH + nt][e] =
                  sh[mt][nt][e] * (acc_dp[mt][half * NH + nt][e] - dlt_r[mt][e >> 1]);
      }
    } else if constexpr (kPlainStep) {
      plain_probs<MT_S, NT_S>(acc_s, lse_r, p, row_base, col_base, s.off, s.nq, s.nk, full, lane);
      store16(sP, acc_s);
      // dP = dO V^T, dS = P (dP - Delta).
      zero(acc_dp);
      gemm_ss<T, false, false, MT_S, NT_S, D / 16>(
          acc_dp, sdO + wsm * MT_S * 16 * PB + lane_off_a<false>(lane, PB), PB,
          sV + wsn * NT_S * 8 * PB + lane_off_b<false>(lane, PB), PB);
#pragma unroll
      for (int mt = 0; mt < MT_S; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT_S; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            acc_dp[mt][nt][e] = acc_s[mt][nt][e] * (acc_dp[mt][nt][e] - dlt_r[mt][e >> 1]);
    } else {
      const bool softcap = p.softcap > 0.f;
      float fp[MT_S][NT_S][4];  // softcap only: d score / d (scale q.k)
      if (softcap)
        scores_log2<MT_S, NT_S>(acc_s, fp, p, alibi_slope(p, b, h), row_base, col_base, s.off,
                                lane);
      else
        scores_log2<MT_S, NT_S>(acc_s, nullptr, p, alibi_slope(p, b, h), row_base, col_base,
                                s.off, lane);
      if (!full)
        mask_scores<MT_S, NT_S>(acc_s, p, row_base, col_base, s.off, s.nq, s.nk, true, lane);
      // Masked scores are -inf, so P = exp2(-inf - lse2) = 0 there (lse2 is finite, or +inf
      // only on rows that see no key at all, which are masked too).
#pragma unroll
      for (int mt = 0; mt < MT_S; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT_S; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            acc_s[mt][nt][e] = fast_exp2(acc_s[mt][nt][e] - lse_r[mt][e >> 1]);
      store16(sP, acc_s);
      // dP = dO V^T, dS = P (dP - Delta) f'.
      zero(acc_dp);
      gemm_ss<T, false, false, MT_S, NT_S, D / 16>(
          acc_dp, sdO + wsm * MT_S * 16 * PB + lane_off_a<false>(lane, PB), PB,
          sV + wsn * NT_S * 8 * PB + lane_off_b<false>(lane, PB), PB);
#pragma unroll
      for (int mt = 0; mt < MT_S; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT_S; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            float ds = acc_s[mt][nt][e] * (acc_dp[mt][nt][e] - dlt_r[mt][e >> 1]);
            if (softcap) ds *= fp[mt][nt][e];
            acc_dp[mt][nt][e] = ds;
          }
    }
    store16(sdS, acc_dp);
    __syncthreads();

    // dQ += dS K, accumulated in f32 scratch with atomics.
    auto dq_step = [&]() {
      float acc_dq[MT_Q][NT_Q][4];
      zero(acc_dq);
      gemm_ss<T, false, true, MT_Q, NT_Q, BN / 16>(
          acc_dq, sdS + wqm * MT_Q * 16 * PPB + lane_off_a<false>(lane, PPB), PPB,
          sK + wqd * NT_Q * 8 * 2 + lane_off_b<true>(lane, PB), PB);
      if constexpr (C::kDqStage) {
        float* sq = reinterpret_cast<float*>(smem + C::kOffDQ);
        frag_to_smem<D>(sq, acc_dq, wqm * MT_Q * 16, wqd * NT_Q * 8, 1.f, lane);
        __syncthreads();
        constexpr int C4 = D / 4;
        for (int c = tid; c < BM * C4; c += C::kThreads) {
          const int r = c / C4, col = (c % C4) * 4;
          if (m0 + r >= s.nq) continue;
          atomic_add4(p.dq_acc + ((s.q_glob + m0 + r) * p.hq + h) * p.dq_pitch + col,
                      *reinterpret_cast<const float4*>(sq + r * (D + 8) + col));
        }
      } else {
        float* dst0 = p.dq_acc + (s.q_glob + m0) * dq_row + int64_t(h) * p.dq_pitch + dq_col;
#pragma unroll
        for (int mt = 0; mt < MT_Q; ++mt)
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const int ri = dq_r0 + mt * 16 + r * 8;
            if (m0 + ri >= s.nq) continue;
            float* dst = dst0 + ri * dq_row;
#pragma unroll
            for (int nt = 0; nt < NT_Q; ++nt)
              atomic_add2(dst + nt * 8, acc_dq[mt][nt][2 * r], acc_dq[mt][nt][2 * r + 1]);
          }
      }
    };

    if constexpr (C::kSplitKV) {
      // dQ first (its reductions drain during the dK/dV GEMM), then dV += P^T dO in the dV
      // warps and dK += dS^T Q in the dK warps.
      if (p.dq_atomic) dq_step();
      const uint32_t a_kv = (wgrp ? sdS : sP) + wkn * MT_KV * 16 * 2 + lane_off_a<true>(lane, PPB);
      const uint32_t b_kv = (wgrp ? sQ : sdO) + wkd * NT_KV * 8 * 2 + lane_off_b<true>(lane, PB);
      gemm_ss<T, true, true, MT_KV, NT_KV, BM / 16>(acc_kv[0], a_kv, PPB, b_kv, PB);
    } else {
      // dV += P^T dO.
      gemm_ss<T, true, true, MT_KV, NT_KV, BM / 16>(
          acc_kv[0], sP + wkn * MT_KV * 16 * 2 + lane_off_a<true>(lane, PPB), PPB,
          sdO + wkd * NT_KV * 8 * 2 + lane_off_b<true>(lane, PB), PB);
      // dQ (the reductions overlap the dK GEMM below).
      if (p.dq_atomic) dq_step();
      // dK += dS^T Q.
      gemm_ss<T, true, true, MT_KV, NT_KV, BM / 16>(
          acc_kv[NACC - 1], sdS + wkn * MT_KV * 16 * 2 + lane_off_a<true>(lane, PPB), PPB,
          sQ + wkd * NT_KV * 8 * 2 + lane_off_b<true>(lane, PB), PB);
    }

    if (!p.dbuf && t + 1 < steps) {
      __syncthreads();  // single buffer: everyone is done with Q/dO before they are replaced
      load_step(h1, m1, 0);
      cp_async_commit();
    }
    h = h1;
    m0 = m1;
  };

  for (int t = 0; t < steps; ++t) step(std::integral_constant<bool, kPlainK>{}, t);

  // Epilogue: dV and dK (times the softmax scale) through shared memory: 16-bit tiles in the
  // K/V areas when the outputs have the compute dtype, else f32 tiles one after the other.
  const int kv_rows = min(BN, s.nk - n0);
  const int r_off = wkn * MT_KV * 16, c_off = wkd * NT_KV * 8;
  __syncthreads();  // every warp is done with the tiles
  if (p.dk.dtype == Elem<T>::kDtype && p.dv.dtype == Elem<T>::kDtype) {
    if constexpr (C::kSplitKV) {
      frag_to_smem16<T, D>(wgrp ? sK : sV, acc_kv[0], r_off, c_off, wgrp ? p.scale : 1.f, lane);
    } else {
      frag_to_smem16<T, D>(sV, acc_kv[0], r_off, c_off, 1.f, lane);
      frag_to_smem16<T, D>(sK, acc_kv[NACC - 1], r_off, c_off, p.scale, lane);
    }
    __syncthreads();
    smem16_to_global<BN, D, C::kThreads>(sV, kv_rows, p.dv, varlen, b, s.k_row0 + n0, hk, p.d,
                                         tid);
    smem16_to_global<BN, D, C::kThreads>(sK, kv_rows, p.dk, varlen, b, s.k_row0 + n0, hk, p.d,
                                         tid);
    return;
  }
  float* so = reinterpret_cast<float*>(smem);
  if (!C::kSplitKV || wgrp == 0) frag_to_smem<D>(so, acc_kv[0], r_off, c_off, 1.f, lane);
  __syncthreads();
  smem_to_global<BN, D, C::kThreads>(so, kv_rows, p.dv, varlen, b, s.k_row0 + n0, hk, p.d, tid);
  __syncthreads();
  if (!C::kSplitKV || wgrp == 1)
    frag_to_smem<D>(so, acc_kv[NACC - 1], r_off, c_off, p.scale, lane);
  __syncthreads();
  smem_to_global<BN, D, C::kThreads>(so, kv_rows, p.dk, varlen, b, s.k_row0 + n0, hk, p.d, tid);
}

// Deterministic dQ: one block of 4 warps per 64 query rows of one (batch, head).
template <int D_>
struct DqCfg {
  static constexpr int D = D_, BM = 64, BN = 64, NW = 4, kThreads = 128;
  static constexpr int kPitchB = (D + 8) * 2;
  static constexpr int NT = BN / 8, DT = D / 8;
  static constexpr int kSmem = (2 * BM + 2 * BN) * kPitchB;  // Q | dO | K | V
  static_assert(BM * (D + 8) * 4 <= kSmem, "the f32 dQ tile fits in shared memory");
};

template <typename T, class C>
__global__ void __launch_bounds__(128) dq_kernel(const __grid_constant__ KParams p) {
  constexpr int BM = C::BM, BN = C::BN, D = C::D, NT = C::NT, DT = C::DT, PB = C::kPitchB;
  extern __shared__ __align__(128) unsigned char smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  QueryBlock qb;  // (the dQ kernel's grid has no splits: p.num_splits is 1 in the backward)
  if (!query_block<BM, BN>(p, qb)) return;
  const SeqInfo& s = qb.s;
  const int b = qb.b, h = qb.h, hk = qb.hk, m0 = qb.m0, n_begin = qb.n_begin, n_end = qb.n_end;
  const bool varlen = p.cu_q != nullptr;

  float acc_dq[1][DT][4];
  zero(acc_dq);
  const int row_base = m0 + warp * 16 + (lane >> 2);

  if (n_begin < n_end) {
    const uint32_t sQ = smem_u32(smem), sdO = sQ + BM * PB, sK = sdO + BM * PB, sV = sK + BN * PB;
    const T* qg = static_cast<const T*>(p.q.ptr) + view_row(p.q, varlen, b, s.q_row0 + m0, h);
    const T* dg =
        static_cast<const T*>(p.dout.ptr) + view_row(p.dout, varlen, b, s.q_row0 + m0, h);
    const T* kg = static_cast<const T*>(p.k.ptr) + view_row(p.k, varlen, b, s.k_row0, hk);
    const T* vg = static_cast<const T*>(p.v.ptr) + view_row(p.v, varlen, b, s.k_row0, hk);
    load_tile<BM, D, 128>(sQ, qg, p.q.ss, s.nq - m0, p.d, p.q.ptr, tid);
    load_tile<BM, D, 128>(sdO, dg, p.dout.ss, s.nq - m0, p.d, p.dout.ptr, tid);

    float lse_r[1][2], dlt_r[1][2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int64_t k = int64_t(h) * p.rows_pad + s.q_glob + row_base + r * 8;
      lse_r[0][r] = p.lse2[k];
      dlt_r[0][r] = p.delta[k];
    }
    const float slope = alibi_slope(p, b, h);
    const uint32_t a_q = sQ + warp * 16 * PB + lane_off_a<false>(lane, PB);
    const uint32_t a_do = sdO + warp * 16 * PB + lane_off_a<false>(lane, PB);

    for (int n = n_begin; n < n_end; ++n) {
      const int n0 = n * BN;
      load_tile<BN, D, 128>(sK, kg + int64_t(n0) * p.k.ss, p.k.ss, s.nk - n0, p.d, p.k.ptr, tid);
      load_tile<BN, D, 128>(sV, vg + int64_t(n0) * p.v.ss, p.v.ss, s.nk - n0, p.d, p.v.ptr, tid);
      cp_async_commit();
      cp_async_wait<0>();
      __syncthreads();

      float acc_s[1][NT][4], acc_dp[1][NT][4];
      zero(acc_s);
      zero(acc_dp);
      gemm_ss<T, false, false, 1, NT, D / 16>(acc_s, a_q, PB, sK + lane_off_b<false>(lane, PB), PB);
      gemm_ss<T, false, false, 1, NT, D / 16>(acc_dp, a_do, PB, sV + lane_off_b<false>(lane, PB),
                                              PB);
      const bool full = m0 + BM <= s.nq && n0 + BN <= s.nk &&
                        (p.wl < 0 || n0 >= m0 + BM - 1 + s.off - p.wl) &&
                        (p.wr < 0 || n0 + BN - 1 <= m0 + s.off + p.wr);
      scores_to_p_ds(acc_s, acc_dp, lse_r, dlt_r, p, s, slope, row_base, n0, full, lane);
      uint32_t dsa[1][BN / 16][4];
      acc_to_a<T, 1, BN / 16>(dsa, acc_dp);
      gemm_rs<T, true, 1, DT, BN / 16>(acc_dq, dsa, sK + lane_off_b<true>(lane, PB), PB);
      __syncthreads();  // everyone is done with K/V before the next tiles land
    }
  }

  float* so = reinterpret_cast<float*>(smem);
  __syncthreads();
  frag_to_smem<D>(so, acc_dq, warp * 16, 0, p.scale, lane);
  __syncthreads();
  smem_to_global<BM, D, 128>(so, s.nq - m0, p.dq, varlen, b, s.q_row0 + m0, h, p.d, tid);
}

}  // namespace cuda
}  // namespace umfa
