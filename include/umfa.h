/*
 * umfa.h — the umfa flash-attention C ABI.
 *
 * This is the only public header of libumfa. Every binding (TypeScript, Rust, Python,
 * Objective-C) is written against it, so it is also the reference documentation: each function
 * says what it reads, what it writes, who owns what, and which status codes it may return.
 *
 * Contents
 *   1. Versioning
 *   2. Status codes and error messages
 *   3. Contexts (backend selection, threads)
 *   4. Tensor views (pointer + dtype + device + shape + strides)
 *   5. Attention: options, forward, backward, merging partial results
 *   6. Buffers (memory owned by the library, or wrapped host memory)
 *   7. Classic API: the Universal Metal Flash Attention `mfa_*` entry points
 *
 * ABI rules (stable across every 1.x release)
 *   - C99, fixed-width integer types only; no struct is passed or returned by value.
 *   - Handles are opaque and created/destroyed in pairs; results come back through
 *     out-parameters; every fallible function returns a `umfa_status`.
 *   - Option structs start with `uint32_t struct_size` and only ever grow at the end. A struct
 *     zero-filled except for `struct_size` means "all defaults". A caller compiled against an
 *     older header passes a smaller `struct_size`; the library treats the missing tail as zeros.
 *     A `struct_size` larger than this library knows is rejected with
 *     UMFA_STATUS_STRUCT_VERSION (never silently truncated).
 *   - Bad input never aborts, prints, exits or writes to an output: it returns a status, and the
 *     message for it is readable with umfa_last_error() (and, for attention calls, from the
 *     per-call umfa_attention_options.error_message).
 *   - Stability: everything in sections 1–7 keeps its meaning for the life of ABI version 1.
 *     New status codes, dtypes and option fields may be added; callers must treat an unknown
 *     status as an error.
 */
#ifndef UMFA_H
#define UMFA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The C99 `_Bool` as spelled in C and C++ (used only by the classic API of section 7). */
#ifdef __cplusplus
#  define UMFA_BOOL bool
#else
#  define UMFA_BOOL _Bool
#endif

#if defined(_WIN32)
#  if defined(UMFA_BUILDING_LIBRARY)
#    define UMFA_API __declspec(dllexport)
#  else
#    define UMFA_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) || defined(__clang__)
#  define UMFA_API __attribute__((visibility("default")))
#else
#  define UMFA_API
#endif

/* ============================================================================================
 * 1. Versioning
 * ============================================================================================ */

/** Library version of this header (semantic versioning; all umfa packages move in lockstep). */
#define UMFA_VERSION_MAJOR 0
#define UMFA_VERSION_MINOR 1
#define UMFA_VERSION_PATCH 0
/** "MAJOR.MINOR.PATCH" as a string literal. */
#define UMFA_VERSION_STRING "0.1.0"

/**
 * ABI version. Changes only when a released symbol or struct layout changes incompatibly; the
 * shared library's SONAME is `libumfa.so.<UMFA_ABI_VERSION>`. Bindings compare
 * umfa_abi_version() with the value they were written for and refuse to run on a mismatch.
 */
#define UMFA_ABI_VERSION 1

/**
 * The library's version packed as MAJOR*10000 + MINOR*100 + PATCH (0.1.0 -> 100).
 * Reads nothing, writes nothing, cannot fail.
 */
UMFA_API uint32_t umfa_version(void);

/** The library's version as a static "MAJOR.MINOR.PATCH" string; never NULL, never freed. */
UMFA_API const char* umfa_version_string(void);

/** The ABI version the loaded library implements (compare with UMFA_ABI_VERSION). */
UMFA_API uint32_t umfa_abi_version(void);

/* ============================================================================================
 * 2. Status codes and error messages
 * ============================================================================================ */

/** Every fallible function returns one of these. 0 is success; anything else is an error. */
typedef int32_t umfa_status;

