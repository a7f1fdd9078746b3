// Forward flash attention on Hopper's warpgroup MMA (wgmma, sm_90a), for plain scores (no
// softcap, no ALiBi, scale > 0) at head-dim templates 64, 128 and 256 without split-KV; everything
// else stays on fwd.cuh. Same grid and semantics as fwd_kernel: one block computes BM = 128
// query rows of one (batch, head), two warpgroups of 64 rows each, against the key range those
// rows can see, BN = 128 keys at a time, walked from the last tile to the first:
//   S = Q K^T                (SS: Q and K tiles K-major in SW128 panels, see sm90.cuh)
//   online softmax on S in registers (running max on raw scores, one FFMA + ex2 per element)
//   O = O * corr + P V       (RS: P straight from the S accumulators, V read MN-major)
// K/V tiles are double-buffered with cp.async (tile n-1 arrives during tile n).
#pragma once

#include "fwd.cuh"
#include "sm90.cuh"

namespace umfa {
namespace cuda {

template <int D_, int BN_ = 128, int kMinBlocks_ = 1>
struct FwdSm90Cfg {
  static constexpr int D = D_, BM = 128, BN = BN_, kThreads = 256;
  static constexpr int kMinBlocks = kMinBlocks_;
  static constexpr int kPanelQ = BM * 128;   // bytes per 64-column panel of the Q tile
  static constexpr int kPanelKV = BN * 128;  // ... of a K/V tile
  static constexpr int kTileQ = BM * D * 2, kTileKV = BN * D * 2;
  static constexpr int kOffQ = 0, kOffKV = kTileQ;  // stage s: K at kOffKV + 2 s kTileKV, V after
  static constexpr int kSmem = kOffKV + 4 * kTileKV + 1024;  // + slack for 1024-byte alignment
  static_assert(D == 64 || D == 128 || D == 256, "head-dim templates of the sm_90a forward");
  static_assert(BM * (D + 8) * 2 <= kSmem - 1024, "the 16-bit output tile fits");
};

template <typename T, class C>
__global__ void __launch_bounds__(256, C::kMinBlocks) fwd_sm90_kernel(const __grid_constant__ KParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int D = C::D;
  using namespace sm90;
  constexpr int BM = C::BM, BN = C::BN, DT = D / 8;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw = smem_u32(smem_raw);
  const uint32_t base = (raw + 1023) & ~1023u;
  const int tid = threadIdx.x, lane = tid & 31, wg = tid >> 7, wiw = (tid >> 5) & 3;
  const int g = lane >> 2, t4 = lane & 3;

  QueryBlock qb;  // (never split: the host picks this kernel only when num_splits is 1)
  if (!query_block<BM, BN>(p, qb)) return;
  const SeqInfo& s = qb.s;
  const int b = qb.b, h = qb.h, hk = qb.hk, m0 = qb.m0, n_begin = qb.n_begin, n_end = qb.n_end;
  const bool varlen = p.cu_q != nullptr;

  // This thread's rows: row_loc + 8r of the block (r = 0, 1).
  const int row_loc = 64 * wg + 16 * wiw + g;
  float acc_o[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) acc_o[i] = 0.f;
  float row_max[2] = {neg_inf(), neg_inf()}, row_sum[2] = {0.f, 0.f};

  if (n_begin < n_end) {
    const uint32_t sQ = base + C::kOffQ;
    const T* qg = static_cast<const T*>(p.q.ptr) + view_row(p.q, varlen, b, s.q_row0 + m0, h);
    const T* kg = static_cast<const T*>(p.k.ptr) + view_row(p.k, varlen, b, s.k_row0, hk);
    const T* vg = static_cast<const T*>(p.v.ptr) + view_row(p.v, varlen, b, s.k_row0, hk);
    auto load_kv = [&](int n, int stage) {
      const uint32_t sK = base + C::kOffKV + stage * 2 * C::kTileKV;
      load_tile_sw128<BN, D, C::kThreads>(sK, kg + int64_t(n) * BN * p.k.ss, p.k.ss,
                                          s.nk - n * BN, p.d, p.k.ptr, tid);
      load_tile_sw128<BN, D, C::kThreads>(sK + C::kTileKV, vg + int64_t(n) * BN * p.v.ss, p.v.ss,
                                          s.nk - n * BN, p.d, p.v.ptr, tid);
    };
    const float sl2 = p.scale_log2;
    const int wl = p.wl < 0 ? (1 << 30) : p.wl;
    const int wr = p.wr < 0 ? (1 << 30) : p.wr;

    int n = n_end - 1;
    load_tile_sw128<BM, D, C::kThreads>(sQ, qg, p.q.ss, s.nq - m0, p.d, p.q.ptr, tid);
    load_kv(n, 0);
    cp_async_commit();
    for (int stage = 0; n >= n_begin; --n, stage ^= 1) {
      cp_async_wait<0>();
      fence_async_smem();
      __syncthreads();  // tile n landed; every warpgroup is done with tile n + 1 (other stage)
      if (n > n_begin) {
        load_kv(n - 1, stage ^ 1);
        cp_async_commit();
      }
      const uint32_t sK = base + C::kOffKV + stage * 2 * C::kTileKV, sV = sK + C::kTileKV;

      float acc_s[BN / 2];
      wg_fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const uint32_t qoff = (kk >> 2) * C::kPanelQ + 64 * 128 * wg + (kk & 3) * 32;
        const uint32_t koff = (kk >> 2) * C::kPanelKV + (kk & 3) * 32;
        Wgmma<T, BN>::template ss<0, 0>(acc_s, desc_sw128(sQ + qoff, 16, 1024),
                                        desc_sw128(sK + koff, 16, 1024), kk > 0);
      }
      wg_commit();
      wg_wait<0>();
      fence_regs(acc_s);

      // Online softmax (row r of this thread: acc_s[4j + 2r + e], key n0 + 8j + 2t + e).
      const int n0 = n * BN;
      const bool full = n0 + BN <= s.nk && (p.wl < 0 || n0 >= m0 + BM - 1 + s.off - p.wl) &&
                        (p.wr < 0 || n0 + BN - 1 <= m0 + s.off + p.wr);
      if (!full) {
#pragma unroll
        for (int j = 0; j < BN / 8; ++j)
#pragma unroll
          for (int r = 0; r < 2; ++r)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int i = m0 + row_loc + 8 * r;
              const int key = n0 + 8 * j + 2 * t4 + e;
              const int dd = key - i - s.off;
              const bool vis = (dd >= -wl) & (dd <= wr) & (key < s.nk);
              acc_s[4 * j + 2 * r + e] = vis ? acc_s[4 * j + 2 * r + e] : neg_inf();
            }
      }
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = neg_inf();
#pragma unroll
        for (int j = 0; j < BN / 8; ++j)
          mx = fmaxf(mx, fmaxf(acc_s[4 * j + 2 * r], acc_s[4 * j + 2 * r + 1]));
        mx = quad_max(mx) * sl2;  // log2 domain (sl2 > 0 keeps the max)
        const float m_new = fmaxf(row_max[r], mx);
        const float m_use = m_new == neg_inf() ? 0.f : m_new;
        const float corr = fast_exp2(row_max[r] - m_use);
        row_max[r] = m_new;
        float sum = 0.f;
#pragma unroll
        for (int j = 0; j < BN / 8; ++j)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float pr = fast_exp2(fmaf(acc_s[4 * j + 2 * r + e], sl2, -m_use));
            acc_s[4 * j + 2 * r + e] = pr;
            sum += pr;
          }
        row_sum[r] = row_sum[r] * corr + sum;
#pragma unroll
        for (int j = 0; j < DT; ++j) {
          acc_o[4 * j + 2 * r] *= corr;
          acc_o[4 * j + 2 * r + 1] *= corr;
        }
      }

