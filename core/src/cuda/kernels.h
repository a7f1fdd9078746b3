// Host-side view of the CUDA kernels: the tensor-core kernels as (function, tile, shared memory)
// records looked up by dtype and head-dim template, and launchers for the generic and helper
// kernels. Everything launches on the given stream and never synchronizes.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "params.h"

namespace umfa {
struct MergeProblem;  // backend.h

namespace cuda {

struct KernelInfo {
  const void* fn = nullptr;  // __global__ function taking one KParams
  // Optional instantiation for plain scores (no softcap, no ALiBi, scale > 0), else null.
  const void* fn_plain = nullptr;
  int bm = 0, bn = 0;        // query / key tile
  int threads = 0;
  int smem = 0;              // dynamic shared memory (bytes)
  int smem_small = 0;        // backward only: single-buffered Q/dO (0 when not applicable)
};

// The record of a kernel with tile config C (C::BM, C::BN, C::kThreads, C::kSmem); fn may be
// null when only a plain-score instantiation exists.
template <class C>
KernelInfo kernel_record(const void* fn, const void* fn_plain = nullptr) {
  KernelInfo k;
  k.fn = fn;
  k.fn_plain = fn_plain;
  k.bm = C::BM;
  k.bn = C::BN;
  k.threads = C::kThreads;
  k.smem = C::kSmem;
  return k;
}

// Head-dim templates: 64, 96, 128, 256. dtype: UMFA_DTYPE_F16 or UMFA_DTYPE_BF16. `variant` 0 is
// the production tile shape; kFwdShortMasked the forward shape for short causal/windowed
// problems; others exist only in builds with UMFA_CUDA_TUNING (see configs.cuh).
constexpr int kFwdShortMasked = 16;
KernelInfo fwd_kernel_info(int dtype, int dt, int variant = 0);
KernelInfo bwd_kernel_info(int dtype, int dt, int variant = 0);
KernelInfo dq_kernel_info(int dtype, int dt, int variant = 0);
// Hopper (sm_90a) forward (no split-KV; head-dim templates 64, 128, 256) and backward (64, 128)
// for plain scores (fn_plain only); empty when the sm_90a kernels are not built. Launch only on
// compute capability 9.0.
// Forward `variant`: 0 = production tile shape; tuning builds also have 1 = 128 keys per tile
// and one block per SM (UMFA_CUDA_SM90_FWD).
KernelInfo fwd_sm90_kernel_info(int dtype, int dt, int variant = 0);
KernelInfo bwd_sm90_kernel_info(int dtype, int dt);
// Forward for small problems and decode (fwd_small_kernel).
KernelInfo small_kernel_info(int dtype, int dt, int variant = 0);
KernelInfo small_kernel_info_f16(int dt, int variant);
KernelInfo small_kernel_info_bf16(int dt, int variant);
KernelInfo fwd_kernel_info_f16(int dt, int variant);
KernelInfo fwd_kernel_info_bf16(int dt, int variant);
KernelInfo bwd_kernel_info_f16(int dt, int variant);
KernelInfo bwd_kernel_info_bf16(int dt, int variant);
KernelInfo dq_kernel_info_f16(int dt, int variant);
KernelInfo dq_kernel_info_bf16(int dt, int variant);

// Generic fp32 kernels (any dtype, any strides, masks/bias, any head_dim <= 256).
cudaError_t launch_generic_forward(const KParams& p, cudaStream_t st);
// Needs p.lse2 / p.delta filled by launch_bwd_preprocess.
cudaError_t launch_generic_backward(const KParams& p, cudaStream_t st);

// Helpers.
// Delta = rowsum(dO * O) and LSE * log2(e) per (head, row) into p.delta / p.lse2. When it can,
// also zeroes p.dq_acc (sets *zeroed_dq).
cudaError_t launch_bwd_preprocess(const KParams& p, cudaStream_t st, bool* zeroed_dq);
// dq = dq_acc * scale, into p.dq.
cudaError_t launch_dq_convert(const KParams& p, cudaStream_t st);
// Merges p.num_splits partial outputs into p.o / p.lse.
cudaError_t launch_combine(const KParams& p, cudaStream_t st);
// Copies a [B, N, H, D] / [1, total, H, D] view of any dtype into a dense [rows, H, dp] buffer of
// dtype `dst_dtype` (F16 or BF16), zero-padding columns >= d.
cudaError_t launch_stage(const TView& src, bool varlen, int64_t rows, int n, int heads, int d,
                         int dp, void* dst, int dst_dtype, cudaStream_t st);
// Varlen: zero rows [cu[batch], total) of `t` (and set lse rows there to -inf when lse != null).
cudaError_t launch_varlen_tail(const TView& t, const int* cu, int batch, int64_t total, int heads,
                               int d, float* lse, int64_t lse_sh, int64_t lse_ss,
                               cudaStream_t st);
// umfa_attention_merge: p.out/p.lse accumulate p.part_out/p.part_lse in place (merge.cu).
cudaError_t launch_merge(const MergeProblem& p, cudaStream_t st);

}  // namespace cuda
}  // namespace umfa
