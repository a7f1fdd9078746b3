// attention_forward.metal — umfa's forward attention kernel for Apple GPUs.
//
// One threadgroup = one simdgroup (32 threads) = UMFA_METAL_BLOCK_Q (8) query rows of one head
// of one sequence. Grid: (ceil(max query length / 8), heads_q, batch).
//  1. The 8 x D query block is converted to float into threadgroup memory (zero-padded to a
//     multiple of 8 columns).
//  2. The key range the built-in rules leave visible to these rows (causal limits, window) is
//     computed once; blocks of 8 keys outside it are never loaded.
//  3. Per key block: K and V rows go to threadgroup memory as float; S = Q K^T is accumulated on
//     simdgroup_matrix 8x8 tiles (K^T by a transposed simdgroup_load); each lane transforms its
//     two elements of S (scale, softcap, ALiBi, masks — see umfa_attention_score) and the online
//     softmax updates the row maximum and sum (row reductions by simd_shuffle_xor over the four
//     lanes that share a row); O is rescaled and O += P V on 8x8 tiles.
//  4. O / sum is written in the output dtype; LSE = max + log(sum) in float. A row with no
//     visible key writes zeros and LSE = -inf.
// Everything accumulates in float whatever the input dtype.
#include "umfa_msl.h"
#include "attention_params.h"

using namespace metal;

#include "attention_score.h"

template <typename T>
void umfa_attention_forward(device const T* q, device const T* k, device const T* v,
                            device uchar* out, device float* lse, constant UmfaAttentionParams& p,
                            device const uchar* mask, device const float* alibi,
                            device const int* cu_q, device const int* cu_k,
                            threadgroup float* tg, uint3 group, ushort lane) {
  constexpr int BQ = UMFA_METAL_BLOCK_Q, BK = UMFA_METAL_BLOCK_K;
  constexpr int MAX_TILES = UMFA_METAL_MAX_HEAD_DIM / 8;
  const int D = p.head_dim;
  const int Dp = (D + 7) / 8 * 8;
  const int tiles = Dp / 8;
  const int b = int(group.z), h = int(group.y), q0 = int(group.x) * BQ;

  int q_first = 0, k_first = 0, nq = p.seqlen_q, nk = p.seqlen_k;
  if (fc_varlen) {
    q_first = cu_q[b];
    nq = cu_q[b + 1] - q_first;
    k_first = cu_k[b];
    nk = cu_k[b + 1] - k_first;
  }
  if (q0 >= nq) return;  // the whole threadgroup leaves together
  const int hk = h / (p.heads_q / p.heads_kv);

  device const T* qh = q + long(b) * p.q_stride[0] + long(q_first) * p.q_stride[1] + long(h) * p.q_stride[2];
  device const T* kh = k + long(b) * p.k_stride[0] + long(k_first) * p.k_stride[1] + long(hk) * p.k_stride[2];
  device const T* vh = v + long(b) * p.v_stride[0] + long(k_first) * p.v_stride[1] + long(hk) * p.v_stride[2];

  threadgroup float* q_tg = tg;
  threadgroup float* k_tg = tg + BQ * Dp;
  threadgroup float* v_tg = tg + (BQ + BK) * Dp;

  // 1. Query block.
  for (int e = lane; e < BQ * Dp; e += 32) {
    const int r = e / Dp, d = e % Dp;
    q_tg[e] = (q0 + r < nq && d < D) ? umfa_load(qh, long(q0 + r) * p.q_stride[1] + long(d) * p.q_stride[3]) : 0.0f;
  }

  // 2. Keys any of these rows may see.
  const int offset = fc_mask_mode == 1 ? 0 : nk - nq;
  const int i_last = min(q0 + BQ - 1, nq - 1);
  int j_begin = 0, j_end = nk;
  if (fc_mask_mode == 1) j_end = min(j_end, i_last + 1);
  if (fc_mask_mode == 2) j_end = min(j_end, i_last + nk - nq + 1);
  if (fc_has_window) {
    if (p.window_right >= 0) j_end = min(j_end, i_last + offset + p.window_right + 1);
    if (p.window_left >= 0) j_begin = max(j_begin, q0 + offset - p.window_left);
  }

  const ushort2 rc = umfa_lane_coord(lane);
  const int row = rc.y, col = rc.x;
  const int i = q0 + row;
  float m = -INFINITY, l = 0.0f;
  simdgroup_float8x8 o[MAX_TILES];
  for (int t = 0; t < tiles; ++t) o[t] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);

  for (int j0 = j_begin; j0 < j_end; j0 += BK) {
    // 3. K/V block (the barrier first: the previous block, or the query block, is complete).
    threadgroup_barrier(mem_flags::mem_threadgroup);
    for (int e = lane; e < BK * Dp; e += 32) {
      const int r = e / Dp, d = e % Dp;
      const bool in = j0 + r < j_end && d < D;
      k_tg[e] = in ? umfa_load(kh, long(j0 + r) * p.k_stride[1] + long(d) * p.k_stride[3]) : 0.0f;
      v_tg[e] = in ? umfa_load(vh, long(j0 + r) * p.v_stride[1] + long(d) * p.v_stride[3]) : 0.0f;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);

    simdgroup_float8x8 s = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
    for (int t = 0; t < tiles; ++t) {
      simdgroup_float8x8 qa, kt;
      simdgroup_load(qa, q_tg + t * 8, ulong(Dp));
      simdgroup_load(kt, k_tg + t * 8, ulong(Dp), ulong2(0, 0), true);
      simdgroup_multiply_accumulate(s, qa, kt, s);
    }

    float sv[2];
    for (int e = 0; e < 2; ++e) {
      const int j = j0 + col + e;
      float unused_dcap;
      sv[e] = j < j_end ? umfa_attention_score(s.thread_elements()[e], i, j, nq, nk, b, h, p, mask, alibi, unused_dcap)
                        : -INFINITY;
    }
    float block_max = max(sv[0], sv[1]);
    block_max = max(block_max, simd_shuffle_xor(block_max, ushort(1)));
    block_max = max(block_max, simd_shuffle_xor(block_max, ushort(8)));
    const float m_new = max(m, block_max);
    const float alpha = m_new == -INFINITY ? 1.0f : exp(m - m_new);
    const float p0 = sv[0] == -INFINITY ? 0.0f : exp(sv[0] - m_new);
    const float p1 = sv[1] == -INFINITY ? 0.0f : exp(sv[1] - m_new);
    float row_sum = p0 + p1;
    row_sum += simd_shuffle_xor(row_sum, ushort(1));
    row_sum += simd_shuffle_xor(row_sum, ushort(8));
    l = l * alpha + row_sum;
    m = m_new;

    simdgroup_float8x8 pm;
    pm.thread_elements() = float2(p0, p1);
    for (int t = 0; t < tiles; ++t) {
      o[t].thread_elements() = o[t].thread_elements() * alpha;
      simdgroup_float8x8 vt;
      simdgroup_load(vt, v_tg + t * 8, ulong(Dp));
      simdgroup_multiply_accumulate(o[t], pm, vt, o[t]);
    }
  }

  // 4. Epilogue.
  if (i >= nq) return;
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  const long o_row = long(b) * p.o_stride[0] + long(q_first + i) * p.o_stride[1] + long(h) * p.o_stride[2];
  for (int t = 0; t < tiles; ++t)
    for (int e = 0; e < 2; ++e) {
      const int d = t * 8 + col + e;
      if (d < D) umfa_store_out(out, o_row + long(d) * p.o_stride[3], o[t].thread_elements()[e] * inv);
    }
  if (fc_has_lse && col == 0)
    lse[long(b) * p.lse_stride[0] + long(h) * p.lse_stride[1] + long(q_first + i) * p.lse_stride[2]] =
        l > 0.0f ? m + log(l) : -INFINITY;
}


