/*
 * A small C program that runs every CUDA code path of libumfa once on small problems, for
 * compute-sanitizer (memcheck, racecheck, synccheck): tensor-core forward/backward for each
 * head-dim template and dtype, causal/window/softcap/ALiBi/GQA, staged inputs, split-KV, the
 * deterministic dQ kernel, varlen, the generic f32 path and masks. Outputs are NaN-poisoned and
 * checked for full coverage; statuses are checked. Exit 0 when everything passed.
 *
 *   cc -O2 -std=c99 bench/cuda/smoke.c -Idist/native/linux-x64/include \
 *      -Ldist/native/linux-x64/lib -lumfa -Wl,-rpath,$PWD/dist/native/linux-x64/lib -o smoke
 *   compute-sanitizer --tool memcheck ./smoke
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "umfa.h"

static int failures = 0;
static umfa_context* ctx;

static uint32_t rng = 12345u;
static uint32_t next_u32(void) {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return rng;
}

/* Random finite values of magnitude ~[0.25, 2) in each dtype's bit pattern. */
static void fill_random(void* host, int32_t dtype, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    uint32_t r = next_u32();
    uint32_t sign = r & 1u;
    if (dtype == UMFA_DTYPE_F16) {
      uint16_t e = (uint16_t)(13 + (r >> 1) % 3), m = (uint16_t)((r >> 3) & 0x3ff);
      ((uint16_t*)host)[i] = (uint16_t)((sign << 15) | (e << 10) | m);
    } else if (dtype == UMFA_DTYPE_BF16) {
      uint16_t e = (uint16_t)(125 + (r >> 1) % 3), m = (uint16_t)((r >> 3) & 0x7f);
      ((uint16_t*)host)[i] = (uint16_t)((sign << 15) | (e << 7) | m);
    } else if (dtype == UMFA_DTYPE_BOOL) {
      ((uint8_t*)host)[i] = (uint8_t)((r >> 4) % 4 != 0); /* 3/4 visible */
    } else if (dtype == UMFA_DTYPE_I32) {
      ((int32_t*)host)[i] = 0;
    } else {
      ((float*)host)[i] = ((float)(r >> 8) / 16777216.0f) * 4.0f - 2.0f;
    }
  }
}

static int finite_all(const void* host, int32_t dtype, size_t n, int allow_neg_inf) {
  for (size_t i = 0; i < n; ++i) {
    if (dtype == UMFA_DTYPE_F32) {
      float f = ((const float*)host)[i];
      if (isnan(f) || (isinf(f) && !(allow_neg_inf && f < 0))) return 0;
    } else {
      uint16_t b = ((const uint16_t*)host)[i];
      int exp_all = dtype == UMFA_DTYPE_F16 ? ((b & 0x7c00) == 0x7c00) : ((b & 0x7f80) == 0x7f80);
      if (exp_all) return 0;
    }
  }
  return 1;
}

typedef struct {
  umfa_buffer* buf;
  void* dev;
  umfa_tensor t;
  size_t bytes;
  size_t n;
} Tensor;

static Tensor make(int32_t dtype, int rank, const int64_t* shape, int random) {
  Tensor x;
  memset(&x, 0, sizeof x);
  size_t n = 1;
  for (int i = 0; i < rank; ++i) n *= (size_t)shape[i];
  x.n = n;
  x.bytes = n * umfa_dtype_size(dtype);
  size_t alloc = x.bytes ? x.bytes : 16;
  if (umfa_buffer_create(ctx, alloc, &x.buf) != UMFA_STATUS_OK) {
    fprintf(stderr, "buffer: %s\n", umfa_last_error(ctx));
    exit(2);
  }
  umfa_buffer_data(x.buf, &x.dev);
  umfa_tensor_init_contiguous(&x.t, x.dev, dtype, rank, shape);
  x.t.device = UMFA_DEVICE_CUDA;
  void* host = malloc(alloc);
  if (random)
    fill_random(host, dtype, n);
  else
    memset(host, 0xff, alloc); /* NaN in every float dtype */
  umfa_buffer_upload(x.buf, 0, host, alloc);
  free(host);
  return x;
}

static int check_written(const char* what, Tensor* x, int allow_neg_inf) {
  void* host = malloc(x->bytes ? x->bytes : 1);
  umfa_buffer_download(x->buf, 0, host, x->bytes);
  int ok = finite_all(host, x->t.dtype, x->n, allow_neg_inf);
  free(host);
  if (!ok) fprintf(stderr, "  %s: unwritten or non-finite elements\n", what);
  return ok;
}

static void drop(Tensor* x) { umfa_buffer_destroy(x->buf); }

typedef struct {
  const char* name;
  int32_t dtype;
  int64_t b, nq, nk, hq, hkv, d;
  uint32_t mask_mode;
  float softcap;
  int window;
  int64_t wl, wr;
  int alibi;
  int bool_mask;
  uint32_t flags;
  int varlen;
  int bhsd;
} Case;

