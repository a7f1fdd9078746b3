// Validation of forward/backward arguments (see validate.h).
//
// Order of checks: options struct version, presence of every required tensor, then each tensor
// on its own (rank, dtype, device, extents, strides, sizes, data pointer, self-overlap for
// outputs), then the relations between tensors, then options values, masks, ALiBi and varlen
// offsets, and last whether an output shares memory with any other tensor. Nothing is written
// anywhere until every check has passed.
#include "api/validate.h"

#include "api/overlap.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace umfa {
namespace api {

const char* dtype_name(int32_t dtype) {
  switch (dtype) {
    case UMFA_DTYPE_F32: return "F32";
    case UMFA_DTYPE_F16: return "F16";
    case UMFA_DTYPE_BF16: return "BF16";
    case UMFA_DTYPE_BOOL: return "BOOL";
    case UMFA_DTYPE_I32: return "I32";
    default: return "unknown";
  }
}

namespace {

// Sets of dtypes allowed for a role.
constexpr uint32_t bit(int32_t dtype) { return 1u << dtype; }
constexpr uint32_t kFloat = bit(UMFA_DTYPE_F32) | bit(UMFA_DTYPE_F16) | bit(UMFA_DTYPE_BF16);
constexpr uint32_t kF32 = bit(UMFA_DTYPE_F32);
constexpr uint32_t kMaskTypes = kFloat | bit(UMFA_DTYPE_BOOL);
constexpr uint32_t kI32 = bit(UMFA_DTYPE_I32);

const char* allowed_names(uint32_t set) {
  if (set == kFloat) return "F32, F16 or BF16";
  if (set == kF32) return "F32";
  if (set == kMaskTypes) return "BOOL, F32, F16 or BF16";
  if (set == kI32) return "I32";
  return "?";
}

bool mul_ok(int64_t a, int64_t b, int64_t* out) { return !__builtin_mul_overflow(a, b, out); }
bool add_ok(int64_t a, int64_t b, int64_t* out) { return !__builtin_add_overflow(a, b, out); }

class Checker {
 public:
  Checker(umfa_context* ctx, const char* fn) : ctx_(ctx), fn_(fn) {}

  umfa_status error(umfa_status status, const char* fmt, ...) __attribute__((format(UMFA_PRINTF_FORMAT, 3, 4))) {
    char buf[900];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return fail(ctx_, status, "%s: %s", fn_, buf);
  }

  umfa_context* ctx() const { return ctx_; }

  // Checks one tensor on its own. `rank` is the rank its role needs; `allowed` its dtypes.
  umfa_status tensor(const char* name, const umfa_tensor* t, int32_t rank, uint32_t allowed,
                     bool output, const char* layout) {
    if (t->rank < 0 || t->rank > UMFA_MAX_RANK)
      return error(UMFA_STATUS_INVALID_RANK, "%s.rank (%d) is outside 0..%d", name, t->rank,
                   UMFA_MAX_RANK);
    if (t->rank != rank)
      return error(UMFA_STATUS_INVALID_RANK, "%s.rank is %d; it must be %d (%s)", name, t->rank,
                   rank, layout);
    if (t->dtype < UMFA_DTYPE_F32 || t->dtype > UMFA_DTYPE_I32)
      return error(UMFA_STATUS_UNSUPPORTED_DTYPE, "%s.dtype (%d) is not a known UMFA_DTYPE_*",
                   name, t->dtype);
    if (!(allowed & bit(t->dtype)))
      return error(UMFA_STATUS_UNSUPPORTED_DTYPE, "%s.dtype is %s; it must be %s", name,
                   dtype_name(t->dtype), allowed_names(allowed));
    if (umfa_status st = device(name, t)) return st;
    return extents(name, t, output);
  }

  // Rank-independent checks: device.
  umfa_status device(const char* name, const umfa_tensor* t) {
    if (t->device != UMFA_DEVICE_CPU && t->device != UMFA_DEVICE_CUDA)
      return error(UMFA_STATUS_INVALID_ARGUMENT, "%s.device (%d) is not a known UMFA_DEVICE_*",
                   name, t->device);
    if (t->device != ctx_->device)
      return error(UMFA_STATUS_DEVICE_MISMATCH, "%s.device is %s but the context runs on %s", name,
                   t->device == UMFA_DEVICE_CPU ? "CPU" : "CUDA",
                   ctx_->device == UMFA_DEVICE_CPU ? "the CPU" : "CUDA");
    if (t->device == UMFA_DEVICE_CUDA && t->device_index != ctx_->device_index)
      return error(UMFA_STATUS_DEVICE_MISMATCH,
                   "%s.device_index is %d but the context runs on CUDA device %d", name,
                   t->device_index, ctx_->device_index);
    return UMFA_STATUS_OK;
  }

