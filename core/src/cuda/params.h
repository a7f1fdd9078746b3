// Kernel parameters of the CUDA backend: one plain struct, filled on the host from a
// umfa::Problem and passed by value (as a __grid_constant__) to every kernel.
#pragma once

#include <cstdint>

#include "umfa.h"

namespace umfa {
namespace cuda {

// A [B, N, H, D] (dense) or [1, total, H, D] (varlen) tensor: element (b, row, h, d) lives at
// ptr + b*sb + row*ss + h*sh + d*sd (sb ignored for varlen). For the fast kernels' inputs, sd == 1
// and every row is 16-byte aligned.
struct TView {
  void* ptr = nullptr;
  int64_t sb = 0, ss = 0, sh = 0, sd = 1;
  int32_t dtype = UMFA_DTYPE_F32;
  // Outputs: bit 0 = a column pair (2 elements) may be written with one store, bit 1 = four
  // columns may, bit 2 = 16 bytes may (sd == 1 and the pointer and strides aligned for it).
  int32_t vec = 0;
};

struct KParams {
  int batch = 0, hq = 0, hkv = 0, group = 1;
  int nq = 0, nk = 0;           // dense lengths, or the varlen maxima
  int d = 0;                    // head_dim as given
  int64_t rows_q = 0;           // rows of the flat query index: batch * nq, or total_q (varlen)
  int64_t rows_k = 0;           // rows of k/v: batch * nk, or total_k (varlen)
  const int* cu_q = nullptr;    // varlen offsets (device), or null
  const int* cu_k = nullptr;
  TView q, k, v, o, dout, dq, dk, dv;
  float* lse = nullptr;  // [B, Hq, Nq] or [Hq, total] view, may be null
  int64_t lse_sb = 0, lse_sh = 0, lse_ss = 0;

  float scale = 1.f;       // softmax scale
  float scale_log2 = 1.f;  // scale * log2(e)
  float softcap = 0.f, inv_softcap = 0.f;
  int wl = -1, wr = -1;    // window (causal folded in); -1 = unbounded
  int bottom_right = 1;
  const float* alibi = nullptr;
  int64_t alibi_sb = 0, alibi_sh = 0;

  // Mask / bias (generic kernels only): element (b, h, i, j) at mask + b*sb + h*sh + i*sq + j*sk.
  const void* mask = nullptr;
  int mask_dtype = UMFA_DTYPE_BOOL;
  int64_t mask_sb = 0, mask_sh = 0, mask_sq = 0, mask_sk = 0;

  // Split-KV forward: partial outputs [splits][Hq][rows_q][d] and LSEs [splits][Hq][rows_q].
  int num_splits = 1;
  float* oacc = nullptr;
  float* lseacc = nullptr;

  // Backward scratch, per query head and flat row: LSE * log2(e) (+inf where the row saw no key)
  // and Delta = rowsum(dO * O), both [Hq][rows_pad]; dQ accumulator [rows_q][Hq][dq_pitch].
  float* lse2 = nullptr;
  float* delta = nullptr;
  int64_t rows_pad = 0;
  float* dq_acc = nullptr;
  int dq_pitch = 0;
  int dq_atomic = 1;  // backward main kernel: accumulate dQ with atomics (else a dQ kernel runs)
  int dbuf = 1;       // backward main kernel: double-buffer Q/dO tiles (needs more shared memory)
};

}  // namespace cuda
}  // namespace umfa
