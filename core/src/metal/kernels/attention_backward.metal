// attention_backward.metal — umfa's backward attention kernels for Apple GPUs. Three dispatches,
// none with atomics, so gradients are deterministic:
//  1. umfa_attention_backward_delta_*: Delta_i = sum_d dO_id * O_id per query row (one thread per
//     row), into a float scratch buffer laid out like LSE.
//  2. umfa_attention_backward_dq_*: one simdgroup per 8 query rows (as the forward): for each
//     visible block of 8 keys, recompute S = Q K^T, P = exp(S - LSE), dP = dO V^T,
//     dS = P (dP - Delta) (times the softcap derivative), and dQ += dS K; dQ *= scale.
//  3. umfa_attention_backward_dkdv_*: one simdgroup per 8 keys of one KV head, looping over every
//     query head of its GQA group and every block of 8 queries: S^T = K Q^T, P^T, dP^T = V dO^T,
//     dS^T, then dV += P^T dO and dK += dS^T Q; dK *= scale. A KV head's gradient sums its whole
//     group inside one threadgroup, so GQA/MQA need no reduction pass.
// All products on simdgroup_matrix 8x8 tiles from threadgroup memory (float), f32 accumulation.
// Buffers: as the forward (0-9), plus 10 dout, 11 delta, 12 dq, 13 dk, 14 dv.
#include "umfa_msl.h"
#include "attention_params.h"

using namespace metal;

#include "attention_score.h"

inline float umfa_load_out(device const uchar* out, long index) {
  if (fc_out_dtype == 0) return umfa_load((device const float*)out, index);
  if (fc_out_dtype == 1) return umfa_load((device const half*)out, index);
  return umfa_load((device const bfloat*)out, index);
}

inline void umfa_sequence(int b, constant UmfaAttentionParams& p, device const int* cu_q,
                          device const int* cu_k, thread int& q_first, thread int& nq,
                          thread int& k_first, thread int& nk) {
  q_first = 0;
  k_first = 0;
  nq = p.seqlen_q;
  nk = p.seqlen_k;
  if (fc_varlen) {
    q_first = cu_q[b];
    nq = cu_q[b + 1] - q_first;
    k_first = cu_k[b];
    nk = cu_k[b + 1] - k_first;
  }
}

// ---------------------------------------------------------------------------------------------
// 1. Delta. Grid: (ceil(max query length / 32), heads_q, batch), 32 threads.
template <typename T>
void umfa_backward_delta(device const uchar* out, device const T* dout, device float* delta,
                         constant UmfaAttentionParams& p, device const int* cu_q,
                         device const int* cu_k, uint3 group, uint tid) {
  int q_first, nq, k_first, nk;
  umfa_sequence(int(group.z), p, cu_q, cu_k, q_first, nq, k_first, nk);
  const int b = int(group.z), h = int(group.y), i = int(group.x) * 32 + int(tid);
  if (i >= nq) return;
  const long o_row = long(b) * p.o_stride[0] + long(q_first + i) * p.o_stride[1] + long(h) * p.o_stride[2];
  const long d_row = long(b) * p.do_stride[0] + long(q_first + i) * p.do_stride[1] + long(h) * p.do_stride[2];
  float acc = 0.0f;
  for (int d = 0; d < p.head_dim; ++d)
    acc = fma(umfa_load(dout, d_row + long(d) * p.do_stride[3]), umfa_load_out(out, o_row + long(d) * p.o_stride[3]), acc);
  delta[long(b) * p.lse_stride[0] + long(h) * p.lse_stride[1] + long(q_first + i) * p.lse_stride[2]] = acc;
}

// Loads rows [first, first + 8) of a [token, dim] slice (strides s1, s3) into threadgroup memory
// as float, zero outside [first, end) and past head_dim.
template <typename T>
inline void umfa_load_block(threadgroup float* dst, device const T* src, long s1, long s3, int first,
                            int end, int D, int Dp, ushort lane) {
  for (int e = lane; e < 8 * Dp; e += 32) {
    const int r = e / Dp, d = e % Dp;
    dst[e] = (first + r < end && d < D) ? umfa_load(src, long(first + r) * s1 + long(d) * s3) : 0.0f;
  }
}

