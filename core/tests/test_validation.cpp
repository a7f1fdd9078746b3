// Every rejected input of umfa_attention_forward / umfa_attention_backward: each case asserts the
// exact status, a message naming the argument, and that no output byte was written (outputs are
// pre-filled with a sentinel pattern and compared byte for byte). Then the zero-size problems
// and the option-struct versioning rules that must succeed, with exactly what they write.
#include <cstddef>
#include <cstdlib>
#include <functional>
#include <limits>

#include "test_util.h"

namespace {

constexpr unsigned char kSentinel = 0xA5;
constexpr size_t kCap = 64 * 1024;  // bytes per tensor buffer (generous for stride mutations)

// Dense base problem: B=2, Nq=5, Nk=7, Hq=4, Hkv=2, D=8, f32, contiguous BSHD.
constexpr int64_t B = 2, NQ = 5, NK = 7, HQ = 4, HKV = 2, D = 8;
// Varlen base problem: 2 sequences, total_q = 9 (4 + 5), total_k = 11 (6 + 5).
constexpr int64_t TQ = 9, TK = 11;

struct Fixture {
  umfa_context* ctx = nullptr;
  t::Bytes qb{kCap}, kb{kCap}, vb{kCap}, ob_in{kCap}, doutb{kCap};  // inputs
  t::Bytes outb{kCap}, lseb{kCap}, dqb{kCap}, dkb{kCap}, dvb{kCap};  // outputs
  t::Bytes maskb{kCap}, alibib{kCap}, cuqb{kCap}, cukb{kCap};
  umfa_buffer* some_buffer = nullptr;

  void reset_outputs() {
    for (t::Bytes* b : {&outb, &lseb, &dqb, &dkb, &dvb}) std::memset(b->data(), kSentinel, kCap);
  }
  bool outputs_untouched() {
    for (t::Bytes* b : {&outb, &lseb, &dqb, &dkb, &dvb}) {
      const unsigned char* p = static_cast<const unsigned char*>(b->data());
      for (size_t i = 0; i < kCap; ++i)
        if (p[i] != kSentinel) return false;
    }
    return true;
  }
};

Fixture* F = nullptr;

struct Call {
  umfa_context* ctx;
  umfa_attention_options o;
  bool pass_options = true;
  umfa_tensor q, k, v, out, lse, dout, dq, dk, dv, mask, alibi, cuq, cuk;
  // Which tensor arguments to pass as NULL.
  bool null_q = false, null_k = false, null_v = false, null_out = false, null_lse = false;
  bool null_dout = false, null_dq = false, null_dk = false, null_dv = false;

  void use_mask() { o.attn_mask = &mask; }
  void use_alibi() { o.alibi_slopes = &alibi; }
  void use_varlen() {
    o.cu_seqlens_q = &cuq;
    o.cu_seqlens_k = &cuk;
  }

