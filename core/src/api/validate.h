// Validation of forward/backward arguments and their resolution into a umfa::Problem.
// Every check of the public attention entry points lives here, so that every backend (and
// every binding) sees the same rules.
#pragma once

#include <vector>

#include "api/internal.h"

namespace umfa {
namespace api {

struct Resolved {
  Problem p;
  bool varlen = false;
  // Nothing to compute (batch, heads_q, seqlen_q or seqlen_k is 0; for varlen the longest
  // sequences). The outputs that exist still need writing: out = 0 and lse = -inf for every row
  // (each is fully masked or outside every sequence), zero gradients in backward.
  bool empty = false;
  // Varlen: host copies of cu_seqlens (the Problem points at them on the CPU) and the packed
  // row counts, for writing rows that belong to no sequence.
  std::vector<int32_t> cu_q, cu_k;
  int64_t total_q = 0, total_k = 0;
  // Bytes the API layer allocated for this call (the host copies of cu_seqlens): they count
  // against the context's workspace limit together with the backend's workspace.
  uint64_t host_bytes = 0;
};

umfa_status resolve_forward(umfa_context* ctx, const umfa_attention_options* options,
                            const umfa_tensor* q, const umfa_tensor* k, const umfa_tensor* v,
                            const umfa_tensor* out, const umfa_tensor* lse, Resolved* r);

umfa_status resolve_backward(umfa_context* ctx, const umfa_attention_options* options,
                             const umfa_tensor* q, const umfa_tensor* k, const umfa_tensor* v,
                             const umfa_tensor* out, const umfa_tensor* dout,
                             const umfa_tensor* lse, const umfa_tensor* dq,
                             const umfa_tensor* dk, const umfa_tensor* dv, Resolved* r);

const char* dtype_name(int32_t dtype);

// Dtype sets for check_tensor: bit (1 << UMFA_DTYPE_*) of each dtype allowed.
constexpr uint32_t kFloatDtypes =
    (1u << UMFA_DTYPE_F32) | (1u << UMFA_DTYPE_F16) | (1u << UMFA_DTYPE_BF16);
constexpr uint32_t kF32Dtype = 1u << UMFA_DTYPE_F32;

// Checks one tensor on its own, exactly as the attention calls check each of theirs: rank,
// dtype (one of `dtypes`), device, extents, strides, checked sizes and offsets, data pointer,
// alignment and, for outputs, self-overlap. Failures are recorded with the message
// "<fn>: <name>...". For entry points other than forward/backward (umfa_attention_merge).
umfa_status check_tensor(umfa_context* ctx, const char* fn, const char* name,
                         const umfa_tensor* t, int32_t rank, uint32_t dtypes, bool output,
                         const char* layout);

}  // namespace api
}  // namespace umfa
