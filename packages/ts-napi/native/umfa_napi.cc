// The N-API addon of @umfa/napi: a thin layer over libumfa, which it loads at run time with
// dlopen() (Windows: LoadLibraryExW) from the path the TypeScript loader found (so the addon
// never pins a library location). Calls are encoded by @umfa/api into a "frame" (options struct + tensor slots); this
// file patches in the native addresses and calls the core, synchronously or on a libuv worker.
#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
// windows.h defines IN, OUT and OPTIONAL as empty macros; OUT names a slot below.
#undef IN
#undef OUT
#undef OPTIONAL
#else
#include <dlfcn.h>
#endif
#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "umfa.h"

namespace {

// ---- The layout @umfa/api encodes (packages/api/src/abi.ts). A mismatch fails the build. ----
constexpr size_t kOptionsSize = 112;
constexpr size_t kTensorSize = 88;
constexpr int kSlotCount = 13;
static_assert(sizeof(umfa_attention_options) == kOptionsSize, "umfa_attention_options size");
static_assert(sizeof(umfa_tensor) == kTensorSize, "umfa_tensor size");
static_assert(sizeof(umfa_context_options) == 24, "umfa_context_options size");
static_assert(offsetof(umfa_attention_options, mask_mode) == 4, "layout");
static_assert(offsetof(umfa_attention_options, softmax_scale) == 8, "layout");
static_assert(offsetof(umfa_attention_options, softcap) == 12, "layout");
static_assert(offsetof(umfa_attention_options, has_window) == 16, "layout");
static_assert(offsetof(umfa_attention_options, flags) == 20, "layout");
static_assert(offsetof(umfa_attention_options, window_left) == 24, "layout");
static_assert(offsetof(umfa_attention_options, window_right) == 32, "layout");
static_assert(offsetof(umfa_attention_options, attn_mask) == 40, "layout");
static_assert(offsetof(umfa_attention_options, alibi_slopes) == 48, "layout");
static_assert(offsetof(umfa_attention_options, cu_seqlens_q) == 56, "layout");
static_assert(offsetof(umfa_attention_options, cu_seqlens_k) == 64, "layout");
static_assert(offsetof(umfa_attention_options, max_seqlen_q) == 72, "layout");
static_assert(offsetof(umfa_attention_options, max_seqlen_k) == 80, "layout");
static_assert(offsetof(umfa_attention_options, stream) == 88, "layout");
static_assert(offsetof(umfa_attention_options, error_message) == 96, "layout");
static_assert(offsetof(umfa_attention_options, error_message_capacity) == 104, "layout");
static_assert(offsetof(umfa_tensor, dtype) == 8, "layout");
static_assert(offsetof(umfa_tensor, device) == 12, "layout");
static_assert(offsetof(umfa_tensor, device_index) == 16, "layout");
static_assert(offsetof(umfa_tensor, rank) == 20, "layout");
static_assert(offsetof(umfa_tensor, shape) == 24, "layout");
static_assert(offsetof(umfa_tensor, strides) == 56, "layout");
static_assert(offsetof(umfa_context_options, workspace_limit_bytes) == 16, "layout");

// The frame ends with the call's own error message buffer (options.error_message points at it).
constexpr size_t kMessageOffset = kOptionsSize + kSlotCount * kTensorSize;
constexpr size_t kMessageCapacity = 1024;
constexpr size_t kFrameSize = kMessageOffset + kMessageCapacity;
enum Slot { Q, K, V, OUT, LSE, DOUT, DQ, DK, DV, MASK, ALIBI, CU_Q, CU_K };
constexpr size_t kRelocated[] = {offsetof(umfa_attention_options, attn_mask),
                                 offsetof(umfa_attention_options, alibi_slopes),
                                 offsetof(umfa_attention_options, cu_seqlens_q),
                                 offsetof(umfa_attention_options, cu_seqlens_k),
                                 offsetof(umfa_attention_options, error_message)};

// ---- Loading the library: dlopen (POSIX), LoadLibraryExW (Windows; the path is UTF-8). ----

#if defined(_WIN32)
void* LibraryOpen(const std::string& path, std::string* error) {
  const int n = MultiByteToWideChar(CP_UTF8, 0, path.c_str(), -1, nullptr, 0);
  std::wstring wpath(n > 0 ? static_cast<size_t>(n) : 1, L'\0');
  if (n > 0) MultiByteToWideChar(CP_UTF8, 0, path.c_str(), -1, &wpath[0], n);
  // The library's folder is searched for the DLLs it loads itself (the CUDA backend).
  HMODULE h = LoadLibraryExW(wpath.c_str(), nullptr,
                             LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR | LOAD_LIBRARY_SEARCH_DEFAULT_DIRS);
  if (h == nullptr && GetLastError() == ERROR_INVALID_PARAMETER) {
    h = LoadLibraryExW(wpath.c_str(), nullptr, LOAD_WITH_ALTERED_SEARCH_PATH);
  }
  if (h == nullptr) *error = "LoadLibraryExW failed with error " + std::to_string(GetLastError());
  return reinterpret_cast<void*>(h);
}
void* LibrarySymbol(void* h, const char* name) {
  return reinterpret_cast<void*>(GetProcAddress(static_cast<HMODULE>(h), name));
}
void LibraryClose(void* h) { FreeLibrary(static_cast<HMODULE>(h)); }
#else
void* LibraryOpen(const std::string& path, std::string* error) {
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* e = dlerror();
    *error = e ? e : "dlopen failed";
  }
  return h;
}
void* LibrarySymbol(void* h, const char* name) { return dlsym(h, name); }
void LibraryClose(void* h) { dlclose(h); }
#endif

