// The generic (exact fp32, SIMT) attention kernels and the helper kernels of the CUDA backend.
//
// The generic kernels run every case the tensor-core kernels do not: f32 inputs (computed in
// f32 end to end, so f32 results match the float64 reference to f32 tolerances), mask and bias
// tensors, any head_dim, any strides. One warp handles one query row (forward, dQ) or one key
// row (dK/dV); lanes split the head dimension (up to 8 columns each). The backward is
// deterministic by construction (no atomics).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common.cuh"
#include "kernels.h"

namespace umfa {
namespace cuda {
namespace {

constexpr int kMaxPerLane = 8;  // 8 * 32 = 256 = UMFA_MAX_HEAD_DIM

__device__ __forceinline__ void load_row(float (&r)[kMaxPerLane], const TView& t, int64_t row,
                                         int d, int lane) {
#pragma unroll
  for (int u = 0; u < kMaxPerLane; ++u) {
    const int c = lane + 32 * u;
    r[u] = c < d ? load_f(t.ptr, t.dtype, row + int64_t(c) * t.sd) : 0.f;
  }
}

__device__ __forceinline__ float dot_row(const float (&a)[kMaxPerLane], const TView& t, int64_t row,
                                         int d, int lane) {
  float acc = 0.f;
#pragma unroll
  for (int u = 0; u < kMaxPerLane; ++u) {
    const int c = lane + 32 * u;
    if (c < d) acc = fmaf(a[u], load_f(t.ptr, t.dtype, row + int64_t(c) * t.sd), acc);
  }
  return warp_sum(acc);
}

__device__ __forceinline__ void axpy_row(float (&acc)[kMaxPerLane], float s, const TView& t,
                                         int64_t row, int d, int lane) {
#pragma unroll
  for (int u = 0; u < kMaxPerLane; ++u) {
    const int c = lane + 32 * u;
    if (c < d) acc[u] = fmaf(s, load_f(t.ptr, t.dtype, row + int64_t(c) * t.sd), acc[u]);
  }
}

__device__ __forceinline__ void store_row(const TView& t, int64_t row, const float (&v)[kMaxPerLane],
                                          float s, int d, int lane) {
#pragma unroll
  for (int u = 0; u < kMaxPerLane; ++u) {
    const int c = lane + 32 * u;
    if (c < d) store_f(t.ptr, t.dtype, row + int64_t(c) * t.sd, v[u] * s);
  }
}

// Applies the mask/bias tensor to score x. Returns false when the key is masked out.
__device__ __forceinline__ bool apply_mask(const KParams& p, int b, int h, int i, int j, float& x) {
  if (!p.mask) return true;
  const int64_t k = int64_t(b) * p.mask_sb + int64_t(h) * p.mask_sh + int64_t(i) * p.mask_sq +
                    int64_t(j) * p.mask_sk;
  if (p.mask_dtype == UMFA_DTYPE_BOOL) return static_cast<const uint8_t*>(p.mask)[k] != 0;
  x += load_f(p.mask, p.mask_dtype, k);
  return true;
}

__global__ void __launch_bounds__(128) generic_fwd_kernel(const __grid_constant__ KParams p) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int qblocks = (p.nq + 3) / 4;
  int idx = blockIdx.x;
  const int i = (idx % qblocks) * 4 + warp;
  idx /= qblocks;
  const int h = idx % p.hq;
  const int b = idx / p.hq;
  const SeqInfo s = seq_info(p, b);
  if (i >= s.nq) return;
  const int hk = h / p.group;
  const bool varlen = p.cu_q != nullptr;
  const float slope = alibi_slope(p, b, h);

  float q[kMaxPerLane];
  load_row(q, p.q, view_row(p.q, varlen, b, s.q_row0 + i, h), p.d, lane);
  const int j_lo = p.wl < 0 ? 0 : max(0, i + s.off - p.wl);
  const int j_hi = p.wr < 0 ? s.nk : min(s.nk, i + s.off + p.wr + 1);