  // Extents, strides, sizes, data pointer, self-overlap.
  umfa_status extents(const char* name, const umfa_tensor* t, bool output) {
    const int r = t->rank;
    for (int d = 0; d < r; ++d)
      if (t->shape[d] < 0)
        return error(UMFA_STATUS_INVALID_ARGUMENT, "%s.shape[%d] (%lld) is negative", name, d,
                     static_cast<long long>(t->shape[d]));
    for (int d = 0; d < r; ++d)
      if (t->strides[d] < 0)
        return error(UMFA_STATUS_INVALID_STRIDE, "%s.strides[%d] (%lld) is negative", name, d,
                     static_cast<long long>(t->strides[d]));
    const int64_t esize = umfa_dtype_size(t->dtype);
    int64_t count = 1;
    for (int d = 0; d < r; ++d)
      if (!mul_ok(count, t->shape[d], &count))
        return error(UMFA_STATUS_SIZE_OVERFLOW, "%s: the element count overflows 64 bits", name);
    int64_t total_bytes;
    if (!mul_ok(count, esize, &total_bytes))
      return error(UMFA_STATUS_SIZE_OVERFLOW, "%s: the size in bytes overflows 64 bits", name);
    if (count == 0) return UMFA_STATUS_OK;  // empty: the data pointer is never read
    int64_t max_offset = 0;
    for (int d = 0; d < r; ++d) {
      int64_t span;
      if (!mul_ok(t->shape[d] - 1, t->strides[d], &span) || !add_ok(max_offset, span, &max_offset))
        return error(UMFA_STATUS_SIZE_OVERFLOW, "%s: the largest element offset overflows 64 bits",
                     name);
    }
    int64_t end_bytes;
    if (!add_ok(max_offset, 1, &end_bytes) || !mul_ok(end_bytes, esize, &end_bytes) ||
        static_cast<uint64_t>(end_bytes) > SIZE_MAX)
      return error(UMFA_STATUS_SIZE_OVERFLOW,
                   "%s: the largest byte offset overflows the address space", name);
    if (!t->data)
      return error(UMFA_STATUS_NULL_POINTER, "%s.data is NULL but the tensor has %lld elements",
                   name, static_cast<long long>(count));
    if (static_cast<uint64_t>(end_bytes) > UINTPTR_MAX - reinterpret_cast<uintptr_t>(t->data))
      return error(UMFA_STATUS_SIZE_OVERFLOW,
                   "%s: data + the largest byte offset wraps around the address space", name);
    // Backends read elements through typed pointers: a misaligned address is undefined behavior.
    if (reinterpret_cast<uintptr_t>(t->data) % static_cast<uintptr_t>(esize) != 0)
      return error(UMFA_STATUS_INVALID_ARGUMENT,
                   "%s.data (%p) is not aligned to its %lld-byte elements", name, t->data,
                   static_cast<long long>(esize));
    if (output) return overlap(name, t);
    return UMFA_STATUS_OK;
  }

  // An output must not write two elements to one address: with its dimensions (extent > 1)
  // sorted by stride, each stride must exceed the largest offset the inner dimensions reach.
  umfa_status overlap(const char* name, const umfa_tensor* t) {
    struct Dim {
      int64_t extent, stride;
      int index;
    } dims[UMFA_MAX_RANK];
    int n = 0;
    for (int d = 0; d < t->rank; ++d)
      if (t->shape[d] > 1) dims[n++] = {t->shape[d], t->strides[d], d};
    for (int i = 1; i < n; ++i)  // insertion sort by (stride, extent); n <= 4
      for (int j = i; j > 0 && (dims[j].stride < dims[j - 1].stride ||
                                (dims[j].stride == dims[j - 1].stride &&
                                 dims[j].extent < dims[j - 1].extent));
           --j)
        std::swap(dims[j], dims[j - 1]);
    int64_t reach = 0;  // largest offset reachable with the inner dimensions (fits: checked above)
    for (int i = 0; i < n; ++i) {
      if (dims[i].stride <= reach)
        return error(UMFA_STATUS_INVALID_STRIDE,
                     "%s.strides[%d] (%lld) makes output elements overlap (an output needs "
                     "distinct addresses for every element)",
                     name, dims[i].index, static_cast<long long>(dims[i].stride));
      reach += (dims[i].extent - 1) * dims[i].stride;
    }
    return UMFA_STATUS_OK;
  }

