/* UMFAMetalHost.m — umfa's Metal host (see umfa_metal_host.h). Objective-C with manual
 * retain/release (-fno-objc-arc on Apple; GNUstep on Linux), no blocks. */
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "attention_params.h"
#include "umfa_metal_host.h"

/* The MSL sources, embedded at build time (generated: umfa_msl.h, attention_params.h,
 * attention_score.h, attention_forward.metal, attention_backward.metal, in that order). */
extern const char* const umfa_metal_sources[];
extern const unsigned umfa_metal_source_count;

struct umfa_metal_host {
  id<MTLDevice> device;
  id<MTLLibrary> library;
  id<MTLCommandQueue> queue;
  NSMutableDictionary* pipelines; /* key: "kernel|c0,c1,..." -> id<MTLComputePipelineState> */
  size_t zero_copy;
};

static void set_err(char* err, size_t n, NSString* message) {
  if (err && n) snprintf(err, n, "%s", [message UTF8String]);
}

/* Metal's runtime compiler resolves no local #include: the sources are concatenated in order
 * and their `#include "..."` lines dropped. */
static NSString* library_source(void) {
  NSMutableString* s = [NSMutableString string];
  unsigned i;
  for (i = 0; i < umfa_metal_source_count; ++i) {
    NSArray* lines = [[NSString stringWithUTF8String:umfa_metal_sources[i]] componentsSeparatedByString:@"\n"];
    NSUInteger l;
    for (l = 0; l < [lines count]; ++l) {
      NSString* line = [lines objectAtIndex:l];
      if ([line hasPrefix:@"#include \""]) continue;
      [s appendString:line];
      [s appendString:@"\n"];
    }
  }
  return s;
}

int umfa_metal_host_device_count(void) {
  NSAutoreleasePool* pool = [NSAutoreleasePool new];
  id<MTLDevice> device = MTLCreateSystemDefaultDevice();
  const int n = device ? 1 : 0;
  [device release];
  [pool release];
  return n;
}

umfa_metal_host* umfa_metal_host_create(char* err, size_t err_size) {
  NSAutoreleasePool* pool = [NSAutoreleasePool new];
  umfa_metal_host* h = (umfa_metal_host*)calloc(1, sizeof *h);
  NSError* e = nil;
  if (!h) {
    set_err(err, err_size, @"out of memory");
    [pool release];
    return NULL;
  }
  h->device = MTLCreateSystemDefaultDevice();
  if (!h->device) {
    set_err(err, err_size, @"no Metal device");
    free(h);
    [pool release];
    return NULL;
  }
  h->library = [h->device newLibraryWithSource:library_source() options:nil error:&e];
  if (!h->library) {
    set_err(err, err_size,
            [NSString stringWithFormat:@"the Metal compiler rejected umfa's kernels: %@", e ? [e localizedDescription] : @"(no log)"]);
    [h->device release];
    free(h);
    [pool release];
    return NULL;
  }
  h->queue = [h->device newCommandQueue];
  h->pipelines = [NSMutableDictionary new];
  [pool release];
  return h;
}

void umfa_metal_host_destroy(umfa_metal_host* h) {
  if (!h) return;
  [h->pipelines release];
  [h->queue release];
  [h->library release];
  [h->device release];
  free(h);
}

size_t umfa_metal_host_pipeline_count(const umfa_metal_host* h) { return [h->pipelines count]; }
size_t umfa_metal_host_zero_copy_count(const umfa_metal_host* h) { return h->zero_copy; }

/* ------------------------------------------------------------------------------------------ */
typedef struct {
  int32_t v[UMFA_FC_HAS_LSE + 1];
} constants_t;

static id<MTLComputePipelineState> pipeline(umfa_metal_host* h, NSString* name, const constants_t* c,
                                            char* err, size_t err_size) {
  NSMutableString* key = [NSMutableString stringWithString:name];
  id<MTLComputePipelineState> p;
  unsigned i;
  for (i = 0; i <= UMFA_FC_HAS_LSE; ++i) [key appendFormat:@"|%d", c->v[i]];
  p = [h->pipelines objectForKey:key];
  if (!p) {
    MTLFunctionConstantValues* values = [[MTLFunctionConstantValues new] autorelease];
    NSError* e = nil;
    id<MTLFunction> f;
    for (i = 0; i <= UMFA_FC_HAS_LSE; ++i) {
      const BOOL is_bool = i == UMFA_FC_HAS_WINDOW || i == UMFA_FC_HAS_SOFTCAP || i == UMFA_FC_HAS_ALIBI ||
                           i == UMFA_FC_VARLEN || i == UMFA_FC_HAS_LSE;
      if (is_bool) {
        const BOOL b = c->v[i] != 0;
        [values setConstantValue:&b type:MTLDataTypeBool atIndex:i];
      } else {
        [values setConstantValue:&c->v[i] type:MTLDataTypeInt atIndex:i];
      }
    }
    f = [h->library newFunctionWithName:name constantValues:values error:&e];
    if (!f) {
      set_err(err, err_size, [NSString stringWithFormat:@"%@: %@", name, e ? [e localizedDescription] : @"not found"]);
      return nil;
    }
    p = [h->device newComputePipelineStateWithFunction:f error:&e];
    [f release];
    if (!p) {
      set_err(err, err_size, [NSString stringWithFormat:@"%@: %@", name, e ? [e localizedDescription] : @"no pipeline"]);
      return nil;
    }
    [h->pipelines setObject:p forKey:key];
    [p release];
  }
  return p;
}