  umfa_status forward() {
    return umfa_attention_forward(ctx, pass_options ? &o : nullptr, null_q ? nullptr : &q,
                                  null_k ? nullptr : &k, null_v ? nullptr : &v,
                                  null_out ? nullptr : &out, null_lse ? nullptr : &lse);
  }
  umfa_status backward() {
    // In backward, `out` is an input: point it at valid forward results, not at the sentinel.
    return umfa_attention_backward(ctx, pass_options ? &o : nullptr, null_q ? nullptr : &q,
                                   null_k ? nullptr : &k, null_v ? nullptr : &v,
                                   null_out ? nullptr : &out, null_dout ? nullptr : &dout,
                                   null_lse ? nullptr : &lse, null_dq ? nullptr : &dq,
                                   null_dk ? nullptr : &dk, null_dv ? nullptr : &dv);
  }
};

Call dense(bool backward = false) {
  Call c;
  c.ctx = F->ctx;
  std::memset(&c.o, 0, sizeof c.o);
  c.o.struct_size = sizeof c.o;
  c.q = t::tensor4(F->qb.data(), UMFA_DTYPE_F32, B, NQ, HQ, D);
  c.k = t::tensor4(F->kb.data(), UMFA_DTYPE_F32, B, NK, HKV, D);
  c.v = t::tensor4(F->vb.data(), UMFA_DTYPE_F32, B, NK, HKV, D);
  c.out = t::tensor4(backward ? F->ob_in.data() : F->outb.data(), UMFA_DTYPE_F32, B, NQ, HQ, D);
  c.dout = t::tensor4(F->doutb.data(), UMFA_DTYPE_F32, B, NQ, HQ, D);
  c.dq = t::tensor4(F->dqb.data(), UMFA_DTYPE_F32, B, NQ, HQ, D);
  c.dk = t::tensor4(F->dkb.data(), UMFA_DTYPE_F32, B, NK, HKV, D);
  c.dv = t::tensor4(F->dvb.data(), UMFA_DTYPE_F32, B, NK, HKV, D);
  const int64_t lse_shape[3] = {B, HQ, NQ};
  umfa_tensor_init_contiguous(&c.lse, F->lseb.data(), UMFA_DTYPE_F32, 3, lse_shape);
  // A backward call reads lse: give it real values (copied from the forward fixture below).
  if (backward) c.lse.data = static_cast<char*>(F->ob_in.data()) + kCap / 2;
  const int64_t mask_shape[4] = {B, HQ, NQ, NK};
  umfa_tensor_init_contiguous(&c.mask, F->maskb.data(), UMFA_DTYPE_BOOL, 4, mask_shape);
  const int64_t alibi_shape[1] = {HQ};
  umfa_tensor_init_contiguous(&c.alibi, F->alibib.data(), UMFA_DTYPE_F32, 1, alibi_shape);
  const int64_t cu_shape[1] = {3};
  umfa_tensor_init_contiguous(&c.cuq, F->cuqb.data(), UMFA_DTYPE_I32, 1, cu_shape);
  umfa_tensor_init_contiguous(&c.cuk, F->cukb.data(), UMFA_DTYPE_I32, 1, cu_shape);
  return c;
}

// 3-D THD tensors and a 2-D lse; cu_seqlens set.
Call varlen(bool backward = false) {
  Call c = dense(backward);
  const int64_t qs[3] = {TQ, HQ, D}, ks[3] = {TK, HKV, D}, ls[2] = {HQ, TQ};
  umfa_tensor_init_contiguous(&c.q, F->qb.data(), UMFA_DTYPE_F32, 3, qs);
  umfa_tensor_init_contiguous(&c.k, F->kb.data(), UMFA_DTYPE_F32, 3, ks);
  umfa_tensor_init_contiguous(&c.v, F->vb.data(), UMFA_DTYPE_F32, 3, ks);
  umfa_tensor_init_contiguous(&c.out, backward ? F->ob_in.data() : F->outb.data(), UMFA_DTYPE_F32, 3, qs);
  umfa_tensor_init_contiguous(&c.dout, F->doutb.data(), UMFA_DTYPE_F32, 3, qs);
  umfa_tensor_init_contiguous(&c.dq, F->dqb.data(), UMFA_DTYPE_F32, 3, qs);
  umfa_tensor_init_contiguous(&c.dk, F->dkb.data(), UMFA_DTYPE_F32, 3, ks);
  umfa_tensor_init_contiguous(&c.dv, F->dvb.data(), UMFA_DTYPE_F32, 3, ks);
  void* lse_data = backward ? static_cast<char*>(F->ob_in.data()) + kCap / 2 : F->lseb.data();
  umfa_tensor_init_contiguous(&c.lse, lse_data, UMFA_DTYPE_F32, 2, ls);
  int32_t* cq = static_cast<int32_t*>(F->cuqb.data());
  int32_t* ck = static_cast<int32_t*>(F->cukb.data());
  cq[0] = 0, cq[1] = 4, cq[2] = 9;
  ck[0] = 0, ck[1] = 6, ck[2] = 11;
  c.use_varlen();
  return c;
}

// Asserts one rejected call: status, message naming the argument, outputs untouched.
void expect(const char* label, umfa_status got, umfa_status want, const char* token,
            const umfa_context* ctx) {
  // A rejected context handle has no message of its own: the thread's is the one to read.
  if (want == UMFA_STATUS_NULL_CONTEXT || want == UMFA_STATUS_INVALID_HANDLE) ctx = nullptr;
  const char* ctx_msg = ctx ? umfa_last_error(ctx) : "";
  std::string thread_msg = umfa_last_error(nullptr);
  CHECK_MSG(got == want, "[%s] returned %s, expected %s (message: %s)", label,
            umfa_status_string(got), umfa_status_string(want), thread_msg.c_str());
  CHECK_MSG(std::strstr(thread_msg.c_str(), token) != nullptr,
            "[%s] message \"%s\" names \"%s\"", label, thread_msg.c_str(), token);
  if (ctx)
    CHECK_MSG(std::string(ctx_msg) == thread_msg, "[%s] context message \"%s\" equals the thread's",
              label, ctx_msg);
  CHECK_MSG(F->outputs_untouched(), "[%s] no output byte was written", label);
  if (std::getenv("UMFA_TEST_VERBOSE")) std::printf("%-40s %s\n", label, thread_msg.c_str());
  F->reset_outputs();
}

#define FWD(label, want, token, ...)                   \
  do {                                                 \
    Call c = dense();                                  \
    __VA_ARGS__;                                       \
    expect(label, c.forward(), want, token, c.ctx);    \
  } while (0)
#define BWD(label, want, token, ...)                   \
  do {                                                 \
    Call c = dense(true);                              \
    __VA_ARGS__;                                       \
    expect(label, c.backward(), want, token, c.ctx);   \
  } while (0)
#define VFWD(label, want, token, ...)                  \
  do {                                                 \
    Call c = varlen();                                 \
    __VA_ARGS__;                                       \
    expect(label, c.forward(), want, token, c.ctx);    \
  } while (0)
#define VBWD(label, want, token, ...)                  \
  do {                                                 \
    Call c = varlen(true);                             \
    __VA_ARGS__;                                       \
    expect(label, c.backward(), want, token, c.ctx);   \
  } while (0)

constexpr int64_t kBig = int64_t(1) << 40;

void set_head_dim(Call& c, int64_t d) {
  c.q = t::tensor4(c.q.data, c.q.dtype, B, NQ, HQ, d);
  c.k = t::tensor4(c.k.data, c.k.dtype, B, NK, HKV, d);
  c.v = t::tensor4(c.v.data, c.v.dtype, B, NK, HKV, d);
  c.out = t::tensor4(c.out.data, c.out.dtype, B, NQ, HQ, d);
  c.dout = t::tensor4(c.dout.data, c.dout.dtype, B, NQ, HQ, d);
  c.dq = t::tensor4(c.dq.data, c.dq.dtype, B, NQ, HQ, d);
  c.dk = t::tensor4(c.dk.data, c.dk.dtype, B, NK, HKV, d);
  c.dv = t::tensor4(c.dv.data, c.dv.dtype, B, NK, HKV, d);
}
void set_kv_heads(Call& c, int64_t h) {
  c.k = t::tensor4(c.k.data, c.k.dtype, B, NK, h, D);
  c.v = t::tensor4(c.v.data, c.v.dtype, B, NK, h, D);
  c.dk = t::tensor4(c.dk.data, c.dk.dtype, B, NK, h, D);
  c.dv = t::tensor4(c.dv.data, c.dv.dtype, B, NK, h, D);
}

void context_and_options() {
  const umfa_status NULL_CONTEXT = UMFA_STATUS_NULL_CONTEXT;
  FWD("null context", NULL_CONTEXT, "context is NULL", c.ctx = nullptr);
  BWD("null context (backward)", NULL_CONTEXT, "context is NULL", c.ctx = nullptr);
  FWD("buffer passed as context", UMFA_STATUS_INVALID_HANDLE, "context",
      c.ctx = reinterpret_cast<umfa_context*>(F->some_buffer));
  for (uint32_t size : {uint32_t(sizeof(umfa_attention_options) + 8),
                        uint32_t(sizeof(umfa_attention_options) + 1), 2u, 0u}) {
    FWD("options struct_size", UMFA_STATUS_STRUCT_VERSION, "options->struct_size", c.o.struct_size = size);
    BWD("options struct_size (backward)", UMFA_STATUS_STRUCT_VERSION, "options->struct_size",
        c.o.struct_size = size);
  }
  const umfa_status BAD = UMFA_STATUS_INVALID_ARGUMENT;
  FWD("mask_mode", BAD, "options->mask_mode", c.o.mask_mode = 3);
  FWD("softmax_scale NaN", BAD, "options->softmax_scale", c.o.softmax_scale = NAN);
  FWD("softmax_scale +inf", BAD, "options->softmax_scale", c.o.softmax_scale = INFINITY);
  FWD("softmax_scale -inf", BAD, "options->softmax_scale", c.o.softmax_scale = -INFINITY);
  FWD("softcap negative", BAD, "options->softcap", c.o.softcap = -0.5f);
  FWD("softcap inf", BAD, "options->softcap", c.o.softcap = INFINITY);
  FWD("softcap NaN", BAD, "options->softcap", c.o.softcap = NAN);
  FWD("unknown flags", BAD, "options->flags", c.o.flags = 0x80);
  BWD("mask_mode (backward)", BAD, "options->mask_mode", c.o.mask_mode = 99);
  BWD("softcap (backward)", BAD, "options->softcap", c.o.softcap = -1.f);
}

void null_pointers() {
  const umfa_status NP = UMFA_STATUS_NULL_POINTER;
  FWD("q NULL", NP, "q is NULL", c.null_q = true);
  FWD("k NULL", NP, "k is NULL", c.null_k = true);
  FWD("v NULL", NP, "v is NULL", c.null_v = true);
  FWD("out NULL", NP, "out is NULL", c.null_out = true);
  BWD("dout NULL", NP, "dout is NULL", c.null_dout = true);
  BWD("lse NULL (backward needs it)", NP, "lse is NULL", c.null_lse = true);
  BWD("dq NULL", NP, "dq is NULL", c.null_dq = true);
  BWD("dk NULL", NP, "dk is NULL", c.null_dk = true);
  BWD("dv NULL", NP, "dv is NULL", c.null_dv = true);
  BWD("out NULL (backward)", NP, "out is NULL", c.null_out = true);
  FWD("q.data NULL", NP, "q.data", c.q.data = nullptr);
  FWD("k.data NULL", NP, "k.data", c.k.data = nullptr);
  FWD("v.data NULL", NP, "v.data", c.v.data = nullptr);
  FWD("out.data NULL", NP, "out.data", c.out.data = nullptr);
  FWD("lse.data NULL", NP, "lse.data", c.lse.data = nullptr);
  BWD("dout.data NULL", NP, "dout.data", c.dout.data = nullptr);
  BWD("lse.data NULL (backward)", NP, "lse.data", c.lse.data = nullptr);
  BWD("dq.data NULL", NP, "dq.data", c.dq.data = nullptr);
  BWD("dk.data NULL", NP, "dk.data", c.dk.data = nullptr);
  BWD("dv.data NULL", NP, "dv.data", c.dv.data = nullptr);
  FWD("attn_mask.data NULL", NP, "attn_mask.data", c.use_mask(); c.mask.data = nullptr);
  FWD("alibi_slopes.data NULL", NP, "alibi_slopes.data", c.use_alibi(); c.alibi.data = nullptr);
  VFWD("only cu_seqlens_q", NP, "cu_seqlens_k", c.o.cu_seqlens_k = nullptr);
  VFWD("only cu_seqlens_k", NP, "cu_seqlens_q", c.o.cu_seqlens_q = nullptr);
  VFWD("cu_seqlens_q.data NULL", NP, "cu_seqlens_q.data", c.cuq.data = nullptr);
  VFWD("cu_seqlens_k.data NULL", NP, "cu_seqlens_k.data", c.cuk.data = nullptr);
}

void ranks() {
  const umfa_status R = UMFA_STATUS_INVALID_RANK;
  FWD("q rank 3", R, "q.rank", c.q.rank = 3);
  FWD("q rank 5", R, "q.rank", c.q.rank = 5);
  FWD("q rank -1", R, "q.rank", c.q.rank = -1);
  FWD("k rank 2", R, "k.rank", c.k.rank = 2);
  FWD("v rank 3", R, "v.rank", c.v.rank = 3);
  FWD("out rank 2", R, "out.rank", c.out.rank = 2);
  FWD("lse rank 4", R, "lse.rank", c.lse.rank = 4);
  BWD("dout rank 3", R, "dout.rank", c.dout.rank = 3);
  BWD("dq rank 1", R, "dq.rank", c.dq.rank = 1);
  BWD("dk rank 0", R, "dk.rank", c.dk.rank = 0);
  BWD("dv rank 3", R, "dv.rank", c.dv.rank = 3);
  BWD("lse rank 2 (backward)", R, "lse.rank", c.lse.rank = 2);
  FWD("attn_mask rank 0", R, "attn_mask.rank", c.use_mask(); c.mask.rank = 0);
  FWD("attn_mask rank 5", R, "attn_mask.rank", c.use_mask(); c.mask.rank = 5);
  FWD("alibi_slopes rank 3", R, "alibi_slopes.rank", c.use_alibi(); c.alibi.rank = 3);
  FWD("alibi_slopes rank 0", R, "alibi_slopes.rank", c.use_alibi(); c.alibi.rank = 0);
  VFWD("varlen q rank 4", R, "q.rank", c.q = dense().q);
  VFWD("varlen out rank 4", R, "out.rank", c.out = dense().out);
  VFWD("varlen lse rank 3", R, "lse.rank", c.lse = dense().lse);
  VFWD("cu_seqlens_q rank 2", R, "cu_seqlens_q.rank", c.cuq.rank = 2);
  VFWD("cu_seqlens_k rank 0", R, "cu_seqlens_k.rank", c.cuk.rank = 0);
}

void dtypes() {
  const umfa_status U = UMFA_STATUS_UNSUPPORTED_DTYPE;
  FWD("q unknown dtype", U, "q.dtype", c.q.dtype = 11);
  FWD("q negative dtype", U, "q.dtype", c.q.dtype = -1);
  FWD("q BOOL", U, "q.dtype", c.q.dtype = UMFA_DTYPE_BOOL);
  FWD("q I32", U, "q.dtype", c.q.dtype = UMFA_DTYPE_I32);
  FWD("k F16 with q F32", U, "k.dtype", c.k.dtype = UMFA_DTYPE_F16);
  FWD("v BF16 with q F32", U, "v.dtype", c.v.dtype = UMFA_DTYPE_BF16);
  FWD("out I32", U, "out.dtype", c.out.dtype = UMFA_DTYPE_I32);
  FWD("out BOOL", U, "out.dtype", c.out.dtype = UMFA_DTYPE_BOOL);
  FWD("lse F16", U, "lse.dtype", c.lse.dtype = UMFA_DTYPE_F16);
  FWD("lse BF16", U, "lse.dtype", c.lse.dtype = UMFA_DTYPE_BF16);
  BWD("dout BOOL", U, "dout.dtype", c.dout.dtype = UMFA_DTYPE_BOOL);
  BWD("dq I32", U, "dq.dtype", c.dq.dtype = UMFA_DTYPE_I32);
  BWD("dk unknown", U, "dk.dtype", c.dk.dtype = 12);
  BWD("dv BOOL", U, "dv.dtype", c.dv.dtype = UMFA_DTYPE_BOOL);
  BWD("lse F16 (backward)", U, "lse.dtype", c.lse.dtype = UMFA_DTYPE_F16);
  BWD("out I32 (backward)", U, "out.dtype", c.out.dtype = UMFA_DTYPE_I32);
  FWD("attn_mask I32", U, "attn_mask.dtype", c.use_mask(); c.mask.dtype = UMFA_DTYPE_I32);
  FWD("attn_mask unknown", U, "attn_mask.dtype", c.use_mask(); c.mask.dtype = 8);
  FWD("alibi_slopes F16", U, "alibi_slopes.dtype", c.use_alibi(); c.alibi.dtype = UMFA_DTYPE_F16);
  FWD("alibi_slopes BOOL", U, "alibi_slopes.dtype", c.use_alibi(); c.alibi.dtype = UMFA_DTYPE_BOOL);
  VFWD("cu_seqlens_q F32", U, "cu_seqlens_q.dtype", c.cuq.dtype = UMFA_DTYPE_F32);
  VFWD("cu_seqlens_k unknown", U, "cu_seqlens_k.dtype", c.cuk.dtype = 5);
}

void devices() {
  const umfa_status M = UMFA_STATUS_DEVICE_MISMATCH;
  FWD("q on CUDA", M, "q.device", c.q.device = UMFA_DEVICE_CUDA);
  FWD("k on CUDA", M, "k.device", c.k.device = UMFA_DEVICE_CUDA);
  FWD("v on CUDA", M, "v.device", c.v.device = UMFA_DEVICE_CUDA);
  FWD("out on CUDA", M, "out.device", c.out.device = UMFA_DEVICE_CUDA);
  FWD("lse on CUDA", M, "lse.device", c.lse.device = UMFA_DEVICE_CUDA);
  BWD("dout on CUDA", M, "dout.device", c.dout.device = UMFA_DEVICE_CUDA);
  BWD("dq on CUDA", M, "dq.device", c.dq.device = UMFA_DEVICE_CUDA);
  BWD("dk on CUDA", M, "dk.device", c.dk.device = UMFA_DEVICE_CUDA);
  BWD("dv on CUDA", M, "dv.device", c.dv.device = UMFA_DEVICE_CUDA);
  FWD("attn_mask on CUDA", M, "attn_mask.device", c.use_mask(); c.mask.device = UMFA_DEVICE_CUDA);
  FWD("alibi on CUDA", M, "alibi_slopes.device", c.use_alibi(); c.alibi.device = UMFA_DEVICE_CUDA);
  VFWD("cu_seqlens_q on CUDA", M, "cu_seqlens_q.device", c.cuq.device = UMFA_DEVICE_CUDA);
  FWD("unknown device", UMFA_STATUS_INVALID_ARGUMENT, "q.device", c.q.device = 9);
}

void extents_and_strides() {
  const umfa_status BAD = UMFA_STATUS_INVALID_ARGUMENT, S = UMFA_STATUS_INVALID_STRIDE;
  FWD("negative extent", BAD, "q.shape[1]", c.q.shape[1] = -1);
  FWD("negative extent (out)", BAD, "out.shape[0]", c.out.shape[0] = -2);
  FWD("negative extent (mask)", BAD, "attn_mask.shape[2]", c.use_mask(); c.mask.shape[2] = -5);
  FWD("negative stride q", S, "q.strides[2]", c.q.strides[2] = -8);
  FWD("negative stride k", S, "k.strides[0]", c.k.strides[0] = -1);
  FWD("negative stride v", S, "v.strides[3]", c.v.strides[3] = -1);
  FWD("negative stride out", S, "out.strides[1]", c.out.strides[1] = -32);
  FWD("negative stride lse", S, "lse.strides[2]", c.lse.strides[2] = -1);
  FWD("negative stride mask", S, "attn_mask.strides[3]", c.use_mask(); c.mask.strides[3] = -1);
  FWD("negative stride alibi", S, "alibi_slopes.strides[0]", c.use_alibi(); c.alibi.strides[0] = -1);
  VFWD("negative stride cu_seqlens", S, "cu_seqlens_q.strides[0]", c.cuq.strides[0] = -1);
  BWD("negative stride dout", S, "dout.strides[0]", c.dout.strides[0] = -1);
  // Outputs whose elements overlap.
  FWD("out broadcast heads", S, "out.strides[2]", c.out.strides[2] = 0);
  FWD("out rows overlap", S, "out.strides", c.out.strides[1] = 1);
  FWD("out interleaved overlap", S, "out.strides", c.out.strides[3] = 2);
  FWD("out all zero strides", S, "out.strides",
      for (int i = 0; i < 4; ++i) c.out.strides[i] = 0);
  FWD("lse overlap", S, "lse.strides", c.lse.strides[1] = 0);
  BWD("dq overlap", S, "dq.strides[2]", c.dq.strides[2] = 0);
  BWD("dk overlap", S, "dk.strides", c.dk.strides[1] = 4);
  BWD("dv overlap", S, "dv.strides[0]", c.dv.strides[0] = 0);
  // Outputs aliasing other tensors.
  FWD("out aliases q", BAD, "out.data", c.out.data = c.q.data);
  FWD("lse aliases out", BAD, "lse.data", c.lse.data = c.out.data);
  BWD("dq aliases dout", BAD, "dq.data", c.dq.data = c.dout.data);
  BWD("dv aliases dk", BAD, "dv.data", c.dv.data = c.dk.data);
  BWD("dk aliases k", BAD, "dk.data", c.dk.data = c.k.data);
}

// An output sharing memory with any other tensor of the call: refused with INVALID_ARGUMENT
// before anything is written, whether the views start at the same address or overlap at an
// offset. The other tensor is moved into the output's buffer (so a call that wrongly ran would
// change the sentinel bytes the check compares).
void output_overlap() {
  const umfa_status BAD = UMFA_STATUS_INVALID_ARGUMENT;
  auto at = [](void* p, size_t bytes) { return static_cast<void*>(static_cast<char*>(p) + bytes); };
  for (size_t off : {size_t(0), size_t(64)}) {
    const bool start = off == 0;
    // Forward: out and lse against the option tensors.
    FWD(start ? "attn_mask starts at out" : "attn_mask inside out", BAD, "attn_mask.data",
        c.use_mask(); c.mask.data = at(c.out.data, off));
    FWD(start ? "attn_mask starts at lse" : "attn_mask inside lse", BAD, "attn_mask.data",
        c.use_mask(); c.mask.data = at(c.lse.data, off));
    FWD(start ? "alibi_slopes starts at out" : "alibi_slopes inside out", BAD, "alibi_slopes.data",
        c.use_alibi(); c.alibi.data = at(c.out.data, off));
    FWD(start ? "alibi_slopes starts at lse" : "alibi_slopes inside lse", BAD, "alibi_slopes.data",
        c.use_alibi(); c.alibi.data = at(c.lse.data, off));
    VFWD(start ? "cu_seqlens_q starts at out" : "cu_seqlens_q inside out", BAD, "cu_seqlens_q.data",
         c.cuq.data = at(c.out.data, off));
    VFWD(start ? "cu_seqlens_k starts at out" : "cu_seqlens_k inside out", BAD, "cu_seqlens_k.data",
         c.cuk.data = at(c.out.data, off));
    VFWD(start ? "cu_seqlens_q starts at lse" : "cu_seqlens_q inside lse", BAD, "cu_seqlens_q.data",
         c.cuq.data = at(c.lse.data, off));
    VFWD(start ? "cu_seqlens_k starts at lse" : "cu_seqlens_k inside lse", BAD, "cu_seqlens_k.data",
         c.cuk.data = at(c.lse.data, off));
    // Backward: dq, dk and dv against the option tensors.
    BWD(start ? "attn_mask starts at dq" : "attn_mask inside dq", BAD, "attn_mask.data",
        c.use_mask(); c.mask.data = at(c.dq.data, off));
    BWD(start ? "attn_mask starts at dk" : "attn_mask inside dk", BAD, "attn_mask.data",
        c.use_mask(); c.mask.data = at(c.dk.data, off));
    BWD(start ? "attn_mask starts at dv" : "attn_mask inside dv", BAD, "attn_mask.data",
        c.use_mask(); c.mask.data = at(c.dv.data, off));
    BWD(start ? "alibi_slopes starts at dq" : "alibi_slopes inside dq", BAD, "alibi_slopes.data",
        c.use_alibi(); c.alibi.data = at(c.dq.data, off));
    BWD(start ? "alibi_slopes starts at dk" : "alibi_slopes inside dk", BAD, "alibi_slopes.data",
        c.use_alibi(); c.alibi.data = at(c.dk.data, off));
    BWD(start ? "alibi_slopes starts at dv" : "alibi_slopes inside dv", BAD, "alibi_slopes.data",
        c.use_alibi(); c.alibi.data = at(c.dv.data, off));
    VBWD(start ? "cu_seqlens_q starts at dq" : "cu_seqlens_q inside dq", BAD, "cu_seqlens_q.data",
         c.cuq.data = at(c.dq.data, off));
    VBWD(start ? "cu_seqlens_k starts at dk" : "cu_seqlens_k inside dk", BAD, "cu_seqlens_k.data",
         c.cuk.data = at(c.dk.data, off));
    VBWD(start ? "cu_seqlens_q starts at dv" : "cu_seqlens_q inside dv", BAD, "cu_seqlens_q.data",
         c.cuq.data = at(c.dv.data, off));
    VBWD(start ? "cu_seqlens_k starts at dq" : "cu_seqlens_k inside dq", BAD, "cu_seqlens_k.data",
         c.cuk.data = at(c.dq.data, off));
  }
  // Partial overlaps with the main tensors and between outputs.
  FWD("q inside out", BAD, "q.data", c.q.data = at(c.out.data, 4 * D));
  FWD("v overlapping the end of out", BAD, "v.data",
      c.v.data = at(c.out.data, B * NQ * HQ * D * 4 - 8));
  FWD("lse inside out", BAD, "lse.data", c.lse.data = at(c.out.data, 12));
  BWD("dout inside dq", BAD, "dout.data", c.dout.data = at(c.dq.data, 32));
  BWD("lse inside dk", BAD, "lse.data", c.lse.data = at(c.dk.data, 8));
  BWD("out inside dv", BAD, "out.data", c.out.data = at(c.dv.data, 4));
  BWD("dv overlapping dk", BAD, "dv.data", c.dv.data = at(c.dk.data, 4 * D));
  BWD("dq overlapping dv", BAD, "dv.data", c.dq.data = at(c.dv.data, 4));
  // One umfa_tensor passed as both q and out (the struct, not only its memory, is shared).
  {
    Call c = dense();
    c.q.data = c.out.data;
    expect("the same umfa_tensor* as q and out",
           umfa_attention_forward(c.ctx, &c.o, &c.q, &c.k, &c.v, &c.q, &c.lse), BAD, "out.data",
           c.ctx);
  }
}

void shapes() {
  const umfa_status SM = UMFA_STATUS_SHAPE_MISMATCH;
  FWD("k batch", SM, "k.shape[0]", c.k.shape[0] = 3);
  FWD("k head_dim", SM, "k.shape[3]", c.k.shape[3] = 4);
  FWD("v batch", SM, "v.shape[0]", c.v.shape[0] = 1);
  FWD("v seqlen", SM, "v.shape[1]", c.v.shape[1] = 6);
  FWD("v heads", SM, "v.shape[2]", c.v.shape[2] = 4);
  FWD("v head_dim", SM, "v.shape[3]", c.v.shape[3] = 16);
  FWD("out batch", SM, "out.shape[0]", c.out.shape[0] = 1);
  FWD("out seqlen", SM, "out.shape[1]", c.out.shape[1] = 4);
  FWD("out heads", SM, "out.shape[2]", c.out.shape[2] = 2);
  FWD("out head_dim", SM, "out.shape[3]", c.out.shape[3] = 4);
  FWD("lse batch", SM, "lse.shape[0]", c.lse.shape[0] = 1);
  FWD("lse heads", SM, "lse.shape[1]", c.lse.shape[1] = 2);
  FWD("lse seqlen", SM, "lse.shape[2]", c.lse.shape[2] = 4);
  BWD("out seqlen (backward)", SM, "out.shape[1]", c.out.shape[1] = 4);
  BWD("dout heads", SM, "dout.shape[2]", c.dout.shape[2] = 2);
  BWD("dq seqlen", SM, "dq.shape[1]", c.dq.shape[1] = 4);
  BWD("dk seqlen", SM, "dk.shape[1]", c.dk.shape[1] = 6);
  BWD("dv heads", SM, "dv.shape[2]", c.dv.shape[2] = 1);
  BWD("lse seqlen (backward)", SM, "lse.shape[2]", c.lse.shape[2] = 6);
  // Mask broadcasting (aligned at the right like NumPy).
  FWD("mask last dim", SM, "attn_mask.shape[3]", c.use_mask(); c.mask.shape[3] = 6);
  FWD("mask heads", SM, "attn_mask.shape[1]", c.use_mask(); c.mask.shape[1] = 3);
  FWD("mask batch", SM, "attn_mask.shape[0]", c.use_mask(); c.mask.shape[0] = 3);
  FWD("mask rank 2 rows", SM, "attn_mask.shape[0]", c.use_mask(); c.mask.rank = 2;
      c.mask.shape[0] = 3; c.mask.shape[1] = NK; c.mask.strides[0] = NK; c.mask.strides[1] = 1);
  FWD("mask rank 1", SM, "attn_mask.shape[0]", c.use_mask(); c.mask.rank = 1; c.mask.shape[0] = 5;
      c.mask.strides[0] = 1);
  // ALiBi.
  FWD("alibi heads", SM, "alibi_slopes.shape[0]", c.use_alibi(); c.alibi.shape[0] = 3);
  FWD("alibi batch", SM, "alibi_slopes.shape[0]", c.use_alibi(); c.alibi.rank = 2;
      c.alibi.shape[0] = 3; c.alibi.shape[1] = HQ; c.alibi.strides[0] = HQ; c.alibi.strides[1] = 1);
  FWD("alibi heads (rank 2)", SM, "alibi_slopes.shape[1]", c.use_alibi(); c.alibi.rank = 2;
      c.alibi.shape[0] = B; c.alibi.shape[1] = 5; c.alibi.strides[0] = 5; c.alibi.strides[1] = 1);
  // Varlen.
  VFWD("cu_seqlens empty", SM, "cu_seqlens_q.shape[0]", c.cuq.shape[0] = 0; c.cuk.shape[0] = 0);
  VFWD("cu_seqlens lengths differ", SM, "cu_seqlens_k.shape[0]", c.cuk.shape[0] = 2);
  VFWD("varlen k head_dim", SM, "k.shape[2]", c.k.shape[2] = 4);
  VFWD("varlen lse rows", SM, "lse.shape[1]", c.lse.shape[1] = 8);
  VFWD("varlen lse heads", SM, "lse.shape[0]", c.lse.shape[0] = 2);
  VFWD("varlen alibi batch", SM, "alibi_slopes.shape[0]", c.use_alibi(); c.alibi.rank = 2;
       c.alibi.shape[0] = 3; c.alibi.shape[1] = HQ; c.alibi.strides[0] = HQ; c.alibi.strides[1] = 1);
  VBWD("varlen dk rows", SM, "dk.shape[0]", c.dk.shape[0] = 10);
}

void heads_and_head_dim() {
  const umfa_status H = UMFA_STATUS_HEADS_NOT_DIVISIBLE, HD = UMFA_STATUS_HEAD_DIM_OUT_OF_RANGE;
  FWD("heads 4 over 3", H, "heads_q", set_kv_heads(c, 3));
  FWD("heads 4 over 8", H, "heads_q", set_kv_heads(c, 8));
  FWD("heads 4 over 0", H, "heads_kv", set_kv_heads(c, 0));
  BWD("heads 4 over 3 (backward)", H, "heads_q", set_kv_heads(c, 3));
  FWD("head_dim 0", HD, "head_dim", set_head_dim(c, 0));
  FWD("head_dim 257", HD, "head_dim", set_head_dim(c, 257));
  BWD("head_dim 300 (backward)", HD, "head_dim", set_head_dim(c, 300));
  VFWD("varlen head_dim 0", HD, "head_dim", c.q.shape[2] = 0; c.k.shape[2] = 0; c.v.shape[2] = 0;
       c.out.shape[2] = 0);
}

void overflow() {
  const umfa_status O = UMFA_STATUS_SIZE_OVERFLOW;
  FWD("element count", O, "q: the element count", c.q.shape[0] = kBig; c.q.shape[1] = kBig);
  FWD("element offset", O, "k: the largest element offset", c.k.strides[1] = int64_t(1) << 62);
  FWD("byte offset", O, "out: the largest byte offset", c.out.strides[0] = int64_t(1) << 61);
  FWD("bytes of element count", O, "v: the size in bytes", c.v.shape[0] = int64_t(1) << 29;
      c.v.shape[1] = int64_t(1) << 29);
  FWD("address wraps", O, "q: data + the largest",
      c.q.data = reinterpret_cast<void*>(std::numeric_limits<uintptr_t>::max() - 256));
  FWD("mask offset", O, "attn_mask: the largest element offset", c.use_mask();
      c.mask.strides[2] = int64_t(1) << 62);
  // batch * heads * seqlen_q * seqlen_k beyond 64 bits, with broadcast inputs and a thin output.
  FWD("score matrix size", O, "seqlen_q * seqlen_k",
      const int64_t nq = int64_t(1) << 31, nk = int64_t(1) << 33;
      c.q = t::tensor4(c.q.data, UMFA_DTYPE_F32, 1, nq, 1, 1);
      for (int i = 0; i < 4; ++i) c.q.strides[i] = 0;
      c.k = t::tensor4(c.k.data, UMFA_DTYPE_F32, 1, nk, 1, 1);
      for (int i = 0; i < 4; ++i) c.k.strides[i] = 0;
      c.v = c.k; c.v.data = F->vb.data();
      c.out = t::tensor4(c.out.data, UMFA_DTYPE_F32, 1, nq, 1, 1);
      c.null_lse = true);
}

void varlen_offsets() {
  const umfa_status IS = UMFA_STATUS_INVALID_SEQLENS;
  VFWD("cu_seqlens_q[0] != 0", IS, "cu_seqlens_q[0]", static_cast<int32_t*>(c.cuq.data)[0] = 1);
  VFWD("cu_seqlens_k decreasing", IS, "cu_seqlens_k[2]", static_cast<int32_t*>(c.cuk.data)[2] = 5);
  VFWD("cu_seqlens_q past the rows", IS, "cu_seqlens_q[2]", static_cast<int32_t*>(c.cuq.data)[2] = 10);
  VFWD("cu_seqlens_k past the rows", IS, "cu_seqlens_k[2]", static_cast<int32_t*>(c.cuk.data)[2] = 12);
  VFWD("cu_seqlens negative", IS, "cu_seqlens_k[1]", static_cast<int32_t*>(c.cuk.data)[1] = -1);
  VFWD("max_seqlen_k too small", IS, "max_seqlen_k", c.o.max_seqlen_k = 5);
  VFWD("max_seqlen_q too small", IS, "max_seqlen_q", c.o.max_seqlen_q = 4);
  VBWD("cu_seqlens_q decreasing (backward)", IS, "cu_seqlens_q[1]",
       static_cast<int32_t*>(c.cuq.data)[1] = 10);
  const umfa_status BAD = UMFA_STATUS_INVALID_ARGUMENT;
  VFWD("max_seqlen_q negative", BAD, "max_seqlen_q", c.o.max_seqlen_q = -1);
  VFWD("max_seqlen_k negative", BAD, "max_seqlen_k", c.o.max_seqlen_k = -3);
  VFWD("mask with varlen", BAD, "attn_mask", c.use_mask());
}

// ---------------------------------------------------------------------------------------------
// Calls that succeed.

bool all_f32(const void* p, int64_t n, float value) {
  const float* f = static_cast<const float*>(p);
  for (int64_t i = 0; i < n; ++i)
    if (!(f[i] == value)) return false;
  return true;
}
bool sentinel_from(const void* p, size_t from) {
  const unsigned char* b = static_cast<const unsigned char*>(p);
  for (size_t i = from; i < kCap; ++i)
    if (b[i] != kSentinel) return false;
  return true;
}

void zero_size() {
  const float ninf = -std::numeric_limits<float>::infinity();
  {  // seqlen_k = 0: every row fully masked: out = 0, lse = -inf; bytes after them untouched.
    Call c = dense();
    c.k.shape[1] = 0;
    c.v.shape[1] = 0;
    CHECK_STATUS(c.forward(), UMFA_STATUS_OK);
    CHECK(all_f32(F->outb.data(), B * NQ * HQ * D, 0.f));
    CHECK(all_f32(F->lseb.data(), B * HQ * NQ, ninf));
    CHECK(sentinel_from(F->outb.data(), B * NQ * HQ * D * 4));
    CHECK(sentinel_from(F->lseb.data(), B * HQ * NQ * 4));
    F->reset_outputs();
    Call d = dense(true);
    d.k.shape[1] = 0, d.v.shape[1] = 0, d.dk.shape[1] = 0, d.dv.shape[1] = 0;
    CHECK_STATUS(d.backward(), UMFA_STATUS_OK);
    CHECK(all_f32(F->dqb.data(), B * NQ * HQ * D, 0.f));
    CHECK(sentinel_from(F->dqb.data(), B * NQ * HQ * D * 4));
    CHECK(sentinel_from(F->dkb.data(), 0));
    F->reset_outputs();
  }
  {  // seqlen_q = 0: nothing to write in forward; zero dk/dv in backward.
    Call c = dense();
    c.q.shape[1] = 0, c.out.shape[1] = 0, c.lse.shape[2] = 0;
    CHECK_STATUS(c.forward(), UMFA_STATUS_OK);
    CHECK(F->outputs_untouched());
    Call d = dense(true);
    d.q.shape[1] = 0, d.out.shape[1] = 0, d.dout.shape[1] = 0, d.dq.shape[1] = 0, d.lse.shape[2] = 0;
    CHECK_STATUS(d.backward(), UMFA_STATUS_OK);
    CHECK(all_f32(F->dkb.data(), B * NK * HKV * D, 0.f));
    CHECK(all_f32(F->dvb.data(), B * NK * HKV * D, 0.f));
    CHECK(sentinel_from(F->dkb.data(), B * NK * HKV * D * 4));
    CHECK(sentinel_from(F->dqb.data(), 0));
    F->reset_outputs();
  }
  {  // batch = 0, with NULL data pointers for the empty tensors.
    Call c = dense();
    for (umfa_tensor* x : {&c.q, &c.k, &c.v, &c.out}) {
      x->shape[0] = 0;
      x->data = nullptr;
    }
    c.lse.shape[0] = 0;
    c.lse.data = nullptr;
    CHECK_STATUS(c.forward(), UMFA_STATUS_OK);
    CHECK(F->outputs_untouched());
  }
  {  // heads_q = 0 (heads_kv = 2): backward zeroes dk and dv.
    Call d = dense(true);
    for (umfa_tensor* x : {&d.q, &d.out, &d.dout, &d.dq}) x->shape[2] = 0;
    d.lse.shape[1] = 0;
    CHECK_STATUS(d.backward(), UMFA_STATUS_OK);
    CHECK(all_f32(F->dkb.data(), B * NK * HKV * D, 0.f));
    CHECK(all_f32(F->dvb.data(), B * NK * HKV * D, 0.f));
    F->reset_outputs();
  }
  {  // varlen with zero sequences: every row belongs to no sequence.
    Call c = varlen();
    c.cuq.shape[0] = 1;
    c.cuk.shape[0] = 1;
    CHECK_STATUS(c.forward(), UMFA_STATUS_OK);
    CHECK(all_f32(F->outb.data(), TQ * HQ * D, 0.f));
    CHECK(all_f32(F->lseb.data(), HQ * TQ, ninf));
    F->reset_outputs();
  }
}

// Results of a call that must match the default-options call byte for byte.
std::vector<unsigned char> snapshot() {
  std::vector<unsigned char> s(2 * kCap);
  std::memcpy(s.data(), F->outb.data(), kCap);
  std::memcpy(s.data() + kCap, F->lseb.data(), kCap);
  return s;
}

void option_versions() {
  Call c = dense();
  CHECK_STATUS(c.forward(), UMFA_STATUS_OK);
  const std::vector<unsigned char> want = snapshot();
  CHECK(!F->outputs_untouched());
  F->reset_outputs();

  c.pass_options = false;  // NULL options = defaults
  CHECK_STATUS(c.forward(), UMFA_STATUS_OK);
  CHECK(snapshot() == want);
  F->reset_outputs();

  // An older caller's smaller struct: the tail is read as zeros, whatever lies after it.
  struct {
    umfa_attention_options o;
    unsigned char pad[32];
  } older;
  std::memset(&older, 0xff, sizeof older);
  older.o.struct_size = offsetof(umfa_attention_options, has_window);  // through softcap
  older.o.mask_mode = UMFA_MASK_NONE;
  older.o.softmax_scale = 0.f;
  older.o.softcap = 0.f;
  Call d = dense();
  CHECK_STATUS(umfa_attention_forward(d.ctx, &older.o, &d.q, &d.k, &d.v, &d.out, &d.lse), UMFA_STATUS_OK);
  CHECK(snapshot() == want);
  F->reset_outputs();
  older.o.struct_size = sizeof(uint32_t);  // struct_size only
  CHECK_STATUS(umfa_attention_forward(d.ctx, &older.o, &d.q, &d.k, &d.v, &d.out, &d.lse), UMFA_STATUS_OK);
  CHECK(snapshot() == want);
  F->reset_outputs();

  // A broadcast (stride-0) input is fine; an explicit scale equal to the default gives the
  // same result.
  Call e = dense();
  e.o.softmax_scale = static_cast<float>(1.0 / std::sqrt(double(D)));
  CHECK_STATUS(e.forward(), UMFA_STATUS_OK);
  CHECK(snapshot() == want);
  F->reset_outputs();
  e.k.strides[0] = 0;  // every batch reads batch 0's keys
  CHECK_STATUS(e.forward(), UMFA_STATUS_OK);
  F->reset_outputs();
}

void varlen_padding_rows() {
  // Sequences cover 7 of 9 query rows and 9 of 11 key rows: the rest get zeros / -inf.
  Call c = varlen();
  static_cast<int32_t*>(c.cuq.data)[2] = 7;
  static_cast<int32_t*>(c.cuk.data)[2] = 9;
  CHECK_STATUS(c.forward(), UMFA_STATUS_OK);
  const float* out = static_cast<const float*>(F->outb.data());
  const float* lse = static_cast<const float*>(F->lseb.data());
  CHECK(all_f32(out + 7 * HQ * D, 2 * HQ * D, 0.f));
  bool lse_ok = true, finite = true;
  for (int64_t h = 0; h < HQ; ++h)
    for (int64_t r = 0; r < TQ; ++r) {
      if (r >= 7) lse_ok = lse_ok && lse[h * TQ + r] == -INFINITY;
      else finite = finite && std::isfinite(lse[h * TQ + r]);
    }
  CHECK(lse_ok);
  CHECK(finite);
  CHECK(sentinel_from(F->outb.data(), TQ * HQ * D * 4));
  F->reset_outputs();

  // Keep the forward results as the backward's out / lse inputs.
  Call f = varlen();
  static_cast<int32_t*>(f.cuq.data)[2] = 7;
  static_cast<int32_t*>(f.cuk.data)[2] = 9;
  f.out.data = F->ob_in.data();
  f.lse.data = static_cast<char*>(F->ob_in.data()) + kCap / 2;
  CHECK_STATUS(f.forward(), UMFA_STATUS_OK);
  Call b = varlen(true);
  static_cast<int32_t*>(b.cuq.data)[2] = 7;
  static_cast<int32_t*>(b.cuk.data)[2] = 9;
  CHECK_STATUS(b.backward(), UMFA_STATUS_OK);
  CHECK(all_f32(static_cast<float*>(F->dqb.data()) + 7 * HQ * D, 2 * HQ * D, 0.f));
  CHECK(all_f32(static_cast<float*>(F->dkb.data()) + 9 * HKV * D, 2 * HKV * D, 0.f));
  CHECK(all_f32(static_cast<float*>(F->dvb.data()) + 9 * HKV * D, 2 * HKV * D, 0.f));
  F->reset_outputs();
}

void workspace_limit() {
  umfa_context_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.backend = UMFA_BACKEND_CPU;
  o.workspace_limit_bytes = 1;
  umfa_context* tiny = nullptr;
  CHECK_STATUS(umfa_context_create(&o, &tiny), UMFA_STATUS_OK);
  if (!tiny) return;
  Call c = dense();
  c.ctx = tiny;
  umfa_status st = c.forward();
  // The CPU backend needs scratch for any non-trivial problem; if it ever needs none, the call
  // simply succeeds. Either way a refusal must leave the outputs alone.
  if (st == UMFA_STATUS_WORKSPACE_LIMIT) {
    expect("workspace limit", st, UMFA_STATUS_WORKSPACE_LIMIT, "workspace", tiny);
  } else {
    CHECK_STATUS(st, UMFA_STATUS_OK);
    std::printf("note: the CPU backend reported no workspace for the forward call\n");
    F->reset_outputs();
  }
  Call b = dense(true);
  b.ctx = tiny;
  st = b.backward();
  if (st == UMFA_STATUS_WORKSPACE_LIMIT) {
    expect("workspace limit (backward)", st, UMFA_STATUS_WORKSPACE_LIMIT, "workspace", tiny);
  } else {
    CHECK_STATUS(st, UMFA_STATUS_OK);
    F->reset_outputs();
  }
  umfa_context_destroy(tiny);
}

// Outputs that interleave in one buffer without sharing a byte are accepted: dk and dv packed
// as [batch, seqlen_k, 2, heads_kv, head_dim] (FlashAttention's kv-packed gradients) give the
// results of separate buffers.
void interleaved_outputs() {
  Call sep = dense(true);
  CHECK_STATUS(sep.backward(), UMFA_STATUS_OK);
  const int64_t n = B * NK * HKV * D;
  std::vector<float> dk(static_cast<size_t>(n)), dv(static_cast<size_t>(n));
  std::memcpy(dk.data(), F->dkb.data(), static_cast<size_t>(n) * 4);
  std::memcpy(dv.data(), F->dvb.data(), static_cast<size_t>(n) * 4);
  F->reset_outputs();

  Call c = dense(true);
  const int64_t packed[4] = {NK * 2 * HKV * D, 2 * HKV * D, D, 1};
  c.dk.data = F->dkb.data();
  c.dv.data = static_cast<float*>(F->dkb.data()) + HKV * D;
  for (int i = 0; i < 4; ++i) c.dk.strides[i] = c.dv.strides[i] = packed[i];
  CHECK_STATUS(c.backward(), UMFA_STATUS_OK);
  const float* kv = static_cast<const float*>(F->dkb.data());
  bool same = true;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < NK; ++j)
      for (int64_t h = 0; h < HKV; ++h)
        for (int64_t d = 0; d < D; ++d) {
          const int64_t src = ((b * NK + j) * HKV + h) * D + d;
          const int64_t dst = b * packed[0] + j * packed[1] + h * packed[2] + d;
          same = same && kv[dst] == dk[static_cast<size_t>(src)] &&
                 kv[dst + HKV * D] == dv[static_cast<size_t>(src)];
        }
  CHECK_MSG(same, "interleaved dk/dv equal the results of separate buffers");
  CHECK(sentinel_from(F->dkb.data(), static_cast<size_t>(2 * n) * 4));
  F->reset_outputs();
}

}  // namespace

