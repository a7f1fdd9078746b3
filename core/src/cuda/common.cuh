// Device primitives shared by the CUDA kernels: tensor-core MMA (mma.sync m16n8k16), ldmatrix,
// cp.async, fast exp2, element loads/stores for every umfa dtype, and warp-level GEMMs over
// shared-memory tiles.
//
// Fragment layouts (PTX ISA, mma.m16n8k16 with .f16/.bf16 inputs and .f32 accumulators), with
// g = lane / 4 and t = lane % 4:
//   A (16x16, row-major): a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8, 2t+8..)
//   B (16x8, "col"):      b0 = (k 2t..2t+1, n g), b1 = (k 2t+8.., n g)
//   C (16x8, f32):        c0,c1 = (g, 2t..2t+1), c2,c3 = (g+8, 2t..2t+1)
// Shared-memory tiles are row-major with a pitch of (columns + 8) elements: the 16-byte pad
// shifts consecutive rows by one 16-byte bank group, so ldmatrix phases (8 rows x 16 bytes) and
// cp.async row writes are free of bank conflicts whenever columns / 8 is even.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "params.h"

namespace umfa {
namespace cuda {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }
__device__ __forceinline__ float pos_inf() { return __int_as_float(0x7f800000); }

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// tanh with a small absolute error everywhere (what softcapping needs): 1 - 2 / (e^{2x} + 1).
__device__ __forceinline__ float tanh_abs_accurate(float x) {
  x = fminf(fmaxf(x, -15.f), 15.f);
  float e = fast_exp2(x * (2.f * kLog2e));
  return 1.f - __fdividef(2.f, e + 1.f);
}

// ---- async copies -------------------------------------------------------------------------------

__device__ __forceinline__ void cp_async16(uint32_t smem, const void* gmem, bool pred) {
  const int src_size = pred ? 16 : 0;  // 0: nothing is read, the 16 bytes are zero-filled
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem), "l"(gmem),
               "r"(src_size));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// ---- ldmatrix -----------------------------------------------------------------------------------

__device__ __forceinline__ void ldsm_x4(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2,
                                        uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2,
                                          uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}

// ---- element types ------------------------------------------------------------------------------

template <typename T>
struct Elem;

template <>
struct Elem<__half> {
  static constexpr int kDtype = UMFA_DTYPE_F16;
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }
  static __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

template <>
struct Elem<__nv_bfloat16> {
  static constexpr int kDtype = UMFA_DTYPE_BF16;
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }
  static __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
};

// Loads element `idx` of a tensor of umfa dtype `dtype` (F32, F16, BF16) as float.
__device__ __forceinline__ float load_f(const void* base, int dtype, int64_t idx) {
  if (dtype == UMFA_DTYPE_F16) return __half2float(static_cast<const __half*>(base)[idx]);
  if (dtype == UMFA_DTYPE_BF16)
    return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[idx]);
  return static_cast<const float*>(base)[idx];
}

__device__ __forceinline__ void store_f(void* base, int dtype, int64_t idx, float v) {
  if (dtype == UMFA_DTYPE_F16)
    static_cast<__half*>(base)[idx] = __float2half_rn(v);
  else if (dtype == UMFA_DTYPE_BF16)
    static_cast<__nv_bfloat16*>(base)[idx] = __float2bfloat16_rn(v);
  else
    static_cast<float*>(base)[idx] = v;
}

// Stores columns col and col+1 (< dlim) of one row of an output view. `row` is the element
// offset of column 0 of that row. `vec` bit 0 (host-checked) allows one packed store.
__device__ __forceinline__ void store_pair(const TView& o, int64_t row, int col, int dlim, float v0,
                                           float v1) {
  if ((o.vec & 1) && col + 1 < dlim) {
    const int64_t idx = row + col;
    if (o.dtype == UMFA_DTYPE_F16) {
      *reinterpret_cast<__half2*>(static_cast<__half*>(o.ptr) + idx) = __floats2half2_rn(v0, v1);
    } else if (o.dtype == UMFA_DTYPE_BF16) {
      *reinterpret_cast<__nv_bfloat162*>(static_cast<__nv_bfloat16*>(o.ptr) + idx) =
          __floats2bfloat162_rn(v0, v1);
    } else {
      *reinterpret_cast<float2*>(static_cast<float*>(o.ptr) + idx) = make_float2(v0, v1);
    }
    return;
  }
  if (col < dlim) store_f(o.ptr, o.dtype, row + int64_t(col) * o.sd, v0);
  if (col + 1 < dlim) store_f(o.ptr, o.dtype, row + int64_t(col + 1) * o.sd, v1);
}