// ---- Entry points, resolved with LibrarySymbol. ----
struct Api {
  void* handle = nullptr;
  std::string path;
  decltype(&umfa_abi_version) abi_version = nullptr;
  decltype(&umfa_version) version = nullptr;
  decltype(&umfa_version_string) version_string = nullptr;
  decltype(&umfa_build_info) build_info = nullptr;
  decltype(&umfa_status_string) status_string = nullptr;
  decltype(&umfa_backend_available) backend_available = nullptr;
  decltype(&umfa_context_create) context_create = nullptr;
  decltype(&umfa_context_destroy) context_destroy = nullptr;
  decltype(&umfa_context_backend) context_backend = nullptr;
  decltype(&umfa_context_num_threads) context_num_threads = nullptr;
  decltype(&umfa_last_error) last_error = nullptr;
  decltype(&umfa_buffer_create) buffer_create = nullptr;
  decltype(&umfa_buffer_destroy) buffer_destroy = nullptr;
  decltype(&umfa_buffer_data) buffer_data = nullptr;
  decltype(&umfa_buffer_upload) buffer_upload = nullptr;
  decltype(&umfa_buffer_download) buffer_download = nullptr;
  decltype(&umfa_attention_forward) forward = nullptr;
  decltype(&umfa_attention_backward) backward = nullptr;
  decltype(&mfa_create_context) mfa_create = nullptr;
  decltype(&mfa_destroy_context) mfa_destroy = nullptr;
  decltype(&mfa_buffer_from_ptr) mfa_wrap = nullptr;
  decltype(&mfa_destroy_buffer) mfa_unwrap = nullptr;
  decltype(&mfa_attention_forward) mfa_forward = nullptr;
  decltype(&mfa_error_string) mfa_error = nullptr;
};

Api g_api;
bool g_loaded = false;
uint64_t g_last_data[kSlotCount] = {};

template <typename F>
bool Resolve(void* h, const char* name, F* out, std::vector<std::string>* missing) {
  void* sym = LibrarySymbol(h, name);
  if (sym == nullptr) {
    if (missing) missing->push_back(name);
    return false;
  }
  *out = reinterpret_cast<F>(sym);
  return true;
}