// ---------------------------------------------------------------------------------------------
// 2. dQ. Grid: (ceil(max query length / 8), heads_q, batch), 32 threads; threadgroup memory
//    4 * 8 * round_up(head_dim, 8) floats.
template <typename T>
void umfa_backward_dq(device const T* q, device const T* k, device const T* v, device const float* lse,
                      constant UmfaAttentionParams& p, device const uchar* mask, device const float* alibi,
                      device const int* cu_q, device const int* cu_k, device const T* dout,
                      device const float* delta, device uchar* dq, threadgroup float* tg, uint3 group,
                      ushort lane) {
  constexpr int MAX_TILES = UMFA_METAL_MAX_HEAD_DIM / 8;
  const int D = p.head_dim, Dp = (D + 7) / 8 * 8, tiles = Dp / 8;
  const int b = int(group.z), h = int(group.y), q0 = int(group.x) * 8;
  int q_first, nq, k_first, nk;
  umfa_sequence(b, p, cu_q, cu_k, q_first, nq, k_first, nk);
  if (q0 >= nq) return;
  const int hk = h / (p.heads_q / p.heads_kv);
  device const T* qh = q + long(b) * p.q_stride[0] + long(q_first) * p.q_stride[1] + long(h) * p.q_stride[2];
  device const T* doh = dout + long(b) * p.do_stride[0] + long(q_first) * p.do_stride[1] + long(h) * p.do_stride[2];
  device const T* kh = k + long(b) * p.k_stride[0] + long(k_first) * p.k_stride[1] + long(hk) * p.k_stride[2];
  device const T* vh = v + long(b) * p.v_stride[0] + long(k_first) * p.v_stride[1] + long(hk) * p.v_stride[2];
  threadgroup float* q_tg = tg;
  threadgroup float* do_tg = tg + 8 * Dp;
  threadgroup float* k_tg = tg + 16 * Dp;
  threadgroup float* v_tg = tg + 24 * Dp;
  umfa_load_block(q_tg, qh, p.q_stride[1], p.q_stride[3], q0, nq, D, Dp, lane);
  umfa_load_block(do_tg, doh, p.do_stride[1], p.do_stride[3], q0, nq, D, Dp, lane);

  const int offset = fc_mask_mode == 1 ? 0 : nk - nq;
  const int i_last = min(q0 + 7, nq - 1);
  int j_begin = 0, j_end = nk;
  if (fc_mask_mode == 1) j_end = min(j_end, i_last + 1);
  if (fc_mask_mode == 2) j_end = min(j_end, i_last + nk - nq + 1);
  if (fc_has_window) {
    if (p.window_right >= 0) j_end = min(j_end, i_last + offset + p.window_right + 1);
    if (p.window_left >= 0) j_begin = max(j_begin, q0 + offset - p.window_left);
  }

  const ushort2 rc = umfa_lane_coord(lane);
  const int row = rc.y, col = rc.x, i = q0 + row;
  float row_lse = -INFINITY, row_delta = 0.0f;
  if (i < nq) {
    const long li = long(b) * p.lse_stride[0] + long(h) * p.lse_stride[1] + long(q_first + i) * p.lse_stride[2];
    row_lse = lse[li];
    row_delta = delta[li];
  }
  simdgroup_float8x8 acc[MAX_TILES];
  for (int t = 0; t < tiles; ++t) acc[t] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);

  for (int j0 = j_begin; j0 < j_end; j0 += 8) {
    threadgroup_barrier(mem_flags::mem_threadgroup);
    umfa_load_block(k_tg, kh, p.k_stride[1], p.k_stride[3], j0, j_end, D, Dp, lane);
    umfa_load_block(v_tg, vh, p.v_stride[1], p.v_stride[3], j0, j_end, D, Dp, lane);
    threadgroup_barrier(mem_flags::mem_threadgroup);
    simdgroup_float8x8 s = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
    simdgroup_float8x8 dp = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
    for (int t = 0; t < tiles; ++t) {
      simdgroup_float8x8 a, bt;
      simdgroup_load(a, q_tg + t * 8, ulong(Dp));
      simdgroup_load(bt, k_tg + t * 8, ulong(Dp), ulong2(0, 0), true);
      simdgroup_multiply_accumulate(s, a, bt, s);
      simdgroup_load(a, do_tg + t * 8, ulong(Dp));
      simdgroup_load(bt, v_tg + t * 8, ulong(Dp), ulong2(0, 0), true);
      simdgroup_multiply_accumulate(dp, a, bt, dp);
    }
    float ds[2];
    for (int e = 0; e < 2; ++e) {
      const int j = j0 + col + e;
      float dcap = 1.0f;
      const float sc = j < j_end ? umfa_attention_score(s.thread_elements()[e], i, j, nq, nk, b, h, p, mask, alibi, dcap)
                                 : -INFINITY;
      const float pr = (sc == -INFINITY || row_lse == -INFINITY) ? 0.0f : exp(sc - row_lse);
      ds[e] = pr * (dp.thread_elements()[e] - row_delta) * dcap;
    }
    simdgroup_float8x8 dsm;
    dsm.thread_elements() = float2(ds[0], ds[1]);
    for (int t = 0; t < tiles; ++t) {
      simdgroup_float8x8 kt;
      simdgroup_load(kt, k_tg + t * 8, ulong(Dp));
      simdgroup_multiply_accumulate(acc[t], dsm, kt, acc[t]);
    }
  }
  if (i >= nq) return;
  const long row_base = long(b) * p.dq_stride[0] + long(q_first + i) * p.dq_stride[1] + long(h) * p.dq_stride[2];
  for (int t = 0; t < tiles; ++t)
    for (int e = 0; e < 2; ++e) {
      const int d = t * 8 + col + e;
      if (d < D) umfa_store_out(dq, row_base + long(d) * p.dq_stride[3], acc[t].thread_elements()[e] * p.scale);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. dK and dV. Grid: (ceil(max key length / 8), heads_kv, batch), 32 threads; threadgroup
//    memory 4 * 8 * round_up(head_dim, 8) floats.
template <typename T>
void umfa_backward_dkdv(device const T* q, device const T* k, device const T* v, device const float* lse,
                        constant UmfaAttentionParams& p, device const uchar* mask, device const float* alibi,
                        device const int* cu_q, device const int* cu_k, device const T* dout,
                        device const float* delta, device uchar* dk, device uchar* dv, threadgroup float* tg,
                        uint3 group, ushort lane) {
  constexpr int MAX_TILES = UMFA_METAL_MAX_HEAD_DIM / 8;
  const int D = p.head_dim, Dp = (D + 7) / 8 * 8, tiles = Dp / 8;
  const int b = int(group.z), hk = int(group.y), j0 = int(group.x) * 8;
  int q_first, nq, k_first, nk;
  umfa_sequence(b, p, cu_q, cu_k, q_first, nq, k_first, nk);
  if (j0 >= nk) return;
  const int group_size = p.heads_q / p.heads_kv;
  device const T* kh = k + long(b) * p.k_stride[0] + long(k_first) * p.k_stride[1] + long(hk) * p.k_stride[2];
  device const T* vh = v + long(b) * p.v_stride[0] + long(k_first) * p.v_stride[1] + long(hk) * p.v_stride[2];
  threadgroup float* k_tg = tg;
  threadgroup float* v_tg = tg + 8 * Dp;
  threadgroup float* q_tg = tg + 16 * Dp;
  threadgroup float* do_tg = tg + 24 * Dp;
  umfa_load_block(k_tg, kh, p.k_stride[1], p.k_stride[3], j0, nk, D, Dp, lane);
  umfa_load_block(v_tg, vh, p.v_stride[1], p.v_stride[3], j0, nk, D, Dp, lane);

  // Queries that may see any of these keys (the causal and window limits, solved for i).
  const int offset = fc_mask_mode == 1 ? 0 : nk - nq;
  const int j_last = min(j0 + 7, nk - 1);
  int i_begin = 0, i_end = nq;
  if (fc_mask_mode == 1) i_begin = max(i_begin, j0);
  if (fc_mask_mode == 2) i_begin = max(i_begin, j0 - (nk - nq));
  if (fc_has_window) {
    if (p.window_right >= 0) i_begin = max(i_begin, j0 - offset - p.window_right);
    if (p.window_left >= 0) i_end = min(i_end, j_last - offset + p.window_left + 1);
  }

  const ushort2 rc = umfa_lane_coord(lane);
  const int row = rc.y, col = rc.x, j = j0 + row;
  simdgroup_float8x8 dk_acc[MAX_TILES], dv_acc[MAX_TILES];
  for (int t = 0; t < tiles; ++t) {
    dk_acc[t] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
    dv_acc[t] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  }
  for (int h = hk * group_size; h < (hk + 1) * group_size; ++h) {
    device const T* qh = q + long(b) * p.q_stride[0] + long(q_first) * p.q_stride[1] + long(h) * p.q_stride[2];
    device const T* doh = dout + long(b) * p.do_stride[0] + long(q_first) * p.do_stride[1] + long(h) * p.do_stride[2];
    for (int i0 = i_begin; i0 < i_end; i0 += 8) {
      threadgroup_barrier(mem_flags::mem_threadgroup);
      umfa_load_block(q_tg, qh, p.q_stride[1], p.q_stride[3], i0, i_end, D, Dp, lane);
      umfa_load_block(do_tg, doh, p.do_stride[1], p.do_stride[3], i0, i_end, D, Dp, lane);
      threadgroup_barrier(mem_flags::mem_threadgroup);
      // Transposed scores: rows are keys, columns queries.
      simdgroup_float8x8 st = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
      simdgroup_float8x8 dpt = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
      for (int t = 0; t < tiles; ++t) {
        simdgroup_float8x8 a, bt;
        simdgroup_load(a, k_tg + t * 8, ulong(Dp));
        simdgroup_load(bt, q_tg + t * 8, ulong(Dp), ulong2(0, 0), true);
        simdgroup_multiply_accumulate(st, a, bt, st);
        simdgroup_load(a, v_tg + t * 8, ulong(Dp));
        simdgroup_load(bt, do_tg + t * 8, ulong(Dp), ulong2(0, 0), true);
        simdgroup_multiply_accumulate(dpt, a, bt, dpt);
      }
      float pt[2], dst[2];
      for (int e = 0; e < 2; ++e) {
        const int i = i0 + col + e;
        float dcap = 1.0f, pr = 0.0f, ds = 0.0f;
        if (i < i_end) {
          const float sc = umfa_attention_score(st.thread_elements()[e], i, j, nq, nk, b, h, p, mask, alibi, dcap);
          const long li = long(b) * p.lse_stride[0] + long(h) * p.lse_stride[1] + long(q_first + i) * p.lse_stride[2];
          const float row_lse = lse[li];
          if (sc != -INFINITY && row_lse != -INFINITY) {
            pr = exp(sc - row_lse);
            ds = pr * (dpt.thread_elements()[e] - delta[li]) * dcap;
          }
        }
        pt[e] = pr;
        dst[e] = ds;
      }
      simdgroup_float8x8 ptm, dstm;
      ptm.thread_elements() = float2(pt[0], pt[1]);
      dstm.thread_elements() = float2(dst[0], dst[1]);
      for (int t = 0; t < tiles; ++t) {
        simdgroup_float8x8 x;
        simdgroup_load(x, do_tg + t * 8, ulong(Dp));
        simdgroup_multiply_accumulate(dv_acc[t], ptm, x, dv_acc[t]);
        simdgroup_load(x, q_tg + t * 8, ulong(Dp));
        simdgroup_multiply_accumulate(dk_acc[t], dstm, x, dk_acc[t]);
      }
    }
  }
  if (j >= nk) return;
  const long k_row = long(b) * p.dk_stride[0] + long(k_first + j) * p.dk_stride[1] + long(hk) * p.dk_stride[2];
  const long v_row = long(b) * p.dv_stride[0] + long(k_first + j) * p.dv_stride[1] + long(hk) * p.dv_stride[2];
  for (int t = 0; t < tiles; ++t)
    for (int e = 0; e < 2; ++e) {
      const int d = t * 8 + col + e;
      if (d >= D) continue;
      umfa_store_out(dk, k_row + long(d) * p.dk_stride[3], dk_acc[t].thread_elements()[e] * p.scale);
      umfa_store_out(dv, v_row + long(d) * p.dv_stride[3], dv_acc[t].thread_elements()[e]);
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points, one per input dtype.

kernel void umfa_attention_backward_delta_f32(device const uchar* out UMFA_BUFFER(3),
                                              constant UmfaAttentionParams& p UMFA_BUFFER(5),
                                              device const int* cu_q UMFA_BUFFER(8), device const int* cu_k UMFA_BUFFER(9),
                                              device const float* dout UMFA_BUFFER(10), device float* delta UMFA_BUFFER(11),
                                              uint3 group UMFA_THREADGROUP_POSITION_IN_GRID,
                                              uint tid UMFA_THREAD_INDEX_IN_THREADGROUP) {
  umfa_backward_delta<float>(out, dout, delta, p, cu_q, cu_k, group, tid);
}

kernel void umfa_attention_backward_dq_f32(device const float* q UMFA_BUFFER(0), device const float* k UMFA_BUFFER(1),
                                           device const float* v UMFA_BUFFER(2), device const float* lse UMFA_BUFFER(4),
                                           constant UmfaAttentionParams& p UMFA_BUFFER(5),
                                           device const uchar* mask UMFA_BUFFER(6), device const float* alibi UMFA_BUFFER(7),
                                           device const int* cu_q UMFA_BUFFER(8), device const int* cu_k UMFA_BUFFER(9),
                                           device const float* dout UMFA_BUFFER(10), device const float* delta UMFA_BUFFER(11),
                                           device uchar* dq UMFA_BUFFER(12), threadgroup float* tg UMFA_THREADGROUP(0),
                                           uint3 group UMFA_THREADGROUP_POSITION_IN_GRID,
                                           ushort lane UMFA_THREAD_INDEX_IN_SIMDGROUP) {
  umfa_backward_dq<float>(q, k, v, lse, p, mask, alibi, cu_q, cu_k, dout, delta, dq, tg, group, lane);
}

kernel void umfa_attention_backward_dkdv_f32(device const float* q UMFA_BUFFER(0), device const float* k UMFA_BUFFER(1),
                                             device const float* v UMFA_BUFFER(2), device const float* lse UMFA_BUFFER(4),
                                             constant UmfaAttentionParams& p UMFA_BUFFER(5),
                                             device const uchar* mask UMFA_BUFFER(6), device const float* alibi UMFA_BUFFER(7),
                                             device const int* cu_q UMFA_BUFFER(8), device const int* cu_k UMFA_BUFFER(9),
                                             device const float* dout UMFA_BUFFER(10), device const float* delta UMFA_BUFFER(11),
                                             device uchar* dk UMFA_BUFFER(13), device uchar* dv UMFA_BUFFER(14),
                                             threadgroup float* tg UMFA_THREADGROUP(0),
                                             uint3 group UMFA_THREADGROUP_POSITION_IN_GRID,
                                             ushort lane UMFA_THREAD_INDEX_IN_SIMDGROUP) {
  umfa_backward_dkdv<float>(q, k, v, lse, p, mask, alibi, cu_q, cu_k, dout, delta, dk, dv, tg, group, lane);
}

kernel void umfa_attention_backward_delta_f16(device const uchar* out UMFA_BUFFER(3),
                                              constant UmfaAttentionParams& p UMFA_BUFFER(5),
                                              device const int* cu_q UMFA_BUFFER(8), device const int* cu_k UMFA_BUFFER(9),
                                              device const half* dout UMFA_BUFFER(10), device float* delta UMFA_BUFFER(11),
                                              uint3 group UMFA_THREADGROUP_POSITION_IN_GRID,
                                              uint tid UMFA_THREAD_INDEX_IN_THREADGROUP) {
  umfa_backward_delta<half>(out, dout, delta, p, cu_q, cu_k, group, tid);
}

kernel void umfa_attention_backward_dq_f16(device const half* q UMFA_BUFFER(0), device const half* k UMFA_BUFFER(1),
                                           device const half* v UMFA_BUFFER(2), device const float* lse UMFA_BUFFER(4),
                                           constant UmfaAttentionParams& p UMFA_BUFFER(5),
                                           device const uchar* mask UMFA_BUFFER(6), device const float* alibi UMFA_BUFFER(7),
                                           device const int* cu_q UMFA_BUFFER(8), device const int* cu_k UMFA_BUFFER(9),
                                           device const half* dout UMFA_BUFFER(10), device const float* delta UMFA_BUFFER(11),
                                           device uchar* dq UMFA_BUFFER(12), threadgroup float* tg UMFA_THREADGROUP(0),
                                           uint3 group UMFA_THREADGROUP_POSITION_IN_GRID,
                                           ushort lane UMFA_THREAD_INDEX_IN_SIMDGROUP) {
  umfa_backward_dq<half>(q, k, v, lse, p, mask, alibi, cu_q, cu_k, dout, delta, dq, tg, group, lane);
}

kernel void umfa_attention_backward_dkdv_f16(device const half* q UMFA_BUFFER(0), device const half* k UMFA_BUFFER(1),
                                             device const half* v UMFA_BUFFER(2), device const float* lse UMFA_BUFFER(4),
                                             constant UmfaAttentionParams& p UMFA_BUFFER(5),
                                             device const uchar* mask UMFA_BUFFER(6), device const float* alibi UMFA_BUFFER(7),
                                             device const int* cu_q UMFA_BUFFER(8), device const int* cu_k UMFA_BUFFER(9),
                                             device const half* dout UMFA_BUFFER(10), device const float* delta UMFA_BUFFER(11),
                                             device uchar* dk UMFA_BUFFER(13), device uchar* dv UMFA_BUFFER(14),
                                             threadgroup float* tg UMFA_THREADGROUP(0),
                                             uint3 group UMFA_THREADGROUP_POSITION_IN_GRID,
                                             ushort lane UMFA_THREAD_INDEX_IN_SIMDGROUP) {
  umfa_backward_dkdv<half>(q, k, v, lse, p, mask, alibi, cu_q, cu_k, dout, delta, dk, dv, tg, group, lane);
}

kernel void umfa_attention_backward_delta_bf16(device const uchar* out UMFA_BUFFER(3),
                                              constant UmfaAttentionParams& p UMFA_BUFFER(5),
                                              device const int* cu_q UMFA_BUFFER(8), device const int* cu_k UMFA_BUFFER(9),
                                              device const bfloat* dout UMFA_BUFFER(10), device float* delta UMFA_BUFFER(11),
                                              uint3 group UMFA_THREADGROUP_POSITION_IN_GRID,
                                              uint tid UMFA_THREAD_INDEX_IN_THREADGROUP) {
  umfa_backward_delta<bfloat>(out, dout, delta, p, cu_q, cu_k, group, tid);
}

kernel void umfa_attention_backward_dq_bf16(device const bfloat* q UMFA_BUFFER(0), device const bfloat* k UMFA_BUFFER(1),
                                           device const bfloat* v UMFA_BUFFER(2), device const float* lse UMFA_BUFFER(4),
                                           constant UmfaAttentionParams& p UMFA_BUFFER(5),
                                           device const uchar* mask UMFA_BUFFER(6), device const float* alibi UMFA_BUFFER(7),
                                           device const int* cu_q UMFA_BUFFER(8), device const int* cu_k UMFA_BUFFER(9),
                                           device const bfloat* dout UMFA_BUFFER(10), device const float* delta UMFA_BUFFER(11),
                                           device uchar* dq UMFA_BUFFER(12), threadgroup float* tg UMFA_THREADGROUP(0),
                                           uint3 group UMFA_THREADGROUP_POSITION_IN_GRID,
                                           ushort lane UMFA_THREAD_INDEX_IN_SIMDGROUP) {
  umfa_backward_dq<bfloat>(q, k, v, lse, p, mask, alibi, cu_q, cu_k, dout, delta, dq, tg, group, lane);
}

kernel void umfa_attention_backward_dkdv_bf16(device const bfloat* q UMFA_BUFFER(0), device const bfloat* k UMFA_BUFFER(1),
                                             device const bfloat* v UMFA_BUFFER(2), device const float* lse UMFA_BUFFER(4),
                                             constant UmfaAttentionParams& p UMFA_BUFFER(5),
                                             device const uchar* mask UMFA_BUFFER(6), device const float* alibi UMFA_BUFFER(7),
                                             device const int* cu_q UMFA_BUFFER(8), device const int* cu_k UMFA_BUFFER(9),
                                             device const bfloat* dout UMFA_BUFFER(10), device const float* delta UMFA_BUFFER(11),
                                             device uchar* dk UMFA_BUFFER(13), device uchar* dv UMFA_BUFFER(14),
                                             threadgroup float* tg UMFA_THREADGROUP(0),
                                             uint3 group UMFA_THREADGROUP_POSITION_IN_GRID,
                                             ushort lane UMFA_THREAD_INDEX_IN_SIMDGROUP) {
  umfa_backward_dkdv<bfloat>(q, k, v, lse, p, mask, alibi, cu_q, cu_k, dout, delta, dk, dv, tg, group, lane);
}