enum {
  UMFA_STATUS_OK = 0,
  /** The context argument was NULL. */
  UMFA_STATUS_NULL_CONTEXT = 1,
  /** A required pointer argument (tensor, data pointer, out-parameter) was NULL. */
  UMFA_STATUS_NULL_POINTER = 2,
  /** An argument's value is out of its allowed range (e.g. negative window, bad enum). */
  UMFA_STATUS_INVALID_ARGUMENT = 3,
  /** A tensor has the wrong rank for its role. */
  UMFA_STATUS_INVALID_RANK = 4,
  /** Tensor shapes disagree with each other (batch, sequence, heads, head_dim, mask, LSE...). */
  UMFA_STATUS_SHAPE_MISMATCH = 5,
  /** The query head count is not a multiple of the key/value head count. */
  UMFA_STATUS_HEADS_NOT_DIVISIBLE = 6,
  /** head_dim is outside 1..UMFA_MAX_HEAD_DIM (or unsupported by the chosen backend). */
  UMFA_STATUS_HEAD_DIM_OUT_OF_RANGE = 7,
  /** A stride is negative, or an output tensor's strides make elements overlap. */
  UMFA_STATUS_INVALID_STRIDE = 8,
  /** A dtype value is unknown, or not allowed for that tensor's role. */
  UMFA_STATUS_UNSUPPORTED_DTYPE = 9,
  /** A tensor lives on a device the context does not run on (e.g. CUDA memory, CPU context). */
  UMFA_STATUS_DEVICE_MISMATCH = 10,
  /** An option struct's struct_size is larger than this library knows (or too small). */
  UMFA_STATUS_STRUCT_VERSION = 11,
  /** A size computation (elements, bytes, offsets) overflows 64 bits or the address space. */
  UMFA_STATUS_SIZE_OVERFLOW = 12,
  /** Memory could not be allocated. */
  UMFA_STATUS_OUT_OF_MEMORY = 13,
  /** The requested backend is not available in this build or on this machine. */
  UMFA_STATUS_BACKEND_UNAVAILABLE = 14,
  /** A valid combination of options that this backend does not implement. */
  UMFA_STATUS_UNSUPPORTED = 15,
  /** The backend failed while running (e.g. a CUDA launch or driver error). */
  UMFA_STATUS_BACKEND_ERROR = 16,
  /** The call needs more scratch memory than the context's workspace limit allows. */
  UMFA_STATUS_WORKSPACE_LIMIT = 17,
  /** cu_seqlens contents are not a valid non-decreasing offset list within the tensors. */
  UMFA_STATUS_INVALID_SEQLENS = 18,
  /** A handle (context or buffer) is not valid for this use (e.g. buffer of another context). */
  UMFA_STATUS_INVALID_HANDLE = 19,
  /** A bug in umfa. Please report it with the message. */
  UMFA_STATUS_INTERNAL = 20
};

/**
 * A static, human-readable name for a status ("UMFA_STATUS_SHAPE_MISMATCH: ..."); unknown
 * values give a generic string. Never NULL; never freed; thread-safe.
 */
UMFA_API const char* umfa_status_string(umfa_status status);

/* ============================================================================================
 * 3. Contexts
 * ============================================================================================ */

/** An execution context: one backend, one device, a thread pool and scratch memory. */
typedef struct umfa_context umfa_context;

/** Backend selection for umfa_context_create. */
enum {
  /**
   * CUDA when libumfa_cuda and a GPU are available; else, on Apple platforms, Metal when
   * libumfa_metal loads, finds a GPU and its kernels compile; otherwise the CPU. AUTO never
   * picks the simulated Metal backend of Linux test builds.
   */
  UMFA_BACKEND_AUTO = 0,
  UMFA_BACKEND_CPU = 1,
  UMFA_BACKEND_CUDA = 2,
  /**
   * Apple GPUs through Metal (libumfa_metal.dylib next to libumfa). Tensors are host pointers
   * (UMFA_DEVICE_CPU: unified memory); page-aligned memory is used by the GPU without a copy,
   * other memory is staged once per call. Elsewhere only reachable for tests and development
   * through the UMFA_METAL_LIB environment variable naming a simulated backend library.
   */
  UMFA_BACKEND_METAL = 3
};

/** Options for umfa_context_create. Zero-filled (with struct_size set) means defaults. */
typedef struct umfa_context_options {
  /** sizeof(umfa_context_options) as the caller knows it. */
  uint32_t struct_size;
  /** UMFA_BACKEND_*; default AUTO. */
  uint32_t backend;
  /** Device index for GPU backends (CUDA ordinal; Metal: 0); ignored by the CPU backend. Default 0. */
  int32_t device_index;
  /**
   * Worker threads for the CPU backend; 0 = one per available core (or the UMFA_NUM_THREADS
   * environment variable when set). 1 runs on the calling thread only.
   */
  int32_t num_threads;
  /**
   * Upper bound in bytes on the memory one attention call may allocate for itself (0 = no
   * limit): the backend's scratch, its per-sequence tables and, on the CPU, the host copies of
   * cu_seqlens. A call that would need more fails with UMFA_STATUS_WORKSPACE_LIMIT before
   * allocating it and before touching any output. The copies of cu_seqlens are refused before
   * their contents are read, so such a call returns WORKSPACE_LIMIT even when the offsets are
   * invalid.
   */
  uint64_t workspace_limit_bytes;
} umfa_context_options;

/**
 * Creates a context.
 * Reads `options` (may be NULL = defaults). Writes `*out_context` on success (left untouched on
 * failure). The caller owns the context and frees it with umfa_context_destroy.
 * Returns OK, NULL_POINTER (out_context NULL), STRUCT_VERSION, INVALID_ARGUMENT,
 * BACKEND_UNAVAILABLE (CUDA or Metal asked for but not usable; for Metal whose kernels the Metal
 * compiler rejected, the message carries the compiler's log), OUT_OF_MEMORY.
 *
 * Thread safety: a context may be used by any number of threads at once. Calls on one context
 * from several threads run concurrently (the CPU backend shares its thread pool between them);
 * creating and destroying must not race with other use of the same context.
 */