  float m = neg_inf(), l = 0.f;
  float acc[kMaxPerLane] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  for (int j = j_lo; j < j_hi; ++j) {
    const float qk = dot_row(q, p.k, view_row(p.k, varlen, b, s.k_row0 + j, hk), p.d, lane);
    float x = transform_score(qk, p, slope, i, j, s.off, nullptr, true);
    if (!apply_mask(p, b, h, i, j, x) || x == neg_inf()) continue;
    const float m_new = fmaxf(m, x);
    const float corr = expf(m - m_new);
    const float pj = expf(x - m_new);
    l = l * corr + pj;
#pragma unroll
    for (int u = 0; u < kMaxPerLane; ++u) acc[u] *= corr;
    axpy_row(acc, pj, p.v, view_row(p.v, varlen, b, s.k_row0 + j, hk), p.d, lane);
    m = m_new;
  }
  const float inv = l > 0.f ? 1.f / l : 0.f;
  store_row(p.o, view_row(p.o, varlen, b, s.q_row0 + i, h), acc, inv, p.d, lane);
  if (p.lse && lane == 0)
    p.lse[(varlen ? 0 : int64_t(b) * p.lse_sb) + int64_t(h) * p.lse_sh +
          int64_t(s.q_row0 + i) * p.lse_ss] = l > 0.f ? m + logf(l) : neg_inf();
}

// dQ for one query row per warp.
__global__ void __launch_bounds__(128) generic_bwd_dq_kernel(const __grid_constant__ KParams p) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int qblocks = (p.nq + 3) / 4;
  int idx = blockIdx.x;
  const int i = (idx % qblocks) * 4 + warp;
  idx /= qblocks;
  const int h = idx % p.hq;
  const int b = idx / p.hq;
  const SeqInfo s = seq_info(p, b);
  if (i >= s.nq) return;
  const int hk = h / p.group;
  const bool varlen = p.cu_q != nullptr;
  const float slope = alibi_slope(p, b, h);

  float q[kMaxPerLane], dout[kMaxPerLane];
  load_row(q, p.q, view_row(p.q, varlen, b, s.q_row0 + i, h), p.d, lane);
  load_row(dout, p.dout, view_row(p.dout, varlen, b, s.q_row0 + i, h), p.d, lane);
  const int64_t si = int64_t(h) * p.rows_pad + s.q_glob + i;
  const float lse2 = p.lse2[si], dlt = p.delta[si];
  const int j_lo = p.wl < 0 ? 0 : max(0, i + s.off - p.wl);
  const int j_hi = p.wr < 0 ? s.nk : min(s.nk, i + s.off + p.wr + 1);

  float acc[kMaxPerLane] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  for (int j = j_lo; j < j_hi; ++j) {
    const int64_t krow = view_row(p.k, varlen, b, s.k_row0 + j, hk);
    const float qk = dot_row(q, p.k, krow, p.d, lane);
    float fp;
    float x = transform_score(qk, p, slope, i, j, s.off, &fp, true);
    if (!apply_mask(p, b, h, i, j, x) || x == neg_inf()) continue;
    const float pr = exp2f(x * kLog2e - lse2);
    const float dp = dot_row(dout, p.v, view_row(p.v, varlen, b, s.k_row0 + j, hk), p.d, lane);
    const float ds = pr * (dp - dlt) * fp;
    axpy_row(acc, ds, p.k, krow, p.d, lane);
  }
  store_row(p.dq, view_row(p.dq, varlen, b, s.q_row0 + i, h), acc, p.scale, p.d, lane);
}

// dK, dV for one key row (of one kv head) per warp, summed over the heads of its group.
__global__ void __launch_bounds__(128) generic_bwd_dkdv_kernel(const __grid_constant__ KParams p) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int kblocks = (p.nk + 3) / 4;
  int idx = blockIdx.x;
  const int j = (idx % kblocks) * 4 + warp;
  idx /= kblocks;
  const int hk = idx % p.hkv;
  const int b = idx / p.hkv;
  const SeqInfo s = seq_info(p, b);
  if (j >= s.nk) return;
  const bool varlen = p.cu_q != nullptr;

  float kr[kMaxPerLane], vr[kMaxPerLane];
  load_row(kr, p.k, view_row(p.k, varlen, b, s.k_row0 + j, hk), p.d, lane);
  load_row(vr, p.v, view_row(p.v, varlen, b, s.k_row0 + j, hk), p.d, lane);
  const int i_lo = p.wr < 0 ? 0 : max(0, j - s.off - p.wr);
  const int i_hi = p.wl < 0 ? s.nq : min(s.nq, j - s.off + p.wl + 1);