// Stores columns col..col+3 (< dlim) of one output row (`vec` bit 1: one 4-element store).
__device__ __forceinline__ void store_quad(const TView& o, int64_t row, int col, int dlim, float4 v) {
  if ((o.vec & 2) && col + 3 < dlim) {
    const int64_t idx = row + col;
    if (o.dtype == UMFA_DTYPE_F16) {
      __half2 a = __floats2half2_rn(v.x, v.y), b = __floats2half2_rn(v.z, v.w);
      uint2 u;
      u.x = *reinterpret_cast<uint32_t*>(&a);
      u.y = *reinterpret_cast<uint32_t*>(&b);
      *reinterpret_cast<uint2*>(static_cast<__half*>(o.ptr) + idx) = u;
    } else if (o.dtype == UMFA_DTYPE_BF16) {
      __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
      uint2 u;
      u.x = *reinterpret_cast<uint32_t*>(&a);
      u.y = *reinterpret_cast<uint32_t*>(&b);
      *reinterpret_cast<uint2*>(static_cast<__nv_bfloat16*>(o.ptr) + idx) = u;
    } else {
      *reinterpret_cast<float4*>(static_cast<float*>(o.ptr) + idx) = v;
    }
    return;
  }
  store_pair(o, row, col, dlim, v.x, v.y);
  store_pair(o, row, col + 2, dlim, v.z, v.w);
}

// ---- sequences and visibility -------------------------------------------------------------------

struct SeqInfo {
  int nq, nk;     // lengths of this sequence
  int q_row0;     // first row of the sequence in the (packed) tensor: cu_q[b], or 0 when dense
  int k_row0;
  int64_t q_glob;  // row of (b, 0) in the flat [rows] index used by scratch: cu_q[b] or b * nq
  int off;        // diagonal offset: nk - nq (bottom-right) or 0
};

// Varlen offsets are never validated on the host (reading them back would synchronize): each
// sequence is clamped to the tensors' rows [0, rows) and to the max_seqlen bound (p.nq / p.nk,
// which sizes the grid), so any cu_seqlens contents keep every access in bounds (an invalid list
// gives unspecified values, never out-of-bounds reads or writes).
__device__ __forceinline__ void clamp_seq(const int* cu, int b, int64_t rows, int max_len,
                                          int& row0, int& len) {
  const int total = int(rows < 0x7fffffff ? rows : 0x7fffffff);
  const int r0 = min(max(cu[b], 0), total);
  const int r1 = min(max(cu[b + 1], r0), total);
  row0 = r0;
  len = min(r1 - r0, max_len);
}

__device__ __forceinline__ SeqInfo seq_info(const KParams& p, int b) {
  SeqInfo s;
  if (p.cu_q) {
    clamp_seq(p.cu_q, b, p.rows_q, p.nq, s.q_row0, s.nq);
    clamp_seq(p.cu_k, b, p.rows_k, p.nk, s.k_row0, s.nk);
    s.q_glob = s.q_row0;
  } else {
    s.q_row0 = 0;
    s.k_row0 = 0;
    s.nq = p.nq;
    s.nk = p.nk;
    s.q_glob = int64_t(b) * p.nq;
  }
  s.off = p.bottom_right ? s.nk - s.nq : 0;
  return s;
}

// Element offset of (b, row, h, 0) in a [B, N, H, D] (dense) or [1, total, H, D] (varlen) view.
__device__ __forceinline__ int64_t view_row(const TView& t, bool varlen, int b, int64_t row, int h) {
  return (varlen ? 0 : int64_t(b) * t.sb) + row * t.ss + int64_t(h) * t.sh;
}

__device__ __forceinline__ bool visible(int i, int j, int off, int wl, int wr) {
  const int d = j - i - off;
  return (wl < 0 || d >= -wl) && (wr < 0 || d <= wr);
}

// ---- block coordinates ---------------------------------------------------------------------------