UMFA_API umfa_status umfa_context_create(const umfa_context_options* options,
                                         umfa_context** out_context);

/** Destroys a context and everything it owns. NULL is a no-op. Buffers must be destroyed first. */
UMFA_API void umfa_context_destroy(umfa_context* context);

/** Writes the backend actually chosen (UMFA_BACKEND_CPU, _CUDA or _METAL) to `*out`. */
UMFA_API umfa_status umfa_context_backend(const umfa_context* context, uint32_t* out_backend);

/** Writes the number of worker threads the context's CPU backend uses to `*out` (0 on CUDA and Metal). */
UMFA_API umfa_status umfa_context_num_threads(const umfa_context* context, int32_t* out_threads);

/**
 * Returns the message of the most recent failed call made *on this context*, from any thread,
 * or for context == NULL the most recent failure on the *calling thread* (for example a
 * NULL_CONTEXT error). The pointer stays valid until the calling thread's next umfa call; copy it
 * if you need it longer. Returns "" when there has been no failure. Never NULL.
 *
 * Why per context: asynchronous bindings run the call on a worker thread and read the message
 * on another thread, so a purely thread-local message would be lost. When several calls on one
 * context may fail at once, the context keeps only the latest message: attention calls can
 * also return theirs through umfa_attention_options.error_message, which is per call.
 */
UMFA_API const char* umfa_last_error(const umfa_context* context);

/** Bit flags describing what a backend can do (see umfa_backend_available). */
enum {
  UMFA_BACKEND_FLAG_FORWARD = 1u << 0,
  UMFA_BACKEND_FLAG_BACKWARD = 1u << 1
};

/**
 * Reports whether `backend` (UMFA_BACKEND_CPU, _CUDA or _METAL) can run on this machine.
 * Writes 1/0 to `*out_available` and, if `out_device_count` is not NULL, the number of devices.
 * For CUDA (Metal) this loads libumfa_cuda (libumfa_metal) on first use; it never fails when the
 * backend is missing: it reports 0. Metal reports 1 when its library loaded and sees a device
 * (whether its kernels compile is known only when a context is created).
 */
UMFA_API umfa_status umfa_backend_available(uint32_t backend, int32_t* out_available,
                                            int32_t* out_device_count);

/**
 * A static, one-line description of what the library was built with and detected at run time
 * (SIMD level, CUDA and Metal library paths or the reasons they are absent). Never NULL; not freed.
 */
UMFA_API const char* umfa_build_info(void);

/* ============================================================================================
 * 4. Tensor views
 * ============================================================================================ */

/** Element types. */
enum {
  UMFA_DTYPE_F32 = 0,
  UMFA_DTYPE_F16 = 1,  /* IEEE binary16 */
  UMFA_DTYPE_BF16 = 2, /* bfloat16 */
  /** 1 byte, 0 = masked out, nonzero = attend (PyTorch's boolean attn_mask). Masks only. */
  UMFA_DTYPE_BOOL = 3,
  /** 32-bit signed integer. cu_seqlens only. */
  UMFA_DTYPE_I32 = 4
};

/** Where a tensor's memory lives. */
enum {
  UMFA_DEVICE_CPU = 0,
  UMFA_DEVICE_CUDA = 1
};

/** Largest rank a tensor view can have. */
#define UMFA_MAX_RANK 4
/** Largest head dimension any backend accepts. */
#define UMFA_MAX_HEAD_DIM 256

/**
 * A strided view of memory the caller owns. The library never frees or keeps it past the call.
 *
 * Element (i0, i1, ..., i{rank-1}) lives at
 *   (char*)data + (i0*strides[0] + ... + i{rank-1}*strides[rank-1]) * element_size(dtype).
 * `data` must be aligned to the element size (INVALID_ARGUMENT otherwise).
 * Strides are in elements, not bytes, and must be >= 0. A stride of 0 broadcasts that dimension
 * (inputs only; outputs must not overlap). Entries past `rank` are ignored.
 *
 * Layouts by role (logical, whatever the strides):
 *   q, out, dout, dq      [batch, seqlen_q, heads_q, head_dim]        (rank 4, "BSHD")
 *   k, v, dk, dv          [batch, seqlen_k, heads_kv, head_dim]       (rank 4)
 *   lse                   [batch, heads_q, seqlen_q], f32             (rank 3)
 *   varlen (cu_seqlens set): q/out/dout/dq [total_q, heads_q, head_dim], k/v/dk/dv
 *   [total_k, heads_kv, head_dim] (rank 3, "THD"); lse [heads_q, total_q] (rank 2).
 * PyTorch's BHSD tensors are passed without a copy by permuting the strides.
 */
