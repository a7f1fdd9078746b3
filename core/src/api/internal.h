// Internal declarations of the API layer (core/src/api) and the classic API (core/src/compat).
#pragma once

#include <cstdarg>
#include <cstdint>
#include <mutex>
#include <string>

#include "backend.h"
#include "cpu/os_threads.h"
#include "umfa.h"

// The printf dialect the format checks assume: mingw-w64 builds with __USE_MINGW_ANSI_STDIO
// (core/CMakeLists.txt), whose printf family is GNU's, not msvcrt's.
#if defined(__MINGW32__)
#define UMFA_PRINTF_FORMAT gnu_printf
#else
#define UMFA_PRINTF_FORMAT printf
#endif

// Handles carry a tag so that a handle of the wrong kind (easy to pass through the classic
// API's void* handles) is refused with INVALID_HANDLE instead of being misused.
constexpr uint32_t kContextMagic = 0x55434f4eu;  // "UCON"
constexpr uint32_t kBufferMagic = 0x55425546u;   // "UBUF"
constexpr uint32_t kDeadMagic = 0xdeadbeefu;

struct umfa_context {
  uint32_t magic = kContextMagic;
  uint32_t backend = UMFA_BACKEND_CPU;  // UMFA_BACKEND_CPU, _CUDA or _METAL
  int32_t device = UMFA_DEVICE_CPU;     // UMFA_DEVICE_* of the memory the backend works on
  int32_t device_index = 0;
  int32_t num_threads = 1;
  uint64_t workspace_limit = 0;  // 0 = unlimited
  const umfa::BackendTable* table = nullptr;
  void* impl = nullptr;

  // Held across fork() and made anew in the child, so a forked child can still record and read
  // errors after another thread of the parent was doing so when it forked.
  mutable umfa::os::ForkSafeMutex error_mutex;
  std::string last_error;  // guarded by error_mutex
};

struct umfa_buffer {
  enum class Kind : uint32_t { kBackend, kHost, kWrapped };
  uint32_t magic = kBufferMagic;
  Kind kind = Kind::kBackend;
  umfa_context* context = nullptr;
  void* data = nullptr;
  uint64_t size = 0;
  int32_t device = UMFA_DEVICE_CPU;  // where `data` lives
};

namespace umfa {
namespace api {

// Records a failure: formats the message, stores it as the calling thread's last error and,
// when `ctx` is not null, as the context's last error. Returns `status`.
umfa_status fail(const umfa_context* ctx, umfa_status status, const char* fmt, ...)
    __attribute__((format(UMFA_PRINTF_FORMAT, 3, 4)));
umfa_status failv(const umfa_context* ctx, umfa_status status, const char* fmt, va_list ap);

// The calling thread's most recent failure message ("" when none), and the number of failures
// recorded on this thread so far (a call compares it before and after to know whether the
// message is its own).
const char* thread_last_error();
uint64_t thread_failure_count();

// Validates a context handle: NULL_CONTEXT for null, INVALID_HANDLE for a non-context.
umfa_status check_context(const umfa_context* ctx, const char* fn);
// Validates a buffer handle: NULL_POINTER for null, INVALID_HANDLE for a non-buffer.
umfa_status check_buffer(const umfa_buffer* buf, const char* fn, const char* arg);

// Opens a run-time backend library (libumfa_cuda, libumfa_metal: backend_library.cpp), calls its
// entry point `entry` and checks the table it returns. On success the library stays loaded for
// the life of the process (contexts may hold its state) and the table is returned; otherwise
// nullptr, with why appended to `reasons` ("; "-separated) and the library closed again.
const BackendTable* open_backend_library(const std::string& lib, const char* entry,
                                         std::string& reasons);

// The CUDA backend loader (cuda_loader.cpp). Loads once, thread-safely; never fails loudly.
struct CudaState {
  const BackendTable* table = nullptr;  // null when unavailable
  int32_t device_count = 0;
  std::string path;    // the library that was loaded
  std::string reason;  // why CUDA is unavailable ("" when available)
};
const CudaState& cuda_state();

// The Metal backend loader (metal_loader.cpp): libumfa_metal next to libumfa on Apple platforms;
// elsewhere only the library named by UMFA_METAL_LIB (a simulated backend, for tests).
struct MetalState {
  const BackendTable* table = nullptr;  // null when unavailable
  int32_t device_count = 0;
  bool auto_eligible = false;  // AUTO may pick it (Apple platforms only, never a simulation)
  std::string path;    // the library that was loaded
  std::string reason;  // why Metal is unavailable ("" when available)
};
const MetalState& metal_state();

// Number of CPU worker threads for num_threads == 0 (UMFA_NUM_THREADS or available cores).
int32_t default_num_threads();

// Fills the elements of a 4-D view in host memory: zero bytes (value 0 in every dtype) or,
// for an F32 view, -infinity.
void host_fill_zero(const View& v);
void host_fill_neg_inf_f32(const View& v);

// Aligned host memory (64 bytes), zero-filled. Null on failure.
void* host_alloc_zeroed(uint64_t bytes);
void host_free(void* p);

}  // namespace api
}  // namespace umfa