// A query block (forward and deterministic dQ kernels): rows [m0, m0 + BM) of query head h, and
// the key tiles [n_begin, n_end) of BN keys those rows can see (this split's share when
// num_splits > 1). blockIdx.x = ((split * batch + b) * hq + h) * mblocks + mblocks - 1 - m_block:
// the last row blocks, which see the most keys under a causal mask, start first. Returns false
// when the block has no rows (varlen sequences shorter than the grid's maximum).
struct QueryBlock {
  int b, h, hk, split, m0;
  SeqInfo s;
  int n_begin, n_end;
};
template <int BM, int BN>
__device__ __forceinline__ bool query_block(const KParams& p, QueryBlock& qb) {
  const int mblocks = (p.nq + BM - 1) / BM;
  int idx = blockIdx.x;
  const int m_block = mblocks - 1 - idx % mblocks;
  idx /= mblocks;
  qb.h = idx % p.hq;
  idx /= p.hq;
  qb.b = idx % p.batch;
  qb.split = idx / p.batch;
  qb.s = seq_info(p, qb.b);
  qb.m0 = m_block * BM;
  if (qb.m0 >= qb.s.nq) return false;
  qb.hk = qb.h / p.group;
  const SeqInfo& s = qb.s;
  const int m_last = min(qb.m0 + BM, s.nq) - 1;
  const int j_lo = p.wl < 0 ? 0 : max(0, qb.m0 + s.off - p.wl);
  const int j_hi = p.wr < 0 ? s.nk : min(s.nk, m_last + s.off + p.wr + 1);
  qb.n_begin = j_lo / BN;
  qb.n_end = j_hi > j_lo ? (j_hi + BN - 1) / BN : qb.n_begin;
  if (p.num_splits > 1) {
    const int per = (qb.n_end - qb.n_begin + p.num_splits - 1) / p.num_splits;
    const int first = qb.n_begin + qb.split * per;
    qb.n_end = min(qb.n_end, first + per);
    qb.n_begin = first;
  }
  return true;
}

// A key block (backward kernels): keys [n0, n0 + BN) of kv head hk, and the query blocks
// [m_begin, m_begin + m_count) of BM rows that see any of them.
// blockIdx.x = (b * hkv + hk) * nblocks + n_block. Returns false when the block has no keys.
struct KeyBlock {
  int b, hk, n0;
  SeqInfo s;
  int m_begin, m_count;
  int bm;
  // The kernels' step order: every query block of head h, then the next head of the group.
  // (h, m0) advance incrementally (no division in the loop).
  __device__ __forceinline__ void next_step(int& h, int& m0) const {
    m0 += bm;
    if (m0 >= (m_begin + m_count) * bm) {
      m0 = m_begin * bm;
      ++h;
    }
  }
};
template <int BM, int BN>
__device__ __forceinline__ bool key_block(const KParams& p, KeyBlock& kb) {
  const int nblocks = (p.nk + BN - 1) / BN;
  int idx = blockIdx.x;
  const int n_block = idx % nblocks;
  idx /= nblocks;
  kb.hk = idx % p.hkv;
  kb.b = idx / p.hkv;
  kb.s = seq_info(p, kb.b);
  kb.n0 = n_block * BN;
  if (kb.n0 >= kb.s.nk) return false;
  const SeqInfo& s = kb.s;
  const int key_last = min(kb.n0 + BN, s.nk) - 1;
  const int i_lo = p.wr < 0 ? 0 : max(0, kb.n0 - s.off - p.wr);
  const int i_hi = p.wl < 0 ? s.nq : min(s.nq, key_last - s.off + p.wl + 1);
  kb.m_begin = i_lo / BM;
  kb.m_count = i_hi > i_lo ? (i_hi + BM - 1) / BM - kb.m_begin : 0;
  kb.bm = BM;
  return true;
}

// ---- tile loads ---------------------------------------------------------------------------------

// Copies rows [0, ROWS) x columns [0, D) of a global tile (row r at g + r * row_stride) into a
// shared tile with pitch D + 8; rows >= rows_valid and columns >= d_valid become zeros.
// Thread tid copies 16-byte chunk column (tid % CPR) of rows tid / CPR, + RS, + 2 RS, ... where
// CPR (chunks per row) is padded to a power of two so that the column is fixed per thread and
// addresses advance by a constant (few live registers).
template <int ROWS, int D, int THREADS, typename T>
__device__ __forceinline__ void load_tile(uint32_t s, const T* g, int64_t row_stride,
                                          int rows_valid, int d_valid, const void* fallback,
                                          int tid) {
  constexpr int CPR = D / 8;
  constexpr int CPRP = CPR <= 8 ? 8 : (CPR <= 16 ? 16 : 32);
  static_assert(THREADS % CPRP == 0, "threads per tile row");
  constexpr int RS = THREADS / CPRP;  // rows per pass
  constexpr int ITERS = (ROWS + RS - 1) / RS;
  const int col = tid % CPRP;
  const int r0 = tid / CPRP;
  if (CPRP != CPR && col >= CPR) return;
  const bool col_ok = col * 8 < d_valid;
  const T* src = g + int64_t(r0) * row_stride + col * 8;
  const int64_t step = int64_t(RS) * row_stride;
  uint32_t dst = s + uint32_t((r0 * (D + 8) + col * 8) * 2);
#pragma unroll
  for (int it = 0; it < ITERS; ++it) {
    const int r = r0 + it * RS;
    if (ROWS % RS == 0 || r < ROWS) {
      const bool ok = col_ok && r < rows_valid;
      cp_async16(dst, ok ? static_cast<const void*>(src) : fallback, ok);
    }
    src += step;
    dst += uint32_t(RS * (D + 8) * 2);
  }
}