static size_t dtype_size(int32_t d) { return d == UMFA_METAL_F32 || d == UMFA_METAL_I32 ? 4 : d == UMFA_METAL_BOOL ? 1 : 2; }

/* Bytes from the view's base to one past its last element. */
static size_t extent(const umfa_metal_tensor* t) {
  size_t last = 0;
  int a;
  for (a = 0; a < t->rank; ++a) {
    if (t->shape[a] == 0) return 0;
    last += (size_t)(t->shape[a] - 1) * (size_t)t->strides[a];
  }
  return (last + 1) * dtype_size(t->dtype);
}

/* One tensor as an MTLBuffer: the caller's memory itself when page-aligned (unified memory),
 * else a staging copy (copied back after the call when `output`). */
typedef struct {
  id<MTLBuffer> buffer;
  void* host;
  size_t bytes;
  BOOL staged, output;
} wrapped_t;

static BOOL wrap(umfa_metal_host* h, const umfa_metal_tensor* t, BOOL output, wrapped_t* w) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  w->host = t ? t->data : NULL;
  w->bytes = t ? extent(t) : 0;
  w->output = output;
  w->staged = NO;
  w->buffer = nil;
  if (w->bytes && ((uintptr_t)w->host % page) == 0) {
    w->buffer = [h->device newBufferWithBytesNoCopy:w->host
                                             length:(w->bytes + page - 1) / page * page
                                            options:MTLResourceStorageModeShared
                                        deallocator:nil];
    if (w->buffer) {
      ++h->zero_copy;
      return YES;
    }
  }
  if (w->bytes) {
    w->buffer = [h->device newBufferWithBytes:w->host length:w->bytes options:MTLResourceStorageModeShared];
    w->staged = YES;
  } else {
    w->buffer = [h->device newBufferWithLength:16 options:MTLResourceStorageModeShared]; /* an empty or absent tensor */
  }
  return w->buffer != nil;
}

static void unwrap(wrapped_t* w, BOOL copy_back) {
  if (copy_back && w->staged && w->output) memcpy(w->host, [w->buffer contents], w->bytes);
  [w->buffer release];
  w->buffer = nil;
}

enum { B_Q, B_K, B_V, B_OUT, B_LSE, B_PARAMS, B_MASK, B_ALIBI, B_CUQ, B_CUK, B_DOUT, B_DELTA, B_DQ, B_DK, B_DV, B_COUNT };

static const char* dtype_name(int32_t d) { return d == UMFA_METAL_F32 ? "f32" : d == UMFA_METAL_F16 ? "f16" : "bf16"; }

