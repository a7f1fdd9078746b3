// attention_params.h — the argument block of umfa's Metal attention kernels ([[buffer(5)]]),
// shared verbatim by the MSL kernels and the host (C++ / Objective-C), so its layout is the same
// on both sides: 64-bit fields first, then 32-bit ones, no padding. `long` is 64 bits in MSL and
// on every host the backend targets (LP64); the host asserts it.
#ifndef UMFA_ATTENTION_PARAMS_H
#define UMFA_ATTENTION_PARAMS_H

// Function-constant indices ([[function_constant(n)]]); each pipeline is specialized by these.
#define UMFA_FC_MASK_MODE 0   // int: 0 none, 1 causal top-left, 2 causal bottom-right
#define UMFA_FC_HAS_WINDOW 1  // bool
#define UMFA_FC_HAS_SOFTCAP 2 // bool
#define UMFA_FC_HAS_ALIBI 3   // bool
#define UMFA_FC_MASK_KIND 4   // int: 0 none, 1 boolean (uchar, nonzero = visible), 2 additive
#define UMFA_FC_MASK_DTYPE 5  // int (additive masks): 0 f32, 1 f16, 2 bf16
#define UMFA_FC_OUT_DTYPE 6   // int: 0 f32, 1 f16, 2 bf16
#define UMFA_FC_VARLEN 7      // bool: sequences delimited by cu_seqlens_q / cu_seqlens_k
#define UMFA_FC_HAS_LSE 8     // bool

#define UMFA_METAL_MAX_HEAD_DIM 256
#define UMFA_METAL_BLOCK_Q 8   // query rows per threadgroup (one simdgroup)
#define UMFA_METAL_BLOCK_K 8   // keys per threadgroup-memory K/V block

struct UmfaAttentionParams {
  // Element strides, logical [batch, token, head, dim]; varlen: batch stride 0, tokens counted
  // from the start of the packed tensor.
  long q_stride[4];
  long k_stride[4];
  long v_stride[4];
  long o_stride[4];
  long lse_stride[3];    // [batch, head, query] (varlen: batch stride 0, query = packed token)
  long mask_stride[4];   // [batch, head, query, key], 0 along broadcast dimensions
  long alibi_stride[2];  // [batch, head], 0 along broadcast dimensions
  long do_stride[4];     // backward: dout, dq, dk, dv (as q/k/v)
  long dq_stride[4];
  long dk_stride[4];
  long dv_stride[4];
  int batch;
  int seqlen_q;  // dense: every sequence; varlen: unused
  int seqlen_k;
  int heads_q;
  int heads_kv;
  int head_dim;
  int window_left;   // < 0: unbounded
  int window_right;  // < 0: unbounded
  float scale;
  float softcap;     // > 0 when UMFA_FC_HAS_SOFTCAP
};

#endif