void RequireLoaded(const Napi::Env& env) {
  if (!g_loaded) throw Napi::Error::New(env, "umfa: the native library is not loaded");
}

uint64_t ToU64(const Napi::Value& v) {
  if (v.IsBigInt()) {
    bool lossless = true;
    return v.As<Napi::BigInt>().Uint64Value(&lossless);
  }
  if (v.IsNumber()) return static_cast<uint64_t>(v.As<Napi::Number>().Int64Value());
  return 0;
}

template <typename T>
T* ToPtr(const Napi::Value& v) {
  return reinterpret_cast<T*>(static_cast<uintptr_t>(ToU64(v)));
}

Napi::Value BigPtr(Napi::Env env, const void* p) {
  return Napi::BigInt::New(env, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)));
}

size_t ElementSize(napi_typedarray_type type) {
  switch (type) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array:
      return 1;
    case napi_int16_array:
    case napi_uint16_array:
      return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array:
      return 4;
    case napi_float64_array:
    case napi_bigint64_array:
    case napi_biguint64_array:
      return 8;
    default:
      return 2;  // float16 arrays (newer Node-API versions)
  }
}

// Address of a typed array's or DataView's first byte, with its length in bytes (nullptr and 0
// for anything else). Uses the element pointer Node-API reports, which also covers typed arrays
// over a SharedArrayBuffer.
uint8_t* ViewData(const Napi::Value& v, size_t* length) {
  *length = 0;
  napi_env env = v.Env();
  void* data = nullptr;
  if (v.IsTypedArray()) {
    napi_typedarray_type type;
    size_t count = 0;
    if (napi_get_typedarray_info(env, v, &type, &count, &data, nullptr, nullptr) != napi_ok) return nullptr;
    *length = count * ElementSize(type);
    return static_cast<uint8_t*>(data);
  }
  if (v.IsDataView()) {
    if (napi_get_dataview_info(env, v, length, &data, nullptr, nullptr) != napi_ok) return nullptr;
    return static_cast<uint8_t*>(data);
  }
  if (v.IsArrayBuffer()) {
    if (napi_get_arraybuffer_info(env, v, &data, length) != napi_ok) return nullptr;
    return static_cast<uint8_t*>(data);
  }
  return nullptr;
}

// Stands in the data field of views that need no bytes (empty ones, and those the core refuses
// for negative extents or strides without reading them): never the frame, never caller memory.
alignas(64) uint8_t g_placeholder[64];

// Bytes the view encoded in a slot spans from its data pointer (0 when it is empty or has a
// negative extent or stride; SIZE_MAX when the span does not fit). Read from the frame, which
// the caller's code cannot reach, so the check below compares like with like.
size_t SlotSpan(const uint8_t* slot) {
  umfa_tensor t;
  std::memcpy(&t, slot, sizeof t);
  if (t.rank < 0 || t.rank > UMFA_MAX_RANK) return 0;  // the core refuses the rank
  int64_t esize = 0;
  switch (t.dtype) {
    case UMFA_DTYPE_F32:
    case UMFA_DTYPE_I32:
      esize = 4;
      break;
    case UMFA_DTYPE_F16:
    case UMFA_DTYPE_BF16:
      esize = 2;
      break;
    case UMFA_DTYPE_BOOL:
      esize = 1;
      break;
    default:
      return 0;  // the core refuses the dtype
  }
  // Empty (an extent of 0) or refused by the core (a negative extent or stride) whatever the other
  // extents are, as the shared TypeScript code counts it: decided before any span can overflow.
  for (int d = 0; d < t.rank; d++) {
    if (t.shape[d] <= 0 || t.strides[d] < 0) return 0;
  }
  int64_t last = 0;
  for (int d = 0; d < t.rank; d++) {
    int64_t span;
    if (__builtin_mul_overflow(t.shape[d] - 1, t.strides[d], &span) ||
        __builtin_add_overflow(last, span, &last))
      return SIZE_MAX;
  }
  int64_t bytes;
  if (__builtin_add_overflow(last, int64_t{1}, &bytes) || __builtin_mul_overflow(bytes, esize, &bytes))
    return SIZE_MAX;
  return static_cast<size_t>(bytes);
}