static int run(umfa_metal_host* h, const umfa_metal_options* o, const umfa_metal_tensor* const* t, BOOL backward,
               char* err, size_t err_size) {
  NSAutoreleasePool* pool = [NSAutoreleasePool new];
  const umfa_metal_tensor *q = t[B_Q], *k = t[B_K], *out = t[B_OUT], *lse = t[B_LSE];
  const BOOL varlen = o->cu_seqlens_q != NULL;
  const int r = varlen ? 1 : 0;
  struct UmfaAttentionParams p;
  constants_t c;
  wrapped_t w[B_COUNT];
  int batch, max_nq = 0, max_nk = 0, i, a, status = -1;
  memset(&p, 0, sizeof p);
  memset(&c, 0, sizeof c);
  memset(w, 0, sizeof w);

  if (q->rank != 4 - r || k->rank != 4 - r) {
    set_err(err, err_size, @"q/k/v must be rank 4 (rank 3 with cu_seqlens)");
    goto done;
  }
  p.heads_q = (int)q->shape[2 - r];
  p.heads_kv = (int)k->shape[2 - r];
  p.head_dim = (int)q->shape[3 - r];
  if (p.head_dim > UMFA_METAL_MAX_HEAD_DIM) {
    set_err(err, err_size, @"head_dim above 256 (the Metal kernels' limit)");
    goto done;
  }
  if (p.heads_kv <= 0 || p.heads_q % p.heads_kv != 0) {
    set_err(err, err_size, @"heads_q is not a multiple of heads_kv");
    goto done;
  }
  for (i = B_Q; i <= B_DV; ++i) {
    long* dst = NULL;
    if (i == B_Q) dst = p.q_stride; else if (i == B_K) dst = p.k_stride; else if (i == B_V) dst = p.v_stride;
    else if (i == B_OUT) dst = p.o_stride; else if (i == B_DOUT) dst = p.do_stride; else if (i == B_DQ) dst = p.dq_stride;
    else if (i == B_DK) dst = p.dk_stride; else if (i == B_DV) dst = p.dv_stride;
    if (!dst || !t[i]) continue;
    for (a = 0; a < 4; ++a) dst[a] = varlen ? (a == 0 ? 0 : (long)t[i]->strides[a - 1]) : (long)t[i]->strides[a];
  }
  if (lse) {
    if (varlen) { p.lse_stride[0] = 0; p.lse_stride[1] = (long)lse->strides[0]; p.lse_stride[2] = (long)lse->strides[1]; }
    else for (a = 0; a < 3; ++a) p.lse_stride[a] = (long)lse->strides[a];
  }
  if (varlen) {
    const int32_t* cq = (const int32_t*)o->cu_seqlens_q->data;
    const int32_t* ck = (const int32_t*)o->cu_seqlens_k->data;
    batch = (int)o->cu_seqlens_q->shape[0] - 1;
    for (i = 0; i < batch; ++i) {
      if (cq[i + 1] - cq[i] > max_nq) max_nq = cq[i + 1] - cq[i];
      if (ck[i + 1] - ck[i] > max_nk) max_nk = ck[i + 1] - ck[i];
    }
  } else {
    batch = (int)q->shape[0];
    p.seqlen_q = max_nq = (int)q->shape[1];
    p.seqlen_k = max_nk = (int)k->shape[1];
  }
  p.batch = batch;
  p.window_left = o->window_left;
  p.window_right = o->window_right;
  p.scale = o->softmax_scale != 0.0f ? o->softmax_scale : (float)(1.0 / sqrt((double)p.head_dim));
  p.softcap = o->softcap;
  if (o->attn_mask) {
    const umfa_metal_tensor* m = o->attn_mask;
    for (a = 0; a < m->rank; ++a) p.mask_stride[4 - m->rank + a] = m->shape[a] == 1 ? 0 : (long)m->strides[a];
    c.v[UMFA_FC_MASK_KIND] = m->dtype == UMFA_METAL_BOOL ? 1 : 2;
    c.v[UMFA_FC_MASK_DTYPE] = m->dtype == UMFA_METAL_BOOL ? 0 : m->dtype;
  }
  if (o->alibi_slopes) {
    const umfa_metal_tensor* s = o->alibi_slopes;
    p.alibi_stride[0] = s->rank == 1 ? 0 : (long)s->strides[0];
    p.alibi_stride[1] = (long)s->strides[s->rank - 1];
  }
  c.v[UMFA_FC_MASK_MODE] = o->mask_mode;
  c.v[UMFA_FC_HAS_WINDOW] = o->has_window != 0;
  c.v[UMFA_FC_HAS_SOFTCAP] = o->softcap > 0;
  c.v[UMFA_FC_HAS_ALIBI] = o->alibi_slopes != NULL;
  c.v[UMFA_FC_OUT_DTYPE] = out->dtype;
  c.v[UMFA_FC_VARLEN] = varlen;
  c.v[UMFA_FC_HAS_LSE] = lse != NULL;
  if (backward && (t[B_DQ]->dtype != out->dtype || t[B_DK]->dtype != out->dtype || t[B_DV]->dtype != out->dtype)) {
    set_err(err, err_size, @"dq, dk and dv must have out's dtype");
    goto done;
  }

  {
    const umfa_metal_tensor* extra[B_COUNT];
    memcpy(extra, t, sizeof extra);
    extra[B_MASK] = o->attn_mask;
    extra[B_ALIBI] = o->alibi_slopes;
    extra[B_CUQ] = o->cu_seqlens_q;
    extra[B_CUK] = o->cu_seqlens_k;
    for (i = 0; i < B_COUNT; ++i) {
      if (i == B_PARAMS || i == B_DELTA) continue;
      if (!wrap(h, extra[i], (!backward && (i == B_OUT || i == B_LSE)) || i >= B_DQ, &w[i])) {
        set_err(err, err_size, @"could not create a Metal buffer");
        goto done;
      }
    }
  }
  /* Delta scratch, laid out like LSE. */
  w[B_DELTA].buffer = [h->device newBufferWithLength:(lse && backward ? extent(lse) : 16) + 16 options:MTLResourceStorageModeShared];

  {
    const int dp = (p.head_dim + 7) / 8 * 8;
    const NSUInteger q_blocks = (NSUInteger)((max_nq + UMFA_METAL_BLOCK_Q - 1) / UMFA_METAL_BLOCK_Q);
    NSString* names[4];
    MTLSize grids[4];
    NSUInteger tg_bytes[4];
    int kernels = backward ? 4 : 1, n;
    id<MTLCommandBuffer> cb = [h->queue commandBuffer];
    id<MTLComputeCommandEncoder> enc = [cb computeCommandEncoder];
    names[0] = [NSString stringWithFormat:@"umfa_attention_forward_%s", dtype_name(q->dtype)];
    grids[0] = MTLSizeMake(q_blocks, (NSUInteger)p.heads_q, (NSUInteger)batch);
    tg_bytes[0] = (NSUInteger)((UMFA_METAL_BLOCK_Q + 2 * UMFA_METAL_BLOCK_K) * dp * 4);
    names[1] = [NSString stringWithFormat:@"umfa_attention_backward_delta_%s", dtype_name(q->dtype)];
    grids[1] = MTLSizeMake((NSUInteger)((max_nq + 31) / 32), (NSUInteger)p.heads_q, (NSUInteger)batch);
    tg_bytes[1] = 0;
    names[2] = [NSString stringWithFormat:@"umfa_attention_backward_dq_%s", dtype_name(q->dtype)];
    grids[2] = MTLSizeMake(q_blocks, (NSUInteger)p.heads_q, (NSUInteger)batch);
    tg_bytes[2] = (NSUInteger)(32 * dp * 4);
    names[3] = [NSString stringWithFormat:@"umfa_attention_backward_dkdv_%s", dtype_name(q->dtype)];
    grids[3] = MTLSizeMake((NSUInteger)((max_nk + 7) / 8), (NSUInteger)p.heads_kv, (NSUInteger)batch);
    tg_bytes[3] = (NSUInteger)(32 * dp * 4);
    for (i = 0; i < B_COUNT; ++i)
      if (i != B_PARAMS) [enc setBuffer:w[i].buffer offset:0 atIndex:(NSUInteger)i];
    [enc setBytes:&p length:sizeof p atIndex:B_PARAMS];
    for (n = backward ? 1 : 0; n < (backward ? kernels : 1); ++n) {
      /* A backward call runs on the forward's out and LSE: Delta, dQ, dK/dV. */
      id<MTLComputePipelineState> ps = pipeline(h, names[n], &c, err, err_size);
      if (!ps) {
        [enc endEncoding];
        goto done;
      }
      if (!grids[n].width || !grids[n].height || !grids[n].depth) continue;
      [enc setComputePipelineState:ps];
      [enc setThreadgroupMemoryLength:tg_bytes[n] atIndex:0];
      [enc dispatchThreadgroups:grids[n] threadsPerThreadgroup:MTLSizeMake(32, 1, 1)];
    }
    [enc endEncoding];
    [cb commit];
    [cb waitUntilCompleted];
    if ([cb status] != MTLCommandBufferStatusCompleted) {
      set_err(err, err_size, [NSString stringWithFormat:@"Metal command buffer failed: %@",
                                                        [cb error] ? [[cb error] localizedDescription] : @"(no error)"]);
      goto done;
    }
    status = 0;
  }
done:
  for (i = 0; i < B_COUNT; ++i) unwrap(&w[i], status == 0);
  [pool release];
  return status;
}

