// Backward flash attention on Hopper's warpgroup MMA (wgmma, sm_90a), for plain scores (no
// softcap, no ALiBi, scale > 0) at head-dim templates 64 and 128; everything else stays on
// bwd.cuh. Same algorithm and grid as bwd_kernel: one block owns BN = 128 keys of one
// (batch, kv head) and walks every query head of the group and every query block (BM = 64)
// that sees those keys. Two warpgroups, each owning 64 of the keys:
//   S^T  = K Q^T,  dP^T = V dO^T           (SS: K-major K/V and Q/dO tiles)
//   P^T  = exp2(S^T scale log2e - LSE2),  dS^T = P^T (dP^T - Delta)      (in registers)
//   dV  += P^T dO, dK += dS^T Q            (RS: P^T / dS^T straight from the accumulators,
//                                           Q and dO read MN-major)
//   dQ   = dS K  (both warpgroups' dS^T through shared memory; warpgroup w computes columns
//                 [w D/2, (w+1) D/2)), added to the f32 dQ accumulator with atomics
// Q/dO tiles (and their LSE2/Delta rows) are double-buffered with cp.async. Shared-memory tiles
// use the SW128 panel layout of sm90.cuh. dQ always goes through atomics (p.dq_atomic); the
// deterministic option runs the sm_80 kernels.
#pragma once

#include "bwd.cuh"
#include "sm90.cuh"

namespace umfa {
namespace cuda {

template <int D_>
struct BwdSm90Cfg {
  static constexpr int D = D_, BM = 64, BN = 128, kThreads = 256;
  static constexpr int kMinBlocks = 1;  // two blocks of head_dim 64 would spill
  static constexpr int kPanelKV = BN * 128;  // bytes per 64-column panel of a K/V tile
  static constexpr int kPanelQ = BM * 128;   // ... of a Q/dO tile
  static constexpr int kTileKV = BN * D * 2, kTileQ = BM * D * 2;
  static constexpr int kOffK = 0, kOffV = kTileKV;
  static constexpr int kOffQ = 2 * kTileKV;  // Q0 | dO0 | Q1 | dO1
  static constexpr int kOffDS = kOffQ + 4 * kTileQ;  // dS^T: BN rows x BM columns (one panel)
  static constexpr int kOffStat = kOffDS + BN * BM * 2;  // LSE2[2][BM] | Delta[2][BM]
  static constexpr int kSmem = kOffStat + 4 * BM * 4 + 1024;  // + slack for 1024-byte alignment
  static_assert(D == 64 || D == 128, "head-dim templates of the sm_90a backward");
};

template <typename T, class C>
__global__ void __launch_bounds__(256, C::kMinBlocks)
    bwd_sm90_kernel(const __grid_constant__ KParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int D = C::D;
  using namespace sm90;
  constexpr int BM = C::BM, BN = C::BN, DH = D / 2;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw = smem_u32(smem_raw);
  const uint32_t base = (raw + 1023) & ~1023u;
  float* stat = reinterpret_cast<float*>(smem_raw + (base - raw) + C::kOffStat);
  const int tid = threadIdx.x, lane = tid & 31, wg = tid >> 7, wiw = (tid >> 5) & 3;
  const int g = lane >> 2, t4 = lane & 3;

  KeyBlock kb;
  if (!key_block<BM, BN>(p, kb)) return;
  const SeqInfo& s = kb.s;
  const int b = kb.b, hk = kb.hk, n0 = kb.n0, m_begin = kb.m_begin, m_count = kb.m_count;
  const bool varlen = p.cu_q != nullptr;
  const int steps = m_count * p.group;

  const uint32_t sK = base + C::kOffK, sV = base + C::kOffV, sdS = base + C::kOffDS;

  auto load_step = [&](int h, int m0, int stage) {
    const uint32_t sQ = base + C::kOffQ + stage * 2 * C::kTileQ;
    const T* qg = static_cast<const T*>(p.q.ptr) + view_row(p.q, varlen, b, s.q_row0 + m0, h);
    const T* dg =
        static_cast<const T*>(p.dout.ptr) + view_row(p.dout, varlen, b, s.q_row0 + m0, h);
    load_tile_sw128<BM, D, C::kThreads>(sQ, qg, p.q.ss, s.nq - m0, p.d, p.q.ptr, tid);
    load_tile_sw128<BM, D, C::kThreads>(sQ + C::kTileQ, dg, p.dout.ss, s.nq - m0, p.d,
                                        p.dout.ptr, tid);
    // LSE2 and Delta of the block's rows (scratch rows past the sequence hold +huge / 0).
    if (tid < 2 * BM) {
      const int r = tid & (BM - 1);
      const float* src = (tid < BM ? p.lse2 : p.delta) + int64_t(h) * p.rows_pad + s.q_glob + m0 + r;
      const uint32_t dst = base + C::kOffStat + uint32_t(((tid < BM ? 0 : 2) + stage) * BM + r) * 4;
      asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src));
    }
  };