// A prepared call: the frame's memory with every address patched in, and the tensor pointers
// to pass (nullptr for unused slots).
struct Prepared {
  uint8_t* frame = nullptr;
  const umfa_tensor* slot[kSlotCount] = {};
};

// info: (ctx, frame ArrayBuffer, view_0 .. view_12); a view is a typed array (host memory, passed
// in place) or a BigInt address (device memory of a device tensor).
bool Prepare(const Napi::CallbackInfo& info, Prepared* p) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[1].IsArrayBuffer()) {
    throw Napi::TypeError::New(env, "umfa: expected (context, frame, ...views)");
  }
  Napi::ArrayBuffer ab = info[1].As<Napi::ArrayBuffer>();
  if (ab.ByteLength() < kFrameSize) throw Napi::RangeError::New(env, "umfa: frame too small");
  uint8_t* base = static_cast<uint8_t*>(ab.Data());
  p->frame = base;
  for (size_t field : kRelocated) {
    uint64_t off;
    std::memcpy(&off, base + field, sizeof off);
    if (off != 0) {
      if (off < kOptionsSize || off >= kFrameSize) throw Napi::RangeError::New(env, "umfa: bad frame");
      uint64_t addr = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(base + off));
      std::memcpy(base + field, &addr, sizeof addr);
    }
  }
  for (int i = 0; i < kSlotCount; i++) {
    size_t arg = static_cast<size_t>(2 + i);
    uint8_t* slot = base + kOptionsSize + static_cast<size_t>(i) * kTensorSize;
    if (arg >= info.Length() || info[arg].IsUndefined() || info[arg].IsNull()) {
      p->slot[i] = nullptr;
      g_last_data[i] = 0;
      continue;
    }
    uint64_t addr;
    if (info[arg].IsBigInt()) {
      addr = ToU64(info[arg]);
    } else {
      size_t length = 0;
      uint8_t* data = ViewData(info[arg], &length);
      if (!info[arg].IsTypedArray() && !info[arg].IsDataView()) {
        throw Napi::TypeError::New(env, "umfa: tensor data must be a typed array or an address");
      }
      // The last check before the core sees the memory: the view must still cover what its
      // shape needs (its buffer may have been detached or shrunk since it was encoded).
      const size_t needed = SlotSpan(slot);
      if (needed == 0) {
        data = g_placeholder;
      } else if (data == nullptr || length < needed) {
        throw Napi::RangeError::New(env, "umfa: slot " + std::to_string(i) + " needs " + std::to_string(needed) +
                                             " bytes but its view holds " + std::to_string(length));
      }
      addr = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(data));
    }
    std::memcpy(slot, &addr, sizeof addr);
    g_last_data[i] = addr;
    p->slot[i] = reinterpret_cast<const umfa_tensor*>(slot);
  }
  return true;
}

umfa_status Run(bool backward, umfa_context* ctx, const Prepared& p) {
  const auto* opts = reinterpret_cast<const umfa_attention_options*>(p.frame);
  if (!backward) {
    return g_api.forward(ctx, opts, p.slot[Q], p.slot[K], p.slot[V], p.slot[OUT], p.slot[LSE]);
  }
  return g_api.backward(ctx, opts, p.slot[Q], p.slot[K], p.slot[V], p.slot[OUT], p.slot[DOUT],
                        p.slot[LSE], p.slot[DQ], p.slot[DK], p.slot[DV]);
}

// ---- Exported functions ----

