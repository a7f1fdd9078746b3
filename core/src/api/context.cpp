// Section 3 of umfa.h: contexts, backend selection, build information.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include "api/internal.h"
#include "cpu/cpu_backend.h"
#include "platform/platform.h"

namespace umfa {
namespace api {

int32_t default_num_threads() {
  if (const char* env = std::getenv("UMFA_NUM_THREADS"); env && *env) {
    errno = 0;
    char* end = nullptr;
    long n = std::strtol(env, &end, 10);
    if (errno == 0 && end && *end == '\0' && n >= 1 && n <= 4096) return static_cast<int32_t>(n);
  }
  if (const int n = platform::available_cpus(); n >= 1) return n;
  unsigned hc = std::thread::hardware_concurrency();
  return hc >= 1 ? static_cast<int32_t>(hc) : 1;
}

void* host_alloc_zeroed(uint64_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes > SIZE_MAX - 64) return nullptr;
  void* p = platform::aligned_alloc(64, static_cast<size_t>(bytes));
  if (!p) return nullptr;
  std::memset(p, 0, static_cast<size_t>(bytes));
  return p;
}

void host_free(void* p) { platform::aligned_free(p); }

namespace {

constexpr const char* kCreate = "umfa_context_create";

// Creates the backend state of `ctx` with `table`; reports failures on the thread.
umfa_status create_backend(umfa_context* ctx, const BackendTable* table) {
  char msg[512] = {0};
  ErrorSink sink{msg, sizeof msg};
  void* impl = nullptr;
  umfa_status st = table->create(ctx->device_index, ctx->num_threads, &impl, &sink);
  if (st != UMFA_STATUS_OK) {
    return fail(nullptr, st, "%s: the %s backend failed to start: %s", kCreate, table->name,
                msg[0] ? msg : umfa_status_string(st));
  }
  ctx->table = table;
  ctx->impl = impl;
  return UMFA_STATUS_OK;
}

// Metal for UMFA_BACKEND_METAL, or for AUTO on Apple platforms (falling back to the CPU when
// Metal is missing or its kernels do not compile). Sets *used when the context runs on Metal.
umfa_status create_metal(umfa_context* ctx, const umfa_context_options& o, bool* used) {
  *used = false;
  if (o.backend != UMFA_BACKEND_METAL && o.backend != UMFA_BACKEND_AUTO) return UMFA_STATUS_OK;
  const MetalState& metal = metal_state();
  const bool usable = metal.table && metal.device_count > 0;
  if (o.backend == UMFA_BACKEND_AUTO && !(usable && metal.auto_eligible)) return UMFA_STATUS_OK;
  if (!usable)
    return fail(nullptr, UMFA_STATUS_BACKEND_UNAVAILABLE, "%s: the Metal backend is unavailable: %s",
                kCreate, metal.reason.c_str());
  if (o.device_index >= metal.device_count)
    return fail(nullptr, UMFA_STATUS_INVALID_ARGUMENT,
                "%s: options->device_index (%d) is not below the Metal device count (%d)", kCreate,
                o.device_index, metal.device_count);
  ctx->backend = UMFA_BACKEND_METAL;
  ctx->device = UMFA_DEVICE_CPU;  // unified memory: tensors are host pointers
  umfa_status st = create_backend(ctx, metal.table);
  *used = st == UMFA_STATUS_OK;
  // AUTO never fails because of Metal (e.g. kernels the compiler rejects): the CPU serves.
  return o.backend == UMFA_BACKEND_AUTO ? UMFA_STATUS_OK : st;
}

std::string cpu_features() {
  std::string s;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  s = "x86-64";
  if (__builtin_cpu_supports("avx2")) s += " avx2";
  if (__builtin_cpu_supports("fma")) s += " fma";
  if (__builtin_cpu_supports("avx512f")) s += " avx512f";
  if (__builtin_cpu_supports("avx512bw")) s += " avx512bw";
#elif defined(__aarch64__)
  s = "arm64 neon";
#else
  s = "generic";
#endif
  return s;
}

}  // namespace
}  // namespace api
}  // namespace umfa

