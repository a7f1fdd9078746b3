// Versions, status strings, contexts and their options, last-error rules, backend availability,
// build information and the tensor helpers.
#include <cstddef>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>

#include "test_os.h"
#include "test_util.h"

static void versions() {
  CHECK_EQ(umfa_version(), UMFA_VERSION_MAJOR * 10000u + UMFA_VERSION_MINOR * 100u + UMFA_VERSION_PATCH);
  CHECK_EQ(umfa_version(), 100u);
  CHECK(std::string(umfa_version_string()) == UMFA_VERSION_STRING);
  CHECK(std::string(umfa_version_string()) == "0.1.0");
  CHECK_EQ(umfa_abi_version(), UMFA_ABI_VERSION);
}

static void status_strings() {
  const char* names[] = {"OK", "NULL_CONTEXT", "NULL_POINTER", "INVALID_ARGUMENT", "INVALID_RANK",
                         "SHAPE_MISMATCH", "HEADS_NOT_DIVISIBLE", "HEAD_DIM_OUT_OF_RANGE",
                         "INVALID_STRIDE", "UNSUPPORTED_DTYPE", "DEVICE_MISMATCH", "STRUCT_VERSION",
                         "SIZE_OVERFLOW", "OUT_OF_MEMORY", "BACKEND_UNAVAILABLE", "UNSUPPORTED",
                         "BACKEND_ERROR", "WORKSPACE_LIMIT", "INVALID_SEQLENS", "INVALID_HANDLE",
                         "INTERNAL"};
  std::set<std::string> seen;
  for (int s = 0; s <= UMFA_STATUS_INTERNAL; ++s) {
    const char* str = umfa_status_string(s);
    CHECK(str != nullptr);
    std::string prefix = std::string("UMFA_STATUS_") + names[s] + ":";
    CHECK_MSG(std::string(str).rfind(prefix, 0) == 0, "status %d string '%s' starts with %s", s, str,
              prefix.c_str());
    seen.insert(str);
  }
  CHECK_EQ(seen.size(), size_t(UMFA_STATUS_INTERNAL + 1));
  CHECK_CONTAINS(umfa_status_string(-1), "UNKNOWN");
  CHECK_CONTAINS(umfa_status_string(9999), "UNKNOWN");
}

static void contexts() {
  umfa_context* ctx = nullptr;
  CHECK_STATUS(umfa_context_create(nullptr, &ctx), UMFA_STATUS_OK);
  CHECK(ctx != nullptr);
  uint32_t backend = 99;
  CHECK_STATUS(umfa_context_backend(ctx, &backend), UMFA_STATUS_OK);
  CHECK(backend == UMFA_BACKEND_CPU);  // CUDA is hidden from this test (UMFA_CUDA_LIB)
  int32_t threads = -1;
  CHECK_STATUS(umfa_context_num_threads(ctx, &threads), UMFA_STATUS_OK);
  CHECK(threads >= 1);
  CHECK(std::string(umfa_last_error(ctx)).empty());  // no failure yet on this context
  CHECK_STATUS(umfa_context_backend(ctx, nullptr), UMFA_STATUS_NULL_POINTER);
  CHECK_CONTAINS(umfa_last_error(ctx), "out_backend");
  CHECK_STATUS(umfa_context_num_threads(ctx, nullptr), UMFA_STATUS_NULL_POINTER);
  CHECK_CONTAINS(umfa_last_error(ctx), "out_threads");
  // A success does not clear the last error.
  CHECK_STATUS(umfa_context_backend(ctx, &backend), UMFA_STATUS_OK);
  CHECK_CONTAINS(umfa_last_error(ctx), "out_threads");
  umfa_context_destroy(ctx);
  umfa_context_destroy(nullptr);  // no-op

  CHECK_STATUS(umfa_context_backend(nullptr, &backend), UMFA_STATUS_NULL_CONTEXT);
  CHECK_CONTAINS(umfa_last_error(nullptr), "context is NULL");
  CHECK_STATUS(umfa_context_num_threads(nullptr, &threads), UMFA_STATUS_NULL_CONTEXT);
  CHECK_STATUS(umfa_context_create(nullptr, nullptr), UMFA_STATUS_NULL_POINTER);
  CHECK_CONTAINS(umfa_last_error(nullptr), "out_context");
}

