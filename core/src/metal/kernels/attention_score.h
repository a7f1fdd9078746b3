// attention_score.h — the pieces umfa's forward and backward Metal kernels share: their function
// constants, the simdgroup_matrix lane layout, the score transform with every masking rule, and
// stores in the output dtype. Included by the .metal kernels after umfa_msl.h and
// attention_params.h (the host concatenates the same files in that order for Metal).
#ifndef UMFA_ATTENTION_SCORE_H
#define UMFA_ATTENTION_SCORE_H

UMFA_FUNCTION_CONSTANT(int, fc_mask_mode, UMFA_FC_MASK_MODE)
UMFA_FUNCTION_CONSTANT(bool, fc_has_window, UMFA_FC_HAS_WINDOW)
UMFA_FUNCTION_CONSTANT(bool, fc_has_softcap, UMFA_FC_HAS_SOFTCAP)
UMFA_FUNCTION_CONSTANT(bool, fc_has_alibi, UMFA_FC_HAS_ALIBI)
UMFA_FUNCTION_CONSTANT(int, fc_mask_kind, UMFA_FC_MASK_KIND)
UMFA_FUNCTION_CONSTANT(int, fc_mask_dtype, UMFA_FC_MASK_DTYPE)
UMFA_FUNCTION_CONSTANT(int, fc_out_dtype, UMFA_FC_OUT_DTYPE)
UMFA_FUNCTION_CONSTANT(bool, fc_varlen, UMFA_FC_VARLEN)
UMFA_FUNCTION_CONSTANT(bool, fc_has_lse, UMFA_FC_HAS_LSE)

// Where the lane's two elements of an 8x8 simdgroup_matrix sit: row, and the first of two
// adjacent columns (the layout Metal FlashAttention documents).
inline ushort2 umfa_lane_coord(ushort lane) {
  const ushort quad = lane / 4;
  return ushort2(ushort((quad & 2) * 2 + (lane % 2) * 2), ushort((quad & 4) + (lane / 2) % 4));
}

// The score of query i against key j of one (batch, head), or -inf when the key is not visible.
// Order as the ABI defines it: scale, softcap, ALiBi, then the additive mask; the built-in rules
// (causal, window) and a boolean mask decide visibility; an additive -inf also masks.
// dcap receives d(score)/d(scaled qk): 1 - tanh^2 with a softcap, else 1 (for the backward pass).
inline float umfa_attention_score(float qk, int i, int j, int nq, int nk, int b, int h,
                                  constant UmfaAttentionParams& p, device const uchar* mask,
                                  device const float* alibi, thread float& dcap) {
  dcap = 1.0f;
  if (i >= nq || j >= nk) return -INFINITY;
  const int offset = fc_mask_mode == 1 ? 0 : nk - nq;
  if (fc_mask_mode == 1 && j > i) return -INFINITY;
  if (fc_mask_mode == 2 && j > i + nk - nq) return -INFINITY;
  if (fc_has_window) {
    const int d = j - (i + offset);
    if (p.window_left >= 0 && d < -p.window_left) return -INFINITY;
    if (p.window_right >= 0 && d > p.window_right) return -INFINITY;
  }
  float s = qk * p.scale;
  if (fc_has_softcap) {
    const float t = precise::tanh(s / p.softcap);
    s = p.softcap * t;
    dcap = 1.0f - t * t;
  }
  if (fc_has_alibi) {
    const float slope = alibi[long(b) * p.alibi_stride[0] + long(h) * p.alibi_stride[1]];
    s -= slope * float(abs(i + offset - j));
  }
  if (fc_mask_kind != 0) {
    const long m = long(b) * p.mask_stride[0] + long(h) * p.mask_stride[1] +
                   long(i) * p.mask_stride[2] + long(j) * p.mask_stride[3];
    if (fc_mask_kind == 1) {
      if (mask[m] == 0) return -INFINITY;
    } else if (fc_mask_dtype == 0) {
      s += umfa_load((device const float*)mask, m);
    } else if (fc_mask_dtype == 1) {
      s += umfa_load((device const half*)mask, m);
    } else {
      s += umfa_load((device const bfloat*)mask, m);
    }
  }
  return s;
}

inline void umfa_store_out(device uchar* out, long index, float value) {
  if (fc_out_dtype == 0) umfa_store((device float*)out, index, value);
  else if (fc_out_dtype == 1) umfa_store((device half*)out, index, value);
  else umfa_store((device bfloat*)out, index, value);
}


#endif