  float dk[kMaxPerLane] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  float dv[kMaxPerLane] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  for (int g = 0; g < p.group; ++g) {
    const int h = hk * p.group + g;
    const float slope = alibi_slope(p, b, h);
    for (int i = i_lo; i < i_hi; ++i) {
      const int64_t qrow = view_row(p.q, varlen, b, s.q_row0 + i, h);
      const float qk = dot_row(kr, p.q, qrow, p.d, lane);
      float fp;
      float x = transform_score(qk, p, slope, i, j, s.off, &fp, true);
      if (!apply_mask(p, b, h, i, j, x) || x == neg_inf()) continue;
      const int64_t si = int64_t(h) * p.rows_pad + s.q_glob + i;
      const float pr = exp2f(x * kLog2e - p.lse2[si]);
      const int64_t orow = view_row(p.dout, varlen, b, s.q_row0 + i, h);
      const float dp = dot_row(vr, p.dout, orow, p.d, lane);
      const float ds = pr * (dp - p.delta[si]) * fp;
      axpy_row(dv, pr, p.dout, orow, p.d, lane);
      axpy_row(dk, ds, p.q, qrow, p.d, lane);
    }
  }
  store_row(p.dk, view_row(p.dk, varlen, b, s.k_row0 + j, hk), dk, p.scale, p.d, lane);
  store_row(p.dv, view_row(p.dv, varlen, b, s.k_row0 + j, hk), dv, 1.f, p.d, lane);
}

// Flat query row r -> (b, i) for dense problems; varlen rows are their own index (b unused).
__device__ __forceinline__ void split_row(const KParams& p, int64_t r, int& b, int64_t& i) {
  if (p.cu_q) {
    b = 0;
    i = r;
  } else {
    b = int(r / p.nq);
    i = r % p.nq;
  }
}

__global__ void __launch_bounds__(256) preprocess_kernel(const __grid_constant__ KParams p) {
  const int lane = threadIdx.x & 31;
  const int64_t w = int64_t(blockIdx.x) * 8 + (threadIdx.x >> 5);
  const int h = int(w % p.hq);
  const int64_t r = w / p.hq;
  if (r >= p.rows_q) return;
  int b;
  int64_t i;
  split_row(p, r, b, i);
  const bool varlen = p.cu_q != nullptr;
  const int64_t orow = view_row(p.o, varlen, b, i, h);
  const int64_t drow = view_row(p.dout, varlen, b, i, h);
  float acc = 0.f;
  for (int c = lane; c < p.d; c += 32)
    acc = fmaf(load_f(p.o.ptr, p.o.dtype, orow + int64_t(c) * p.o.sd),
               load_f(p.dout.ptr, p.dout.dtype, drow + int64_t(c) * p.dout.sd), acc);
  acc = warp_sum(acc);
  if (lane == 0) {
    const float lse =
        p.lse[(varlen ? 0 : int64_t(b) * p.lse_sb) + int64_t(h) * p.lse_sh + i * p.lse_ss];
    const int64_t k = int64_t(h) * p.rows_pad + r;
    p.delta[k] = acc;
    p.lse2[k] = lse == neg_inf() ? pos_inf() : lse * kLog2e;
  }
}

// Unpacks 8 16-bit values (a uint4) of dtype F16 or BF16 into floats.
__device__ __forceinline__ void unpack8(const uint4& u, int dtype, float (&f)[8]) {
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    float2 v;
    if (dtype == UMFA_DTYPE_F16)
      v = __half22float2(*reinterpret_cast<const __half2*>(&w[k]));
    else
      v = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&w[k]));
    f[2 * k] = v.x;
    f[2 * k + 1] = v.y;
  }
}

