// A stand-in for libumfa_cuda for the TypeScript tests: libumfa loads it through UMFA_CUDA_LIB
// like the real backend and sees two CUDA "devices" whose memory is host memory, so device
// tensors, uploads and downloads, device checks and CUDA contexts run on machines without a GPU.
//
// Unlike core/tests/mock_cuda_backend.cpp (which computes dense f32 forward only and fails every
// backward, to test the API layer's error paths), this one computes everything the CPU backend
// does: each forward/backward call is handed, as the same views, to a CPU context of the libumfa
// that loaded it, so results can be compared with a CPU context's. It also polices memory the
// way a GPU would: every tensor a call passes must lie inside a live allocation of this backend
// (host arrays or freed buffers make the call fail with BACKEND_ERROR), copies must target such
// memory, fresh allocations are not zeroed (the core zero-fills buffers), and destroying a
// context while its buffers are alive, or freeing unknown memory, aborts the process.
#include <dlfcn.h>

#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "backend.h"

namespace {

// The libumfa that loaded this library (already in the process: found by its SONAME).
struct Core {
  decltype(&umfa_context_create) context_create = nullptr;
  decltype(&umfa_context_destroy) context_destroy = nullptr;
  decltype(&umfa_last_error) last_error = nullptr;
  decltype(&umfa_attention_forward) forward = nullptr;
  decltype(&umfa_attention_backward) backward = nullptr;
};

bool load_core(Core* c) {
  void* h = dlopen("libumfa.so.1", RTLD_NOW | RTLD_NOLOAD);
  if (!h) return false;
  c->context_create = reinterpret_cast<decltype(c->context_create)>(dlsym(h, "umfa_context_create"));
  c->context_destroy = reinterpret_cast<decltype(c->context_destroy)>(dlsym(h, "umfa_context_destroy"));
  c->last_error = reinterpret_cast<decltype(c->last_error)>(dlsym(h, "umfa_last_error"));
  c->forward = reinterpret_cast<decltype(c->forward)>(dlsym(h, "umfa_attention_forward"));
  c->backward = reinterpret_cast<decltype(c->backward)>(dlsym(h, "umfa_attention_backward"));
  return c->context_create && c->context_destroy && c->last_error && c->forward && c->backward;
}

struct Impl {
  int32_t device;
  umfa_context* cpu;
};

struct Allocation {
  uint64_t bytes;
  const Impl* impl;
};

std::mutex g_mutex;
std::map<uintptr_t, Allocation> g_allocations;  // start address -> allocation
Core g_core;

void report(umfa::ErrorSink* err, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void report(umfa::ErrorSink* err, const char* fmt, ...) {
  if (!err || !err->message || !err->capacity) return;
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(err->message, err->capacity, fmt, ap);
  va_end(ap);
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "mock-cuda: %s\n", what);
  std::fflush(stderr);
  std::abort();
}

// Whether [p, p + bytes) lies inside one live allocation of this backend.
bool is_device(const void* p, uint64_t bytes) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_allocations.upper_bound(a);
  if (it == g_allocations.begin()) return false;
  --it;
  return a >= it->first && a - it->first <= it->second.bytes && bytes <= it->second.bytes - (a - it->first);
}

// Bytes from the first element of a view to the end of its last one (0 when it is empty).
uint64_t span(const umfa::View& v) {
  uint64_t last = 0;
  for (int i = 0; i < 4; ++i) {
    if (v.shape[i] == 0) return 0;
    last += static_cast<uint64_t>(v.shape[i] - 1) * static_cast<uint64_t>(v.strides[i]);
  }
  const uint64_t size = v.dtype == UMFA_DTYPE_F32 || v.dtype == UMFA_DTYPE_I32 ? 4 : v.dtype == UMFA_DTYPE_BOOL ? 1 : 2;
  return (last + 1) * size;
}

bool check_view(const umfa::View& v, const char* name, umfa::ErrorSink* err) {
  if (!v.present()) return true;
  const uint64_t bytes = span(v);
  if (bytes == 0 || is_device(v.data, bytes)) return true;
  report(err, "mock: %s (%p, %" PRIu64 " bytes) is not device memory of this backend", name, v.data, bytes);
  return false;
}

