// Section 5 of umfa.h: forward and backward entry points. Validation and resolution live in
// validate.cpp; this file runs the resolved problem on the context's backend and writes the
// parts of the outputs no backend computes (empty problems, varlen rows outside every sequence).
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <new>

#include "api/call_message.h"
#include "api/validate.h"

namespace umfa {
namespace api {
namespace {

// Rows [first, end) of a [1, total, H, D] view (varlen padding rows).
View rows_of_seq(const View& v, int64_t first) {
  View r = v;
  r.data = static_cast<char*>(v.data) + first * v.strides[1] * int64_t(umfa_dtype_size(v.dtype));
  r.shape[1] = v.shape[1] - first;
  return r;
}
// Rows [first, end) of a {1, H, total, 1} LSE view.
View rows_of_lse(const View& v, int64_t first) {
  View r = v;
  r.data = static_cast<char*>(v.data) + first * v.strides[2] * int64_t(sizeof(float));
  r.shape[2] = v.shape[2] - first;
  return r;
}

// Writes what exists of the outputs of a problem with nothing to compute (host memory).
void write_empty_forward(const Problem& p) {
  host_fill_zero(p.out);  // rows exist only when seqlen_k == 0 or (varlen) outside sequences
  if (p.lse.present()) host_fill_neg_inf_f32(p.lse);
}
void write_empty_backward(const Problem& p) {
  host_fill_zero(p.dq);
  host_fill_zero(p.dk);
  host_fill_zero(p.dv);
}

// Varlen rows after the last sequence belong to no sequence: out/dq 0, lse -inf, dk/dv 0.
void write_varlen_padding(const Resolved& r, bool backward) {
  const Problem& p = r.p;
  const int64_t end_q = r.cu_q.back(), end_k = r.cu_k.back();
  if (!backward) {
    if (end_q < r.total_q) {
      host_fill_zero(rows_of_seq(p.out, end_q));
      if (p.lse.present()) host_fill_neg_inf_f32(rows_of_lse(p.lse, end_q));
    }
  } else {
    if (end_q < r.total_q) host_fill_zero(rows_of_seq(p.dq, end_q));
    if (end_k < r.total_k) {
      host_fill_zero(rows_of_seq(p.dk, end_k));
      host_fill_zero(rows_of_seq(p.dv, end_k));
    }
  }
}

umfa_status run(umfa_context* ctx, Resolved& r, bool backward) {
  const char* fn = backward ? "umfa_attention_backward" : "umfa_attention_forward";
  const bool host = ctx->device == UMFA_DEVICE_CPU;
  if (r.empty && host) {
    if (backward)
      write_empty_backward(r.p);
    else
      write_empty_forward(r.p);
    return UMFA_STATUS_OK;
  }
  const BackendTable* t = ctx->table;
  if (ctx->workspace_limit) {
    // Everything the call allocates: the API layer's copies and the backend's workspace.
    const uint64_t backend_need =
        backward ? t->backward_workspace(ctx->impl, &r.p) : t->forward_workspace(ctx->impl, &r.p);
    uint64_t need;
    if (__builtin_add_overflow(backend_need, r.host_bytes, &need)) need = UINT64_MAX;
    if (need > ctx->workspace_limit)
      return fail(ctx, UMFA_STATUS_WORKSPACE_LIMIT,
                  "%s: the call needs %llu bytes of workspace but the context's "
                  "workspace_limit_bytes is %llu",
                  fn, static_cast<unsigned long long>(need),
                  static_cast<unsigned long long>(ctx->workspace_limit));
  }
  char msg[1024] = {0};
  ErrorSink sink{msg, sizeof msg};
  umfa_status st = backward ? t->backward(ctx->impl, &r.p, &sink) : t->forward(ctx->impl, &r.p, &sink);
  if (st != UMFA_STATUS_OK)
    return fail(ctx, st, "%s: the %s backend failed: %s", fn, t->name,
                msg[0] ? msg : umfa_status_string(st));
  if (r.varlen && host) write_varlen_padding(r, backward);
  return UMFA_STATUS_OK;
}

umfa_status forward(umfa_context* context, const umfa_attention_options* options,
                    const umfa_tensor* q, const umfa_tensor* k, const umfa_tensor* v,
                    const umfa_tensor* out, const umfa_tensor* lse) {
  try {
    Resolved r;
    if (umfa_status st = resolve_forward(context, options, q, k, v, out, lse, &r)) return st;
    return run(context, r, false);
  } catch (const std::bad_alloc&) {
    return fail(context, UMFA_STATUS_OUT_OF_MEMORY, "umfa_attention_forward: out of memory");
  } catch (...) {
    return fail(context, UMFA_STATUS_INTERNAL, "umfa_attention_forward: unexpected exception");
  }
}

umfa_status backward(umfa_context* context, const umfa_attention_options* options,
                     const umfa_tensor* q, const umfa_tensor* k, const umfa_tensor* v,
                     const umfa_tensor* out, const umfa_tensor* dout, const umfa_tensor* lse,
                     const umfa_tensor* dq, const umfa_tensor* dk, const umfa_tensor* dv) {
  try {
    Resolved r;
    if (umfa_status st =
            resolve_backward(context, options, q, k, v, out, dout, lse, dq, dk, dv, &r))
      return st;
    return run(context, r, true);
  } catch (const std::bad_alloc&) {
    return fail(context, UMFA_STATUS_OUT_OF_MEMORY, "umfa_attention_backward: out of memory");
  } catch (...) {
    return fail(context, UMFA_STATUS_INTERNAL, "umfa_attention_backward: unexpected exception");
  }
}

}  // namespace
}  // namespace api
}  // namespace umfa

using namespace umfa::api;

extern "C" {

UMFA_API umfa_status umfa_attention_forward(umfa_context* context,
                                            const umfa_attention_options* options,
                                            const umfa_tensor* q, const umfa_tensor* k,
                                            const umfa_tensor* v, const umfa_tensor* out,
                                            const umfa_tensor* lse) {
  const CallMessage message(options);
  return message.finish(forward(context, options, q, k, v, out, lse));
}

UMFA_API umfa_status umfa_attention_backward(umfa_context* context,
                                             const umfa_attention_options* options,
                                             const umfa_tensor* q, const umfa_tensor* k,
                                             const umfa_tensor* v, const umfa_tensor* out,
                                             const umfa_tensor* dout, const umfa_tensor* lse,
                                             const umfa_tensor* dq, const umfa_tensor* dk,
                                             const umfa_tensor* dv) {
  const CallMessage message(options);
  return message.finish(backward(context, options, q, k, v, out, dout, lse, dq, dk, dv));
}

}  // extern "C"
