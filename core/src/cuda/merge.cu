// umfa_attention_merge on CUDA (kernels.h: launch_merge). One warp per (row, head): the lanes
// read the two LSEs, derive the same weights, and stream the head_dim columns of out and
// part_out. Memory-bound and O(rows * head_dim); any dtypes and strides (the API layer has
// validated the views).
#include "../backend.h"
#include "common.cuh"
#include "kernels.h"

namespace umfa {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = kThreads / 32;

// The views of a MergeProblem, by value for the kernel.
struct MergeArgs {
  void* out;
  const void* part_out;
  float* lse;
  const float* part_lse;
  int out_dtype, part_dtype;
  int64_t seqlen, heads, head_dim;
  int64_t rows_heads;  // batch * seqlen * heads
  int64_t os[4], ps[4];  // out, part_out strides [B, N, H, D]
  int64_t ls[3], pls[3];  // lse, part_lse strides [B, H, N]
};

__global__ void __launch_bounds__(kThreads) merge_kernel(const MergeArgs a) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * kWarpsPerBlock;
  for (int64_t w = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; w < a.rows_heads;
       w += warps) {
    const int64_t h = w % a.heads, bn = w / a.heads;
    const int64_t n = bn % a.seqlen, b = bn / a.seqlen;
    float* lse = a.lse + b * a.ls[0] + h * a.ls[1] + n * a.ls[2];
    const float l = *lse;
    const float lp = a.part_lse[b * a.pls[0] + h * a.pls[1] + n * a.pls[2]];
    __syncwarp();  // every lane has read the old LSE before lane 0 replaces it

    // As the CPU backend: m = max, e = the other side's weight relative to m (0 for -inf); a
    // NaN on either side reaches m or e, and from there every result.
    const bool out_is_max = l > lp;
    const float m = out_is_max ? l : lp;
    float w_out = 0.f, w_part = 0.f, merged = neg_inf();
    if (m != neg_inf()) {
      const float e = expf((out_is_max ? lp : l) - m);
      const float w_max = 1.f / (1.f + e), w_other = e * w_max;
      w_out = out_is_max ? w_max : w_other;
      w_part = out_is_max ? w_other : w_max;
      merged = m + log1pf(e);
    }
    const int64_t ob = b * a.os[0] + n * a.os[1] + h * a.os[2];
    const int64_t pb = b * a.ps[0] + n * a.ps[1] + h * a.ps[2];
    for (int64_t c = lane; c < a.head_dim; c += 32) {
      // A side of weight 0 is never read: its out may hold anything (even NaN).
      float v = 0.f;
      if (w_out != 0.f) v = w_out * load_f(a.out, a.out_dtype, ob + c * a.os[3]);
      if (w_part != 0.f) v += w_part * load_f(a.part_out, a.part_dtype, pb + c * a.ps[3]);
      store_f(a.out, a.out_dtype, ob + c * a.os[3], v);
    }
    if (lane == 0) *lse = merged;
  }
}

}  // namespace

cudaError_t launch_merge(const MergeProblem& p, cudaStream_t st) {
  MergeArgs a;
  a.out = p.out.data;
  a.part_out = p.part_out.data;
  a.lse = static_cast<float*>(p.lse.data);
  a.part_lse = static_cast<const float*>(p.part_lse.data);
  a.out_dtype = p.out.dtype;
  a.part_dtype = p.part_out.dtype;
  a.seqlen = p.seqlen;
  a.heads = p.heads;
  a.head_dim = p.head_dim;
  a.rows_heads = p.batch * p.seqlen * p.heads;
  for (int d = 0; d < 4; ++d) {
    a.os[d] = p.out.strides[d];
    a.ps[d] = p.part_out.strides[d];
  }
  for (int d = 0; d < 3; ++d) {
    a.ls[d] = p.lse.strides[d];
    a.pls[d] = p.part_lse.strides[d];
  }
  if (a.rows_heads == 0) return cudaSuccess;
  const int64_t blocks = (a.rows_heads + kWarpsPerBlock - 1) / kWarpsPerBlock;
  merge_kernel<<<int(blocks < (1 << 20) ? blocks : (1 << 20)), kThreads, 0, st>>>(a);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace umfa