typedef struct umfa_tensor {
  void* data;
  /** UMFA_DTYPE_*. */
  int32_t dtype;
  /** UMFA_DEVICE_*. */
  int32_t device;
  /** Device ordinal for UMFA_DEVICE_CUDA; 0 for the CPU. */
  int32_t device_index;
  /** Number of dimensions, 0..UMFA_MAX_RANK. */
  int32_t rank;
  int64_t shape[UMFA_MAX_RANK];
  int64_t strides[UMFA_MAX_RANK];
} umfa_tensor;

/**
 * Fills `*out` with a dense row-major (C-contiguous) view of `data`: shape[0..rank) copied,
 * strides computed, device CPU. Convenience for C callers; bindings usually fill the struct.
 * Returns OK, NULL_POINTER, INVALID_RANK (rank > UMFA_MAX_RANK), INVALID_ARGUMENT (negative
 * extent), UNSUPPORTED_DTYPE, SIZE_OVERFLOW (element count beyond 64 bits).
 */
UMFA_API umfa_status umfa_tensor_init_contiguous(umfa_tensor* out, void* data, int32_t dtype,
                                                 int32_t rank, const int64_t* shape);

/** Size in bytes of one element of `dtype`, or 0 for an unknown dtype. */
UMFA_API uint32_t umfa_dtype_size(int32_t dtype);

/* ============================================================================================
 * 5. Attention
 * ============================================================================================ */

/** Built-in masks (attention_options.mask_mode). */
enum {
  UMFA_MASK_NONE = 0,
  /**
   * PyTorch's is_causal: query i attends to keys j <= i. The diagonal starts at the top-left
   * corner of the [seqlen_q, seqlen_k] score matrix.
   */
  UMFA_MASK_CAUSAL_TOP_LEFT = 1,
  /**
   * FlashAttention's causal: query i attends to keys j <= i + seqlen_k - seqlen_q. The diagonal
   * ends at the bottom-right corner, so the last query sees every key (decode-friendly). Query
   * rows with no visible key (seqlen_q > seqlen_k) are fully masked.
   */
  UMFA_MASK_CAUSAL_BOTTOM_RIGHT = 2
};

/** attention_options.flags bits. */
enum {
  /** Backward gives bit-identical results run to run (may be slower on GPUs). */
  UMFA_FLAG_DETERMINISTIC = 1u << 0
};

/**
 * Options for forward and backward. Zero-filled with struct_size set = plain softmax attention
 * with scale 1/sqrt(head_dim), no mask. Pass the *same* options to backward as to forward.
 *
 * Masking. A key j is visible to query i when every enabled rule allows it:
 *   - mask_mode (above);
 *   - the sliding window, when has_window != 0: with d = j - (i + offset), where offset is
 *     seqlen_k - seqlen_q (bottom-right, FlashAttention's convention) unless mask_mode is
 *     CAUSAL_TOP_LEFT (then 0), the key is visible when
 *     (window_left < 0 || d >= -window_left) && (window_right < 0 || d <= window_right);
 *   - attn_mask, when it is a BOOL tensor: nonzero = visible.
 * Scores: s = q·k * softmax_scale; if softcap > 0, s = softcap * tanh(s / softcap); then
 * + alibi_slope[b,h] * -(|i + offset - j|)  (FlashAttention's ALiBi, offset as above); then
 * + attn_mask when it is an additive (float) tensor. Masked scores are -inf. A query row with no
 * visible key gives out = 0 and lse = -inf (never NaN); its gradients are 0.
 *
 * Non-finite inputs are not checked; NaN and infinity go through the F32 arithmetic:
 *   - A visible key whose final score is -inf is hidden like a masked one (a row whose scores
 *     are all -inf is a row with no visible key). A NaN or +inf final score makes its row NaN:
 *     every element of out, and lse. So a NaN or infinity in q row i makes row i NaN, or a row
 *     with no visible key when all its scores come out -inf; a NaN in k at key j makes NaN every
 *     row that sees key j, and an infinity there the rows whose q·k is +inf or NaN (softcap maps
 *     +inf to the cap); a NaN or +inf in an additive attn_mask at a visible key makes its row
 *     NaN (an additive -inf does not hide a NaN score); a NaN ALiBi slope makes NaN every row of
 *     its batch entry and head that has a visible key.
 *   - Keys hidden by mask_mode, the window or a BOOL attn_mask do not affect a row through k. A
 *     NaN or +inf in an additive attn_mask at a hidden key may still make the row NaN (scores
 *     are computed for blocks of keys).
 *   - A NaN or infinity in v at key j leaves lse finite; it makes that head_dim column of out
 *     NaN or infinite in every row that sees key j, and may in rows that do not; the other
 *     columns stay finite.
 *   - Backward: the dq row of a NaN row is NaN; a non-finite input may make any element of dq,
 *     dk and dv NaN.
 */
