// umfa_metal_backend.cpp — libumfa's backend table for Metal (backend.h), over the Objective-C host
// (umfa_metal_host.h). libumfa loads the library that holds it at run time (api/metal_loader.cpp):
// libumfa_metal.dylib on Apple platforms; on Linux the same code linked with the stand-in Metal
// API and the simulator (libumfa_metal_sim.so), reachable only through UMFA_METAL_LIB, for tests.
//
// The API layer has validated everything and hands over host pointers (Metal contexts use
// UMFA_DEVICE_CPU: unified memory). This file only maps the resolved Problem onto the host's
// views and options, serializes calls on one context (the host's pipeline cache is not
// thread-safe), and provides page-aligned buffers so that umfa_buffer memory is used in place.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "backend.h"
#include "umfa_metal_host.h"

namespace {

using umfa::BackendTable;
using umfa::ErrorSink;
using umfa::MergeProblem;
using umfa::Problem;
using umfa::View;

struct Impl {
  umfa_metal_host* host = nullptr;
  std::mutex mutex;
};

void report(ErrorSink* err, const char* msg) {
  if (err && err->message && err->capacity) std::snprintf(err->message, err->capacity, "%s", msg);
}

size_t page_size() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

size_t dtype_size(int32_t d) { return d == UMFA_DTYPE_F32 || d == UMFA_DTYPE_I32 ? 4 : d == UMFA_DTYPE_BOOL ? 1 : 2; }

// Bytes from a view's base to one past its last element (what the host wraps or stages).
uint64_t extent(const View& v) {
  if (!v.present()) return 0;
  uint64_t last = 0;
  for (int a = 0; a < 4; ++a) {
    if (v.shape[a] == 0) return 0;
    last += static_cast<uint64_t>(v.shape[a] - 1) * static_cast<uint64_t>(v.strides[a]);
  }
  return (last + 1) * dtype_size(v.dtype);
}

// q/k/v/out/dout/dq/dk/dv: rank 4, or rank 3 ([total, H, D]) for varlen (B = 1 views).
umfa_metal_tensor bshd(const View& v, bool varlen) {
  umfa_metal_tensor t;
  std::memset(&t, 0, sizeof t);
  t.data = v.data;
  t.dtype = v.dtype;
  const int first = varlen ? 1 : 0;
  t.rank = 4 - first;
  for (int a = first; a < 4; ++a) {
    t.shape[a - first] = v.shape[a];
    t.strides[a - first] = v.strides[a];
  }
  return t;
}

// lse: the API's {B, Hq, Nq, 1} view as [B, Hq, Nq], or [Hq, total] for varlen.
umfa_metal_tensor lse_view(const View& v, bool varlen) {
  umfa_metal_tensor t;
  std::memset(&t, 0, sizeof t);
  t.data = v.data;
  t.dtype = v.dtype;
  const int first = varlen ? 1 : 0;
  t.rank = 3 - first;
  for (int a = first; a < 3; ++a) {
    t.shape[a - first] = v.shape[a];
    t.strides[a - first] = v.strides[a];
  }
  return t;
}

struct Mapped {
  umfa_metal_options o;
  umfa_metal_tensor mask, alibi, cu_q, cu_k;
};

void map_options(const Problem& p, Mapped* m) {
  std::memset(m, 0, sizeof *m);
  umfa_metal_options& o = m->o;
  // The API layer folds causal masks into the window (right <= 0). The kernels measure the
  // window from the diagonal the alignment defines: mask mode 1 = top-left (it also hides keys
  // right of the diagonal, which a top-left problem always does: the API sets right = 0),
  // mode 0 with a window = bottom-right alignment.
  o.mask_mode = p.bottom_right ? 0 : 1;
  o.has_window = p.window_left >= 0 || p.window_right >= 0;
  o.window_left = static_cast<int32_t>(p.window_left < 0 ? -1 : p.window_left);
  o.window_right = static_cast<int32_t>(p.window_right < 0 ? -1 : p.window_right);
  o.softmax_scale = p.scale;
  o.softcap = p.softcap;
  if (p.mask.present()) {
    m->mask.data = p.mask.data;
    m->mask.dtype = p.mask.dtype;
    m->mask.rank = 4;
    for (int a = 0; a < 4; ++a) {
      m->mask.shape[a] = p.mask.shape[a];
      m->mask.strides[a] = p.mask.strides[a];
    }
    o.attn_mask = &m->mask;
  }
  if (p.alibi.present()) {
    m->alibi.data = p.alibi.data;
    m->alibi.dtype = UMFA_DTYPE_F32;
    m->alibi.rank = 2;
    for (int a = 0; a < 2; ++a) {
      m->alibi.shape[a] = p.alibi.shape[a];
      m->alibi.strides[a] = p.alibi.strides[a];
    }
    o.alibi_slopes = &m->alibi;
  }
  if (p.cu_seqlens_q) {
    umfa_metal_tensor* cu[2] = {&m->cu_q, &m->cu_k};
    const int32_t* src[2] = {p.cu_seqlens_q, p.cu_seqlens_k};
    for (int i = 0; i < 2; ++i) {
      cu[i]->data = const_cast<int32_t*>(src[i]);
      cu[i]->dtype = UMFA_DTYPE_I32;
      cu[i]->rank = 1;
      cu[i]->shape[0] = p.batch + 1;
      cu[i]->strides[0] = 1;
    }
    o.cu_seqlens_q = &m->cu_q;
    o.cu_seqlens_k = &m->cu_k;
  }
}

// Element conversions (f32, f16, bf16 with round to nearest even) for the host-side work below.
float load_elem(const void* base, int32_t dtype, int64_t i) {
  if (dtype == UMFA_DTYPE_F32) return static_cast<const float*>(base)[i];
  const uint16_t h = static_cast<const uint16_t*>(base)[i];
  uint32_t bits;
  if (dtype == UMFA_DTYPE_BF16) {
    bits = uint32_t(h) << 16;
  } else {  // IEEE binary16
    const uint32_t sign = uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ffu;
    if (exp == 0x1f) {
      bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
      bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      int e = -1;
      uint32_t m = man;
      do { ++e; m <<= 1; } while (!(m & 0x400u));
      bits = sign | ((112 - e) << 23) | ((m & 0x3ffu) << 13);
    }
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void store_elem(void* base, int32_t dtype, int64_t i, float f) {
  if (dtype == UMFA_DTYPE_F32) {
    static_cast<float*>(base)[i] = f;
    return;
  }
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint16_t h;
  if (dtype == UMFA_DTYPE_BF16) {
    if ((x & 0x7fffffffu) > 0x7f800000u) h = uint16_t((x >> 16) | 0x40u);  // quiet NaN
    else h = uint16_t((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);          // round to nearest even
  } else {
    const uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) {
      h = uint16_t(sign | 0x7e00u);
    } else if (ax >= 0x477ff000u) {  // rounds to infinity (or is infinite)
      h = uint16_t(sign | 0x7c00u);
    } else if (ax >= 0x38800000u) {  // normal half
      const uint32_t r = ax - 0x38000000u;  // rebias 127 -> 15
      h = uint16_t(sign | ((r + 0xfffu + ((r >> 13) & 1u)) >> 13));
    } else {  // subnormal half or zero: value / 2^-24, rounded to nearest even
      float a;
      std::memcpy(&a, &ax, 4);
      const float scaled = a * 16777216.0f;  // exact (power of two)
      uint32_t n = static_cast<uint32_t>(scaled);
      const float frac = scaled - static_cast<float>(n);
      if (frac > 0.5f || (frac == 0.5f && (n & 1u))) ++n;
      h = uint16_t(sign | n);
    }
  }
  static_cast<uint16_t*>(base)[i] = h;
}

umfa_status create(int32_t device_index, int32_t, void** out_impl, ErrorSink* err) {
  if (device_index != 0) {
    report(err, "Metal has one device (index 0)");
    return UMFA_STATUS_INVALID_ARGUMENT;
  }
  Impl* impl = new (std::nothrow) Impl();
  if (!impl) return UMFA_STATUS_OUT_OF_MEMORY;
  char msg[4096] = {0};
  impl->host = umfa_metal_host_create(msg, sizeof msg);
  if (!impl->host) {
    // Typically the Metal compiler's log: the backend cannot run here.
    report(err, msg[0] ? msg : "the Metal host could not start");
    delete impl;
    return UMFA_STATUS_BACKEND_UNAVAILABLE;
  }
  *out_impl = impl;
  return UMFA_STATUS_OK;
}

void destroy(void* vimpl) {
  Impl* impl = static_cast<Impl*>(vimpl);
  if (!impl) return;
  umfa_metal_host_destroy(impl->host);
  delete impl;
}

// The backward kernels read dO in the inputs' dtype and O in out's, and write dQ/dK/dV in out's
// dtype (a function constant); other combinations take the f32 path of backward().
bool mixed_backward(const Problem* p) {
  return p->dout.dtype != p->q.dtype || p->dq.dtype != p->out.dtype ||
         p->dk.dtype != p->out.dtype || p->dv.dtype != p->out.dtype;
}

int64_t elements(const View& v) { return v.shape[0] * v.shape[1] * v.shape[2] * v.shape[3]; }

// What a call allocates for itself: a staging copy of every tensor that does not start on a
// page boundary (the host wraps those that do without a copy), the cu_seqlens copies, and the
// backward's Delta scratch (laid out like LSE).
uint64_t workspace(const Problem* p, bool backward) {
  const View* views[] = {&p->q, &p->k, &p->v, &p->out, &p->lse, &p->mask, &p->alibi,
                         &p->dout, &p->dq, &p->dk, &p->dv};
  const int count = backward ? 11 : 7;
  const uintptr_t page = page_size();
  uint64_t bytes = 0;
  for (int i = 0; i < count; ++i)
    if (views[i]->present() && reinterpret_cast<uintptr_t>(views[i]->data) % page != 0)
      bytes += extent(*views[i]);
  if (p->cu_seqlens_q) bytes += 2 * 4 * static_cast<uint64_t>(p->batch + 1);
  if (backward) bytes += extent(p->lse) + 16;
  if (backward && mixed_backward(p))  // f32 copies of q, k, v, out and dout; f32 dq/dk/dv
    bytes += 4 * static_cast<uint64_t>(2 * elements(p->q) + 2 * elements(p->k) + 2 * elements(p->v) +
                                       2 * elements(p->out));
  return bytes;
}

uint64_t forward_workspace(void*, const Problem* p) { return workspace(p, false); }
uint64_t backward_workspace(void*, const Problem* p) { return workspace(p, true); }

umfa_status forward(void* vimpl, const Problem* p, ErrorSink* err) {
  Impl* impl = static_cast<Impl*>(vimpl);
  const bool varlen = p->cu_seqlens_q != nullptr;
  Mapped m;
  map_options(*p, &m);
  const umfa_metal_tensor q = bshd(p->q, varlen), k = bshd(p->k, varlen), v = bshd(p->v, varlen),
                          out = bshd(p->out, varlen);
  umfa_metal_tensor lse;
  if (p->lse.present()) lse = lse_view(p->lse, varlen);
  char msg[1024] = {0};
  std::lock_guard<std::mutex> lock(impl->mutex);
  if (umfa_metal_host_forward(impl->host, &m.o, &q, &k, &v, &out, p->lse.present() ? &lse : nullptr,
                              msg, sizeof msg) != 0) {
    report(err, msg);
    return UMFA_STATUS_BACKEND_ERROR;
  }
  return UMFA_STATUS_OK;
}

// A contiguous f32 copy of a 4-D view (or room for one), page-aligned so the host wraps it in
// place; freed with free().
struct F32Copy {
  View view;
  float* data = nullptr;
  ~F32Copy() { std::free(data); }
  bool make(const View& like, bool fill) {
    view = like;
    view.dtype = UMFA_DTYPE_F32;
    const int64_t n = elements(like);
    const size_t page = page_size(), bytes = (static_cast<size_t>(n) * 4 + page - 1) / page * page;
    void* mem = nullptr;
    if (posix_memalign(&mem, page, bytes ? bytes : page) != 0) return false;
    data = static_cast<float*>(mem);
    view.data = data;
    view.strides[3] = 1;
    view.strides[2] = like.shape[3];
    view.strides[1] = like.shape[2] * view.strides[2];
    view.strides[0] = like.shape[1] * view.strides[1];
    if (fill) for_each(like, [&](int64_t src, int64_t dst) { data[dst] = load_elem(like.data, like.dtype, src); });
    return true;
  }
  void store_to(const View& dst) const {
    for_each(dst, [&](int64_t d, int64_t s) { store_elem(dst.data, dst.dtype, d, data[s]); });
  }
  // f(offset in `v`, contiguous index) for every element of v.
  template <typename F>
  static void for_each(const View& v, F f) {
    int64_t i = 0;
    for (int64_t a = 0; a < v.shape[0]; ++a)
      for (int64_t b = 0; b < v.shape[1]; ++b)
        for (int64_t c = 0; c < v.shape[2]; ++c)
          for (int64_t d = 0; d < v.shape[3]; ++d)
            f(a * v.strides[0] + b * v.strides[1] + c * v.strides[2] + d * v.strides[3], i++);
  }
};

umfa_status backward(void* vimpl, const Problem* p, ErrorSink* err) {
  Impl* impl = static_cast<Impl*>(vimpl);
  // Other dtype combinations (e.g. bf16 inputs with an f32 out, whose gradients are bf16): the
  // inputs, O and dO are widened to f32 (exact; the kernels compute in f32 from threadgroup
  // memory whatever the input dtype), the f32 kernels write f32 gradients, and each is rounded
  // once to its dtype, as a kernel storing that dtype from its f32 accumulators would.
  const Problem* const orig = p;
  Problem mixed;
  F32Copy q32, k32, v32, out32, dout32, dq32, dk32, dv32;
  const bool mixed_dtypes = mixed_backward(p);
  if (mixed_dtypes) {
    mixed = *p;
    if (!q32.make(p->q, true) || !k32.make(p->k, true) || !v32.make(p->v, true) ||
        !out32.make(p->out, true) || !dout32.make(p->dout, true) || !dq32.make(p->dq, false) ||
        !dk32.make(p->dk, false) || !dv32.make(p->dv, false))
      return UMFA_STATUS_OUT_OF_MEMORY;
    mixed.q = q32.view;
    mixed.k = k32.view;
    mixed.v = v32.view;
    mixed.out = out32.view;
    mixed.dout = dout32.view;
    mixed.dq = dq32.view;
    mixed.dk = dk32.view;
    mixed.dv = dv32.view;
    p = &mixed;
  }
  const bool varlen = p->cu_seqlens_q != nullptr;
  Mapped m;
  map_options(*p, &m);
  const umfa_metal_tensor q = bshd(p->q, varlen), k = bshd(p->k, varlen), v = bshd(p->v, varlen),
                          out = bshd(p->out, varlen), dout = bshd(p->dout, varlen),
                          dq = bshd(p->dq, varlen), dk = bshd(p->dk, varlen), dv = bshd(p->dv, varlen),
                          lse = lse_view(p->lse, varlen);
  char msg[1024] = {0};
  {
    std::lock_guard<std::mutex> lock(impl->mutex);
    if (umfa_metal_host_backward(impl->host, &m.o, &q, &k, &v, &out, &dout, &lse, &dq, &dk, &dv, msg,
                                 sizeof msg) != 0) {
      report(err, msg);
      return UMFA_STATUS_BACKEND_ERROR;
    }
  }
  if (mixed_dtypes) {
    dq32.store_to(orig->dq);
    dk32.store_to(orig->dk);
    dv32.store_to(orig->dv);
  }
  return UMFA_STATUS_OK;
}

// umfa_buffer memory: page-aligned host memory, whole pages, zero-filled. On Apple silicon the
// host wraps it with newBufferWithBytesNoCopy (shared storage): the MTLBuffer's contents pointer
// is this pointer, so the GPU reads and writes it in place.
umfa_status alloc(void*, uint64_t bytes, void** out_ptr, ErrorSink* err) {
  const uint64_t page = page_size();
  if (bytes > UINT64_MAX - page || bytes + page > SIZE_MAX) {
    report(err, "size overflows");
    return UMFA_STATUS_OUT_OF_MEMORY;
  }
  const size_t rounded = static_cast<size_t>((bytes + page - 1) / page * page);
  void* p = nullptr;
  if (posix_memalign(&p, static_cast<size_t>(page), rounded ? rounded : page) != 0 || !p)
    return UMFA_STATUS_OUT_OF_MEMORY;
  std::memset(p, 0, rounded ? rounded : page);
  *out_ptr = p;
  return UMFA_STATUS_OK;
}

void free_(void*, void* ptr) { std::free(ptr); }

// Unified memory: device and host are the same bytes.
umfa_status copy(void*, void* dst, const void* src, uint64_t bytes, ErrorSink*) {
  std::memmove(dst, src, static_cast<size_t>(bytes));
  return UMFA_STATUS_OK;
}

int32_t device_count() { return umfa_metal_host_device_count(); }

// umfa_attention_merge: O(rows * head_dim) work next to the forward that made the parts, so it
// runs on the CPU over the unified memory (no kernel): per row and head, in f32,
//   m = max(LSE, LSE_p), e = exp(min - m), LSE' = m + log1p(e), O' = w * O + w_p * O_p.
int64_t off(const View& v, int64_t a, int64_t b, int64_t c) {
  return a * v.strides[0] + b * v.strides[1] + c * v.strides[2];
}

umfa_status merge(void* vimpl, const MergeProblem* p, ErrorSink*) {
  Impl* impl = static_cast<Impl*>(vimpl);
  std::lock_guard<std::mutex> lock(impl->mutex);  // the GPU work of this context is done
  float acc[UMFA_MAX_HEAD_DIM];
  for (int64_t b = 0; b < p->batch; ++b)
    for (int64_t n = 0; n < p->seqlen; ++n)
      for (int64_t h = 0; h < p->heads; ++h) {
        float& lse = static_cast<float*>(p->lse.data)[off(p->lse, b, h, n)];
        const float part_lse = static_cast<const float*>(p->part_lse.data)[off(p->part_lse, b, h, n)];
        const bool out_is_max = lse > part_lse;
        const float m = out_is_max ? lse : part_lse;
        float w_out = 0.f, w_part = 0.f, merged = -INFINITY;
        if (m != -INFINITY) {  // else neither side sees a key: O' = 0, LSE' = -inf
          const float e = std::exp((out_is_max ? part_lse : lse) - m);
          const float w_max = 1.f / (1.f + e), w_other = e * w_max;
          w_out = out_is_max ? w_max : w_other;
          w_part = out_is_max ? w_other : w_max;
          merged = m + std::log1p(e);
        }
        const int64_t o = off(p->out, b, n, h), po = off(p->part_out, b, n, h);
        for (int64_t c = 0; c < p->head_dim; ++c) {
          // A side of weight 0 is never read (it may hold anything, even NaN).
          float a = w_out != 0.f ? w_out * load_elem(p->out.data, p->out.dtype, o + c * p->out.strides[3]) : 0.f;
          if (w_part != 0.f)
            a += w_part * load_elem(p->part_out.data, p->part_out.dtype, po + c * p->part_out.strides[3]);
          acc[c] = a;
        }
        for (int64_t c = 0; c < p->head_dim; ++c)
          store_elem(p->out.data, p->out.dtype, o + c * p->out.strides[3], acc[c]);
        lse = merged;
      }
  return UMFA_STATUS_OK;
}

const BackendTable kTable = {sizeof(BackendTable), "metal", create, destroy, forward_workspace,
                             backward_workspace, forward, backward, alloc, free_, copy, copy,
                             device_count, merge};

}  // namespace

extern "C" __attribute__((visibility("default"))) const BackendTable* umfa_metal_backend_v1(void) {
  return &kTable;
}