// load(path) -> { abiVersion, version, missing: string[] }
Napi::Value Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  if (g_loaded && g_api.path != path) {
    throw Napi::Error::New(env, "umfa: a different native library is already loaded: " + g_api.path);
  }
  if (!g_loaded) {
    std::string load_error;
    void* h = LibraryOpen(path, &load_error);
    if (h == nullptr) {
      throw Napi::Error::New(env, std::string("cannot load ") + path + ": " + load_error);
    }
    Api api;
    api.handle = h;
    api.path = path;
    if (!Resolve(h, "umfa_abi_version", &api.abi_version, nullptr)) {
      LibraryClose(h);
      throw Napi::Error::New(env, path + " is not a umfa library (no umfa_abi_version)");
    }
    std::vector<std::string> missing;
    Resolve(h, "umfa_version", &api.version, &missing);
    Resolve(h, "umfa_version_string", &api.version_string, &missing);
    Resolve(h, "umfa_build_info", &api.build_info, &missing);
    Resolve(h, "umfa_status_string", &api.status_string, &missing);
    Resolve(h, "umfa_backend_available", &api.backend_available, &missing);
    Resolve(h, "umfa_context_create", &api.context_create, &missing);
    Resolve(h, "umfa_context_destroy", &api.context_destroy, &missing);
    Resolve(h, "umfa_context_backend", &api.context_backend, &missing);
    Resolve(h, "umfa_context_num_threads", &api.context_num_threads, &missing);
    Resolve(h, "umfa_last_error", &api.last_error, &missing);
    Resolve(h, "umfa_buffer_create", &api.buffer_create, &missing);
    Resolve(h, "umfa_buffer_destroy", &api.buffer_destroy, &missing);
    Resolve(h, "umfa_buffer_data", &api.buffer_data, &missing);
    Resolve(h, "umfa_buffer_upload", &api.buffer_upload, &missing);
    Resolve(h, "umfa_buffer_download", &api.buffer_download, &missing);
    Resolve(h, "umfa_attention_forward", &api.forward, &missing);
    Resolve(h, "umfa_attention_backward", &api.backward, &missing);
    Resolve(h, "mfa_create_context", &api.mfa_create, &missing);
    Resolve(h, "mfa_destroy_context", &api.mfa_destroy, &missing);
    Resolve(h, "mfa_buffer_from_ptr", &api.mfa_wrap, &missing);
    Resolve(h, "mfa_destroy_buffer", &api.mfa_unwrap, &missing);
    Resolve(h, "mfa_attention_forward", &api.mfa_forward, &missing);
    Resolve(h, "mfa_error_string", &api.mfa_error, &missing);
    Napi::Object result = Napi::Object::New(env);
    result.Set("abiVersion", Napi::Number::New(env, api.abi_version()));
    result.Set("version", api.version_string ? Napi::String::New(env, api.version_string())
                                             : Napi::String::New(env, ""));
    Napi::Array m = Napi::Array::New(env, missing.size());
    for (size_t i = 0; i < missing.size(); i++) m.Set(static_cast<uint32_t>(i), missing[i]);
    result.Set("missing", m);
    if (api.abi_version() != UMFA_ABI_VERSION || !missing.empty()) {
      // Refused by the caller: do not keep it loaded.
      LibraryClose(h);
      return result;
    }
    g_api = api;
    g_loaded = true;
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("abiVersion", Napi::Number::New(env, g_api.abi_version()));
  result.Set("version", Napi::String::New(env, g_api.version_string()));
  result.Set("missing", Napi::Array::New(env, 0));
  return result;
}