  float acc_dv[DH], acc_dk[DH];
#pragma unroll
  for (int i = 0; i < DH; ++i) acc_dv[i] = acc_dk[i] = 0.f;

  int h = hk * p.group, m0 = m_begin * BM;
  if (steps > 0) {
    const T* kg = static_cast<const T*>(p.k.ptr) + view_row(p.k, varlen, b, s.k_row0 + n0, hk);
    const T* vg = static_cast<const T*>(p.v.ptr) + view_row(p.v, varlen, b, s.k_row0 + n0, hk);
    load_tile_sw128<BN, D, C::kThreads>(sK, kg, p.k.ss, s.nk - n0, p.d, p.k.ptr, tid);
    load_tile_sw128<BN, D, C::kThreads>(sV, vg, p.v.ss, s.nk - n0, p.d, p.v.ptr, tid);
    load_step(h, m0, 0);
    cp_async_commit();
  }

  // This thread's rows (keys) in the S^T / dP^T / dK / dV accumulators: key_loc + 8r.
  const int key_loc = 64 * wg + 16 * wiw + g;
  const float sl2 = p.scale_log2;
  const int wl = p.wl < 0 ? (1 << 30) : p.wl;
  const int wr = p.wr < 0 ? (1 << 30) : p.wr;

  for (int t = 0; t < steps; ++t) {
    const int stage = t & 1;
    const uint32_t sQ = base + C::kOffQ + stage * 2 * C::kTileQ;
    const uint32_t sdO = sQ + C::kTileQ;
    int h1 = h, m1 = m0;
    kb.next_step(h1, m1);

    cp_async_wait<0>();
    fence_async_smem();
    __syncthreads();  // this step's tiles landed; the previous step's wgmma reads are done
    if (t + 1 < steps) {
      load_step(h1, m1, stage ^ 1);
      cp_async_commit();
    }

    // S^T = K Q^T and dP^T = V dO^T for this warpgroup's 64 keys.
    float acc_s[32], acc_dp[32];
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const uint32_t koff = (kk >> 2) * C::kPanelKV + 64 * 128 * wg + (kk & 3) * 32;
      const uint32_t qoff = (kk >> 2) * C::kPanelQ + (kk & 3) * 32;
      Wgmma<T, 64>::template ss<0, 0>(acc_s, desc_sw128(sK + koff, 16, 1024),
                                      desc_sw128(sQ + qoff, 16, 1024), kk > 0);
    }
    wg_commit();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const uint32_t koff = (kk >> 2) * C::kPanelKV + 64 * 128 * wg + (kk & 3) * 32;
      const uint32_t qoff = (kk >> 2) * C::kPanelQ + (kk & 3) * 32;
      Wgmma<T, 64>::template ss<0, 0>(acc_dp, desc_sw128(sV + koff, 16, 1024),
                                      desc_sw128(sdO + qoff, 16, 1024), kk > 0);
    }
    wg_commit();

    const bool full = m0 + BM <= s.nq && n0 + BN <= s.nk &&
                      (p.wl < 0 || n0 >= m0 + BM - 1 + s.off - p.wl) &&
                      (p.wr < 0 || n0 + BN - 1 <= m0 + s.off + p.wr);
    const float* lse_s = stat + stage * BM;
    const float* dlt_s = stat + (2 + stage) * BM;

    // P^T = exp2(S^T scale log2e - LSE2) (0 where the key is invisible or the row is past nq).
    wg_wait<1>();
    fence_regs(acc_s);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float2 l = *reinterpret_cast<const float2*>(lse_s + 8 * j + 2 * t4);
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        acc_s[4 * j + 2 * r] = fast_exp2(fmaf(acc_s[4 * j + 2 * r], sl2, -l.x));
        acc_s[4 * j + 2 * r + 1] = fast_exp2(fmaf(acc_s[4 * j + 2 * r + 1], sl2, -l.y));
      }
    }
    if (!full) {
#pragma unroll
      for (int j = 0; j < 8; ++j)
#pragma unroll
        for (int r = 0; r < 2; ++r)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int i = m0 + 8 * j + 2 * t4 + e;
            const int key = n0 + key_loc + 8 * r;
            const int dd = key - i - s.off;
            const bool vis = (dd >= -wl) & (dd <= wr) & (key < s.nk) & (i < s.nq);
            acc_s[4 * j + 2 * r + e] = vis ? acc_s[4 * j + 2 * r + e] : 0.f;
          }
    }
    uint32_t a_p[4][4];
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) acc_to_a_frag<T>(a_p[kk], acc_s, kk);

    // dS^T = P^T (dP^T - Delta).
    wg_wait<0>();
    fence_regs(acc_dp);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float2 dl = *reinterpret_cast<const float2*>(dlt_s + 8 * j + 2 * t4);
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        acc_dp[4 * j + 2 * r] = acc_s[4 * j + 2 * r] * (acc_dp[4 * j + 2 * r] - dl.x);
        acc_dp[4 * j + 2 * r + 1] = acc_s[4 * j + 2 * r + 1] * (acc_dp[4 * j + 2 * r + 1] - dl.y);
      }
    }
    uint32_t a_ds[4][4];
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) acc_to_a_frag<T>(a_ds[kk], acc_dp, kk);

    // dV += P^T dO (B = dO read MN-major: k-step = 16 query rows), during the dS store and the
    // barrier. (Issued before the dS math instead, it measured no faster.)
    fence_regs(acc_dv);
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk)
      Wgmma<T, D>::template rs<1>(acc_dv, a_p[kk], desc_sw128(sdO + kk * 2048, C::kPanelQ, 1024), 1);
    wg_commit();

    // dS^T (16-bit) -> shared memory, rows = keys, columns = queries (one SW128 panel).
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int row = key_loc + 8 * r;
        const uint32_t addr = sdS + uint32_t(row * 128 + ((j ^ (row & 7)) << 4) + t4 * 4);
        asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(addr), "r"(a_ds[j >> 1][(j & 1) * 2 + r])
                     : "memory");
      }
    fence_async_smem();
    __syncthreads();  // both warpgroups' dS^T are in shared memory

    // dQ[:, wg D/2 .. +D/2] = dS K (A = dS, stored key-major: MN-major; B = K, MN-major), then
    // dK += dS^T Q; the dQ atomics run while the dK group computes.
    float acc_dq[DH / 2];
    const uint32_t col0 = uint32_t(wg * DH);
    const uint32_t kcol = (col0 >> 6) * C::kPanelKV + (col0 & 63) * 2;
    fence_regs(acc_dk);
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk)
      Wgmma<T, DH>::template ss<1, 1>(acc_dq, desc_sw128(sdS + kk * 2048, C::kPanelKV, 1024),
                                      desc_sw128(sK + kcol + kk * 2048, C::kPanelKV, 1024),
                                      kk > 0);
    wg_commit();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk)
      Wgmma<T, D>::template rs<1>(acc_dk, a_ds[kk], desc_sw128(sQ + kk * 2048, C::kPanelQ, 1024), 1);
    wg_commit();
    wg_wait<1>();  // dV and dQ
    fence_regs(acc_dq);
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int i = m0 + 16 * wiw + g + 8 * r;
      if (i >= s.nq) continue;
      float* dst = p.dq_acc + ((s.q_glob + i) * p.hq + h) * p.dq_pitch + col0 + 2 * t4;