// A umfa_tensor over the first `rank` dimensions of a view, starting at dimension `from`.
umfa_tensor tensor_of(const umfa::View& v, int from, int rank) {
  umfa_tensor t;
  std::memset(&t, 0, sizeof t);
  t.data = v.data;
  t.dtype = v.dtype;
  t.device = UMFA_DEVICE_CPU;
  t.rank = rank;
  for (int i = 0; i < rank; ++i) {
    t.shape[i] = v.shape[from + i];
    t.strides[i] = v.strides[from + i];
  }
  return t;
}

// The problem as a call on a CPU context: the views as tensors (BSHD, or THD for varlen) and
// the resolved options (scale, softcap, window with the causal mask folded in, mask, ALiBi).
struct Call {
  umfa_attention_options o;
  umfa_tensor q, k, v, out, lse, dout, dq, dk, dv, mask, alibi, cu_q, cu_k;
  bool has_lse;
};

void make_call(const umfa::Problem& p, Call* c) {
  const bool varlen = p.cu_seqlens_q != nullptr;
  // Dense views are [B, N, H, D]; varlen ones [1, total, H, D] for THD tensors.
  auto seq = [&](const umfa::View& x) { return varlen ? tensor_of(x, 1, 3) : tensor_of(x, 0, 4); };
  c->q = seq(p.q), c->k = seq(p.k), c->v = seq(p.v), c->out = seq(p.out);
  c->dout = seq(p.dout), c->dq = seq(p.dq), c->dk = seq(p.dk), c->dv = seq(p.dv);
  // LSE views are {B, Hq, Nq, 1} (dense) or {1, Hq, total, 1} (varlen).
  c->has_lse = p.lse.present();
  c->lse = varlen ? tensor_of(p.lse, 1, 2) : tensor_of(p.lse, 0, 3);
  umfa_attention_options& o = c->o;
  o.struct_size = sizeof o;
  o.softmax_scale = p.scale;
  o.softcap = p.softcap;
  o.flags = p.flags;
  // Causal masks are folded into the window; top-left alignment only comes from a top-left
  // causal mask (window_right 0), which the CPU context folds the same way.
  o.mask_mode = p.bottom_right ? UMFA_MASK_NONE : UMFA_MASK_CAUSAL_TOP_LEFT;
  o.has_window = 1;
  o.window_left = p.window_left;
  o.window_right = p.window_right;
  if (p.mask.present()) {
    c->mask = tensor_of(p.mask, 0, 4);
    o.attn_mask = &c->mask;
  }
  if (p.alibi.present()) {
    c->alibi = tensor_of(p.alibi, 0, 2);
    o.alibi_slopes = &c->alibi;
  }
  if (varlen) {
    umfa::View cu;
    cu.dtype = UMFA_DTYPE_I32;
    cu.data = const_cast<int32_t*>(p.cu_seqlens_q);
    cu.shape[0] = p.batch + 1;
    cu.strides[0] = 1;
    c->cu_q = tensor_of(cu, 0, 1);
    cu.data = const_cast<int32_t*>(p.cu_seqlens_k);
    c->cu_k = tensor_of(cu, 0, 1);
    o.cu_seqlens_q = &c->cu_q;
    o.cu_seqlens_k = &c->cu_k;
    o.max_seqlen_q = p.seqlen_q;
    o.max_seqlen_k = p.seqlen_k;
  }
}

bool check_inputs(const umfa::Problem& p, bool backward, umfa::ErrorSink* err) {
  const struct {
    const umfa::View* v;
    const char* name;
  } views[] = {{&p.q, "q"},       {&p.k, "k"},       {&p.v, "v"},       {&p.out, "out"},
               {&p.lse, "lse"},   {&p.mask, "mask"}, {&p.alibi, "alibi"}, {&p.dout, "dout"},
               {&p.dq, "dq"},     {&p.dk, "dk"},     {&p.dv, "dv"}};
  for (const auto& x : views) {
    if (!backward && (x.v == &p.dout || x.v == &p.dq || x.v == &p.dk || x.v == &p.dv)) continue;
    if (!check_view(*x.v, x.name, err)) return false;
  }
  if (p.cu_seqlens_q) {
    const uint64_t bytes = static_cast<uint64_t>(p.batch + 1) * sizeof(int32_t);
    if (!is_device(p.cu_seqlens_q, bytes) || !is_device(p.cu_seqlens_k, bytes)) {
      report(err, "mock: cu_seqlens are not device memory of this backend");
      return false;
    }
  }
  return true;
}