typedef struct umfa_attention_options {
  /** sizeof(umfa_attention_options) as the caller knows it. */
  uint32_t struct_size;
  /** UMFA_MASK_*; default NONE. */
  uint32_t mask_mode;
  /** Multiplies q·k. 0 = default 1/sqrt(head_dim). Must be finite. */
  float softmax_scale;
  /** Tanh soft-capping of scores (Gemma 2 / FlashAttention `softcap`); 0 = off; must be >= 0. */
  float softcap;
  /** Nonzero enables window_left/window_right. */
  uint32_t has_window;
  uint32_t flags;
  /** Keys visible to the left of the diagonal; < 0 = unbounded. */
  int64_t window_left;
  /** Keys visible to the right of the diagonal; < 0 = unbounded. Causal forces 0. */
  int64_t window_right;
  /**
   * Optional mask or bias, broadcastable to [batch, heads_q, seqlen_q, seqlen_k]: rank 1..4,
   * aligned at the right like NumPy/PyTorch broadcasting, size-1 (or stride-0) dimensions
   * broadcast. dtype BOOL = boolean mask; F32/F16/BF16 = additive bias (may hold -inf).
   * Not allowed together with varlen. NULL = none.
   */
  const umfa_tensor* attn_mask;
  /** Optional ALiBi slopes, F32, shape [heads_q] or [batch, heads_q]. NULL = none. */
  const umfa_tensor* alibi_slopes;
  /**
   * Variable-length batches (FlashAttention's varlen): I32 tensors of shape [batch + 1] holding
   * the starting row of each sequence in the packed q (cu_seqlens_q) and k/v (cu_seqlens_k);
   * first entry 0, non-decreasing, last <= total rows. Both or neither. When set, tensors use
   * the THD layouts of section 4. They live on the same device as q.
   * On the CPU the contents are validated before any work (INVALID_SEQLENS).
   * On CUDA they are never read back to the host (the call does not synchronize): they must be
   * contiguous, max_seqlen_q and max_seqlen_k must be set (> 0; INVALID_ARGUMENT otherwise) and
   * bound every sequence, and the contents are not validated. The kernels clamp each sequence
   * to the tensors' rows and to max_seqlen_q/k, so an invalid list gives unspecified output
   * values but never an out-of-bounds access.
   * Rows after the last sequence (from cu_seqlens[batch] on) belong to no sequence: they get
   * out = 0, lse = -inf and zero gradients.
   */
  const umfa_tensor* cu_seqlens_q;
  const umfa_tensor* cu_seqlens_k;
  /**
   * Upper bounds of the per-sequence lengths (varlen only). CPU: 0 = computed from
   * cu_seqlens. CUDA: required (> 0) whenever batch >= 1.
   */
  int64_t max_seqlen_q;
  int64_t max_seqlen_k;
  /**
   * CUDA: the cudaStream_t to run on (NULL = the legacy default stream). Calls never
   * synchronize the device; results are ready when the stream reaches them. Ignored on the CPU.
   */
  void* stream;
  /**
   * Optional per-call error message (appended after `stream`: a caller whose struct_size ends
   * before these two fields simply has none). When the call fails, error_message is not NULL and
   * error_message_capacity > 0, the library writes the call's message there as well as into
   * umfa_last_error(): NUL-terminated, truncated to error_message_capacity - 1 bytes. It
   * belongs to this call alone, so calls running at once on one context (asynchronous
   * bindings, worker pools) each get their own message, which the shared context message cannot
   * promise. Written only on failure (left untouched on success); the caller owns the memory,
   * which must not overlap any tensor of the call. 1024 bytes hold any message in full.
   */
  char* error_message;
  /** Size in bytes of the memory at error_message (0 = no per-call message). */
  uint64_t error_message_capacity;
} umfa_attention_options;

/**
 * Forward attention: out = softmax(mask(q·kᵀ·scale)) · v, per batch and query head; query head h
 * reads key/value head h / (heads_q / heads_kv) (GQA/MQA).
 *
 * Reads q, k, v (same dtype: F32, F16 or BF16; same device as the context), options (may be NULL
 * = defaults) and the tensors it points to. Writes every element of `out` (any float dtype;
 * head_dim equal to v's) and, when `lse` is not NULL, the natural-log log-sum-exp of each row's
 * final scores (after scale, softcap, ALiBi and an additive mask) in F32. Accumulation is F32 whatever the input dtype. Nothing is written unless
 * the call returns OK (validation happens before any work), except the per-call message
 * (options->error_message) of a failed call. Output views must not overlap inputs
 * or each other: an output whose strides make its own elements overlap is rejected
 * (INVALID_STRIDE), and an output sharing any byte with another tensor of the call (q, k, v,
 * the other outputs, attn_mask, alibi_slopes, cu_seqlens_q/k) is rejected with
 * INVALID_ARGUMENT. Views that interleave without sharing a byte (dq, dk, dv inside one packed
 * [batch, seqlen, 3, heads, head_dim] buffer) are accepted.
 *
 * head_dim: 1..UMFA_MAX_HEAD_DIM. Sequence lengths may be 0 (nothing to do) or 1.
 * Returns OK, NULL_CONTEXT, NULL_POINTER, STRUCT_VERSION, INVALID_RANK, SHAPE_MISMATCH,
 * HEADS_NOT_DIVISIBLE, HEAD_DIM_OUT_OF_RANGE, INVALID_STRIDE, UNSUPPORTED_DTYPE,
 * DEVICE_MISMATCH, INVALID_ARGUMENT, INVALID_SEQLENS, INVALID_HANDLE, SIZE_OVERFLOW,
 * OUT_OF_MEMORY, WORKSPACE_LIMIT, UNSUPPORTED, BACKEND_ERROR.
 */