#pragma unroll
      for (int j = 0; j < DH / 8; ++j)
        atomic_add2(dst + 8 * j, acc_dq[4 * j + 2 * r], acc_dq[4 * j + 2 * r + 1]);
    }
    wg_wait<0>();  // dK (its Q tile is the next prefetch's target)
    fence_regs(acc_dv);
    fence_regs(acc_dk);
    h = h1;
    m0 = m1;
  }

  // Epilogue: dV and dK (times the softmax scale), straight from the accumulators.
  const int dlim = p.d;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = n0 + key_loc + 8 * r;
    if (key >= s.nk) continue;
    const int64_t rv = view_row(p.dv, varlen, b, s.k_row0 + key, hk);
    const int64_t rk = view_row(p.dk, varlen, b, s.k_row0 + key, hk);
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      const int col = 8 * j + 2 * t4;
      store_pair(p.dv, rv, col, dlim, acc_dv[4 * j + 2 * r], acc_dv[4 * j + 2 * r + 1]);
      store_pair(p.dk, rk, col, dlim, acc_dk[4 * j + 2 * r] * p.scale,
                 acc_dk[4 * j + 2 * r + 1] * p.scale);
    }
  }
#else
  (void)p;
#endif
}

}  // namespace cuda
}  // namespace umfa