// ---- warp GEMMs ---------------------------------------------------------------------------------
//
// acc[MT][NT] (a (MT*16) x (NT*8) tile) += A (MT*16 x KS*16) * B (KS*16 x NT*8).
// A in shared memory, either "MK" (element (m,k) at m*pitch + k; A_T = false) or "KM"
// (element (m,k) at k*pitch + m; A_T = true). B either "NK" (element (k,n) at n*pitch + k;
// B_T = false) or "KN" (element (k,n) at k*pitch + n; B_T = true). Addresses passed in are the
// tile origin (bytes, shared space) plus lane_off_a / lane_off_b.

template <bool A_T>
__device__ __forceinline__ uint32_t lane_off_a(int lane, int pitch_bytes) {
  if (!A_T) return uint32_t((lane & 15) * pitch_bytes + (lane >> 4) * 16);
  return uint32_t(((lane >> 4) * 8 + (lane & 7)) * pitch_bytes + ((lane >> 3) & 1) * 16);
}
template <bool B_T>
__device__ __forceinline__ uint32_t lane_off_b(int lane, int pitch_bytes) {
  if (!B_T) return uint32_t(((lane >> 4) * 8 + (lane & 7)) * pitch_bytes + ((lane >> 3) & 1) * 16);
  return uint32_t((((lane >> 3) & 1) * 8 + (lane & 7)) * pitch_bytes + (lane >> 4) * 16);
}

template <bool A_T>
__device__ __forceinline__ void load_a(uint32_t (&a)[4], uint32_t addr, int mt, int ks, int pitch) {
  if (!A_T)
    ldsm_x4(addr + mt * 16 * pitch + ks * 32, a[0], a[1], a[2], a[3]);
  else
    ldsm_x4_t(addr + mt * 32 + ks * 16 * pitch, a[0], a[1], a[2], a[3]);
}
// Loads B fragments for n-tiles 2*np and 2*np+1 at k-step ks.
template <bool B_T>
__device__ __forceinline__ void load_b2(uint32_t (&b)[4], uint32_t addr, int np, int ks, int pitch) {
  if (!B_T)
    ldsm_x4(addr + np * 16 * pitch + ks * 32, b[0], b[1], b[2], b[3]);
  else
    ldsm_x4_t(addr + np * 32 + ks * 16 * pitch, b[0], b[1], b[2], b[3]);
}

template <typename T, bool A_T, bool B_T, int MT, int NT, int KS>
__device__ __forceinline__ void gemm_ss(float (&acc)[MT][NT][4], uint32_t a_addr, int a_pitch,
                                        uint32_t b_addr, int b_pitch) {
  static_assert(NT % 2 == 0, "n-tiles are loaded in pairs");
#pragma unroll
  for (int ks = 0; ks < KS; ++ks) {
    uint32_t a[MT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) load_a<A_T>(a[mt], a_addr, mt, ks, a_pitch);
#pragma unroll
    for (int np = 0; np < NT / 2; ++np) {
      uint32_t b[4];
      load_b2<B_T>(b, b_addr, np, ks, b_pitch);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        Elem<T>::mma(acc[mt][2 * np], a[mt], b[0], b[1]);
        Elem<T>::mma(acc[mt][2 * np + 1], a[mt], b[2], b[3]);
      }
    }
  }
}