UMFA_API umfa_status umfa_attention_forward(umfa_context* context,
                                            const umfa_attention_options* options,
                                            const umfa_tensor* q, const umfa_tensor* k,
                                            const umfa_tensor* v, const umfa_tensor* out,
                                            const umfa_tensor* lse);

/**
 * Backward attention: given dout = ∂L/∂out, writes dq, dk, dv (each any float dtype, shaped like
 * q, k, v). Reads q, k, v, out and lse exactly as the forward call produced them (lse is
 * required, F32), dout, and the same options as forward. dk/dv of a KV head sum the gradients of
 * every query head sharing it. Every element of dq, dk, dv is written (keys no query sees get 0).
 * With UMFA_FLAG_DETERMINISTIC the result is bit-identical run to run.
 * Returns the same codes as umfa_attention_forward.
 */
UMFA_API umfa_status umfa_attention_backward(umfa_context* context,
                                             const umfa_attention_options* options,
                                             const umfa_tensor* q, const umfa_tensor* k,
                                             const umfa_tensor* v, const umfa_tensor* out,
                                             const umfa_tensor* dout, const umfa_tensor* lse,
                                             const umfa_tensor* dq, const umfa_tensor* dk,
                                             const umfa_tensor* dv);

/** Options for umfa_attention_merge. Zero-filled with struct_size set = defaults. */
typedef struct umfa_merge_options {
  /** sizeof(umfa_merge_options) as the caller knows it. */
  uint32_t struct_size;
  /** No flag is defined yet: must be 0 (INVALID_ARGUMENT otherwise). */
  uint32_t flags;
  /**
   * CUDA: the cudaStream_t to run on (NULL = the legacy default stream). The call never
   * synchronizes the device. Ignored on the CPU.
   */
  void* stream;
  /**
   * Optional per-call error message, exactly as umfa_attention_options.error_message: written
   * only on failure, NUL-terminated, truncated to error_message_capacity - 1 bytes.
   */
  char* error_message;
  /** Size in bytes of the memory at error_message (0 = no per-call message). */
  uint64_t error_message_capacity;
} umfa_merge_options;

/**
 * Merges one partial attention result into a running one, in place (context parallelism:
 * ring attention over sequence shards; split-KV).
 *
 * Attention over keys split into disjoint parts K_1 ... K_n is recovered exactly from the
 * forward of each part, (O_i, LSE_i) = umfa_attention_forward(q, K_i, V_i):
 *   LSE = log(sum_i exp(LSE_i)),   O = sum_i exp(LSE_i - LSE) * O_i.
 * One call performs one step of that sum, for every row and head:
 *   LSE' = log(exp(LSE) + exp(LSE_p)),   O' = exp(LSE - LSE') * O + exp(LSE_p - LSE') * O_p
 * where (O, LSE) = (out, lse) and (O_p, LSE_p) = (part_out, part_lse). Folding the parts in one
 * call at a time, in any order, gives the attention over all keys up to float32 rounding.
 * A side whose LSE is -inf (a row that sees no key of that part: a fully masked row or shard)
 * contributes nothing, whatever its out holds (even NaN); when both are -inf, O' = 0 and
 * LSE' = -inf, never NaN. A NaN LSE gives NaN. So a running result may start as lse = -inf
 * with out uninitialized, or as the first part's forward result.
 *
 * Tensors, in the layouts of umfa_attention_forward's out and lse:
 *   out, part_out   [batch, seqlen, heads, head_dim] (rank 4), or [total, heads, head_dim]
 *                   (rank 3) for varlen results; F32, F16 or BF16, each its own dtype;
 *   lse, part_lse   [batch, heads, seqlen] (rank 3), or [heads, total] (rank 2); F32.
 * part_out and part_lse must have out's and lse's shapes; head_dim 1..UMFA_MAX_HEAD_DIM.
 * Arithmetic is F32 whatever the dtypes, but out is rounded to its dtype by every call: keep
 * the running out in F32 when merging more than two parts (and convert the result once).
 *
 * Reads out, lse, part_out, part_lse and options (may be NULL = defaults); writes every element
 * of out and lse, nothing else (and nothing unless the call returns OK, except the per-call
 * message of a failed call). Owns nothing after the call. out and lse are outputs: strides
 * that make their own elements overlap are rejected (INVALID_STRIDE), as is out or lse sharing
 * a byte with the other or with part_out or part_lse (INVALID_ARGUMENT); views that interleave
 * without sharing a byte are accepted. part_out and part_lse are inputs (stride 0 broadcasts).
 * The call needs no workspace. On CUDA it runs on options->stream.
 * Returns OK, NULL_CONTEXT, NULL_POINTER, STRUCT_VERSION, INVALID_RANK, SHAPE_MISMATCH,
 * HEAD_DIM_OUT_OF_RANGE, INVALID_STRIDE, UNSUPPORTED_DTYPE, DEVICE_MISMATCH, INVALID_ARGUMENT,
 * INVALID_HANDLE, SIZE_OVERFLOW, OUT_OF_MEMORY, UNSUPPORTED (a libumfa_cuda older than this
 * function), BACKEND_ERROR.
 *
 * Backward over a part needs no entry point of its own: umfa_attention_backward over q, K_i,
 * V_i and dout, with the part's options, given the *merged* out and lse instead of the part's
 * own, writes that part's exact share of the gradient. It takes P = exp(S_i - LSE) from the
 * merged LSE and D = rowsum(dout * out) from the merged out, so dk and dv are the exact
 * gradients of K_i and V_i, and the dq of all parts sum to the exact dq.
 */
