// Section 7 of umfa.h: the classic Universal Metal Flash Attention API over the umfa API.
//
// Classic contexts are umfa contexts with the AUTO backend. Classic buffers are always
// host-visible: on a CPU context they are plain host memory the backend reads directly; on a
// CUDA context they are host memory too, and mfa_attention_forward stages q/k/v into temporary
// device memory, runs there and copies the result back into `out` (synchronously), so the classic
// pointer-returning mfa_buffer_contents keeps working on every backend.
#include <cstring>
#include <new>

#include "api/internal.h"

using namespace umfa::api;

namespace {

constexpr const char* kForward = "mfa_attention_forward";

mfa_error_t to_classic(umfa_status st) {
  switch (st) {
    case UMFA_STATUS_OK: return MFA_SUCCESS;
    case UMFA_STATUS_OUT_OF_MEMORY: return MFA_ERROR_MEMORY_ALLOCATION;
    case UMFA_STATUS_BACKEND_UNAVAILABLE:
    case UMFA_STATUS_DEVICE_MISMATCH: return MFA_ERROR_DEVICE_NOT_SUPPORTED;
    case UMFA_STATUS_BACKEND_ERROR:
    case UMFA_STATUS_WORKSPACE_LIMIT:
    case UMFA_STATUS_UNSUPPORTED:
    case UMFA_STATUS_INTERNAL: return MFA_ERROR_EXECUTION_FAILED;
    default: return MFA_ERROR_INVALID_ARGS;
  }
}

umfa_context* as_context(mfa_context_t c) { return static_cast<umfa_context*>(c); }

bool precision_dtype(mfa_precision_t p, int32_t* dtype) {
  switch (p) {
    case MFA_PRECISION_FP16: *dtype = UMFA_DTYPE_F16; return true;
    case MFA_PRECISION_BF16: *dtype = UMFA_DTYPE_BF16; return true;
    case MFA_PRECISION_FP32: *dtype = UMFA_DTYPE_F32; return true;
    default: return false;
  }
}

mfa_error_t new_buffer(mfa_context_t context, void* data, size_t size_bytes, bool wrap,
                       mfa_buffer_t* out, const char* fn) {
  umfa_context* ctx = as_context(context);
  if (umfa_status st = check_context(ctx, fn)) return to_classic(st);
  if (!out) return to_classic(fail(ctx, UMFA_STATUS_NULL_POINTER, "%s: buffer is NULL", fn));
  if (wrap && !data) return to_classic(fail(ctx, UMFA_STATUS_NULL_POINTER, "%s: data_ptr is NULL", fn));
  if (size_bytes == 0) return to_classic(fail(ctx, UMFA_STATUS_INVALID_ARGUMENT, "%s: size_bytes is 0", fn));
  if (wrap && size_bytes > UINTPTR_MAX - reinterpret_cast<uintptr_t>(data))
    return to_classic(fail(ctx, UMFA_STATUS_INVALID_ARGUMENT,
                           "%s: data_ptr + size_bytes wraps around the address space", fn));
  umfa_buffer* b = new (std::nothrow) umfa_buffer();
  if (!b) return to_classic(fail(ctx, UMFA_STATUS_OUT_OF_MEMORY, "%s: out of memory", fn));
  b->context = ctx;
  b->size = size_bytes;
  b->device = UMFA_DEVICE_CPU;
  if (wrap) {
    b->kind = umfa_buffer::Kind::kWrapped;
    b->data = data;
  } else {
    b->kind = umfa_buffer::Kind::kHost;
    b->data = host_alloc_zeroed(size_bytes);
    if (!b->data) {
      delete b;
      return to_classic(fail(ctx, UMFA_STATUS_OUT_OF_MEMORY, "%s: could not allocate %zu bytes", fn, size_bytes));
    }
  }
  *out = b;
  return MFA_SUCCESS;
}

// One operand of the classic forward call.
struct Operand {
  const char* name;
  umfa_buffer* buf;
  int32_t dtype;
  bool transposed;
  int64_t seqlen;
  int64_t bytes = 0;      // bytes the shape needs
  void* device = nullptr;  // staging copy on a non-host context
};

// Strides of [batch, seqlen, heads, head_dim] stored row-major, or transposed per head
// ([batch, heads, head_dim, seqlen]).
void classic_tensor(umfa_tensor* t, void* data, int32_t dtype, int32_t device, int32_t device_index,
                    int64_t b, int64_t s, int64_t h, int64_t d, bool transposed) {
  std::memset(t, 0, sizeof *t);
  t->data = data;
  t->dtype = dtype;
  t->device = device;
  t->device_index = device_index;
  t->rank = 4;
  t->shape[0] = b;
  t->shape[1] = s;
  t->shape[2] = h;
  t->shape[3] = d;
  if (!transposed) {
    t->strides[3] = 1;
    t->strides[2] = d;
    t->strides[1] = h * d;
    t->strides[0] = s * h * d;
  } else {
    t->strides[1] = 1;
    t->strides[3] = s;
    t->strides[2] = d * s;
    t->strides[0] = h * d * s;
  }
}

}  // namespace

