// umfa_attention_merge (section 5 of umfa.h): validation of its four tensors, resolution into
// a umfa::MergeProblem, and the call into the context's backend.
//
// Order of checks, as for forward/backward: options struct version, presence of every tensor,
// each tensor on its own (check_tensor), the shapes relative to out, head_dim, option values,
// an output sharing memory with another tensor, and last whether the backend has the entry.
// Nothing is written before every check has passed.
#include <cstring>
#include <new>

#include "api/call_message.h"
#include "api/overlap.h"
#include "api/validate.h"

namespace umfa {
namespace api {
namespace {

constexpr const char* kFn = "umfa_attention_merge";

// Layout strings for messages, by whether the call merges varlen results.
const char* out_layout(bool varlen) {
  return varlen ? "[total, heads, head_dim]"
                : "[batch, seqlen, heads, head_dim]; [total, heads, head_dim] for varlen results";
}
const char* lse_layout(bool varlen) {
  return varlen ? "[heads, total], as out is [total, heads, head_dim]"
                : "[batch, heads, seqlen], as out is [batch, seqlen, heads, head_dim]";
}

umfa_status shape_error(umfa_context* ctx, const char* name, int d, const char* dim,
                        int64_t got, const char* ref_name, int ref_d, int64_t want) {
  return fail(ctx, UMFA_STATUS_SHAPE_MISMATCH,
              "%s: %s.shape[%d] (%s) is %lld; it must equal %s.shape[%d] (%lld)", kFn, name, d, dim, static_cast<long long>(got), ref_name, ref_d,
              static_cast<long long>(want));
}

// out/part_out as the 4-D [B, N, H, D] view backends take (varlen: B = 1).
View out_view(const umfa_tensor* t, bool varlen) {
  View v;
  v.data = t->data;
  v.dtype = t->dtype;
  const int lead = varlen ? 1 : 0;  // logical dimensions the tensor lacks in front
  for (int d = 0; d < 4; ++d) {
    v.shape[d] = d < lead ? 1 : t->shape[d - lead];
    v.strides[d] = d < lead ? 0 : t->strides[d - lead];
  }
  return v;
}

// lse/part_lse as the {B, H, N, 1} view backends take (varlen: B = 1).
View lse_view(const umfa_tensor* t, bool varlen) {
  View v;
  v.data = t->data;
  v.dtype = t->dtype;
  const int lead = varlen ? 1 : 0;
  for (int d = 0; d < 3; ++d) {
    v.shape[d] = d < lead ? 1 : t->shape[d - lead];
    v.strides[d] = d < lead ? 0 : t->strides[d - lead];
  }
  return v;
}

struct Named {
  const char* name;
  const umfa_tensor* t;
};

// An output may share no byte with another tensor of the call (the forward's rule).
umfa_status check_no_shared_memory(umfa_context* ctx, const Named& out, const Named& other) {
  switch (views_overlap(*out.t, *other.t)) {
    case Overlap::kDisjoint:
      return UMFA_STATUS_OK;
    case Overlap::kShared:
      return fail(ctx, UMFA_STATUS_INVALID_ARGUMENT,
                  "%s: %s.data (%p) overlaps the memory of %s.data (%p); an output must not "
                  "share memory with another tensor of the call",
                  kFn, out.name, out.t->data, other.name, other.t->data);
    case Overlap::kUndecided:
      break;
  }
  return fail(ctx, UMFA_STATUS_INVALID_ARGUMENT,
              "%s: %s.data (%p) may overlap the memory of %s.data (%p): their strides "
              "interleave in a way that could not be proven disjoint; an output must not share "
              "memory with another tensor of the call",
              kFn, out.name, out.t->data, other.name, other.t->data);
}

umfa_status resolve_merge(umfa_context* ctx, const umfa_merge_options* options,
                          const umfa_tensor* out, const umfa_tensor* lse,
                          const umfa_tensor* part_out, const umfa_tensor* part_lse,
                          MergeProblem* p) {
  umfa_merge_options o;
  std::memset(&o, 0, sizeof o);
  if (options) {
    const uint32_t size = options->struct_size;
    if (size < sizeof(uint32_t))
      return fail(ctx, UMFA_STATUS_STRUCT_VERSION,
                  "%s: options->struct_size (%u) is too small to hold struct_size", kFn, size);
    if (size > sizeof o)
      return fail(ctx, UMFA_STATUS_STRUCT_VERSION,
                  "%s: options->struct_size (%u) is larger than this library's "
                  "umfa_merge_options (%zu): the caller needs a newer libumfa",
                  kFn, size, sizeof o);
    std::memcpy(&o, options, size);  // a smaller (older) struct leaves the tail zero
  }
  const Named tensors[] = {{"out", out}, {"lse", lse}, {"part_out", part_out}, {"part_lse", part_lse}};
  for (const Named& n : tensors)
    if (!n.t) return fail(ctx, UMFA_STATUS_NULL_POINTER, "%s: %s is NULL", kFn, n.name);

  const bool varlen = out->rank == 3;
  const int out_rank = varlen ? 3 : 4, lse_rank = varlen ? 2 : 3;
  if (umfa_status st = check_tensor(ctx, kFn, "out", out, out_rank, kFloatDtypes, true, out_layout(varlen)))
    return st;
  if (umfa_status st = check_tensor(ctx, kFn, "lse", lse, lse_rank, kF32Dtype, true, lse_layout(varlen)))
    return st;
  if (umfa_status st = check_tensor(ctx, kFn, "part_out", part_out, out_rank, kFloatDtypes, false,
                                    out_layout(varlen)))
    return st;
  if (umfa_status st = check_tensor(ctx, kFn, "part_lse", part_lse, lse_rank, kF32Dtype, false,
                                    lse_layout(varlen)))
    return st;

  // Shapes: part_out like out, lse [B, H, N] (varlen [H, T]) from out, part_lse like lse.
  static const char* const kDense[] = {"batch", "seqlen", "heads", "head_dim"};
  static const char* const kPacked[] = {"total", "heads", "head_dim"};
  const char* const* dims = varlen ? kPacked : kDense;
  for (int d = 0; d < out_rank; ++d)
    if (part_out->shape[d] != out->shape[d])
      return shape_error(ctx, "part_out", d, dims[d], part_out->shape[d], "out", d, out->shape[d]);
  // lse dimension d holds out dimension lse_from_out[d].
  static const int kDenseLse[] = {0, 2, 1};
  static const int kPackedLse[] = {1, 0};
  const int* lse_from_out = varlen ? kPackedLse : kDenseLse;
  for (int d = 0; d < lse_rank; ++d) {
    const int od = lse_from_out[d];
    if (lse->shape[d] != out->shape[od])
      return shape_error(ctx, "lse", d, dims[od], lse->shape[d], "out", od, out->shape[od]);
  }
  for (int d = 0; d < lse_rank; ++d)
    if (part_lse->shape[d] != lse->shape[d])
      return shape_error(ctx, "part_lse", d, dims[lse_from_out[d]], part_lse->shape[d], "lse", d,
                         lse->shape[d]);
  const int64_t head_dim = out->shape[out_rank - 1];
  if (head_dim < 1 || head_dim > UMFA_MAX_HEAD_DIM)
    return fail(ctx, UMFA_STATUS_HEAD_DIM_OUT_OF_RANGE,
                "%s: out.shape[%d] (head_dim) is %lld; it must be in 1..%d", kFn, out_rank - 1,
                static_cast<long long>(head_dim), UMFA_MAX_HEAD_DIM);

  if (o.flags != 0)
    return fail(ctx, UMFA_STATUS_INVALID_ARGUMENT,
                "%s: options->flags (0x%x) has bits no merge flag defines (none is defined yet)",
                kFn, o.flags);

  // The outputs (out, lse) may share no byte with each other or with the inputs.
  for (int i = 0; i < 2; ++i)
    for (int j = i + 1; j < 4; ++j)
      if (umfa_status st = check_no_shared_memory(ctx, tensors[i], tensors[j])) return st;

  p->batch = varlen ? 1 : out->shape[0];
  p->seqlen = out->shape[out_rank - 3];
  p->heads = out->shape[out_rank - 2];
  p->head_dim = head_dim;
  p->out = out_view(out, varlen);
  p->part_out = out_view(part_out, varlen);
  p->lse = lse_view(lse, varlen);
  p->part_lse = lse_view(part_lse, varlen);
  p->stream = o.stream;
  return UMFA_STATUS_OK;
}

umfa_status merge(umfa_context* ctx, const umfa_merge_options* options, const umfa_tensor* out,
                  const umfa_tensor* lse, const umfa_tensor* part_out,
                  const umfa_tensor* part_lse) {
  if (umfa_status st = check_context(ctx, kFn)) return st;
  try {
    MergeProblem p;
    if (umfa_status st = resolve_merge(ctx, options, out, lse, part_out, part_lse, &p)) return st;
    const BackendTable* t = ctx->table;
    const auto backend_fn = backend_merge(t);
    if (!backend_fn)
      return fail(ctx, UMFA_STATUS_UNSUPPORTED,
                  "%s: the loaded %s backend library predates this function; install the "
                  "backend library built with this libumfa",
                  kFn, t->name);
    if (p.batch == 0 || p.seqlen == 0 || p.heads == 0) return UMFA_STATUS_OK;  // no row
    char msg[1024] = {0};
    ErrorSink sink{msg, sizeof msg};
    if (umfa_status st = backend_fn(ctx->impl, &p, &sink))
      return fail(ctx, st, "%s: the %s backend failed: %s", kFn, t->name,
                  msg[0] ? msg : umfa_status_string(st));
    return UMFA_STATUS_OK;
  } catch (const std::bad_alloc&) {
    return fail(ctx, UMFA_STATUS_OUT_OF_MEMORY, "%s: out of memory", kFn);
  } catch (...) {
    return fail(ctx, UMFA_STATUS_INTERNAL, "%s: unexpected exception", kFn);
  }
}

}  // namespace
}  // namespace api
}  // namespace umfa

extern "C" UMFA_API umfa_status umfa_attention_merge(umfa_context* context,
                                                     const umfa_merge_options* options,
                                                     const umfa_tensor* out,
                                                     const umfa_tensor* lse,
                                                     const umfa_tensor* part_out,
                                                     const umfa_tensor* part_lse) {
  const umfa::api::CallMessage message(options);
  return message.finish(umfa::api::merge(context, options, out, lse, part_out, part_lse));
}