UMFA_API umfa_status umfa_attention_merge(umfa_context* context,
                                          const umfa_merge_options* options,
                                          const umfa_tensor* out, const umfa_tensor* lse,
                                          const umfa_tensor* part_out,
                                          const umfa_tensor* part_lse);

/* ============================================================================================
 * 6. Buffers
 * ============================================================================================ */

/** Memory for callers that have no allocator of their own for the context's device. */
typedef struct umfa_buffer umfa_buffer;

/**
 * Allocates `size_bytes` (> 0) on the context's device, zero-filled, 64-byte aligned. On the
 * CPU the memory is host memory; on CUDA it is device memory; on Metal it is page-aligned host
 * memory (size rounded up to whole pages) that the GPU uses in place: the contents pointer is the
 * data pointer (unified memory, shared storage), and tensors in it are never staged. The buffer is owned by the caller
 * (umfa_buffer_destroy) and must not outlive its context.
 * Returns OK, NULL_CONTEXT, NULL_POINTER, INVALID_ARGUMENT (size 0), OUT_OF_MEMORY.
 */
UMFA_API umfa_status umfa_buffer_create(umfa_context* context, uint64_t size_bytes,
                                        umfa_buffer** out_buffer);

/**
 * Wraps `size_bytes` of caller-owned host memory at `host_ptr` without copying. The memory must
 * stay valid until umfa_buffer_destroy; destroying the buffer does not free it. CPU and Metal
 * contexts only (CUDA contexts return UNSUPPORTED); on Metal, page-aligned memory is used by the
 * GPU without a copy, other memory is staged once per call. Returns OK, NULL_CONTEXT, NULL_POINTER, INVALID_ARGUMENT,
 * UNSUPPORTED, OUT_OF_MEMORY.
 */
UMFA_API umfa_status umfa_buffer_wrap(umfa_context* context, void* host_ptr, uint64_t size_bytes,
                                      umfa_buffer** out_buffer);

/** Frees a buffer (not wrapped memory itself). NULL is a no-op. */
UMFA_API void umfa_buffer_destroy(umfa_buffer* buffer);

/** Writes the buffer's size in bytes to `*out_size`. */
UMFA_API umfa_status umfa_buffer_size(const umfa_buffer* buffer, uint64_t* out_size);

/**
 * Writes the pointer to use in umfa_tensor.data for this buffer (host pointer on the CPU and on
 * Metal, device pointer on CUDA) to `*out_ptr`; owned by the buffer.
 */
UMFA_API umfa_status umfa_buffer_data(const umfa_buffer* buffer, void** out_ptr);

/** Writes the buffer's device (UMFA_DEVICE_*) to `*out_device`. */
UMFA_API umfa_status umfa_buffer_device(const umfa_buffer* buffer, int32_t* out_device);

/**
 * Writes a host-visible pointer to the buffer's bytes to `*out_ptr` (the same as
 * umfa_buffer_data on the CPU). Device-only memory has none: returns UNSUPPORTED and writes NULL;
 * use upload/download instead.
 */
UMFA_API umfa_status umfa_buffer_contents(const umfa_buffer* buffer, void** out_ptr);

/**
 * Copies `size_bytes` from host memory `src` into the buffer at byte `offset`
 * (synchronously). Returns OK, NULL_POINTER, INVALID_ARGUMENT (range outside the buffer),
 * BACKEND_ERROR.
 */
UMFA_API umfa_status umfa_buffer_upload(umfa_buffer* buffer, uint64_t offset, const void* src,
                                        uint64_t size_bytes);

