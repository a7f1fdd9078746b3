// Status strings and last-error bookkeeping (per context and per thread).
#include <cstdio>

#include "api/internal.h"

namespace umfa {
namespace api {
namespace {

thread_local std::string t_last_error;      // most recent failure on this thread
thread_local uint64_t t_failure_count = 0;  // failures recorded on this thread

}  // namespace

umfa_status failv(const umfa_context* ctx, umfa_status status, const char* fmt, va_list ap) {
  char buf[1024];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  t_last_error = buf;
  ++t_failure_count;
  if (ctx && ctx->magic == kContextMagic) {
    std::lock_guard<umfa::os::ForkSafeMutex> lock(ctx->error_mutex);
    const_cast<umfa_context*>(ctx)->last_error = buf;
  }
  return status;
}

umfa_status fail(const umfa_context* ctx, umfa_status status, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  failv(ctx, status, fmt, ap);
  va_end(ap);
  return status;
}

const char* thread_last_error() { return t_last_error.c_str(); }
uint64_t thread_failure_count() { return t_failure_count; }

umfa_status check_context(const umfa_context* ctx, const char* fn) {
  if (!ctx) return fail(nullptr, UMFA_STATUS_NULL_CONTEXT, "%s: context is NULL", fn);
  if (ctx->magic != kContextMagic)
    return fail(nullptr, UMFA_STATUS_INVALID_HANDLE, "%s: context is not a live umfa context", fn);
  return UMFA_STATUS_OK;
}

umfa_status check_buffer(const umfa_buffer* buf, const char* fn, const char* arg) {
  if (!buf) return fail(nullptr, UMFA_STATUS_NULL_POINTER, "%s: %s is NULL", fn, arg);
  if (buf->magic != kBufferMagic)
    return fail(nullptr, UMFA_STATUS_INVALID_HANDLE, "%s: %s is not a live umfa buffer", fn, arg);
  return UMFA_STATUS_OK;
}

}  // namespace api
}  // namespace umfa

using umfa::api::t_last_error;

extern "C" {

UMFA_API const char* umfa_status_string(umfa_status status) {
  switch (status) {
    case UMFA_STATUS_OK: return "UMFA_STATUS_OK: success";
    case UMFA_STATUS_NULL_CONTEXT: return "UMFA_STATUS_NULL_CONTEXT: the context argument was NULL";
    case UMFA_STATUS_NULL_POINTER: return "UMFA_STATUS_NULL_POINTER: a required pointer was NULL";
    case UMFA_STATUS_INVALID_ARGUMENT:
      return "UMFA_STATUS_INVALID_ARGUMENT: an argument is out of its allowed range";
    case UMFA_STATUS_INVALID_RANK:
      return "UMFA_STATUS_INVALID_RANK: a tensor has the wrong rank for its role";
    case UMFA_STATUS_SHAPE_MISMATCH:
      return "UMFA_STATUS_SHAPE_MISMATCH: tensor shapes disagree with each other";
    case UMFA_STATUS_HEADS_NOT_DIVISIBLE:
      return "UMFA_STATUS_HEADS_NOT_DIVISIBLE: query heads are not a multiple of key/value heads";
    case UMFA_STATUS_HEAD_DIM_OUT_OF_RANGE:
      return "UMFA_STATUS_HEAD_DIM_OUT_OF_RANGE: head_dim is outside the supported range";
    case UMFA_STATUS_INVALID_STRIDE:
      return "UMFA_STATUS_INVALID_STRIDE: a stride is negative or an output overlaps itself";
    case UMFA_STATUS_UNSUPPORTED_DTYPE:
      return "UMFA_STATUS_UNSUPPORTED_DTYPE: a dtype is unknown or not allowed for its role";
    case UMFA_STATUS_DEVICE_MISMATCH:
      return "UMFA_STATUS_DEVICE_MISMATCH: a tensor is on a device the context does not run on";
    case UMFA_STATUS_STRUCT_VERSION:
      return "UMFA_STATUS_STRUCT_VERSION: an option struct's struct_size is not supported";
    case UMFA_STATUS_SIZE_OVERFLOW: return "UMFA_STATUS_SIZE_OVERFLOW: a size computation overflows";
    case UMFA_STATUS_OUT_OF_MEMORY: return "UMFA_STATUS_OUT_OF_MEMORY: memory could not be allocated";
    case UMFA_STATUS_BACKEND_UNAVAILABLE:
      return "UMFA_STATUS_BACKEND_UNAVAILABLE: the requested backend is not available";
    case UMFA_STATUS_UNSUPPORTED:
      return "UMFA_STATUS_UNSUPPORTED: this backend does not implement the requested combination";
    case UMFA_STATUS_BACKEND_ERROR: return "UMFA_STATUS_BACKEND_ERROR: the backend failed while running";
    case UMFA_STATUS_WORKSPACE_LIMIT:
      return "UMFA_STATUS_WORKSPACE_LIMIT: the call needs more scratch memory than the limit allows";
    case UMFA_STATUS_INVALID_SEQLENS:
      return "UMFA_STATUS_INVALID_SEQLENS: cu_seqlens is not a valid offset list";
    case UMFA_STATUS_INVALID_HANDLE:
      return "UMFA_STATUS_INVALID_HANDLE: a handle is not valid for this use";
    case UMFA_STATUS_INTERNAL: return "UMFA_STATUS_INTERNAL: an internal error (please report it)";
    default: return "UMFA_STATUS_UNKNOWN: an unknown status code";
  }
}

UMFA_API const char* umfa_last_error(const umfa_context* context) {
  if (!context) return t_last_error.c_str();
  if (context->magic != kContextMagic) return "umfa_last_error: context is not a live umfa context";
  thread_local std::string copy;
  {
    std::lock_guard<umfa::os::ForkSafeMutex> lock(context->error_mutex);
    copy = context->last_error;
  }
  return copy.c_str();
}

}  // extern "C"