extern "C" {

UMFA_API mfa_error_t mfa_create_context(mfa_context_t* context) {
  if (!context) {
    fail(nullptr, UMFA_STATUS_NULL_POINTER, "mfa_create_context: context is NULL");
    return MFA_ERROR_INVALID_ARGS;
  }
  umfa_context_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.backend = UMFA_BACKEND_AUTO;
  umfa_context* ctx = nullptr;
  umfa_status st = umfa_context_create(&o, &ctx);
  if (st != UMFA_STATUS_OK) return to_classic(st);
  *context = ctx;
  return MFA_SUCCESS;
}

UMFA_API void mfa_destroy_context(mfa_context_t context) { umfa_context_destroy(as_context(context)); }

UMFA_API mfa_error_t mfa_create_buffer(mfa_context_t context, size_t size_bytes, mfa_buffer_t* buffer) {
  return new_buffer(context, nullptr, size_bytes, false, buffer, "mfa_create_buffer");
}

UMFA_API mfa_error_t mfa_buffer_from_ptr(mfa_context_t context, void* data_ptr, size_t size_bytes,
                                         mfa_buffer_t* buffer) {
  return new_buffer(context, data_ptr, size_bytes, true, buffer, "mfa_buffer_from_ptr");
}

UMFA_API void* mfa_buffer_contents(mfa_buffer_t buffer) {
  const umfa_buffer* b = static_cast<const umfa_buffer*>(buffer);
  if (!b || b->magic != kBufferMagic || b->device != UMFA_DEVICE_CPU) return nullptr;
  return b->data;
}

UMFA_API void mfa_destroy_buffer(mfa_buffer_t buffer) {
  umfa_buffer_destroy(static_cast<umfa_buffer*>(buffer));
}

UMFA_API mfa_error_t mfa_attention_forward(mfa_context_t context, mfa_buffer_t q, mfa_buffer_t k,
                                           mfa_buffer_t v, mfa_buffer_t out, uint32_t batch_size,
                                           uint32_t seq_len_q, uint32_t seq_len_kv,
                                           uint32_t num_heads, uint16_t head_dim,
                                           float softmax_scale, UMFA_BOOL causal,
                                           mfa_precision_t input_precision,
                                           mfa_precision_t intermediate_precision,
                                           mfa_precision_t output_precision, UMFA_BOOL transpose_q,
                                           UMFA_BOOL transpose_k, UMFA_BOOL transpose_v,
                                           UMFA_BOOL transpose_o) {
  umfa_context* ctx = as_context(context);
  if (umfa_status st = check_context(ctx, kForward)) return to_classic(st);
  int32_t in_dtype, mid_dtype, out_dtype;
  if (!precision_dtype(input_precision, &in_dtype))
    return to_classic(fail(ctx, UMFA_STATUS_INVALID_ARGUMENT, "%s: input_precision (%d) is not an MFA_PRECISION_* value",
                           kForward, input_precision));
  if (!precision_dtype(intermediate_precision, &mid_dtype))
    return to_classic(fail(ctx, UMFA_STATUS_INVALID_ARGUMENT,
                           "%s: intermediate_precision (%d) is not an MFA_PRECISION_* value", kForward,
                           intermediate_precision));
  if (!precision_dtype(output_precision, &out_dtype))
    return to_classic(fail(ctx, UMFA_STATUS_INVALID_ARGUMENT, "%s: output_precision (%d) is not an MFA_PRECISION_* value",
                           kForward, output_precision));
  if (head_dim < 1 || head_dim > UMFA_MAX_HEAD_DIM)
    return to_classic(fail(ctx, UMFA_STATUS_HEAD_DIM_OUT_OF_RANGE, "%s: head_dim (%u) must be in 1..%d", kForward,
                           head_dim, UMFA_MAX_HEAD_DIM));

  Operand ops[4] = {{"q", static_cast<umfa_buffer*>(q), in_dtype, transpose_q, seq_len_q},
                    {"k", static_cast<umfa_buffer*>(k), in_dtype, transpose_k, seq_len_kv},
                    {"v", static_cast<umfa_buffer*>(v), in_dtype, transpose_v, seq_len_kv},
                    {"out", static_cast<umfa_buffer*>(out), out_dtype, transpose_o, seq_len_q}};
  for (Operand& op : ops) {
    if (!op.buf) return to_classic(fail(ctx, UMFA_STATUS_NULL_POINTER, "%s: %s is NULL", kForward, op.name));
    if (op.buf->magic != kBufferMagic)
      return to_classic(fail(ctx, UMFA_STATUS_INVALID_HANDLE, "%s: %s is not a live buffer", kForward, op.name));
    if (op.buf->context != ctx)
      return to_classic(fail(ctx, UMFA_STATUS_INVALID_HANDLE, "%s: %s belongs to another context", kForward, op.name));
    int64_t n = 0;  // uint32 * uint32 * uint32 * uint16 * 4 can exceed 64 bits
    if (__builtin_mul_overflow(int64_t(batch_size), op.seqlen, &n) ||
        __builtin_mul_overflow(n, int64_t(num_heads), &n) ||
        __builtin_mul_overflow(n, int64_t(head_dim), &n) ||
        __builtin_mul_overflow(n, int64_t(umfa_dtype_size(op.dtype)), &n))
      return to_classic(fail(ctx, UMFA_STATUS_SIZE_OVERFLOW, "%s: the size of %s overflows 64 bits", kForward, op.name));
    op.bytes = n;
    if (static_cast<uint64_t>(n) > op.buf->size)
      return to_classic(fail(ctx, UMFA_STATUS_INVALID_ARGUMENT,
                             "%s: %s holds %llu bytes but the shapes need %lld", kForward, op.name,
                             static_cast<unsigned long long>(op.buf->size), static_cast<long long>(n)));
  }
  const umfa_buffer* outb = ops[3].buf;
  for (int i = 0; i < 3; ++i)
    if (ops[i].buf == outb)
      return to_classic(fail(ctx, UMFA_STATUS_INVALID_ARGUMENT, "%s: out is the same buffer as %s", kForward,
                             ops[i].name));

  umfa_attention_options opts;
  std::memset(&opts, 0, sizeof opts);
  opts.struct_size = sizeof opts;
  opts.softmax_scale = softmax_scale;
  opts.mask_mode = causal ? UMFA_MASK_CAUSAL_TOP_LEFT : UMFA_MASK_NONE;

  // Stage host buffers on a device context.
  const bool stage = ctx->device != UMFA_DEVICE_CPU;
  umfa_status st = UMFA_STATUS_OK;
  char msg[512] = {0};
  umfa::ErrorSink sink{msg, sizeof msg};
  for (Operand& op : ops) {
    if (!stage || op.buf->device == ctx->device || op.bytes == 0) continue;
    st = ctx->table->alloc(ctx->impl, static_cast<uint64_t>(op.bytes), &op.device, &sink);
    if (st == UMFA_STATUS_OK && &op != &ops[3])
      st = ctx->table->copy_to_device(ctx->impl, op.device, op.buf->data, op.bytes, &sink);
    if (st != UMFA_STATUS_OK) {
      fail(ctx, st, "%s: staging %s on the device failed: %s", kForward, op.name,
           msg[0] ? msg : umfa_status_string(st));
      break;
    }
  }
  if (st == UMFA_STATUS_OK) {
    umfa_tensor t[4];
    for (int i = 0; i < 4; ++i) {
      const Operand& op = ops[i];
      const bool staged = stage && op.buf->device != ctx->device;
      void* data = staged ? op.device : op.buf->data;  // null for an empty staged operand
      int32_t device = staged ? ctx->device : op.buf->device;
      classic_tensor(&t[i], data, op.dtype, device, ctx->device_index, batch_size, op.seqlen, num_heads,
                     head_dim, op.transposed);
    }
    st = umfa_attention_forward(ctx, &opts, &t[0], &t[1], &t[2], &t[3], nullptr);
    if (st == UMFA_STATUS_OK && ops[3].device) {
      st = ctx->table->copy_to_host(ctx->impl, ops[3].buf->data, ops[3].device, ops[3].bytes, &sink);
      if (st != UMFA_STATUS_OK)
        fail(ctx, st, "%s: copying out back to the host failed: %s", kForward,
             msg[0] ? msg : umfa_status_string(st));
    }
  }
  for (Operand& op : ops)
    if (op.device) ctx->table->free(ctx->impl, op.device);
  return to_classic(st);
}

UMFA_API const char* mfa_error_string(mfa_error_t error) {
  switch (error) {
    case MFA_SUCCESS: return "Success";
    case MFA_ERROR_INVALID_ARGS: return "Invalid arguments";
    case MFA_ERROR_MEMORY_ALLOCATION: return "Memory allocation failed";
    case MFA_ERROR_DEVICE_NOT_SUPPORTED: return "Device not supported";
    case MFA_ERROR_KERNEL_COMPILATION: return "Kernel compilation failed";
    case MFA_ERROR_EXECUTION_FAILED: return "Execution failed";
    default: return "Unknown error";
  }
}

UMFA_API UMFA_BOOL mfa_is_device_supported(void) {
  int32_t available = 0;
  return umfa_backend_available(UMFA_BACKEND_CPU, &available, nullptr) == UMFA_STATUS_OK &&
         available != 0;
}

UMFA_API void mfa_get_version(int* major, int* minor, int* patch) {
  if (major) *major = UMFA_VERSION_MAJOR;
  if (minor) *minor = UMFA_VERSION_MINOR;
  if (patch) *patch = UMFA_VERSION_PATCH;
}

}  // extern "C"