umfa_status run(void* impl, const umfa::Problem* p, bool backward, umfa::ErrorSink* err) {
  if (!check_inputs(*p, backward, err)) return UMFA_STATUS_BACKEND_ERROR;
  umfa_context* cpu = static_cast<Impl*>(impl)->cpu;
  Call c{};
  make_call(*p, &c);
  const umfa_status st =
      backward ? g_core.backward(cpu, &c.o, &c.q, &c.k, &c.v, &c.out, &c.dout, &c.lse, &c.dq, &c.dk, &c.dv)
               : g_core.forward(cpu, &c.o, &c.q, &c.k, &c.v, &c.out, c.has_lse ? &c.lse : nullptr);
  if (st != UMFA_STATUS_OK) report(err, "mock: the CPU context refused the call: %s", g_core.last_error(cpu));
  return st;
}

umfa_status forward(void* impl, const umfa::Problem* p, umfa::ErrorSink* err) { return run(impl, p, false, err); }
umfa_status backward(void* impl, const umfa::Problem* p, umfa::ErrorSink* err) { return run(impl, p, true, err); }

umfa_status create(int32_t device_index, int32_t, void** out_impl, umfa::ErrorSink* err) {
  if (device_index < 0 || device_index > 1) {
    report(err, "mock: no such device");
    return UMFA_STATUS_INVALID_ARGUMENT;
  }
  umfa_context_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.backend = UMFA_BACKEND_CPU;
  o.num_threads = 1;
  umfa_context* cpu = nullptr;
  if (umfa_status st = g_core.context_create(&o, &cpu)) {
    report(err, "mock: no CPU context: %s", g_core.last_error(nullptr));
    return st;
  }
  *out_impl = new Impl{device_index, cpu};
  return UMFA_STATUS_OK;
}

void destroy(void* p) {
  Impl* impl = static_cast<Impl*>(p);
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    for (const auto& a : g_allocations)
      if (a.second.impl == impl) die("a context was destroyed while buffers made on it were alive");
  }
  g_core.context_destroy(impl->cpu);
  delete impl;
}

uint64_t workspace(void*, const umfa::Problem*) { return 0; }

umfa_status alloc(void* impl, uint64_t bytes, void** out, umfa::ErrorSink* err) {
  void* p = std::malloc(bytes ? bytes : 1);
  if (!p) {
    report(err, "mock: out of memory");
    return UMFA_STATUS_OUT_OF_MEMORY;
  }
  std::memset(p, 0, bytes);  // zero-filled, as backend.h requires of alloc
  std::lock_guard<std::mutex> lock(g_mutex);
  g_allocations[reinterpret_cast<uintptr_t>(p)] = {bytes, static_cast<const Impl*>(impl)};
  *out = p;
  return UMFA_STATUS_OK;
}

void release(void*, void* p) {
  if (!p) return;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_allocations.erase(reinterpret_cast<uintptr_t>(p)) != 1) die("free of memory this backend did not allocate (or freed twice)");
  }
  std::free(p);
}

umfa_status to_device(void*, void* dst, const void* src, uint64_t bytes, umfa::ErrorSink* err) {
  if (!is_device(dst, bytes)) {
    report(err, "mock: copy to %p (%" PRIu64 " bytes), not device memory", dst, bytes);
    return UMFA_STATUS_BACKEND_ERROR;
  }
  std::memcpy(dst, src, bytes);
  return UMFA_STATUS_OK;
}

umfa_status to_host(void*, void* dst, const void* src, uint64_t bytes, umfa::ErrorSink* err) {
  if (!is_device(src, bytes)) {
    report(err, "mock: copy from %p (%" PRIu64 " bytes), not device memory", src, bytes);
    return UMFA_STATUS_BACKEND_ERROR;
  }
  std::memcpy(dst, src, bytes);
  return UMFA_STATUS_OK;
}

int32_t device_count() { return g_core.forward ? 2 : 0; }

const umfa::BackendTable kTable = {sizeof(umfa::BackendTable), "mock-cuda", create, destroy, workspace, workspace,
                                   forward, backward, alloc, release, to_device, to_host, device_count};

}  // namespace

extern "C" __attribute__((visibility("default"))) const umfa::BackendTable* umfa_cuda_backend_v1() {
  static const bool loaded = load_core(&g_core);
  if (!loaded) std::fprintf(stderr, "mock-cuda: libumfa.so.1 is not loaded in this process\n");
  return &kTable;
}

// Live allocations (for tests that check device memory is freed).
extern "C" __attribute__((visibility("default"))) int umfa_mock_live_allocations() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return static_cast<int>(g_allocations.size());
}