int umfa_metal_host_forward(umfa_metal_host* h, const umfa_metal_options* o, const umfa_metal_tensor* q,
                            const umfa_metal_tensor* k, const umfa_metal_tensor* v, const umfa_metal_tensor* out,
                            const umfa_metal_tensor* lse, char* err, size_t err_size) {
  const umfa_metal_tensor* t[B_COUNT] = {q, k, v, out, lse};
  return run(h, o, t, NO, err, err_size);
}

int umfa_metal_host_backward(umfa_metal_host* h, const umfa_metal_options* o, const umfa_metal_tensor* q,
                             const umfa_metal_tensor* k, const umfa_metal_tensor* v, const umfa_metal_tensor* out,
                             const umfa_metal_tensor* dout, const umfa_metal_tensor* lse, const umfa_metal_tensor* dq,
                             const umfa_metal_tensor* dk, const umfa_metal_tensor* dv, char* err, size_t err_size) {
  const umfa_metal_tensor* t[B_COUNT] = {q, k, v, out, lse};
  t[B_DOUT] = dout;
  t[B_DQ] = dq;
  t[B_DK] = dk;
  t[B_DV] = dv;
  if (!lse) {
    set_err(err, err_size, @"backward needs the forward's LSE");
    return -1;
  }
  return run(h, o, t, YES, err, err_size);
}
