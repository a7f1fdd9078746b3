// Section 6 of umfa.h: buffers.
#include <cstring>
#include <new>

#include "api/internal.h"

namespace umfa {
namespace api {
namespace {

umfa_status backend_status(const umfa_context* ctx, umfa_status st, const char* fn,
                           const char* what, const char* msg) {
  return fail(ctx, st, "%s: %s failed: %s", fn, what, msg[0] ? msg : umfa_status_string(st));
}

// Checks [offset, offset + size) lies within the buffer.
umfa_status check_range(const umfa_buffer* b, uint64_t offset, uint64_t size, const char* fn) {
  if (offset > b->size || size > b->size - offset)
    return fail(b->context, UMFA_STATUS_INVALID_ARGUMENT,
                "%s: range [offset=%llu, +size_bytes=%llu) is outside the buffer of %llu bytes", fn,
                static_cast<unsigned long long>(offset), static_cast<unsigned long long>(size),
                static_cast<unsigned long long>(b->size));
  return UMFA_STATUS_OK;
}

}  // namespace
}  // namespace api
}  // namespace umfa

using namespace umfa::api;
using umfa::ErrorSink;

extern "C" {

UMFA_API umfa_status umfa_buffer_create(umfa_context* context, uint64_t size_bytes,
                                        umfa_buffer** out_buffer) {
  static const char* fn = "umfa_buffer_create";
  if (umfa_status st = check_context(context, fn)) return st;
  if (!out_buffer) return fail(context, UMFA_STATUS_NULL_POINTER, "%s: out_buffer is NULL", fn);
  if (size_bytes == 0) return fail(context, UMFA_STATUS_INVALID_ARGUMENT, "%s: size_bytes is 0", fn);
  umfa_buffer* b = new (std::nothrow) umfa_buffer();
  if (!b) return fail(context, UMFA_STATUS_OUT_OF_MEMORY, "%s: out of memory", fn);
  b->context = context;
  b->size = size_bytes;
  b->device = context->device;
  // Metal's memory is host memory too (unified), but its backend allocates it page-aligned so
  // that the GPU uses it in place; the backend contract promises zeros.
  if (context->device == UMFA_DEVICE_CPU && context->backend != UMFA_BACKEND_METAL) {
    // Host memory: allocated here, so that the header's promises (64-byte aligned,
    // zero-filled) hold whatever the backend.
    b->kind = umfa_buffer::Kind::kHost;
    b->data = size_bytes <= SIZE_MAX ? host_alloc_zeroed(size_bytes) : nullptr;
    if (!b->data) {
      delete b;
      return fail(context, UMFA_STATUS_OUT_OF_MEMORY, "%s: could not allocate %llu bytes", fn,
                  static_cast<unsigned long long>(size_bytes));
    }
  } else {
    char msg[512] = {0};
    ErrorSink sink{msg, sizeof msg};
    void* p = nullptr;
    umfa_status st = context->table->alloc(context->impl, size_bytes, &p, &sink);
    if (st == UMFA_STATUS_OK && !p) st = UMFA_STATUS_OUT_OF_MEMORY;
    if (st != UMFA_STATUS_OK) {
      delete b;
      if (st == UMFA_STATUS_OUT_OF_MEMORY)
        return fail(context, st, "%s: could not allocate %llu bytes%s%s", fn,
                    static_cast<unsigned long long>(size_bytes), msg[0] ? ": " : "", msg);
      return backend_status(context, st, fn, "allocation", msg);
    }
    // The backend contract (backend.h) hands back zero-filled memory.
    b->kind = umfa_buffer::Kind::kBackend;
    b->data = p;
  }
  *out_buffer = b;
  return UMFA_STATUS_OK;
}

UMFA_API umfa_status umfa_buffer_wrap(umfa_context* context, void* host_ptr, uint64_t size_bytes,
                                      umfa_buffer** out_buffer) {
  static const char* fn = "umfa_buffer_wrap";
  if (umfa_status st = check_context(context, fn)) return st;
  if (!out_buffer) return fail(context, UMFA_STATUS_NULL_POINTER, "%s: out_buffer is NULL", fn);
  if (!host_ptr) return fail(context, UMFA_STATUS_NULL_POINTER, "%s: host_ptr is NULL", fn);
  if (size_bytes == 0) return fail(context, UMFA_STATUS_INVALID_ARGUMENT, "%s: size_bytes is 0", fn);
  if (size_bytes > UINTPTR_MAX - reinterpret_cast<uintptr_t>(host_ptr))
    return fail(context, UMFA_STATUS_INVALID_ARGUMENT,
                "%s: host_ptr + size_bytes wraps around the address space", fn);
  if (context->device != UMFA_DEVICE_CPU)
    return fail(context, UMFA_STATUS_UNSUPPORTED,
                "%s: wrapping host memory needs a CPU context (or a Metal one; this one runs on CUDA)", fn);
  umfa_buffer* b = new (std::nothrow) umfa_buffer();
  if (!b) return fail(context, UMFA_STATUS_OUT_OF_MEMORY, "%s: out of memory", fn);
  b->kind = umfa_buffer::Kind::kWrapped;
  b->context = context;
  b->data = host_ptr;
  b->size = size_bytes;
  b->device = UMFA_DEVICE_CPU;
  *out_buffer = b;
  return UMFA_STATUS_OK;
}

UMFA_API void umfa_buffer_destroy(umfa_buffer* buffer) {
  if (!buffer || buffer->magic != kBufferMagic) return;
  switch (buffer->kind) {
    case umfa_buffer::Kind::kBackend:
      buffer->context->table->free(buffer->context->impl, buffer->data);
      break;
    case umfa_buffer::Kind::kHost: host_free(buffer->data); break;
    case umfa_buffer::Kind::kWrapped: break;
  }
  buffer->magic = kDeadMagic;
  delete buffer;
}

UMFA_API umfa_status umfa_buffer_size(const umfa_buffer* buffer, uint64_t* out_size) {
  if (umfa_status st = check_buffer(buffer, "umfa_buffer_size", "buffer")) return st;
  if (!out_size) return fail(buffer->context, UMFA_STATUS_NULL_POINTER, "umfa_buffer_size: out_size is NULL");
  *out_size = buffer->size;
  return UMFA_STATUS_OK;
}

UMFA_API umfa_status umfa_buffer_data(const umfa_buffer* buffer, void** out_ptr) {
  if (umfa_status st = check_buffer(buffer, "umfa_buffer_data", "buffer")) return st;
  if (!out_ptr) return fail(buffer->context, UMFA_STATUS_NULL_POINTER, "umfa_buffer_data: out_ptr is NULL");
  *out_ptr = buffer->data;
  return UMFA_STATUS_OK;
}

UMFA_API umfa_status umfa_buffer_device(const umfa_buffer* buffer, int32_t* out_device) {
  if (umfa_status st = check_buffer(buffer, "umfa_buffer_device", "buffer")) return st;
  if (!out_device)
    return fail(buffer->context, UMFA_STATUS_NULL_POINTER, "umfa_buffer_device: out_device is NULL");
  *out_device = buffer->device;
  return UMFA_STATUS_OK;
}

UMFA_API umfa_status umfa_buffer_contents(const umfa_buffer* buffer, void** out_ptr) {
  static const char* fn = "umfa_buffer_contents";
  if (umfa_status st = check_buffer(buffer, fn, "buffer")) return st;
  if (!out_ptr) return fail(buffer->context, UMFA_STATUS_NULL_POINTER, "%s: out_ptr is NULL", fn);
  if (buffer->device != UMFA_DEVICE_CPU) {
    *out_ptr = nullptr;
    return fail(buffer->context, UMFA_STATUS_UNSUPPORTED,
                "%s: buffer is device memory with no host-visible pointer; use "
                "umfa_buffer_upload/umfa_buffer_download",
                fn);
  }
  *out_ptr = buffer->data;
  return UMFA_STATUS_OK;
}

UMFA_API umfa_status umfa_buffer_upload(umfa_buffer* buffer, uint64_t offset, const void* src,
                                        uint64_t size_bytes) {
  static const char* fn = "umfa_buffer_upload";
  if (umfa_status st = check_buffer(buffer, fn, "buffer")) return st;
  if (umfa_status st = check_range(buffer, offset, size_bytes, fn)) return st;
  if (size_bytes == 0) return UMFA_STATUS_OK;
  if (!src) return fail(buffer->context, UMFA_STATUS_NULL_POINTER, "%s: src is NULL", fn);
  char* dst = static_cast<char*>(buffer->data) + offset;
  if (buffer->device == UMFA_DEVICE_CPU) {
    std::memmove(dst, src, static_cast<size_t>(size_bytes));
    return UMFA_STATUS_OK;
  }
  umfa_context* ctx = buffer->context;
  char msg[512] = {0};
  ErrorSink sink{msg, sizeof msg};
  umfa_status st = ctx->table->copy_to_device(ctx->impl, dst, src, size_bytes, &sink);
  if (st != UMFA_STATUS_OK) return backend_status(ctx, st, fn, "the copy to the device", msg);
  return UMFA_STATUS_OK;
}

UMFA_API umfa_status umfa_buffer_download(const umfa_buffer* buffer, uint64_t offset, void* dst,
                                          uint64_t size_bytes) {
  static const char* fn = "umfa_buffer_download";
  if (umfa_status st = check_buffer(buffer, fn, "buffer")) return st;
  if (umfa_status st = check_range(buffer, offset, size_bytes, fn)) return st;
  if (size_bytes == 0) return UMFA_STATUS_OK;
  if (!dst) return fail(buffer->context, UMFA_STATUS_NULL_POINTER, "%s: dst is NULL", fn);
  const char* src = static_cast<const char*>(buffer->data) + offset;
  if (buffer->device == UMFA_DEVICE_CPU) {
    std::memmove(dst, src, static_cast<size_t>(size_bytes));
    return UMFA_STATUS_OK;
  }
  umfa_context* ctx = buffer->context;
  char msg[512] = {0};
  ErrorSink sink{msg, sizeof msg};
  umfa_status st = ctx->table->copy_to_host(ctx->impl, dst, src, size_bytes, &sink);
  if (st != UMFA_STATUS_OK) return backend_status(ctx, st, fn, "the copy to the host", msg);
  return UMFA_STATUS_OK;
}

}  // extern "C"