// Same with A already in registers as fragments a[MT][KS][4].
template <typename T, bool B_T, int MT, int NT, int KS>
__device__ __forceinline__ void gemm_rs(float (&acc)[MT][NT][4], const uint32_t (&a)[MT][KS][4],
                                        uint32_t b_addr, int b_pitch) {
  static_assert(NT % 2 == 0, "n-tiles are loaded in pairs");
#pragma unroll
  for (int ks = 0; ks < KS; ++ks) {
#pragma unroll
    for (int np = 0; np < NT / 2; ++np) {
      uint32_t b[4];
      load_b2<B_T>(b, b_addr, np, ks, b_pitch);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        Elem<T>::mma(acc[mt][2 * np], a[mt][ks], b[0], b[1]);
        Elem<T>::mma(acc[mt][2 * np + 1], a[mt][ks], b[2], b[3]);
      }
    }
  }
}

// C fragments of a (MT*16) x (2*KS*8) f32 tile -> A fragments (16-bit) for the next GEMM.
template <typename T, int MT, int KS>
__device__ __forceinline__ void acc_to_a(uint32_t (&a)[MT][KS][4], const float (&c)[MT][2 * KS][4]) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int k = 0; k < KS; ++k) {
      a[mt][k][0] = Elem<T>::pack(c[mt][2 * k][0], c[mt][2 * k][1]);
      a[mt][k][1] = Elem<T>::pack(c[mt][2 * k][2], c[mt][2 * k][3]);
      a[mt][k][2] = Elem<T>::pack(c[mt][2 * k + 1][0], c[mt][2 * k + 1][1]);
      a[mt][k][3] = Elem<T>::pack(c[mt][2 * k + 1][2], c[mt][2 * k + 1][3]);
    }
}

template <int MT, int NT>
__device__ __forceinline__ void zero(float (&c)[MT][NT][4]) {
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) c[i][j][e] = 0.f;
}

__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}
__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// Score transform shared by every kernel: raw q.k -> natural-log-domain score (scale, softcap,
// ALiBi). Returns the score; *fprime (when softcap is on) gets d score / d (scale q.k).
// `exact` (the f32 generic kernels) uses the libm tanh.
__device__ __forceinline__ float transform_score(float qk, const KParams& p, float slope, int i,
                                                 int j, int off, float* fprime,
                                                 bool exact = false) {
  float x = qk * p.scale;
  float fp = 1.f;
  if (p.softcap > 0.f) {
    const float t = exact ? tanhf(x / p.softcap) : tanh_abs_accurate(x * p.inv_softcap);
    x = p.softcap * t;
    fp = 1.f - t * t;
  }
  if (p.alibi) x -= slope * fabsf(float(i + off - j));
  if (fprime) *fprime = fp;
  return x;
}

// In-register score tiles (C fragments of MT x NT 16x8 tiles; rows row_base + mt*16 + 8*(e/2),
// columns col_base + nt*8 + 2*(lane%4) + e%2). Each option is its own branch-free pass, chosen by
// a uniform branch, so the common path (no softcap, no ALiBi, no mask) is straight-line code.

// Raw q.k -> scores in the log2 domain (scale, softcap, ALiBi). With softcap, fp (when given)
// receives d score / d (scale q.k) = 1 - tanh^2.
template <int MT, int NT>
__device__ __forceinline__ void scores_log2(float (&s)[MT][NT][4], float (*fp)[NT][4],
                                            const KParams& p, float slope, int row_base,
                                            int col_base, int off, int lane) {
  if (p.softcap <= 0.f && !p.alibi) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mt][nt][e] *= p.scale_log2;
    return;
  }
  if (p.softcap > 0.f) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float t = tanh_abs_accurate(s[mt][nt][e] * (p.scale * p.inv_softcap));
          s[mt][nt][e] = p.softcap * t;
          if (fp) fp[mt][nt][e] = 1.f - t * t;
        }
  } else {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mt][nt][e] *= p.scale;
  }
  if (p.alibi) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int i = row_base + mt * 16 + (e >> 1) * 8;
          const int j = col_base + nt * 8 + (lane & 3) * 2 + (e & 1);
          s[mt][nt][e] -= slope * fabsf(float(i + off - j));
        }
  }
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[mt][nt][e] *= kLog2e;
}