int main() {
  Fixture fixture;
  F = &fixture;
  umfa_context_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.backend = UMFA_BACKEND_CPU;
  REQUIRE_OK(umfa_context_create(&o, &fixture.ctx));
  REQUIRE_OK(umfa_buffer_create(fixture.ctx, 16, &fixture.some_buffer));

  // Inputs: random values (also in the regions stride mutations might reach).
  t::Rng rng(7);
  for (t::Bytes* b : {&fixture.qb, &fixture.kb, &fixture.vb, &fixture.doutb}) {
    float* f = static_cast<float*>(b->data());
    for (size_t i = 0; i < kCap / 4; ++i) f[i] = static_cast<float>(rng.uniform());
  }
  unsigned char* m = static_cast<unsigned char*>(fixture.maskb.data());
  for (size_t i = 0; i < kCap; ++i) m[i] = (i % 3) != 0;
  float* slopes = static_cast<float*>(fixture.alibib.data());
  for (size_t i = 0; i < kCap / 4; ++i) slopes[i] = 0.25f;
  fixture.reset_outputs();

  // The backward's `out` and `lse` inputs come from a real forward call.
  {
    Call c = dense();
    c.out.data = fixture.ob_in.data();
    c.lse.data = static_cast<char*>(fixture.ob_in.data()) + kCap / 2;
    REQUIRE_OK(c.forward());
  }
  CHECK(fixture.outputs_untouched());
  {  // The dense fixture itself is valid, forward and backward.
    Call c = dense();
    CHECK_STATUS(c.forward(), UMFA_STATUS_OK);
    fixture.reset_outputs();
    Call d = dense(true);
    CHECK_STATUS(d.backward(), UMFA_STATUS_OK);
    fixture.reset_outputs();
    Call v = varlen();
    CHECK_STATUS(v.forward(), UMFA_STATUS_OK);
    fixture.reset_outputs();
  }

  const int before = t::checks();
  context_and_options();
  null_pointers();
  ranks();
  dtypes();
  devices();
  extents_and_strides();
  shapes();
  heads_and_head_dim();
  overflow();
  varlen_offsets();
  output_overlap();
  std::printf("rejected-input cases: %d checks\n", t::checks() - before);
  zero_size();
  option_versions();
  varlen_padding_rows();
  workspace_limit();
  interleaved_outputs();

  umfa_buffer_destroy(fixture.some_buffer);
  umfa_context_destroy(fixture.ctx);
  return t::summary("test_validation");
}