// Threadgroup memory: (BLOCK_Q + 2 * BLOCK_K) * round_up(head_dim, 8) floats; 32 threads.
kernel void umfa_attention_forward_f32(device const float* q UMFA_BUFFER(0), device const float* k UMFA_BUFFER(1),
                                       device const float* v UMFA_BUFFER(2), device uchar* out UMFA_BUFFER(3),
                                       device float* lse UMFA_BUFFER(4),
                                       constant UmfaAttentionParams& p UMFA_BUFFER(5),
                                       device const uchar* mask UMFA_BUFFER(6),
                                       device const float* alibi UMFA_BUFFER(7),
                                       device const int* cu_q UMFA_BUFFER(8), device const int* cu_k UMFA_BUFFER(9),
                                       threadgroup float* tg UMFA_THREADGROUP(0),
                                       uint3 group UMFA_THREADGROUP_POSITION_IN_GRID,
                                       ushort lane UMFA_THREAD_INDEX_IN_SIMDGROUP) {
  umfa_attention_forward<float>(q, k, v, out, lse, p, mask, alibi, cu_q, cu_k, tg, group, lane);
}
kernel void umfa_attention_forward_f16(device const half* q UMFA_BUFFER(0), device const half* k UMFA_BUFFER(1),
                                       device const half* v UMFA_BUFFER(2), device uchar* out UMFA_BUFFER(3),
                                       device float* lse UMFA_BUFFER(4),
                                       constant UmfaAttentionParams& p UMFA_BUFFER(5),
                                       device const uchar* mask UMFA_BUFFER(6),
                                       device const float* alibi UMFA_BUFFER(7),
                                       device const int* cu_q UMFA_BUFFER(8), device const int* cu_k UMFA_BUFFER(9),
                                       threadgroup float* tg UMFA_THREADGROUP(0),
                                       uint3 group UMFA_THREADGROUP_POSITION_IN_GRID,
                                       ushort lane UMFA_THREAD_INDEX_IN_SIMDGROUP) {
  umfa_attention_forward<half>(q, k, v, out, lse, p, mask, alibi, cu_q, cu_k, tg, group, lane);
}
kernel void umfa_attention_forward_bf16(device const bfloat* q UMFA_BUFFER(0), device const bfloat* k UMFA_BUFFER(1),
                                        device const bfloat* v UMFA_BUFFER(2), device uchar* out UMFA_BUFFER(3),
                                        device float* lse UMFA_BUFFER(4),
                                        constant UmfaAttentionParams& p UMFA_BUFFER(5),
                                        device const uchar* mask UMFA_BUFFER(6),
                                        device const float* alibi UMFA_BUFFER(7),
                                        device const int* cu_q UMFA_BUFFER(8), device const int* cu_k UMFA_BUFFER(9),
                                        threadgroup float* tg UMFA_THREADGROUP(0),
                                        uint3 group UMFA_THREADGROUP_POSITION_IN_GRID,
                                        ushort lane UMFA_THREAD_INDEX_IN_SIMDGROUP) {
  umfa_attention_forward<bfloat>(q, k, v, out, lse, p, mask, alibi, cu_q, cu_k, tg, group, lane);
}