// Sets scores of keys the query cannot see (and, when check_rows, rows >= nq) to -inf.
template <int MT, int NT>
__device__ __forceinline__ void mask_scores(float (&s)[MT][NT][4], const KParams& p, int row_base,
                                            int col_base, int off, int nq, int nk, bool check_rows,
                                            int lane) {
  const int wl = p.wl < 0 ? (1 << 30) : p.wl;
  const int wr = p.wr < 0 ? (1 << 30) : p.wr;
  const int qlim = check_rows ? nq : (1 << 30);
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = row_base + mt * 16 + (e >> 1) * 8;
        const int j = col_base + nt * 8 + (lane & 3) * 2 + (e & 1);
        const int d = j - i - off;
        const bool vis = (d >= -wl) & (d <= wr) & (j < nk) & (i < qlim);
        s[mt][nt][e] = vis ? s[mt][nt][e] : neg_inf();
      }
}

__device__ __forceinline__ float alibi_slope(const KParams& p, int b, int h) {
  return p.alibi ? p.alibi[int64_t(b) * p.alibi_sb + int64_t(h) * p.alibi_sh] : 0.f;
}

// ---- epilogues through shared memory ------------------------------------------------------------
// An f32 tile [rows][D] with pitch D + 8 floats (two conflict-free wavefronts per fragment store).

// C fragments of a warp's (MT*16) x (NT*8) tile, times `scale`, into the f32 tile at
// (row_off, col_off).
template <int D, int MT, int NT>
__device__ __forceinline__ void frag_to_smem(float* so, const float (&acc)[MT][NT][4], int row_off,
                                             int col_off, float scale, int lane) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int row = row_off + mt * 16 + (lane >> 2) + r * 8;
        const int col = col_off + nt * 8 + (lane & 3) * 2;
        *reinterpret_cast<float2*>(so + row * (D + 8) + col) =
            make_float2(acc[mt][nt][2 * r] * scale, acc[mt][nt][2 * r + 1] * scale);
      }
}

// Rows [0, rows_valid) x columns [0, dlim) of the f32 tile -> rows row0 + r of head h of `o`.
template <int ROWS, int D, int THREADS>
__device__ __forceinline__ void smem_to_global(const float* so, int rows_valid, const TView& o,
                                               bool flat, int b, int64_t row0, int h, int dlim,
                                               int tid) {
  constexpr int C4 = D / 4;
  for (int c = tid; c < ROWS * C4; c += THREADS) {
    const int r = c / C4, col = (c % C4) * 4;
    if (r >= rows_valid || col >= dlim) continue;
    const float4 v = *reinterpret_cast<const float4*>(so + r * (D + 8) + col);
    store_quad(o, view_row(o, flat, b, row0 + r, h), col, dlim, v);
  }
}

// 16-bit variant for outputs whose dtype is the compute dtype T: tile [rows][D + 8] of T.
template <typename T, int D, int MT, int NT>
__device__ __forceinline__ void frag_to_smem16(uint32_t so, const float (&acc)[MT][NT][4],
                                               int row_off, int col_off, float scale, int lane) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int row = row_off + mt * 16 + (lane >> 2) + r * 8;
        const int col = col_off + nt * 8 + (lane & 3) * 2;
        const uint32_t v = Elem<T>::pack(acc[mt][nt][2 * r] * scale, acc[mt][nt][2 * r + 1] * scale);
        asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(so + uint32_t((row * (D + 8) + col) * 2)),
                     "r"(v)
                     : "memory");
      }
}

// Rows [0, rows_valid) x columns [0, dlim) of a 16-bit tile -> rows row0 + r of head h of `o`
// (whose dtype is the tile's): 16-byte stores where `vec` bit 2 allows.
template <int ROWS, int D, int THREADS>
__device__ __forceinline__ void smem16_to_global(uint32_t so, int rows_valid, const TView& o,
                                                 bool flat, int b, int64_t row0, int h, int dlim,
                                                 int tid) {
  constexpr int CPR = D / 8;
  for (int c = tid; c < ROWS * CPR; c += THREADS) {
    const int r = c / CPR, col = (c % CPR) * 8;
    if (r >= rows_valid || col >= dlim) continue;
    uint4 v;
    asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "r"(so + uint32_t((r * (D + 8) + col) * 2))
                 : "memory");
    uint16_t* dst = static_cast<uint16_t*>(o.ptr) + view_row(o, flat, b, row0 + r, h);
    if ((o.vec & 4) && col + 7 < dlim) {
      *reinterpret_cast<uint4*>(dst + col) = v;
    } else {
      const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int e = 0; e < 8; ++e)
        if (col + e < dlim) dst[int64_t(col + e) * o.sd] = uint16_t(w[e / 2] >> (16 * (e & 1)));
    }
  }
}

}  // namespace cuda
}  // namespace umfa