static void run(const Case* c) {
  int ok = 1;
  umfa_attention_options o;
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.mask_mode = c->mask_mode;
  o.softcap = c->softcap;
  o.has_window = (uint32_t)c->window;
  o.window_left = c->wl;
  o.window_right = c->wr;
  o.flags = c->flags;
  Tensor q, k, v, out, lse, dout, dq, dk, dv, alibi, mask, cuq, cuk;
  int have_alibi = 0, have_mask = 0;
  if (!c->varlen) {
    int64_t sq[4] = {c->b, c->nq, c->hq, c->d}, sk[4] = {c->b, c->nk, c->hkv, c->d};
    int64_t sl[3] = {c->b, c->hq, c->nq};
    if (c->bhsd) { /* allocate as [B, H, S, D] and pass the BSHD-permuted view */
      int64_t pq[4] = {c->b, c->hq, c->nq, c->d}, pk[4] = {c->b, c->hkv, c->nk, c->d};
      q = make(c->dtype, 4, pq, 1);
      k = make(c->dtype, 4, pk, 1);
      v = make(c->dtype, 4, pk, 1);
      Tensor* ts[3] = {&q, &k, &v};
      for (int i = 0; i < 3; ++i) {
        umfa_tensor* t = &ts[i]->t;
        int64_t s1 = t->strides[1], s2 = t->strides[2], e1 = t->shape[1], e2 = t->shape[2];
        t->shape[1] = e2;
        t->shape[2] = e1;
        t->strides[1] = s2;
        t->strides[2] = s1;
      }
    } else {
      q = make(c->dtype, 4, sq, 1);
      k = make(c->dtype, 4, sk, 1);
      v = make(c->dtype, 4, sk, 1);
    }
    out = make(c->dtype, 4, sq, 0);
    dout = make(c->dtype, 4, sq, 1);
    dq = make(c->dtype, 4, sq, 0);
    dk = make(c->dtype, 4, sk, 0);
    dv = make(c->dtype, 4, sk, 0);
    lse = make(UMFA_DTYPE_F32, 3, sl, 0);
  } else {
    /* Sequences of lengths nq, nq/2, 1 (and nk, nk/3, 7), plus 3 padding rows. */
    int32_t hq_cu[4] = {0, (int32_t)c->nq, (int32_t)(c->nq + c->nq / 2),
                        (int32_t)(c->nq + c->nq / 2 + 1)};
    int32_t hk_cu[4] = {0, (int32_t)c->nk, (int32_t)(c->nk + c->nk / 3),
                        (int32_t)(c->nk + c->nk / 3 + 7)};
    int64_t tq = hq_cu[3] + 3, tk = hk_cu[3] + 3;
    int64_t sq[3] = {tq, c->hq, c->d}, sk[3] = {tk, c->hkv, c->d}, sl[2] = {c->hq, tq};
    int64_t s4[1] = {4};
    q = make(c->dtype, 3, sq, 1);
    k = make(c->dtype, 3, sk, 1);
    v = make(c->dtype, 3, sk, 1);
    out = make(c->dtype, 3, sq, 0);
    dout = make(c->dtype, 3, sq, 1);
    dq = make(c->dtype, 3, sq, 0);
    dk = make(c->dtype, 3, sk, 0);
    dv = make(c->dtype, 3, sk, 0);
    lse = make(UMFA_DTYPE_F32, 2, sl, 0);
    cuq = make(UMFA_DTYPE_I32, 1, s4, 0);
    cuk = make(UMFA_DTYPE_I32, 1, s4, 0);
    if (c->varlen == 2) { /* invalid offsets: unspecified values, but no out-of-bounds access */
      const int32_t gq[4] = {-3, 1 << 30, 5, 2}, gk[4] = {7, -100, 1 << 29, 3};
      memcpy(hq_cu, gq, sizeof gq);
      memcpy(hk_cu, gk, sizeof gk);
    }
    umfa_buffer_upload(cuq.buf, 0, hq_cu, sizeof hq_cu);
    umfa_buffer_upload(cuk.buf, 0, hk_cu, sizeof hk_cu);
    o.cu_seqlens_q = &cuq.t;
    o.cu_seqlens_k = &cuk.t;
    /* Device offsets are not read back: the bounds are required. */
    o.max_seqlen_q = c->nq;
    o.max_seqlen_k = c->nk;
  }
  if (c->alibi) {
    int64_t sa[1] = {c->hq};
    alibi = make(UMFA_DTYPE_F32, 1, sa, 1);
    have_alibi = 1;
    o.alibi_slopes = &alibi.t;
  }
  if (c->bool_mask) {
    int64_t sm[2] = {c->nq, c->nk};
    mask = make(UMFA_DTYPE_BOOL, 2, sm, 1);
    have_mask = 1;
    o.attn_mask = &mask.t;
  }
  umfa_status st = umfa_attention_forward(ctx, &o, &q.t, &k.t, &v.t, &out.t, &lse.t);
  if (st != UMFA_STATUS_OK) {
    fprintf(stderr, "  forward: %s\n", umfa_last_error(ctx));
    ok = 0;
  } else {
    const int check = c->varlen != 2; /* invalid offsets: values unspecified */
    if (check) ok &= check_written("out", &out, 0);
    if (check) ok &= check_written("lse", &lse, 1);
    st = umfa_attention_backward(ctx, &o, &q.t, &k.t, &v.t, &out.t, &dout.t, &lse.t, &dq.t, &dk.t,
                                 &dv.t);
    if (st != UMFA_STATUS_OK) {
      fprintf(stderr, "  backward: %s\n", umfa_last_error(ctx));
      ok = 0;
    } else if (check) {
      ok &= check_written("dq", &dq, 0);
      ok &= check_written("dk", &dk, 0);
      ok &= check_written("dv", &dv, 0);
    } else { /* a kernel fault would surface in this synchronizing download */
      size_t n = (size_t)(dq.t.shape[0] * dq.t.shape[1] * dq.t.shape[2]) * 2;
      void* host = malloc(n);
      if (umfa_buffer_download(dq.buf, 0, host, n) != UMFA_STATUS_OK) {
        fprintf(stderr, "  invalid offsets: %s\n", umfa_last_error(ctx));
        ok = 0;
      }
      free(host);
    }
  }
  printf("%s %s\n", ok ? "PASS" : "FAIL", c->name);
  fflush(stdout);
  failures += !ok;
  drop(&q), drop(&k), drop(&v), drop(&out), drop(&lse), drop(&dout), drop(&dq), drop(&dk),
      drop(&dv);
  if (have_alibi) drop(&alibi);
  if (have_mask) drop(&mask);
  if (c->varlen) drop(&cuq), drop(&cuk);
}