static void context_options() {
  umfa_context_options o;
  umfa_context* sentinel = reinterpret_cast<umfa_context*>(uintptr_t(0x1234));
  umfa_context* ctx = sentinel;

  // Full struct, explicit values.
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.backend = UMFA_BACKEND_CPU;
  o.num_threads = 3;
  CHECK_STATUS(umfa_context_create(&o, &ctx), UMFA_STATUS_OK);
  int32_t threads = 0;
  umfa_context_num_threads(ctx, &threads);
  CHECK_EQ(threads, 3);
  umfa_context_destroy(ctx);

  // struct_size from the future, too small, zero: rejected, out_context untouched.
  for (uint32_t size : {uint32_t(sizeof o + 8), uint32_t(sizeof o + 1), 0u, 3u}) {
    ctx = sentinel;
    o.struct_size = size;
    CHECK_STATUS(umfa_context_create(&o, &ctx), UMFA_STATUS_STRUCT_VERSION);
    CHECK(ctx == sentinel);
    CHECK_CONTAINS(umfa_last_error(nullptr), "struct_size");
  }

  // An older caller's smaller struct: the missing tail reads as zeros (defaults), whatever
  // the bytes after it hold.
  struct {
    umfa_context_options o;
    char pad[16];
  } older;
  std::memset(&older, 0xff, sizeof older);  // garbage everywhere
  older.o.struct_size = offsetof(umfa_context_options, num_threads);  // struct_size, backend, device_index
  older.o.backend = UMFA_BACKEND_CPU;
  older.o.device_index = 0;
  ctx = nullptr;
  CHECK_STATUS(umfa_context_create(&older.o, &ctx), UMFA_STATUS_OK);  // num_threads -1 ignored
  threads = 0;
  umfa_context_num_threads(ctx, &threads);
  CHECK(threads >= 1);
  umfa_context_destroy(ctx);
  // Just struct_size: all defaults.
  older.o.struct_size = sizeof(uint32_t);
  ctx = nullptr;
  CHECK_STATUS(umfa_context_create(&older.o, &ctx), UMFA_STATUS_OK);
  umfa_context_destroy(ctx);

  // Values out of range.
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.backend = 7;
  CHECK_STATUS(umfa_context_create(&o, &ctx), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK_CONTAINS(umfa_last_error(nullptr), "options->backend");
  o.backend = UMFA_BACKEND_AUTO;
  o.num_threads = -2;
  CHECK_STATUS(umfa_context_create(&o, &ctx), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK_CONTAINS(umfa_last_error(nullptr), "options->num_threads");
  o.num_threads = 0;
  o.device_index = -1;
  CHECK_STATUS(umfa_context_create(&o, &ctx), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK_CONTAINS(umfa_last_error(nullptr), "options->device_index");

  // UMFA_NUM_THREADS sets the default thread count.
  setenv("UMFA_NUM_THREADS", "5", 1);
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  ctx = nullptr;
  CHECK_STATUS(umfa_context_create(&o, &ctx), UMFA_STATUS_OK);
  umfa_context_num_threads(ctx, &threads);
  CHECK_EQ(threads, 5);
  umfa_context_destroy(ctx);
  setenv("UMFA_NUM_THREADS", "nonsense", 1);  // ignored
  CHECK_STATUS(umfa_context_create(&o, &ctx), UMFA_STATUS_OK);
  umfa_context_num_threads(ctx, &threads);
  CHECK(threads >= 1);
  umfa_context_destroy(ctx);
  unsetenv("UMFA_NUM_THREADS");
}

static void cuda_absent() {
  int32_t avail = -1, count = -1;
  CHECK_STATUS(umfa_backend_available(UMFA_BACKEND_CUDA, &avail, &count), UMFA_STATUS_OK);
  CHECK_EQ(avail, 0);
  CHECK_EQ(count, 0);
  umfa_context_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.backend = UMFA_BACKEND_CUDA;
  umfa_context* ctx = nullptr;
  CHECK_STATUS(umfa_context_create(&o, &ctx), UMFA_STATUS_BACKEND_UNAVAILABLE);
  CHECK(ctx == nullptr);
  CHECK_CONTAINS(umfa_last_error(nullptr), "CUDA");
  CHECK_CONTAINS(umfa_last_error(nullptr), "UMFA_CUDA_LIB");
  // AUTO falls back to the CPU silently.
  o.backend = UMFA_BACKEND_AUTO;
  o.device_index = 3;  // meaningless without CUDA: ignored
  CHECK_STATUS(umfa_context_create(&o, &ctx), UMFA_STATUS_OK);
  uint32_t b = 0;
  umfa_context_backend(ctx, &b);
  CHECK(b == UMFA_BACKEND_CPU);
  umfa_context_destroy(ctx);

  const char* info = umfa_build_info();
  CHECK(info != nullptr);
  CHECK_CONTAINS(info, "umfa 0.1.0");
  CHECK_CONTAINS(info, "cuda: absent");
  CHECK_CONTAINS(info, "UMFA_CUDA_LIB=");
  CHECK(info == umfa_build_info());  // static
  std::printf("build info: %s\n", info);
}

// Off Apple platforms Metal is reachable only through UMFA_METAL_LIB (the simulated backend of
// the Metal suite); without it, asking for Metal fails and AUTO never picks it.
static void metal_absent() {
#if !defined(__APPLE__)
  if (const char* env = std::getenv("UMFA_METAL_LIB"); env && *env) return;
  int32_t avail = -1, count = -1;
  CHECK_STATUS(umfa_backend_available(UMFA_BACKEND_METAL, &avail, &count), UMFA_STATUS_OK);
  CHECK_EQ(avail, 0);
  CHECK_EQ(count, 0);
  umfa_context_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.backend = UMFA_BACKEND_METAL;
  umfa_context* ctx = nullptr;
  CHECK_STATUS(umfa_context_create(&o, &ctx), UMFA_STATUS_BACKEND_UNAVAILABLE);
  CHECK(ctx == nullptr);
  CHECK_CONTAINS(umfa_last_error(nullptr), "Metal");
  CHECK_CONTAINS(umfa_last_error(nullptr), "UMFA_METAL_LIB");
  o.backend = UMFA_BACKEND_METAL + 1;
  CHECK_STATUS(umfa_context_create(&o, &ctx), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK_CONTAINS(umfa_build_info(), "metal: absent");
#endif
}

static void backend_available() {
  int32_t avail = -1, count = -1;
  CHECK_STATUS(umfa_backend_available(UMFA_BACKEND_CPU, &avail, &count), UMFA_STATUS_OK);
  CHECK_EQ(avail, 1);
  CHECK_EQ(count, 1);
  CHECK_STATUS(umfa_backend_available(UMFA_BACKEND_CPU, &avail, nullptr), UMFA_STATUS_OK);
  CHECK_STATUS(umfa_backend_available(UMFA_BACKEND_CPU, nullptr, &count), UMFA_STATUS_NULL_POINTER);
  CHECK_CONTAINS(umfa_last_error(nullptr), "out_available");
  CHECK_STATUS(umfa_backend_available(UMFA_BACKEND_AUTO, &avail, &count), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(umfa_backend_available(42, &avail, &count), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK_CONTAINS(umfa_last_error(nullptr), "backend");
}

// The context's last error is shared by all threads; the NULL-context error is per thread.
static void last_error_threads() {
  umfa_context* ctx = nullptr;
  CHECK_STATUS(umfa_context_create(nullptr, &ctx), UMFA_STATUS_OK);
  if (!ctx) return;
  std::string seen_in_thread;
  std::thread worker([&] {
    umfa_context_num_threads(ctx, nullptr);           // fails on the worker
    umfa_context_backend(nullptr, nullptr);           // thread-local NULL_CONTEXT
    seen_in_thread = umfa_last_error(nullptr);
  });
  worker.join();
  CHECK_CONTAINS(umfa_last_error(ctx), "out_threads");     // visible from the main thread
  CHECK_CONTAINS(seen_in_thread.c_str(), "context is NULL");
  // The main thread's own last error is unaffected by the worker's failures.
  umfa_tensor tt;
  CHECK_STATUS(umfa_tensor_init_contiguous(&tt, nullptr, 77, 1, nullptr), UMFA_STATUS_NULL_POINTER);
  std::string mine = umfa_last_error(nullptr);
  std::thread other([&] { umfa_context_backend(nullptr, nullptr); });
  other.join();
  CHECK(mine == umfa_last_error(nullptr));
  // Many threads failing on one context at once: the message is always one whole message.
  std::vector<std::thread> pool;
  for (int i = 0; i < 8; ++i)
    pool.emplace_back([ctx, i] {
      for (int r = 0; r < 2000; ++r) {
        if (i % 2) umfa_context_backend(ctx, nullptr);
        else umfa_context_num_threads(ctx, nullptr);
      }
    });
  bool whole = true;
  for (int r = 0; r < 2000; ++r) {
    std::string m = umfa_last_error(ctx);
    whole = whole && (m == "umfa_context_backend: out_backend is NULL" ||
                      m == "umfa_context_num_threads: out_threads is NULL");
  }
  for (auto& th : pool) th.join();
  CHECK(whole);
  umfa_context_destroy(ctx);
  return;
}

static void tensors() {
  CHECK_EQ(umfa_dtype_size(UMFA_DTYPE_F32), 4u);
  CHECK_EQ(umfa_dtype_size(UMFA_DTYPE_F16), 2u);
  CHECK_EQ(umfa_dtype_size(UMFA_DTYPE_BF16), 2u);
  CHECK_EQ(umfa_dtype_size(UMFA_DTYPE_BOOL), 1u);
  CHECK_EQ(umfa_dtype_size(UMFA_DTYPE_I32), 4u);
  CHECK_EQ(umfa_dtype_size(5), 0u);
  CHECK_EQ(umfa_dtype_size(-1), 0u);

  float buf[1];
  umfa_tensor x;
  std::memset(&x, 0x5a, sizeof x);
  const int64_t shape[4] = {2, 3, 4, 5};
  CHECK_STATUS(umfa_tensor_init_contiguous(&x, buf, UMFA_DTYPE_F16, 4, shape), UMFA_STATUS_OK);
  CHECK(x.data == buf);
  CHECK_EQ(x.dtype, UMFA_DTYPE_F16);
  CHECK_EQ(x.device, UMFA_DEVICE_CPU);
  CHECK_EQ(x.device_index, 0);
  CHECK_EQ(x.rank, 4);
  CHECK_EQ(x.strides[0], 60);
  CHECK_EQ(x.strides[1], 20);
  CHECK_EQ(x.strides[2], 5);
  CHECK_EQ(x.strides[3], 1);
  CHECK_STATUS(umfa_tensor_init_contiguous(&x, buf, UMFA_DTYPE_F32, 2, shape), UMFA_STATUS_OK);
  CHECK_EQ(x.rank, 2);
  CHECK_EQ(x.strides[0], 3);
  CHECK_EQ(x.strides[1], 1);
  CHECK_EQ(x.shape[2], 0);  // entries past rank are zeroed
  CHECK_STATUS(umfa_tensor_init_contiguous(&x, buf, UMFA_DTYPE_F32, 0, nullptr), UMFA_STATUS_OK);
  CHECK_EQ(x.rank, 0);

  umfa_tensor before = x, y = x;
  CHECK_STATUS(umfa_tensor_init_contiguous(nullptr, buf, UMFA_DTYPE_F32, 1, shape), UMFA_STATUS_NULL_POINTER);
  CHECK_STATUS(umfa_tensor_init_contiguous(&y, buf, UMFA_DTYPE_F32, 5, shape), UMFA_STATUS_INVALID_RANK);
  CHECK_STATUS(umfa_tensor_init_contiguous(&y, buf, UMFA_DTYPE_F32, -1, shape), UMFA_STATUS_INVALID_RANK);
  CHECK_STATUS(umfa_tensor_init_contiguous(&y, buf, UMFA_DTYPE_F32, 2, nullptr), UMFA_STATUS_NULL_POINTER);
  CHECK_CONTAINS(umfa_last_error(nullptr), "shape");
  CHECK_STATUS(umfa_tensor_init_contiguous(&y, buf, 9, 2, shape), UMFA_STATUS_UNSUPPORTED_DTYPE);
  const int64_t negative[2] = {3, -1};
  CHECK_STATUS(umfa_tensor_init_contiguous(&y, buf, UMFA_DTYPE_F32, 2, negative), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK_CONTAINS(umfa_last_error(nullptr), "shape[1]");
  const int64_t huge[3] = {int64_t(1) << 40, int64_t(1) << 30, 1 << 10};
  CHECK_STATUS(umfa_tensor_init_contiguous(&y, buf, UMFA_DTYPE_F32, 3, huge), UMFA_STATUS_SIZE_OVERFLOW);
  CHECK(std::memcmp(&before, &y, sizeof y) == 0);  // untouched on failure
}

int main() {
  // Hide any real libumfa_cuda so the results do not depend on the machine (ctest sets this too).
  if (!std::getenv("UMFA_CUDA_LIB")) setenv("UMFA_CUDA_LIB", "/nonexistent/libumfa_cuda.so", 1);
  versions();
  status_strings();
  contexts();
  context_options();
  cuda_absent();
  metal_absent();
  backend_available();
  last_error_threads();
  tensors();
  return t::summary("test_api");
}