// Vectorized preprocess for 16-bit O/dO with contiguous, 16-byte-aligned rows: a group of G lanes
// per (row, head), 8 columns per lane; also zeroes the row's dQ accumulator when there is one.
template <int G>
__global__ void __launch_bounds__(256) preprocess_vec_kernel(const __grid_constant__ KParams p) {
  const int gl = threadIdx.x % G;
  const int64_t pair = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / G;
  const bool valid = pair < p.rows_q * p.hq;
  float acc = 0.f;
  int h = 0, b = 0;
  int64_t r = 0, i = 0;
  if (valid) {
    h = int(pair % p.hq);
    r = pair / p.hq;
    split_row(p, r, b, i);
    const bool varlen = p.cu_q != nullptr;
    const int c = gl * 8;
    if (c < p.d) {
      const uint4 uo = *reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(p.o.ptr) +
                                                       view_row(p.o, varlen, b, i, h) + c);
      const uint4 ud = *reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(p.dout.ptr) +
                                                       view_row(p.dout, varlen, b, i, h) + c);
      float fo[8], fd[8];
      unpack8(uo, p.o.dtype, fo);
      unpack8(ud, p.dout.dtype, fd);
#pragma unroll
      for (int k = 0; k < 8; ++k) acc = fmaf(fo[k], fd[k], acc);
    }
    if (p.dq_acc) {
      float4* z = reinterpret_cast<float4*>(p.dq_acc + pair * p.dq_pitch);
      for (int k = gl; k < p.dq_pitch / 4; k += G) z[k] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
  }
#pragma unroll
  for (int o = G / 2; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
  if (valid && gl == 0) {
    const bool varlen = p.cu_q != nullptr;
    const float lse =
        p.lse[(varlen ? 0 : int64_t(b) * p.lse_sb) + int64_t(h) * p.lse_sh + i * p.lse_ss];
    const int64_t k = int64_t(h) * p.rows_pad + r;
    p.delta[k] = acc;
    p.lse2[k] = lse == neg_inf() ? pos_inf() : lse * kLog2e;
  }
}

// Vectorized dQ conversion for 16-bit outputs with contiguous, 16-byte-aligned rows.
__global__ void __launch_bounds__(256) dq_convert_vec_kernel(const __grid_constant__ KParams p) {
  const int c8 = p.d / 8;
  const int64_t total = p.rows_q * p.hq * c8;
  const bool varlen = p.cu_q != nullptr;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(e % c8) * 8;
    const int64_t rh = e / c8;
    const int h = int(rh % p.hq);
    const int64_t r = rh / p.hq;
    int b;
    int64_t i;
    split_row(p, r, b, i);
    const float4* src = reinterpret_cast<const float4*>(p.dq_acc + rh * p.dq_pitch + c);
    const float4 a = src[0], bb = src[1];
    const float v[8] = {a.x, a.y, a.z, a.w, bb.x, bb.y, bb.z, bb.w};
    uint32_t w[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if (p.dq.dtype == UMFA_DTYPE_F16) {
        __half2 hv = __floats2half2_rn(v[2 * k] * p.scale, v[2 * k + 1] * p.scale);
        w[k] = *reinterpret_cast<uint32_t*>(&hv);
      } else {
        __nv_bfloat162 hv = __floats2bfloat162_rn(v[2 * k] * p.scale, v[2 * k + 1] * p.scale);
        w[k] = *reinterpret_cast<uint32_t*>(&hv);
      }
    }
    *reinterpret_cast<uint4*>(static_cast<uint16_t*>(p.dq.ptr) + view_row(p.dq, varlen, b, i, h) +
                              c) = make_uint4(w[0], w[1], w[2], w[3]);
  }
}

__global__ void __launch_bounds__(256) dq_convert_kernel(const __grid_constant__ KParams p) {
  const int pairs = (p.d + 1) / 2;
  const int64_t total = p.rows_q * p.hq * pairs;
  const bool varlen = p.cu_q != nullptr;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(e % pairs) * 2;
    const int64_t rh = e / pairs;
    const int h = int(rh % p.hq);
    const int64_t r = rh / p.hq;
    int b;
    int64_t i;
    split_row(p, r, b, i);
    const float* src = p.dq_acc + rh * p.dq_pitch + c;
    const float2 v = *reinterpret_cast<const float2*>(src);
    store_pair(p.dq, view_row(p.dq, varlen, b, i, h), c, p.d, v.x * p.scale, v.y * p.scale);
  }
}