Napi::Value AbiVersion(const Napi::CallbackInfo& info) {
  RequireLoaded(info.Env());
  return Napi::Number::New(info.Env(), g_api.abi_version());
}
Napi::Value Version(const Napi::CallbackInfo& info) {
  RequireLoaded(info.Env());
  return Napi::Number::New(info.Env(), g_api.version());
}
Napi::Value VersionString(const Napi::CallbackInfo& info) {
  RequireLoaded(info.Env());
  return Napi::String::New(info.Env(), g_api.version_string());
}
Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  RequireLoaded(info.Env());
  return Napi::String::New(info.Env(), g_api.build_info());
}
Napi::Value StatusString(const Napi::CallbackInfo& info) {
  RequireLoaded(info.Env());
  return Napi::String::New(info.Env(), g_api.status_string(info[0].As<Napi::Number>().Int32Value()));
}
Napi::Value Pair(Napi::Env env, int32_t a, Napi::Value b) {
  Napi::Array r = Napi::Array::New(env, 2);
  r.Set(0u, Napi::Number::New(env, a));
  r.Set(1u, b);
  return r;
}
Napi::Value BackendAvailable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  int32_t available = 0, count = 0;
  umfa_status st =
      g_api.backend_available(info[0].As<Napi::Number>().Uint32Value(), &available, &count);
  Napi::Array r = Napi::Array::New(env, 3);
  r.Set(0u, Napi::Number::New(env, st));
  r.Set(1u, Napi::Boolean::New(env, available != 0));
  r.Set(2u, Napi::Number::New(env, count));
  return r;
}
Napi::Value ContextCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  size_t length = 0;
  uint8_t* bytes = ViewData(info[0], &length);
  if (bytes == nullptr || length < sizeof(umfa_context_options)) {
    throw Napi::TypeError::New(env, "umfa: context options must be 24 bytes");
  }
  umfa_context_options opts;
  std::memcpy(&opts, bytes, sizeof opts);
  umfa_context* ctx = nullptr;
  umfa_status st = g_api.context_create(&opts, &ctx);
  return Pair(env, st, BigPtr(env, ctx));
}
Napi::Value ContextDestroy(const Napi::CallbackInfo& info) {
  RequireLoaded(info.Env());
  g_api.context_destroy(ToPtr<umfa_context>(info[0]));
  return info.Env().Undefined();
}
Napi::Value ContextBackend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  uint32_t b = 0;
  umfa_status st = g_api.context_backend(ToPtr<const umfa_context>(info[0]), &b);
  return Pair(env, st, Napi::Number::New(env, b));
}
Napi::Value ContextNumThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  int32_t n = 0;
  umfa_status st = g_api.context_num_threads(ToPtr<const umfa_context>(info[0]), &n);
  return Pair(env, st, Napi::Number::New(env, n));
}
Napi::Value LastError(const Napi::CallbackInfo& info) {
  RequireLoaded(info.Env());
  return Napi::String::New(info.Env(), g_api.last_error(ToPtr<const umfa_context>(info[0])));
}

// bufferCreate(ctx, bytes) -> [status, buffer]
Napi::Value BufferCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  umfa_buffer* b = nullptr;
  umfa_status st = g_api.buffer_create(ToPtr<umfa_context>(info[0]), ToU64(info[1]), &b);
  return Pair(env, st, BigPtr(env, b));
}
Napi::Value BufferDestroy(const Napi::CallbackInfo& info) {
  RequireLoaded(info.Env());
  g_api.buffer_destroy(ToPtr<umfa_buffer>(info[0]));
  return info.Env().Undefined();
}
// bufferData(buffer) -> [status, pointer]
Napi::Value BufferData(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  void* p = nullptr;
  umfa_status st = g_api.buffer_data(ToPtr<const umfa_buffer>(info[0]), &p);
  return Pair(env, st, BigPtr(env, p));
}
// bufferUpload(buffer, offset, src) / bufferDownload(buffer, offset, dst): every byte of the view.
Napi::Value BufferCopy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  size_t length = 0;
  uint8_t* data = ViewData(info[2], &length);
  if (data == nullptr && length > 0) throw Napi::TypeError::New(env, "umfa: expected a typed array");
  umfa_buffer* b = ToPtr<umfa_buffer>(info[0]);
  const uint64_t offset = ToU64(info[1]);
  umfa_status st = info.Data() != nullptr ? g_api.buffer_download(b, offset, data, length)
                                          : g_api.buffer_upload(b, offset, data, length);
  return Napi::Number::New(env, st);
}

// call(backward: bool, ctx, frame, ...views) -> status
Napi::Value Call(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  Prepared p;
  Prepare(info, &p);
  bool backward = info.Data() != nullptr;
  return Napi::Number::New(env, Run(backward, ToPtr<umfa_context>(info[0]), p));
}