int main(void) {
  umfa_context_options co;
  memset(&co, 0, sizeof co);
  co.struct_size = sizeof co;
  co.backend = UMFA_BACKEND_CUDA;
  if (umfa_context_create(&co, &ctx) != UMFA_STATUS_OK) {
    fprintf(stderr, "no CUDA context: %s\n", umfa_last_error(NULL));
    return 2;
  }
  const int32_t F16 = UMFA_DTYPE_F16, BF16 = UMFA_DTYPE_BF16, F32 = UMFA_DTYPE_F32;
  const Case cases[] = {
      /* name                      dtype b  nq   nk  hq hkv  d  mask softcap win wl wr alibi bmask flags varlen bhsd */
      {"f16_d64_causal_gqa", F16, 2, 150, 200, 4, 2, 64, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0},
      {"bf16_d96_window_softcap_alibi_det", BF16, 1, 130, 170, 2, 1, 96, 0, 5.f, 1, 40, 9, 1, 0, 1, 0, 0},
      {"f16_d128_tl_bhsd", F16, 2, 140, 100, 2, 2, 128, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1},
      {"bf16_d256", BF16, 1, 90, 150, 2, 2, 256, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
      {"f16_d256_det", F16, 1, 70, 80, 2, 1, 256, 2, 0, 0, 0, 0, 0, 0, 1, 0, 0},
      {"f16_d40", F16, 1, 65, 66, 2, 2, 40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
      {"bf16_d36_staged", BF16, 1, 33, 47, 2, 2, 36, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0},
      {"f16_decode_split", F16, 1, 1, 700, 4, 1, 128, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0},
      {"f16_varlen_d64", F16, 3, 70, 90, 2, 1, 64, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0},
      {"bf16_varlen_d128_det", BF16, 3, 40, 65, 2, 2, 128, 0, 0, 1, 10, 3, 0, 0, 1, 1, 0},
      {"f32_generic", F32, 2, 40, 50, 2, 1, 48, 2, 2.f, 0, 0, 0, 1, 0, 0, 0, 0},
      {"f16_bool_mask", F16, 1, 30, 41, 2, 2, 64, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0},
      {"f32_varlen", F32, 3, 20, 25, 2, 2, 16, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0},
      /* invalid device offsets (varlen 2): must run without faults (memcheck) */
      {"f16_varlen_invalid_offsets", F16, 3, 70, 90, 2, 1, 64, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0},
      {"bf16_varlen_invalid_offsets_det", BF16, 3, 40, 65, 2, 2, 128, 0, 0, 1, 10, 3, 0, 0, 1, 2, 0},
      {"f16_varlen_invalid_offsets_small", F16, 3, 1, 300, 4, 1, 64, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0},
      {"f32_varlen_invalid_offsets", F32, 3, 20, 25, 2, 2, 16, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) run(&cases[i]);
  umfa_context_destroy(ctx);
  printf("%d failed\n", failures);
  return failures ? 1 : 0;
}