__global__ void __launch_bounds__(256) combine_kernel(const __grid_constant__ KParams p) {
  const int lane = threadIdx.x & 31;
  const int64_t w = int64_t(blockIdx.x) * 8 + (threadIdx.x >> 5);
  const int h = int(w % p.hq);
  const int64_t r = w / p.hq;
  if (r >= p.rows_q) return;
  int b;
  int64_t i;
  split_row(p, r, b, i);
  const bool varlen = p.cu_q != nullptr;
  const int64_t split_stride = int64_t(p.hq) * p.rows_q;
  const int64_t base = int64_t(h) * p.rows_q + r;
  float mx = neg_inf();
  for (int sp = 0; sp < p.num_splits; ++sp) mx = fmaxf(mx, p.lseacc[sp * split_stride + base]);
  float lse = neg_inf();
  if (mx != neg_inf()) {
    float sum = 0.f;
    for (int sp = 0; sp < p.num_splits; ++sp) sum += expf(p.lseacc[sp * split_stride + base] - mx);
    lse = mx + logf(sum);
  }
  const int64_t orow = view_row(p.o, varlen, b, i, h);
  for (int c = lane; c < p.d; c += 32) {
    float acc = 0.f;
    if (lse != neg_inf())
      for (int sp = 0; sp < p.num_splits; ++sp) {
        const float l = p.lseacc[sp * split_stride + base];
        if (l != neg_inf())
          acc += expf(l - lse) * p.oacc[(sp * split_stride + base) * p.d + c];
      }
    store_f(p.o.ptr, p.o.dtype, orow + int64_t(c) * p.o.sd, acc);
  }
  if (p.lse && lane == 0)
    p.lse[(varlen ? 0 : int64_t(b) * p.lse_sb) + int64_t(h) * p.lse_sh + i * p.lse_ss] = lse;
}

template <typename T>
__global__ void __launch_bounds__(256) stage_kernel(const TView src, bool varlen, int64_t rows,
                                                    int n, int heads, int d, int dp, T* dst) {
  const int64_t total = rows * heads * dp;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(e % dp);
    const int64_t rh = e / dp;
    const int h = int(rh % heads);
    const int64_t r = rh / heads;
    float v = 0.f;
    if (c < d) {
      const int64_t row = varlen ? view_row(src, true, 0, r, h)
                                 : view_row(src, false, int(r / n), r % n, h);
      v = load_f(src.ptr, src.dtype, row + int64_t(c) * src.sd);
    }
    dst[e] = T(v);
  }
}

__global__ void __launch_bounds__(256) varlen_tail_kernel(const TView t, const int* cu, int batch,
                                                          int64_t total, int heads, int d,
                                                          float* lse, int64_t lse_sh,
                                                          int64_t lse_ss) {
  // Clamped to [0, total]: the offsets are not validated (see seq_info).
  const int64_t first = min(max(int64_t(cu[batch]), int64_t(0)), total);
  const int64_t n = (total - first) * heads * d;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(e % d);
    const int64_t rh = e / d;
    const int h = int(rh % heads);
    const int64_t r = first + rh / heads;
    store_f(t.ptr, t.dtype, view_row(t, true, 0, r, h) + int64_t(c) * t.sd, 0.f);
    if (lse && c == 0) lse[int64_t(h) * lse_sh + r * lse_ss] = neg_inf();
  }
}

int grid_for(int64_t items, int per_block) {
  const int64_t g = (items + per_block - 1) / per_block;
  return int(g < 1 ? 1 : (g > (1 << 30) ? (1 << 30) : g));
}

}  // namespace

cudaError_t launch_generic_forward(const KParams& p, cudaStream_t st) {
  const int64_t blocks = int64_t((p.nq + 3) / 4) * p.hq * p.batch;
  if (blocks == 0) return cudaSuccess;
  if (blocks > 0x7fffffff) return cudaErrorInvalidConfiguration;
  generic_fwd_kernel<<<unsigned(blocks), 128, 0, st>>>(p);
  return cudaGetLastError();
}

cudaError_t launch_generic_backward(const KParams& p, cudaStream_t st) {
  const int64_t qb = int64_t((p.nq + 3) / 4) * p.hq * p.batch;
  const int64_t kb = int64_t((p.nk + 3) / 4) * p.hkv * p.batch;
  if (qb > 0x7fffffff || kb > 0x7fffffff) return cudaErrorInvalidConfiguration;
  if (qb > 0) generic_bwd_dq_kernel<<<unsigned(qb), 128, 0, st>>>(p);
  if (kb > 0) generic_bwd_dkdv_kernel<<<unsigned(kb), 128, 0, st>>>(p);
  return cudaGetLastError();
}