/** Copies `size_bytes` from the buffer at byte `offset` into host memory `dst` (synchronously). */
UMFA_API umfa_status umfa_buffer_download(const umfa_buffer* buffer, uint64_t offset, void* dst,
                                          uint64_t size_bytes);

/* ============================================================================================
 * 7. Classic API (Universal Metal Flash Attention compatible)
 *
 * The same names and signatures as the Universal Metal Flash Attention C API, implemented on top
 * of sections 3–6, so code written for it ports by relinking. A classic context is a umfa context
 * with the AUTO backend. Classic buffers are host-visible on every backend: on a CUDA context they
 * are host memory, and mfa_attention_forward copies q, k, v to temporary device memory and the
 * result back into `out` before returning (synchronously). Error codes are the
 * classic ones (MFA_SUCCESS, MFA_ERROR_*); the detailed message of the last failure is available
 * from umfa_last_error((const umfa_context*)context).
 * ============================================================================================ */

typedef int mfa_error_t;
enum {
  MFA_SUCCESS = 0,
  MFA_ERROR_INVALID_ARGS = 1,
  MFA_ERROR_MEMORY_ALLOCATION = 2,
  MFA_ERROR_DEVICE_NOT_SUPPORTED = 3,
  MFA_ERROR_KERNEL_COMPILATION = 4,
  MFA_ERROR_EXECUTION_FAILED = 5
};

typedef int mfa_precision_t;
enum {
  MFA_PRECISION_FP16 = 0,
  MFA_PRECISION_BF16 = 1,
  MFA_PRECISION_FP32 = 2
};

/** Opaque handles (a umfa_context* and a classic buffer, respectively). */
typedef void* mfa_context_t;
typedef void* mfa_buffer_t;

/** Creates a context (AUTO backend). Writes `*context`. MFA_ERROR_INVALID_ARGS if NULL. */
UMFA_API mfa_error_t mfa_create_context(mfa_context_t* context);
/** Destroys a context made by mfa_create_context. NULL is a no-op. */
UMFA_API void mfa_destroy_context(mfa_context_t context);
/** Allocates a zero-filled host-visible buffer of `size_bytes` (0 gives MFA_ERROR_INVALID_ARGS). */
UMFA_API mfa_error_t mfa_create_buffer(mfa_context_t context, size_t size_bytes,
                                       mfa_buffer_t* buffer);
/**
 * Wraps caller memory without copying; the caller keeps ownership of `data_ptr`.
 * MFA_ERROR_INVALID_ARGS when context, data_ptr or buffer is NULL (or not a live handle),
 * size_bytes is 0, or data_ptr + size_bytes wraps around the address space.
 */
UMFA_API mfa_error_t mfa_buffer_from_ptr(mfa_context_t context, void* data_ptr, size_t size_bytes,
                                         mfa_buffer_t* buffer);
/** Host pointer to the buffer's bytes, or NULL for a NULL buffer. */
UMFA_API void* mfa_buffer_contents(mfa_buffer_t buffer);
/** Frees a classic buffer (never the wrapped caller memory). NULL is a no-op. */
UMFA_API void mfa_destroy_buffer(mfa_buffer_t buffer);

/**
 * Classic forward attention. q/out are [batch, seq_len_q, num_heads, head_dim] and k/v
 * [batch, seq_len_kv, num_heads, head_dim], row-major, elements of `input_precision` (q, k, v)
 * and `output_precision` (out). A transpose flag means that tensor stores each head's matrix
 * transposed, i.e. the memory layout is [batch, num_heads, head_dim, seq_len]. softmax_scale 0
 * means 1/sqrt(head_dim). causal uses the top-left diagonal. `intermediate_precision` is accepted
 * for compatibility; umfa always accumulates in FP32. Buffers must be large enough for the
 * shapes; a buffer that is too small returns MFA_ERROR_INVALID_ARGS without computing.
 */
UMFA_API mfa_error_t mfa_attention_forward(mfa_context_t context, mfa_buffer_t q, mfa_buffer_t k,
                                           mfa_buffer_t v, mfa_buffer_t out, uint32_t batch_size,
                                           uint32_t seq_len_q, uint32_t seq_len_kv,
                                           uint32_t num_heads, uint16_t head_dim,
                                           float softmax_scale, UMFA_BOOL causal,
                                           mfa_precision_t input_precision,
                                           mfa_precision_t intermediate_precision,
                                           mfa_precision_t output_precision, UMFA_BOOL transpose_q,
                                           UMFA_BOOL transpose_k, UMFA_BOOL transpose_v,
                                           UMFA_BOOL transpose_o);

/** A static message for a classic error code. Never NULL; do not free. */
UMFA_API const char* mfa_error_string(mfa_error_t error);
/** True when a backend can run attention here (the CPU backend always can). */
UMFA_API UMFA_BOOL mfa_is_device_supported(void);
/** Writes the library version; NULL pointers are skipped. */
UMFA_API void mfa_get_version(int* major, int* minor, int* patch);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* UMFA_H */