 private:
  umfa_context* ctx_;
  const char* fn_;
};

// A 4-D View over a validated tensor with the given shape and strides (already mapped).
View make_view(const umfa_tensor* t, int64_t s0, int64_t s1, int64_t s2, int64_t s3, int64_t st0,
               int64_t st1, int64_t st2, int64_t st3) {
  View v;
  v.data = t->data;
  v.dtype = t->dtype;
  v.shape[0] = s0;
  v.shape[1] = s1;
  v.shape[2] = s2;
  v.shape[3] = s3;
  v.strides[0] = st0;
  v.strides[1] = st1;
  v.strides[2] = st2;
  v.strides[3] = st3;
  return v;
}

// [B, N, H, D] (dense, rank 4) or [total, H, D] (varlen, rank 3) as the 4-D [B|1, N, H, D].
View seq_view(const umfa_tensor* t, bool varlen) {
  if (varlen)
    return make_view(t, 1, t->shape[0], t->shape[1], t->shape[2], 0, t->strides[0], t->strides[1],
                     t->strides[2]);
  return make_view(t, t->shape[0], t->shape[1], t->shape[2], t->shape[3], t->strides[0],
                   t->strides[1], t->strides[2], t->strides[3]);
}

// [B, Hq, Nq] (dense, rank 3) or [Hq, total] (varlen, rank 2) as {B|1, Hq, N, 1}.
View lse_view(const umfa_tensor* t, bool varlen) {
  if (varlen)
    return make_view(t, 1, t->shape[0], t->shape[1], 1, 0, t->strides[0], t->strides[1], 0);
  return make_view(t, t->shape[0], t->shape[1], t->shape[2], 1, t->strides[0], t->strides[1],
                   t->strides[2], 0);
}

struct Dims {
  int64_t batch = 0, nq = 0, nk = 0, hq = 0, hkv = 0, d = 0;
  int64_t total_q = 0, total_k = 0;  // varlen
};

// The tensors of one call, by role.
struct Args {
  const umfa_tensor *q = nullptr, *k = nullptr, *v = nullptr, *out = nullptr, *lse = nullptr;
  const umfa_tensor *dout = nullptr, *dq = nullptr, *dk = nullptr, *dv = nullptr;
  bool backward = false;
};

const char* seq_layout(bool varlen, bool kv) {
  if (varlen) return kv ? "[total_k, heads_kv, head_dim]" : "[total_q, heads_q, head_dim]";
  return kv ? "[batch, seqlen_k, heads_kv, head_dim]" : "[batch, seqlen_q, heads_q, head_dim]";
}

// Requires `t` to have exactly the extents `want` (names per dimension for messages).
umfa_status same_shape(Checker& c, const char* name, const umfa_tensor* t, const char* ref_name,
                       const umfa_tensor* ref, const char* const* dim_names) {
  for (int d = 0; d < ref->rank; ++d)
    if (t->shape[d] != ref->shape[d])
      return c.error(UMFA_STATUS_SHAPE_MISMATCH, "%s.shape[%d] (%s) is %lld; it must equal %s.shape[%d] (%lld)",
                     name, d, dim_names[d], static_cast<long long>(t->shape[d]), ref_name, d,
                     static_cast<long long>(ref->shape[d]));
  return UMFA_STATUS_OK;
}

const char* const kDenseQ[] = {"batch", "seqlen_q", "heads_q", "head_dim"};
const char* const kDenseK[] = {"batch", "seqlen_k", "heads_kv", "head_dim"};
const char* const kPackedQ[] = {"total_q", "heads_q", "head_dim"};
const char* const kPackedK[] = {"total_k", "heads_kv", "head_dim"};

umfa_status check_tensors(Checker& c, const Args& a, bool varlen, Dims* dm) {
  const int rs = varlen ? 3 : 4;  // rank of q/k/v/out/...
  const int rl = varlen ? 2 : 3;  // rank of lse
  const char* lse_layout = varlen ? "[heads_q, total_q]" : "[batch, heads_q, seqlen_q]";
  if (umfa_status st = c.tensor("q", a.q, rs, kFloat, false, seq_layout(varlen, false))) return st;
  if (umfa_status st = c.tensor("k", a.k, rs, kFloat, false, seq_layout(varlen, true))) return st;
  if (umfa_status st = c.tensor("v", a.v, rs, kFloat, false, seq_layout(varlen, true))) return st;
  if (umfa_status st = c.tensor("out", a.out, rs, kFloat, !a.backward, seq_layout(varlen, false)))
    return st;
  if (a.lse)
    if (umfa_status st = c.tensor("lse", a.lse, rl, kF32, !a.backward, lse_layout)) return st;
  if (a.backward) {
    if (umfa_status st = c.tensor("dout", a.dout, rs, kFloat, false, seq_layout(varlen, false)))
      return st;
    if (umfa_status st = c.tensor("dq", a.dq, rs, kFloat, true, seq_layout(varlen, false))) return st;
    if (umfa_status st = c.tensor("dk", a.dk, rs, kFloat, true, seq_layout(varlen, true))) return st;
    if (umfa_status st = c.tensor("dv", a.dv, rs, kFloat, true, seq_layout(varlen, true))) return st;
  }

  if (a.k->dtype != a.q->dtype)
    return c.error(UMFA_STATUS_UNSUPPORTED_DTYPE, "k.dtype is %s but q.dtype is %s; q, k and v must share one dtype",
                   dtype_name(a.k->dtype), dtype_name(a.q->dtype));
  if (a.v->dtype != a.q->dtype)
    return c.error(UMFA_STATUS_UNSUPPORTED_DTYPE, "v.dtype is %s but q.dtype is %s; q, k and v must share one dtype",
                   dtype_name(a.v->dtype), dtype_name(a.q->dtype));

  const int hd = rs - 1;  // index of head_dim
  const int hh = rs - 2;  // index of heads
  dm->d = a.q->shape[hd];
  if (dm->d < 1 || dm->d > UMFA_MAX_HEAD_DIM)
    return c.error(UMFA_STATUS_HEAD_DIM_OUT_OF_RANGE, "q.shape[%d] (head_dim) is %lld; it must be in 1..%d", hd,
                   static_cast<long long>(dm->d), UMFA_MAX_HEAD_DIM);
  const char* const* qn = varlen ? kPackedQ : kDenseQ;
  const char* const* kn = varlen ? kPackedK : kDenseK;
  if (!varlen && a.k->shape[0] != a.q->shape[0])
    return c.error(UMFA_STATUS_SHAPE_MISMATCH, "k.shape[0] (batch) is %lld; it must equal q.shape[0] (%lld)",
                   static_cast<long long>(a.k->shape[0]), static_cast<long long>(a.q->shape[0]));
  if (a.k->shape[hd] != dm->d)
    return c.error(UMFA_STATUS_SHAPE_MISMATCH, "k.shape[%d] (head_dim) is %lld; it must equal q.shape[%d] (%lld)", hd,
                   static_cast<long long>(a.k->shape[hd]), hd, static_cast<long long>(dm->d));
  if (umfa_status st = same_shape(c, "v", a.v, "k", a.k, kn)) return st;

  dm->hq = a.q->shape[hh];
  dm->hkv = a.k->shape[hh];
  if ((dm->hkv == 0 && dm->hq != 0) || (dm->hkv != 0 && dm->hq % dm->hkv != 0))
    return c.error(UMFA_STATUS_HEADS_NOT_DIVISIBLE,
                   "q.shape[%d] (heads_q = %lld) is not a multiple of k.shape[%d] (heads_kv = %lld)", hh,
                   static_cast<long long>(dm->hq), hh, static_cast<long long>(dm->hkv));

  if (umfa_status st = same_shape(c, "out", a.out, "q", a.q, qn)) return st;
  if (a.backward) {
    if (umfa_status st = same_shape(c, "dout", a.dout, "q", a.q, qn)) return st;
    if (umfa_status st = same_shape(c, "dq", a.dq, "q", a.q, qn)) return st;
    if (umfa_status st = same_shape(c, "dk", a.dk, "k", a.k, kn)) return st;
    if (umfa_status st = same_shape(c, "dv", a.dv, "k", a.k, kn)) return st;
  }

  if (varlen) {
    dm->total_q = a.q->shape[0];
    dm->total_k = a.k->shape[0];
  } else {
    dm->batch = a.q->shape[0];
    dm->nq = a.q->shape[1];
    dm->nk = a.k->shape[1];
  }
  if (a.lse) {
    const int64_t want[3] = {varlen ? dm->hq : dm->batch, varlen ? dm->total_q : dm->hq, dm->nq};
    const char* const names[3] = {varlen ? "heads_q" : "batch", varlen ? "total_q" : "heads_q",
                                  "seqlen_q"};
    for (int d = 0; d < rl; ++d)
      if (a.lse->shape[d] != want[d])
        return c.error(UMFA_STATUS_SHAPE_MISMATCH, "lse.shape[%d] is %lld; it must be %s = %lld (lse is %s)", d,
                       static_cast<long long>(a.lse->shape[d]), names[d],
                       static_cast<long long>(want[d]), lse_layout);
  }

  return UMFA_STATUS_OK;
}

// Outputs must not share memory with any other tensor of the call: the inputs (option tensors
// included), and each other. Runs once every tensor has passed its own checks.
umfa_status check_output_overlap(Checker& c, const Args& a, const umfa_attention_options& o) {
  struct Named {
    const char* name;
    const umfa_tensor* t;
  };
  Named outs[3];
  int n_out = 0;
  if (a.backward) {
    outs[n_out++] = {"dq", a.dq};
    outs[n_out++] = {"dk", a.dk};
    outs[n_out++] = {"dv", a.dv};
  } else {
    outs[n_out++] = {"out", a.out};
    if (a.lse) outs[n_out++] = {"lse", a.lse};
  }
  const Named inputs[] = {{"q", a.q},
                          {"k", a.k},
                          {"v", a.v},
                          {"out", a.backward ? a.out : nullptr},
                          {"dout", a.dout},
                          {"lse", a.backward ? a.lse : nullptr},
                          {"attn_mask", o.attn_mask},
                          {"alibi_slopes", o.alibi_slopes},
                          {"cu_seqlens_q", o.cu_seqlens_q},
                          {"cu_seqlens_k", o.cu_seqlens_k}};
  auto check = [&](const Named& out, const Named& other) -> umfa_status {
    if (!other.t) return UMFA_STATUS_OK;
    switch (views_overlap(*out.t, *other.t)) {
      case Overlap::kDisjoint: return UMFA_STATUS_OK;
      case Overlap::kShared:
        return c.error(UMFA_STATUS_INVALID_ARGUMENT,
                       "%s.data (%p) and %s.data (%p) reach the same memory; an output must not "
                       "share memory with another tensor of the call",
                       out.name, out.t->data, other.name, other.t->data);
      case Overlap::kUndecided:
        break;
    }
    return c.error(UMFA_STATUS_INVALID_ARGUMENT,
                   "%s.data (%p) and %s.data (%p) may reach the same memory (their strides "
                   "interleave in a way that could not be proven disjoint); an output must not "
                   "share memory with another tensor of the call",
                   out.name, out.t->data, other.name, other.t->data);
  };
  for (int i = 0; i < n_out; ++i) {
    for (const Named& in : inputs)
      if (umfa_status st = check(outs[i], in)) return st;
    for (int j = i + 1; j < n_out; ++j)
      if (umfa_status st = check(outs[j], outs[i])) return st;
  }
  return UMFA_STATUS_OK;
}

// Reads, validates and copies one host cu_seqlens tensor (CPU contexts; device offsets are
// never read back, see resolve_options).
umfa_status read_cu_seqlens(Checker& c, const char* name, const umfa_tensor* t, int64_t total_rows,
                            const char* rows_name, std::vector<int32_t>* out, int64_t* max_len) {
  const int64_t n = t->shape[0];
  try {
    out->resize(static_cast<size_t>(n));
  } catch (...) {
    return c.error(UMFA_STATUS_OUT_OF_MEMORY, "%s: out of memory copying %lld offsets", name,
                   static_cast<long long>(n));
  }
  const int32_t* src = static_cast<const int32_t*>(t->data);
  for (int64_t i = 0; i < n; ++i) (*out)[i] = src[i * t->strides[0]];
  const std::vector<int32_t>& cu = *out;
  if (cu[0] != 0)
    return c.error(UMFA_STATUS_INVALID_SEQLENS, "%s[0] is %d; it must be 0", name, cu[0]);
  int64_t longest = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (cu[i] < cu[i - 1])
      return c.error(UMFA_STATUS_INVALID_SEQLENS, "%s[%lld] (%d) is smaller than %s[%lld] (%d); offsets must not decrease",
                     name, static_cast<long long>(i), cu[i], name, static_cast<long long>(i - 1),
                     cu[i - 1]);
    longest = std::max<int64_t>(longest, int64_t(cu[i]) - cu[i - 1]);
  }
  if (cu[n - 1] > total_rows)
    return c.error(UMFA_STATUS_INVALID_SEQLENS, "%s[%lld] (%d) exceeds the %lld rows of %s", name,
                   static_cast<long long>(n - 1), cu[n - 1], static_cast<long long>(total_rows),
                   rows_name);
  *max_len = longest;
  return UMFA_STATUS_OK;
}

umfa_status resolve_options(Checker& c, const umfa_attention_options* o, const Args& a, bool varlen,
                            Dims& dm, Resolved* r) {
  Problem& p = r->p;
  if (o->mask_mode > UMFA_MASK_CAUSAL_BOTTOM_RIGHT)
    return c.error(UMFA_STATUS_INVALID_ARGUMENT, "options->mask_mode (%u) is not a UMFA_MASK_* value",
                   o->mask_mode);
  if (!std::isfinite(o->softmax_scale))
    return c.error(UMFA_STATUS_INVALID_ARGUMENT, "options->softmax_scale (%g) is not finite",
                   static_cast<double>(o->softmax_scale));
  if (!std::isfinite(o->softcap) || o->softcap < 0.f)
    return c.error(UMFA_STATUS_INVALID_ARGUMENT, "options->softcap (%g) must be finite and >= 0",
                   static_cast<double>(o->softcap));
  if (o->flags & ~static_cast<uint32_t>(UMFA_FLAG_DETERMINISTIC))
    return c.error(UMFA_STATUS_INVALID_ARGUMENT, "options->flags (0x%x) has unknown bits", o->flags);

  // Varlen offsets.
  if (varlen) {
    const umfa_tensor* cq = o->cu_seqlens_q;
    const umfa_tensor* ck = o->cu_seqlens_k;
    if (umfa_status st = c.tensor("cu_seqlens_q", cq, 1, kI32, false, "[batch + 1]")) return st;
    if (umfa_status st = c.tensor("cu_seqlens_k", ck, 1, kI32, false, "[batch + 1]")) return st;
    if (cq->shape[0] < 1)
      return c.error(UMFA_STATUS_SHAPE_MISMATCH, "cu_seqlens_q.shape[0] is 0; it must be batch + 1 >= 1");
    if (ck->shape[0] != cq->shape[0])
      return c.error(UMFA_STATUS_SHAPE_MISMATCH, "cu_seqlens_k.shape[0] (%lld) must equal cu_seqlens_q.shape[0] (%lld)",
                     static_cast<long long>(ck->shape[0]), static_cast<long long>(cq->shape[0]));
    if (o->max_seqlen_q < 0)
      return c.error(UMFA_STATUS_INVALID_ARGUMENT, "options->max_seqlen_q (%lld) is negative",
                     static_cast<long long>(o->max_seqlen_q));
    if (o->max_seqlen_k < 0)
      return c.error(UMFA_STATUS_INVALID_ARGUMENT, "options->max_seqlen_k (%lld) is negative",
                     static_cast<long long>(o->max_seqlen_k));
    if (c.ctx()->device != UMFA_DEVICE_CPU) {
      // Device offsets are not read back (that would synchronize the device): the caller's
      // max_seqlen_q/k bound the sequence lengths, and the backend clamps every sequence to the
      // tensors' rows and to those bounds, so any contents are memory-safe.
      for (const umfa_tensor* t : {cq, ck})
        if (t->shape[0] > 1 && t->strides[0] != 1)
          return c.error(UMFA_STATUS_INVALID_STRIDE, "%s.strides[0] is %lld; device offsets must be contiguous (1)",
                         t == cq ? "cu_seqlens_q" : "cu_seqlens_k", static_cast<long long>(t->strides[0]));
      if (cq->shape[0] > 1 && (o->max_seqlen_q <= 0 || o->max_seqlen_k <= 0))
        return c.error(UMFA_STATUS_INVALID_ARGUMENT, "options->max_seqlen_%s is 0: with cu_seqlens on the device, max_seqlen_q and max_seqlen_k must be set (> 0, at least the longest sequence); the offsets are not read back",
                       o->max_seqlen_q <= 0 ? "q" : "k");
    }
    dm.batch = cq->shape[0] - 1;
    r->total_q = dm.total_q;
    r->total_k = dm.total_k;
  }

  // Mask / bias tensor.
  if (const umfa_tensor* m = o->attn_mask) {
    if (varlen)
      return c.error(UMFA_STATUS_INVALID_ARGUMENT, "options->attn_mask cannot be combined with varlen (cu_seqlens)");
    if (m->rank < 1 || m->rank > 4)
      return c.error(UMFA_STATUS_INVALID_RANK, "attn_mask.rank is %d; it must be 1..4 (broadcastable to [batch, heads_q, seqlen_q, seqlen_k])",
                     m->rank);
    if (umfa_status st = c.tensor("attn_mask", m, m->rank, kMaskTypes, false, "")) return st;
    const int64_t target[4] = {dm.batch, dm.hq, dm.nq, dm.nk};
    const char* const tnames[4] = {"batch", "heads_q", "seqlen_q", "seqlen_k"};
    View mv;
    mv.data = m->data;
    mv.dtype = m->dtype;
    for (int i = 0; i < 4; ++i) {
      mv.shape[i] = target[i];
      mv.strides[i] = 0;
    }
    for (int i = 0; i < m->rank; ++i) {
      const int ti = 4 - m->rank + i;
      if (m->shape[i] != target[ti] && m->shape[i] != 1)
        return c.error(UMFA_STATUS_SHAPE_MISMATCH,
                       "attn_mask.shape[%d] (%lld) does not broadcast to %s (%lld); it must be 1 or %lld",
                       i, static_cast<long long>(m->shape[i]), tnames[ti],
                       static_cast<long long>(target[ti]), static_cast<long long>(target[ti]));
      mv.strides[ti] = m->shape[i] == 1 ? 0 : m->strides[i];
    }
    p.mask = mv;
  }

  // ALiBi slopes.
  if (const umfa_tensor* s = o->alibi_slopes) {
    if (s->rank < 1 || s->rank > 2)
      return c.error(UMFA_STATUS_INVALID_RANK, "alibi_slopes.rank is %d; it must be 1 ([heads_q]) or 2 ([batch, heads_q])",
                     s->rank);
    if (umfa_status st = c.tensor("alibi_slopes", s, s->rank, kF32, false, "")) return st;
    if (s->rank == 1) {
      if (s->shape[0] != dm.hq)
        return c.error(UMFA_STATUS_SHAPE_MISMATCH, "alibi_slopes.shape[0] is %lld; it must equal heads_q (%lld)",
                       static_cast<long long>(s->shape[0]), static_cast<long long>(dm.hq));
      p.alibi = make_view(s, dm.batch, dm.hq, 1, 1, 0, s->strides[0], 0, 0);
    } else {
      if (s->shape[0] != dm.batch)
        return c.error(UMFA_STATUS_SHAPE_MISMATCH, "alibi_slopes.shape[0] is %lld; it must equal batch (%lld)",
                       static_cast<long long>(s->shape[0]), static_cast<long long>(dm.batch));
      if (s->shape[1] != dm.hq)
        return c.error(UMFA_STATUS_SHAPE_MISMATCH, "alibi_slopes.shape[1] is %lld; it must equal heads_q (%lld)",
                       static_cast<long long>(s->shape[1]), static_cast<long long>(dm.hq));
      p.alibi = make_view(s, dm.batch, dm.hq, 1, 1, s->strides[0], s->strides[1], 0, 0);
    }
  }

  // Scalars and the visibility window (causal folded in).
  p.scale = o->softmax_scale != 0.f ? o->softmax_scale
                                    : static_cast<float>(1.0 / std::sqrt(static_cast<double>(dm.d)));
  p.softcap = o->softcap;
  p.bottom_right = o->mask_mode != UMFA_MASK_CAUSAL_TOP_LEFT;
  p.window_left = o->has_window ? (o->window_left < 0 ? -1 : o->window_left) : -1;
  p.window_right = o->has_window ? (o->window_right < 0 ? -1 : o->window_right) : -1;
  if (o->mask_mode != UMFA_MASK_NONE) p.window_right = 0;  // causal: nothing right of the diagonal
  p.flags = o->flags;
  p.stream = o->stream;
  (void)a;
  return UMFA_STATUS_OK;
}

// Reads the varlen offsets (after every structural check, so that offsets an output overlaps
// are refused as overlapping rather than as invalid contents) and checks the size of the score
// matrix.
umfa_status resolve_offsets(Checker& c, const umfa_attention_options* o, bool varlen, Dims& dm,
                            Resolved* r) {
  Problem& p = r->p;
  if (varlen) {
    const umfa_tensor* cq = o->cu_seqlens_q;
    const umfa_tensor* ck = o->cu_seqlens_k;
    if (c.ctx()->device == UMFA_DEVICE_CPU) {
      // The copies are the call's first allocation: over the workspace limit, refuse before
      // reading or copying anything (a broadcast list of 2^25 offsets would take 256 MiB).
      r->host_bytes = (static_cast<uint64_t>(cq->shape[0]) + static_cast<uint64_t>(ck->shape[0])) *
                      sizeof(int32_t);
      const uint64_t limit = c.ctx()->workspace_limit;
      if (limit && r->host_bytes > limit)
        return c.error(UMFA_STATUS_WORKSPACE_LIMIT,
                       "the call needs %llu bytes of workspace (copies of cu_seqlens_q and "
                       "cu_seqlens_k) but the context's workspace_limit_bytes is %llu",
                       static_cast<unsigned long long>(r->host_bytes),
                       static_cast<unsigned long long>(limit));
      int64_t mq = 0, mk = 0;
      if (umfa_status st = read_cu_seqlens(c, "cu_seqlens_q", cq, dm.total_q, "q", &r->cu_q, &mq)) return st;
      if (umfa_status st = read_cu_seqlens(c, "cu_seqlens_k", ck, dm.total_k, "k", &r->cu_k, &mk)) return st;
      if (o->max_seqlen_q > 0 && o->max_seqlen_q < mq)
        return c.error(UMFA_STATUS_INVALID_SEQLENS, "options->max_seqlen_q (%lld) is smaller than the longest query sequence (%lld)",
                       static_cast<long long>(o->max_seqlen_q), static_cast<long long>(mq));
      if (o->max_seqlen_k > 0 && o->max_seqlen_k < mk)
        return c.error(UMFA_STATUS_INVALID_SEQLENS, "options->max_seqlen_k (%lld) is smaller than the longest key sequence (%lld)",
                       static_cast<long long>(o->max_seqlen_k), static_cast<long long>(mk));
      dm.nq = mq;
      dm.nk = mk;
      p.cu_seqlens_q = r->cu_q.data();
      p.cu_seqlens_k = r->cu_k.data();
    } else {
      dm.nq = std::min<int64_t>(o->max_seqlen_q, dm.total_q);
      dm.nk = std::min<int64_t>(o->max_seqlen_k, dm.total_k);
      p.cu_seqlens_q = static_cast<const int32_t*>(cq->data);
      p.cu_seqlens_k = static_cast<const int32_t*>(ck->data);
    }
  }

  // The score matrix's size must be representable (backends index with it).
  int64_t scores;
  if (!mul_ok(dm.batch, dm.hq, &scores) || !mul_ok(scores, dm.nq, &scores) ||
      !mul_ok(scores, dm.nk, &scores))
    return c.error(UMFA_STATUS_SIZE_OVERFLOW, "q, k: batch * heads_q * seqlen_q * seqlen_k overflows 64 bits");
  return UMFA_STATUS_OK;
}

umfa_status resolve(umfa_context* ctx, const char* fn, const umfa_attention_options* options,
                    const Args& a, Resolved* r) {
  if (umfa_status st = check_context(ctx, fn)) return st;
  Checker c(ctx, fn);

  umfa_attention_options o;
  std::memset(&o, 0, sizeof o);
  if (options) {
    const uint32_t size = options->struct_size;
    if (size < sizeof(uint32_t))
      return c.error(UMFA_STATUS_STRUCT_VERSION, "options->struct_size (%u) is too small to hold struct_size", size);
    if (size > sizeof o)
      return c.error(UMFA_STATUS_STRUCT_VERSION,
                     "options->struct_size (%u) is larger than this library's umfa_attention_options "
                     "(%zu): the caller needs a newer libumfa",
                     size, sizeof o);
    std::memcpy(&o, options, size);  // a smaller (older) struct leaves the tail zero
  }

  // Every required tensor struct must be present.
  struct Req {
    const char* name;
    const umfa_tensor* t;
  } req[] = {{"q", a.q}, {"k", a.k}, {"v", a.v}, {"out", a.out},
             {"dout", a.dout}, {"lse", a.lse}, {"dq", a.dq}, {"dk", a.dk}, {"dv", a.dv}};
  const int n_req = a.backward ? 9 : 4;
  for (int i = 0; i < n_req; ++i)
    if (!req[i].t) return c.error(UMFA_STATUS_NULL_POINTER, "%s is NULL", req[i].name);

  const bool has_cq = o.cu_seqlens_q != nullptr, has_ck = o.cu_seqlens_k != nullptr;
  if (has_cq != has_ck)
    return c.error(UMFA_STATUS_NULL_POINTER, "options->%s is NULL but options->%s is set; varlen needs both",
                   has_cq ? "cu_seqlens_k" : "cu_seqlens_q", has_cq ? "cu_seqlens_q" : "cu_seqlens_k");
  const bool varlen = has_cq;

  Dims dm;
  if (umfa_status st = check_tensors(c, a, varlen, &dm)) return st;
  if (umfa_status st = resolve_options(c, &o, a, varlen, dm, r)) return st;
  if (umfa_status st = check_output_overlap(c, a, o)) return st;
  if (umfa_status st = resolve_offsets(c, &o, varlen, dm, r)) return st;

  Problem& p = r->p;
  p.batch = dm.batch;
  p.heads_q = dm.hq;
  p.heads_kv = dm.hkv;
  p.seqlen_q = dm.nq;
  p.seqlen_k = dm.nk;
  p.head_dim = dm.d;
  p.q = seq_view(a.q, varlen);
  p.k = seq_view(a.k, varlen);
  p.v = seq_view(a.v, varlen);
  p.out = seq_view(a.out, varlen);
  if (a.lse) p.lse = lse_view(a.lse, varlen);
  if (a.backward) {
    p.dout = seq_view(a.dout, varlen);
    p.dq = seq_view(a.dq, varlen);
    p.dk = seq_view(a.dk, varlen);
    p.dv = seq_view(a.dv, varlen);
  }
  r->varlen = varlen;
  // Nothing to compute: every output element that exists is a fully masked row (out 0,
  // lse -inf), a varlen row outside every sequence (the same), or a gradient of 0.
  r->empty = dm.batch == 0 || dm.hq == 0 || dm.nq == 0 || dm.nk == 0;
  return UMFA_STATUS_OK;
}

}  // namespace

