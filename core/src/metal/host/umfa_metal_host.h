/* umfa_metal_host.h — the Metal backend's host (UMFAMetalHost.m, Objective-C, manual
 * retain/release): it compiles the MSL sources embedded in the library with newLibraryWithSource,
 * caches one pipeline per kernel and function-constant set, wraps the caller's memory as MTLBuffers
 * (no copy when page-aligned, one staging copy otherwise), binds the kernels' argument table,
 * dispatches and waits. On Apple platforms it runs on the GPU; on Linux, against the stand-in
 * Metal API (standin/), it runs in the simulator. This C interface is what libumfa's backend
 * layer calls (umfa_metal_backend.cpp, the backend table libumfa loads).
 *
 * Tensors are strided views, logical [batch, token, head, dim] (rank 4), or [token, head, dim]
 * (rank 3) with cu_seqlens (varlen); strides in elements, non-negative. The caller validates
 * (umfa's API layer does); the host checks only what it must to stay in bounds. */
#ifndef UMFA_METAL_HOST_H
#define UMFA_METAL_HOST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { UMFA_METAL_F32 = 0, UMFA_METAL_F16 = 1, UMFA_METAL_BF16 = 2, UMFA_METAL_BOOL = 3, UMFA_METAL_I32 = 4 };

typedef struct umfa_metal_tensor {
  void* data;
  int32_t dtype;
  int32_t rank;
  int64_t shape[4];
  int64_t strides[4];
} umfa_metal_tensor;

typedef struct umfa_metal_options {
  int32_t mask_mode; /* 0 none, 1 causal top-left, 2 causal bottom-right */
  int32_t has_window;
  int32_t window_left, window_right; /* < 0: unbounded */
  float softmax_scale;               /* 0: 1/sqrt(head_dim) */
  float softcap;                     /* > 0 enables */
  const umfa_metal_tensor* attn_mask;    /* bool (nonzero = visible) or f32/f16/bf16, rank 1..4, broadcast to [B,Hq,Nq,Nk] */
  const umfa_metal_tensor* alibi_slopes; /* f32 [Hq] or [B,Hq] */
  const umfa_metal_tensor* cu_seqlens_q; /* i32 [B+1], host-readable; both or neither */
  const umfa_metal_tensor* cu_seqlens_k;
} umfa_metal_options;

typedef struct umfa_metal_host umfa_metal_host;

/* Number of Metal devices the host can use: 1 when MTLCreateSystemDefaultDevice gives one, else 0.
 * Compiles nothing. */
int umfa_metal_host_device_count(void);

/* NULL with the reason (the compiler's log when the sources do not compile) in err. */
umfa_metal_host* umfa_metal_host_create(char* err, size_t err_size);
void umfa_metal_host_destroy(umfa_metal_host* host);

/* 0 on success; -1 with the reason in err. lse may be NULL. */
int umfa_metal_host_forward(umfa_metal_host* host, const umfa_metal_options* options, const umfa_metal_tensor* q,
                            const umfa_metal_tensor* k, const umfa_metal_tensor* v, const umfa_metal_tensor* out,
                            const umfa_metal_tensor* lse, char* err, size_t err_size);
/* out and lse are the forward's; dq, dk and dv must have out's dtype. */
int umfa_metal_host_backward(umfa_metal_host* host, const umfa_metal_options* options, const umfa_metal_tensor* q,
                             const umfa_metal_tensor* k, const umfa_metal_tensor* v, const umfa_metal_tensor* out,
                             const umfa_metal_tensor* dout, const umfa_metal_tensor* lse, const umfa_metal_tensor* dq,
                             const umfa_metal_tensor* dk, const umfa_metal_tensor* dv, char* err, size_t err_size);

/* Introspection for tests: pipelines created so far; buffers wrapped without a copy so far. */
size_t umfa_metal_host_pipeline_count(const umfa_metal_host* host);
size_t umfa_metal_host_zero_copy_count(const umfa_metal_host* host);

#ifdef __cplusplus
}
#endif

#endif