static bool is16(int dtype) { return dtype == UMFA_DTYPE_F16 || dtype == UMFA_DTYPE_BF16; }

cudaError_t launch_bwd_preprocess(const KParams& p, cudaStream_t st, bool* zeroed_dq) {
  *zeroed_dq = false;
  const int64_t warps = p.rows_q * p.hq;
  if (warps == 0) return cudaSuccess;
  if (is16(p.o.dtype) && is16(p.dout.dtype) && (p.o.vec & 4) && (p.dout.vec & 4) && p.d % 8 == 0 &&
      (!p.dq_acc || p.dq_pitch % 4 == 0)) {
    const int g = p.d <= 64 ? 8 : (p.d <= 128 ? 16 : 32);
    const int64_t threads = warps * g;
    if ((threads + 255) / 256 > 0x7fffffff) return cudaErrorInvalidConfiguration;
    const unsigned blocks = unsigned((threads + 255) / 256);
    if (g == 8)
      preprocess_vec_kernel<8><<<blocks, 256, 0, st>>>(p);
    else if (g == 16)
      preprocess_vec_kernel<16><<<blocks, 256, 0, st>>>(p);
    else
      preprocess_vec_kernel<32><<<blocks, 256, 0, st>>>(p);
    *zeroed_dq = p.dq_acc != nullptr;
    return cudaGetLastError();
  }
  if ((warps + 7) / 8 > 0x7fffffff) return cudaErrorInvalidConfiguration;
  preprocess_kernel<<<unsigned((warps + 7) / 8), 256, 0, st>>>(p);
  return cudaGetLastError();
}

cudaError_t launch_dq_convert(const KParams& p, cudaStream_t st) {
  const int64_t items = p.rows_q * p.hq * ((p.d + 1) / 2);
  if (items == 0) return cudaSuccess;
  if (is16(p.dq.dtype) && (p.dq.vec & 4) && p.d % 8 == 0 && p.dq_pitch % 4 == 0) {
    dq_convert_vec_kernel<<<grid_for(p.rows_q * p.hq * (p.d / 8), 256), 256, 0, st>>>(p);
    return cudaGetLastError();
  }
  dq_convert_kernel<<<grid_for(items, 256), 256, 0, st>>>(p);
  return cudaGetLastError();
}

cudaError_t launch_combine(const KParams& p, cudaStream_t st) {
  const int64_t warps = p.rows_q * p.hq;
  if (warps == 0) return cudaSuccess;
  if ((warps + 7) / 8 > 0x7fffffff) return cudaErrorInvalidConfiguration;
  combine_kernel<<<unsigned((warps + 7) / 8), 256, 0, st>>>(p);
  return cudaGetLastError();
}

cudaError_t launch_stage(const TView& src, bool varlen, int64_t rows, int n, int heads, int d,
                         int dp, void* dst, int dst_dtype, cudaStream_t st) {
  const int64_t items = rows * heads * dp;
  if (items == 0) return cudaSuccess;
  if (dst_dtype == UMFA_DTYPE_F16)
    stage_kernel<__half><<<grid_for(items, 256), 256, 0, st>>>(src, varlen, rows, n, heads, d, dp,
                                                               static_cast<__half*>(dst));
  else
    stage_kernel<__nv_bfloat16><<<grid_for(items, 256), 256, 0, st>>>(
        src, varlen, rows, n, heads, d, dp, static_cast<__nv_bfloat16*>(dst));
  return cudaGetLastError();
}

cudaError_t launch_varlen_tail(const TView& t, const int* cu, int batch, int64_t total, int heads,
                               int d, float* lse, int64_t lse_sh, int64_t lse_ss,
                               cudaStream_t st) {
  if (total == 0 || heads == 0 || d == 0) return cudaSuccess;
  varlen_tail_kernel<<<64, 256, 0, st>>>(t, cu, batch, total, heads, d, lse, lse_sh, lse_ss);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace umfa