using namespace umfa::api;

extern "C" {

UMFA_API umfa_status umfa_context_create(const umfa_context_options* options,
                                         umfa_context** out_context) {
  if (!out_context) return fail(nullptr, UMFA_STATUS_NULL_POINTER, "%s: out_context is NULL", kCreate);
  umfa_context_options o;
  std::memset(&o, 0, sizeof o);
  if (options) {
    uint32_t size = options->struct_size;
    if (size < sizeof(uint32_t))
      return fail(nullptr, UMFA_STATUS_STRUCT_VERSION,
                  "%s: options->struct_size (%u) is too small to hold struct_size", kCreate, size);
    if (size > sizeof o)
      return fail(nullptr, UMFA_STATUS_STRUCT_VERSION,
                  "%s: options->struct_size (%u) is larger than this library's "
                  "umfa_context_options (%zu): the caller needs a newer libumfa",
                  kCreate, size, sizeof o);
    std::memcpy(&o, options, size);  // a smaller struct leaves the tail zero (= defaults)
  }
  if (o.backend > UMFA_BACKEND_METAL)
    return fail(nullptr, UMFA_STATUS_INVALID_ARGUMENT, "%s: options->backend (%u) is not a UMFA_BACKEND_* value",
                kCreate, o.backend);
  if (o.device_index < 0)
    return fail(nullptr, UMFA_STATUS_INVALID_ARGUMENT, "%s: options->device_index (%d) is negative",
                kCreate, o.device_index);
  if (o.num_threads < 0)
    return fail(nullptr, UMFA_STATUS_INVALID_ARGUMENT, "%s: options->num_threads (%d) is negative",
                kCreate, o.num_threads);

  umfa_context* ctx = new (std::nothrow) umfa_context();
  if (!ctx) return fail(nullptr, UMFA_STATUS_OUT_OF_MEMORY, "%s: out of memory", kCreate);
  ctx->num_threads = o.num_threads > 0 ? o.num_threads : default_num_threads();
  ctx->workspace_limit = o.workspace_limit_bytes;
  ctx->device_index = o.device_index;

  umfa_status st = UMFA_STATUS_OK;
  bool use_cuda = false;
  if (o.backend == UMFA_BACKEND_CUDA || o.backend == UMFA_BACKEND_AUTO) {
    const CudaState& cuda = cuda_state();
    bool usable = cuda.table && cuda.device_count > 0;
    if (o.backend == UMFA_BACKEND_CUDA && !usable) {
      st = fail(nullptr, UMFA_STATUS_BACKEND_UNAVAILABLE, "%s: the CUDA backend is unavailable: %s",
                kCreate, cuda.reason.c_str());
    } else if (usable && o.device_index >= cuda.device_count) {
      st = fail(nullptr, UMFA_STATUS_INVALID_ARGUMENT,
                "%s: options->device_index (%d) is not below the CUDA device count (%d)", kCreate,
                o.device_index, cuda.device_count);
    } else if (usable) {
      ctx->backend = UMFA_BACKEND_CUDA;
      ctx->device = UMFA_DEVICE_CUDA;
      st = create_backend(ctx, cuda.table);
      use_cuda = st == UMFA_STATUS_OK;
      // AUTO never fails because of CUDA: fall back to the CPU.
      if (!use_cuda && o.backend == UMFA_BACKEND_AUTO) st = UMFA_STATUS_OK;
    }
  }
  bool use_metal = false;
  if (st == UMFA_STATUS_OK && !use_cuda) {
    if (umfa_status m = create_metal(ctx, o, &use_metal)) st = m;
  }
  if (st == UMFA_STATUS_OK && !use_cuda && !use_metal) {
    ctx->backend = UMFA_BACKEND_CPU;
    ctx->device = UMFA_DEVICE_CPU;
    ctx->device_index = 0;
    st = create_backend(ctx, umfa::cpu::backend_table());
  }
  if (st != UMFA_STATUS_OK) {
    delete ctx;
    return st;
  }
  *out_context = ctx;
  return UMFA_STATUS_OK;
}

UMFA_API void umfa_context_destroy(umfa_context* context) {
  if (!context || context->magic != kContextMagic) return;
  if (context->table && context->table->destroy) context->table->destroy(context->impl);
  context->magic = kDeadMagic;
  delete context;
}

UMFA_API umfa_status umfa_context_backend(const umfa_context* context, uint32_t* out_backend) {
  if (umfa_status st = check_context(context, "umfa_context_backend")) return st;
  if (!out_backend)
    return fail(context, UMFA_STATUS_NULL_POINTER, "umfa_context_backend: out_backend is NULL");
  *out_backend = context->backend;
  return UMFA_STATUS_OK;
}

UMFA_API umfa_status umfa_context_num_threads(const umfa_context* context, int32_t* out_threads) {
  if (umfa_status st = check_context(context, "umfa_context_num_threads")) return st;
  if (!out_threads)
    return fail(context, UMFA_STATUS_NULL_POINTER, "umfa_context_num_threads: out_threads is NULL");
  *out_threads = context->backend == UMFA_BACKEND_CPU ? context->num_threads : 0;
  return UMFA_STATUS_OK;
}

UMFA_API umfa_status umfa_backend_available(uint32_t backend, int32_t* out_available,
                                            int32_t* out_device_count) {
  if (!out_available)
    return fail(nullptr, UMFA_STATUS_NULL_POINTER, "umfa_backend_available: out_available is NULL");
  int32_t available = 0, count = 0;
  if (backend == UMFA_BACKEND_CPU) {
    available = 1;
    count = 1;
  } else if (backend == UMFA_BACKEND_CUDA) {
    const CudaState& cuda = cuda_state();
    count = cuda.table ? cuda.device_count : 0;
    available = count > 0 ? 1 : 0;
  } else if (backend == UMFA_BACKEND_METAL) {
    const MetalState& metal = metal_state();
    count = metal.table ? metal.device_count : 0;
    available = count > 0 ? 1 : 0;
  } else {
    return fail(nullptr, UMFA_STATUS_INVALID_ARGUMENT,
                "umfa_backend_available: backend (%u) is not UMFA_BACKEND_CPU, _CUDA or _METAL",
                backend);
  }
  *out_available = available;
  if (out_device_count) *out_device_count = count;
  return UMFA_STATUS_OK;
}

UMFA_API const char* umfa_build_info(void) {
  static const std::string info = [] {
    const CudaState& cuda = cuda_state();
    std::string s = std::string("umfa ") + UMFA_VERSION_STRING + " (abi " +
                    std::to_string(UMFA_ABI_VERSION) + "); cpu backend: " +
                    umfa::cpu::backend_table()->name + " (kernels " + umfa::cpu::kernel_isa() +
                    "), " + cpu_features() +
                    ", default threads " + std::to_string(default_num_threads()) + "; cuda: ";
    if (cuda.table && cuda.device_count > 0)
      s += cuda.path + ", " + std::to_string(cuda.device_count) + " device(s)";
    else
      s += "absent: " + cuda.reason;
    const MetalState& metal = metal_state();
    s += "; metal: ";
    if (metal.table && metal.device_count > 0)
      s += metal.path + (metal.auto_eligible ? ", " : " (simulated, explicit opt-in only), ") +
           std::to_string(metal.device_count) + " device(s)";
    else
      s += "absent: " + metal.reason;
    s += "; compiler: ";
#if defined(__clang__)
    s += "clang " __clang_version__;
#elif defined(__GNUC__)
    s += "gcc " __VERSION__;
#endif
    return s;
  }();
  return info.c_str();
}

}  // extern "C"
