// The contract between the API layer (core/src/api) and the compute backends (core/src/cpu,
// core/src/cuda). The API layer validates every argument once and hands a backend a fully
// resolved, normalized problem: every tensor as a 4-D strided view, defaults applied, masks
// reduced to a few integers. A backend never re-validates and never sees a umfa_tensor.
//
// This header is C++17 but uses only plain structs, so libumfa_cuda (built by nvcc, loaded with
// dlopen) can share it; the function table at the bottom is what libumfa_cuda exports.
#pragma once

#include <cstddef>
#include <cstdint>

#include "umfa.h"

namespace umfa {

// A strided view after validation. Unused trailing dimensions have extent 1, stride 0.
struct View {
  void* data = nullptr;
  int32_t dtype = UMFA_DTYPE_F32;  // UMFA_DTYPE_*
  int64_t shape[4] = {1, 1, 1, 1};
  int64_t strides[4] = {0, 0, 0, 0};  // in elements
  bool present() const { return data != nullptr; }
};

// Everything a forward or backward call needs, resolved.
//
// Dense problems: q/out/dout/dq are [B, Nq, Hq, D]; k/v/dk/dv are [B, Nk, Hkv, D];
// lse is [B, Hq, Nq] (stored in a View whose shape is {B, Hq, Nq, 1}).
// Varlen problems (cu_seqlens_q != nullptr): the API layer presents the packed THD tensors as
// B = 1 4-D views [1, total, H, D]; lse as {1, Hq, total_q, 1}; the backend iterates over the
// `batch` sequences using cu_seqlens_q/k (host pointers on the CPU, device pointers on CUDA),
// and uses batch index b for ALiBi.
struct Problem {
  int64_t batch = 0;     // number of sequences (== B for dense, == len(cu_seqlens)-1 for varlen)
  int64_t heads_q = 0;   // Hq
  int64_t heads_kv = 0;  // Hkv; Hq % Hkv == 0
  int64_t seqlen_q = 0;  // Nq (dense) or max_seqlen_q (varlen)
  int64_t seqlen_k = 0;  // Nk (dense) or max_seqlen_k (varlen)
  int64_t head_dim = 0;  // D, 1..256, equal for q, k, v

  View q, k, v, out, lse;         // forward inputs/outputs; lse.data may be null in forward
  View dout, dq, dk, dv;          // backward only

  const int32_t* cu_seqlens_q = nullptr;  // varlen: batch + 1 entries; nullptr for dense
  const int32_t* cu_seqlens_k = nullptr;

  float scale = 0.f;    // resolved (never 0 unless the caller asked for 0 explicitly: not allowed)
  float softcap = 0.f;  // 0 = off

  // Visibility of key j to query i within one sequence of lengths (nq, nk):
  //   d = j - i - diag_offset,  diag_offset = bottom_right ? nk - nq : 0
  //   visible iff (left < 0 || d >= -left) && (right < 0 || d <= right)
  // Causal masks are folded in here (right = 0 or less); no mask means left = right = -1.
  bool bottom_right = true;
  int64_t window_left = -1;
  int64_t window_right = -1;

  // Optional [B, Hq, Nq, Nk]-broadcast mask/bias view (strides 0 where broadcast).
  // dtype BOOL: nonzero = visible. Float dtypes: added to the score. Never set with varlen.
  View mask;
  // Optional ALiBi slopes, f32, as a view of shape {B, Hq, 1, 1} (stride 0 where broadcast).
  // Bias added to the score: -slope * |i + diag_offset - j|.
  View alibi;

  uint32_t flags = 0;  // UMFA_FLAG_*
  void* stream = nullptr;  // CUDA stream, or nullptr
};

// Everything a merge call (umfa_attention_merge) needs, resolved. out/part_out are
// [B, N, H, D] views; lse/part_lse are [B, H, N] views stored with shape {B, H, N, 1}. Varlen
// results ([total, H, D] and [H, total]) come as B = 1 views, like Problem's.
struct MergeProblem {
  int64_t batch = 0;
  int64_t seqlen = 0;
  int64_t heads = 0;
  int64_t head_dim = 0;  // 1..256
  View out, lse;            // read and written in place
  View part_out, part_lse;  // read
  void* stream = nullptr;   // CUDA stream, or nullptr
};

// Sinks for messages: a backend reports an error by returning a status and, optionally, a
// message written into `message` (NUL-terminated, truncated to `capacity`).
struct ErrorSink {
  char* message = nullptr;
  size_t capacity = 0;
};

// Backend function table. The CPU backend provides one statically; libumfa_cuda exports
// `umfa_cuda_backend_v1()` returning one. `impl` is backend-owned per-context state.
struct BackendTable {
  uint32_t struct_size;
  const char* name;  // "cpu", "cuda", "metal"
  // Create per-context state. device_index and num_threads come from umfa_context_options.
  umfa_status (*create)(int32_t device_index, int32_t num_threads, void** out_impl, ErrorSink* err);
  void (*destroy)(void* impl);
  // Bytes of scratch a call would allocate (for the workspace limit); 0 if none.
  uint64_t (*forward_workspace)(void* impl, const Problem* p);
  uint64_t (*backward_workspace)(void* impl, const Problem* p);
  umfa_status (*forward)(void* impl, const Problem* p, ErrorSink* err);
  umfa_status (*backward)(void* impl, const Problem* p, ErrorSink* err);
  // Buffers on the backend's device (CPU backend: aligned host memory). alloc returns
  // zero-filled memory (umfa_buffer_create promises zeros).
  umfa_status (*alloc)(void* impl, uint64_t bytes, void** out_ptr, ErrorSink* err);
  void (*free)(void* impl, void* ptr);
  umfa_status (*copy_to_device)(void* impl, void* dst, const void* src, uint64_t bytes, ErrorSink* err);
  umfa_status (*copy_to_host)(void* impl, void* dst, const void* src, uint64_t bytes, ErrorSink* err);
  // Number of devices this backend sees (CPU: 1).
  int32_t (*device_count)(void);

  // Entries below were appended after the first release: a libumfa_cuda built before them
  // has a smaller struct_size, so read them only through the helpers after the struct.

  // umfa_attention_merge: out/lse accumulate part_out/part_lse in place; needs no workspace.
  umfa_status (*merge)(void* impl, const MergeProblem* p, ErrorSink* err);
};

// struct_size of the first release's table (everything up to device_count): the least a
// loaded libumfa_cuda must provide.
constexpr uint32_t kBackendTableMinSize = offsetof(BackendTable, merge);

// The table's merge entry, or nullptr when the backend predates it.
inline auto backend_merge(const BackendTable* t) -> decltype(t->merge) {
  return t->struct_size >= offsetof(BackendTable, merge) + sizeof(t->merge) ? t->merge : nullptr;
}

}  // namespace umfa

// Exported by libumfa_cuda.so (C linkage so dlsym finds it by name).
extern "C" {
typedef const umfa::BackendTable* (*umfa_cuda_backend_v1_fn)(void);
}

// Exported by libumfa_metal (core/src/metal/host/umfa_metal_backend.cpp). Its `create` compiles
// the kernels (BACKEND_UNAVAILABLE with the Metal compiler's log when they are rejected); its
// memory is host memory (unified), so contexts on it use UMFA_DEVICE_CPU tensors.
extern "C" {
typedef const umfa::BackendTable* (*umfa_metal_backend_v1_fn)(void);
}