class CallWorker : public Napi::AsyncWorker {
 public:
  CallWorker(Napi::Env env, bool backward, umfa_context* ctx, const Prepared& p,
             const Napi::CallbackInfo& info)
      : Napi::AsyncWorker(env, "umfa.attention"),
        deferred_(Napi::Promise::Deferred::New(env)),
        backward_(backward),
        ctx_(ctx),
        prepared_(p) {
    // Keep the frame and every typed array alive (and in place) until the call is done.
    for (size_t i = 1; i < info.Length(); i++) {
      if (info[i].IsObject()) refs_.push_back(Napi::Persistent(info[i].As<Napi::Object>()));
    }
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    status_ = Run(backward_, ctx_, prepared_);
    if (status_ != UMFA_STATUS_OK) {
      // This call's own message (the frame's buffer); the context's last error may already be
      // another failing call's. This thread's last error is the same message, as a fallback.
      const char* own = reinterpret_cast<const char*>(prepared_.frame + kMessageOffset);
      message_ = own[0] != '\0' ? std::string(own, strnlen(own, kMessageCapacity))
                                 : std::string(g_api.last_error(nullptr));
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object r = Napi::Object::New(env);
    r.Set("status", Napi::Number::New(env, status_));
    if (status_ != UMFA_STATUS_OK) r.Set("message", Napi::String::New(env, message_));
    refs_.clear();
    deferred_.Resolve(r);
  }
  void OnError(const Napi::Error& e) override {
    refs_.clear();
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  bool backward_;
  umfa_context* ctx_;
  Prepared prepared_;
  umfa_status status_ = UMFA_STATUS_OK;
  std::string message_;
  std::vector<Napi::ObjectReference> refs_;
};

// callAsync(ctx, frame, ...views) -> Promise<{ status, message? }>
Napi::Value CallAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  Prepared p;
  Prepare(info, &p);
  bool backward = info.Data() != nullptr;
  auto* worker = new CallWorker(env, backward, ToPtr<umfa_context>(info[0]), p, info);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value MfaCreateContext(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  mfa_context_t ctx = nullptr;
  mfa_error_t code = g_api.mfa_create(&ctx);
  return Pair(env, code, BigPtr(env, ctx));
}
Napi::Value MfaDestroyContext(const Napi::CallbackInfo& info) {
  RequireLoaded(info.Env());
  g_api.mfa_destroy(ToPtr<void>(info[0]));
  return info.Env().Undefined();
}
// mfaForward(ctx, q, k, v, out, batch, seq_q, seq_kv, heads, head_dim, scale, causal,
//            ip, imp, op, tq, tk, tv, to) -> code
Napi::Value MfaForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireLoaded(env);
  if (info.Length() < 19) throw Napi::TypeError::New(env, "umfa: mfaForward takes 19 arguments");
  mfa_context_t ctx = ToPtr<void>(info[0]);
  mfa_buffer_t bufs[4] = {};
  mfa_error_t code = MFA_SUCCESS;
  int made = 0;
  for (int i = 0; i < 4 && code == MFA_SUCCESS; i++) {
    size_t length = 0;
    uint8_t* data = ViewData(info[static_cast<size_t>(1 + i)], &length);
    code = g_api.mfa_wrap(ctx, data, length, &bufs[i]);
    if (code == MFA_SUCCESS) made++;
  }
  auto u32 = [&](size_t i) { return info[i].As<Napi::Number>().Uint32Value(); };
  auto i32 = [&](size_t i) { return info[i].As<Napi::Number>().Int32Value(); };
  auto flag = [&](size_t i) { return info[i].ToBoolean().Value(); };
  if (code == MFA_SUCCESS) {
    code = g_api.mfa_forward(ctx, bufs[0], bufs[1], bufs[2], bufs[3], u32(5), u32(6),
                                       u32(7), u32(8), static_cast<uint16_t>(u32(9)),
                                       info[10].As<Napi::Number>().FloatValue(), flag(11), i32(12),
                                       i32(13), i32(14), flag(15), flag(16), flag(17), flag(18));
  }
  for (int i = 0; i < made; i++) g_api.mfa_unwrap(bufs[i]);
  return Napi::Number::New(env, code);
}
Napi::Value MfaErrorString(const Napi::CallbackInfo& info) {
  RequireLoaded(info.Env());
  return Napi::String::New(info.Env(), g_api.mfa_error(info[0].As<Napi::Number>().Int32Value()));
}

Napi::Value AddressOf(const Napi::CallbackInfo& info) {
  size_t length = 0;
  uint8_t* data = ViewData(info[0], &length);
  return BigPtr(info.Env(), data);
}
Napi::Value LastDataAddresses(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array r = Napi::Array::New(env, kSlotCount);
  for (int i = 0; i < kSlotCount; i++) r.Set(static_cast<uint32_t>(i), Napi::BigInt::New(env, g_last_data[i]));
  return r;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  static int backward_tag = 1;
  static int download_tag = 1;
  exports.Set("abiVersionTargeted", Napi::Number::New(env, UMFA_ABI_VERSION));
  exports.Set("load", Napi::Function::New(env, Load, "load"));
  exports.Set("abiVersion", Napi::Function::New(env, AbiVersion, "abiVersion"));
  exports.Set("version", Napi::Function::New(env, Version, "version"));
  exports.Set("versionString", Napi::Function::New(env, VersionString, "versionString"));
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo, "buildInfo"));
  exports.Set("statusString", Napi::Function::New(env, StatusString, "statusString"));
  exports.Set("backendAvailable", Napi::Function::New(env, BackendAvailable, "backendAvailable"));
  exports.Set("contextCreate", Napi::Function::New(env, ContextCreate, "contextCreate"));
  exports.Set("contextDestroy", Napi::Function::New(env, ContextDestroy, "contextDestroy"));
  exports.Set("contextBackend", Napi::Function::New(env, ContextBackend, "contextBackend"));
  exports.Set("contextNumThreads", Napi::Function::New(env, ContextNumThreads, "contextNumThreads"));
  exports.Set("lastError", Napi::Function::New(env, LastError, "lastError"));
  exports.Set("bufferCreate", Napi::Function::New(env, BufferCreate, "bufferCreate"));
  exports.Set("bufferDestroy", Napi::Function::New(env, BufferDestroy, "bufferDestroy"));
  exports.Set("bufferData", Napi::Function::New(env, BufferData, "bufferData"));
  exports.Set("bufferUpload", Napi::Function::New(env, BufferCopy, "bufferUpload", nullptr));
  exports.Set("bufferDownload", Napi::Function::New(env, BufferCopy, "bufferDownload", &download_tag));
  exports.Set("forward", Napi::Function::New(env, Call, "forward", nullptr));
  exports.Set("backward", Napi::Function::New(env, Call, "backward", &backward_tag));
  exports.Set("forwardAsync", Napi::Function::New(env, CallAsync, "forwardAsync", nullptr));
  exports.Set("backwardAsync", Napi::Function::New(env, CallAsync, "backwardAsync", &backward_tag));
  exports.Set("mfaCreateContext", Napi::Function::New(env, MfaCreateContext, "mfaCreateContext"));
  exports.Set("mfaDestroyContext", Napi::Function::New(env, MfaDestroyContext, "mfaDestroyContext"));
  exports.Set("mfaForward", Napi::Function::New(env, MfaForward, "mfaForward"));
  exports.Set("mfaErrorString", Napi::Function::New(env, MfaErrorString, "mfaErrorString"));
  exports.Set("addressOf", Napi::Function::New(env, AddressOf, "addressOf"));
  exports.Set("lastDataAddresses", Napi::Function::New(env, LastDataAddresses, "lastDataAddresses"));
  return exports;
}

}  // namespace

NODE_API_MODULE(umfa_napi, Init)