      // O += P V (k-steps of 16 keys; V tile rows are keys: MN-major B).
      uint32_t a_p[BN / 16][4];
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) acc_to_a_frag<T>(a_p[kk], acc_s, kk);
      fence_regs(acc_o);
      wg_fence();
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk)
        Wgmma<T, D>::template rs<1>(acc_o, a_p[kk], desc_sw128(sV + kk * 2048, C::kPanelKV, 1024),
                                    1);
      wg_commit();
      wg_wait<0>();
      fence_regs(acc_o);
    }
  }

  // Epilogue: normalize, write the LSE from registers and O through a 16-bit shared tile
  // (16-byte stores) when O has the compute dtype, else straight from registers.
  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const float sum = quad_sum(row_sum[r]);
    inv[r] = sum > 0.f ? 1.f / sum : 0.f;
    const int i = m0 + row_loc + 8 * r;
    if (p.lse && t4 == 0 && i < s.nq)
      p.lse[(varlen ? 0 : int64_t(b) * p.lse_sb) + int64_t(h) * p.lse_sh +
            (s.q_row0 + i) * p.lse_ss] = sum > 0.f ? (row_max[r] + __log2f(sum)) * kLn2 : neg_inf();
  }
  if (p.o.dtype == Elem<T>::kDtype) {
    __syncthreads();  // every warpgroup is done with the tiles
    const uint32_t so16 = base;
#pragma unroll
    for (int j = 0; j < DT; ++j)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int row = row_loc + 8 * r, col = 8 * j + 2 * t4;
        const uint32_t v = Elem<T>::pack(acc_o[4 * j + 2 * r] * inv[r], acc_o[4 * j + 2 * r + 1] * inv[r]);
        asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(so16 + uint32_t((row * (D + 8) + col) * 2)),
                     "r"(v)
                     : "memory");
      }
    __syncthreads();
    smem16_to_global<BM, D, C::kThreads>(so16, s.nq - m0, p.o, varlen, b, s.q_row0 + m0, h, p.d,
                                         tid);
    return;
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = m0 + row_loc + 8 * r;
    if (i >= s.nq) continue;
    const int64_t ro = view_row(p.o, varlen, b, s.q_row0 + i, h);
#pragma unroll
    for (int j = 0; j < DT; ++j)
      store_pair(p.o, ro, 8 * j + 2 * t4, p.d, acc_o[4 * j + 2 * r] * inv[r],
                 acc_o[4 * j + 2 * r + 1] * inv[r]);
  }
#else
  (void)p;
#endif
}

}  // namespace cuda
}  // namespace umfa