umfa_status resolve_forward(umfa_context* ctx, const umfa_attention_options* options,
                            const umfa_tensor* q, const umfa_tensor* k, const umfa_tensor* v,
                            const umfa_tensor* out, const umfa_tensor* lse, Resolved* r) {
  Args a;
  a.q = q;
  a.k = k;
  a.v = v;
  a.out = out;
  a.lse = lse;
  return resolve(ctx, "umfa_attention_forward", options, a, r);
}

umfa_status resolve_backward(umfa_context* ctx, const umfa_attention_options* options,
                             const umfa_tensor* q, const umfa_tensor* k, const umfa_tensor* v,
                             const umfa_tensor* out, const umfa_tensor* dout,
                             const umfa_tensor* lse, const umfa_tensor* dq,
                             const umfa_tensor* dk, const umfa_tensor* dv, Resolved* r) {
  Args a;
  a.q = q;
  a.k = k;
  a.v = v;
  a.out = out;
  a.dout = dout;
  a.lse = lse;
  a.dq = dq;
  a.dk = dk;
  a.dv = dv;
  a.backward = true;
  return resolve(ctx, "umfa_attention_backward", options, a, r);
}

umfa_status check_tensor(umfa_context* ctx, const char* fn, const char* name,
                         const umfa_tensor* t, int32_t rank, uint32_t dtypes, bool output,
                         const char* layout) {
  Checker c(ctx, fn);
  return c.tensor(name, t, rank, dtypes, output, layout);
}

}  // namespace api
}  // namespace umfa
