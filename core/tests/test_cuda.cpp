// The API layer over the real CUDA backend (libumfa_cuda next to libumfa). Skipped (exit code
// 77) where no CUDA device is usable. Covers: explicit and AUTO selection, device buffers,
// forward in every input dtype against float64, backward against the CPU backend, varlen rows
// outside every sequence, empty problems, device checks, varlen offsets on the device (never
// read back: max_seqlen required; invalid contents memory-safe), and the classic API staging
// host buffers through the device.
#include <memory>
#include <vector>

#include "test_util.h"

namespace {

umfa_context* make(uint32_t backend) {
  umfa_context_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.backend = backend;
  umfa_context* ctx = nullptr;
  CHECK_STATUS(umfa_context_create(&o, &ctx), UMFA_STATUS_OK);
  return ctx;
}

// A device copy of host bytes, owned by a umfa buffer.
struct DeviceArray {
  umfa_buffer* buf = nullptr;
  void* ptr = nullptr;
  uint64_t bytes = 0;
  DeviceArray(umfa_context* ctx, const void* host, uint64_t n) : bytes(n) {
    CHECK_STATUS(umfa_buffer_create(ctx, n ? n : 1, &buf), UMFA_STATUS_OK);
    umfa_buffer_data(buf, &ptr);
    if (host && n) CHECK_STATUS(umfa_buffer_upload(buf, 0, host, n), UMFA_STATUS_OK);
  }
  ~DeviceArray() { umfa_buffer_destroy(buf); }
  template <typename T>
  std::vector<T> download() const {
    std::vector<T> v(bytes / sizeof(T));
    CHECK_STATUS(umfa_buffer_download(buf, 0, v.data(), bytes), UMFA_STATUS_OK);
    return v;
  }
};

umfa_tensor on_device(umfa_tensor t) {
  t.device = UMFA_DEVICE_CUDA;
  t.device_index = 0;
  return t;
}

void buffers(umfa_context* ctx) {
  DeviceArray a(ctx, nullptr, 4096);
  void* p = reinterpret_cast<void*>(uintptr_t(1));
  CHECK_STATUS(umfa_buffer_contents(a.buf, &p), UMFA_STATUS_UNSUPPORTED);
  CHECK(p == nullptr);
  std::vector<unsigned char> host = a.download<unsigned char>();
  bool zero = true;
  for (unsigned char c : host) zero = zero && c == 0;
  CHECK(zero);
  for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<unsigned char>(i * 13);
  CHECK_STATUS(umfa_buffer_upload(a.buf, 0, host.data(), host.size()), UMFA_STATUS_OK);
  CHECK(a.download<unsigned char>() == host);
}

// Dense forward + backward on both backends; forward also against float64.
void dense(umfa_context* cuda, umfa_context* cpu, int32_t dtype, uint32_t mask_mode) {
  const int64_t B = 2, NQ = 70, NK = 133, HQ = 4, HKV = 2, D = 64;
  const size_t es = umfa_dtype_size(dtype);
  std::vector<unsigned char> q(B * NQ * HQ * D * es), k(B * NK * HKV * D * es), v(k.size()), dout(q.size());
  t::Rng rng(17 + dtype * 3 + mask_mode);
  for (auto* x : {&q, &k, &v, &dout})
    for (size_t i = 0; i < x->size() / es; ++i) t::store(x->data(), dtype, i, rng.uniform());
  umfa_attention_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.mask_mode = mask_mode;

  // CPU results.
  std::vector<float> out_c(B * NQ * HQ * D), lse_c(B * HQ * NQ), dq_c(out_c.size()), dk_c(B * NK * HKV * D),
      dv_c(dk_c.size());
  const int64_t ls[3] = {B, HQ, NQ};
  umfa_tensor tq = t::tensor4(q.data(), dtype, B, NQ, HQ, D), tk = t::tensor4(k.data(), dtype, B, NK, HKV, D),
              tv = t::tensor4(v.data(), dtype, B, NK, HKV, D), tdo = t::tensor4(dout.data(), dtype, B, NQ, HQ, D);
  umfa_tensor to = t::tensor4(out_c.data(), UMFA_DTYPE_F32, B, NQ, HQ, D), tl;
  umfa_tensor_init_contiguous(&tl, lse_c.data(), UMFA_DTYPE_F32, 3, ls);
  umfa_tensor tdq = t::tensor4(dq_c.data(), UMFA_DTYPE_F32, B, NQ, HQ, D),
              tdk = t::tensor4(dk_c.data(), UMFA_DTYPE_F32, B, NK, HKV, D),
              tdv = t::tensor4(dv_c.data(), UMFA_DTYPE_F32, B, NK, HKV, D);
  CHECK_STATUS(umfa_attention_forward(cpu, &o, &tq, &tk, &tv, &to, &tl), UMFA_STATUS_OK);
  CHECK_STATUS(umfa_attention_backward(cpu, &o, &tq, &tk, &tv, &to, &tdo, &tl, &tdq, &tdk, &tdv), UMFA_STATUS_OK);

  // CUDA results.
  DeviceArray dq_in(cuda, q.data(), q.size()), dk_in(cuda, k.data(), k.size()), dv_in(cuda, v.data(), v.size()),
      ddo(cuda, dout.data(), dout.size()), dout_(cuda, nullptr, out_c.size() * 4), dlse(cuda, nullptr, lse_c.size() * 4),
      ddq(cuda, nullptr, dq_c.size() * 4), ddk(cuda, nullptr, dk_c.size() * 4), ddv(cuda, nullptr, dv_c.size() * 4);
  umfa_tensor gq = on_device(t::tensor4(dq_in.ptr, dtype, B, NQ, HQ, D));
  umfa_tensor gk = on_device(t::tensor4(dk_in.ptr, dtype, B, NK, HKV, D));
  umfa_tensor gv = on_device(t::tensor4(dv_in.ptr, dtype, B, NK, HKV, D));
  umfa_tensor gdo = on_device(t::tensor4(ddo.ptr, dtype, B, NQ, HQ, D));
  umfa_tensor go = on_device(t::tensor4(dout_.ptr, UMFA_DTYPE_F32, B, NQ, HQ, D));
  umfa_tensor gl;
  umfa_tensor_init_contiguous(&gl, dlse.ptr, UMFA_DTYPE_F32, 3, ls);
  gl = on_device(gl);
  umfa_tensor gdq = on_device(t::tensor4(ddq.ptr, UMFA_DTYPE_F32, B, NQ, HQ, D));
  umfa_tensor gdk = on_device(t::tensor4(ddk.ptr, UMFA_DTYPE_F32, B, NK, HKV, D));
  umfa_tensor gdv = on_device(t::tensor4(ddv.ptr, UMFA_DTYPE_F32, B, NK, HKV, D));
  umfa_status st = umfa_attention_forward(cuda, &o, &gq, &gk, &gv, &go, &gl);
  CHECK_MSG(st == UMFA_STATUS_OK, "CUDA forward dtype %d mask %u: %s", dtype, mask_mode, umfa_last_error(cuda));
  st = umfa_attention_backward(cuda, &o, &gq, &gk, &gv, &go, &gdo, &gl, &gdq, &gdk, &gdv);
  CHECK_MSG(st == UMFA_STATUS_OK, "CUDA backward dtype %d mask %u: %s", dtype, mask_mode, umfa_last_error(cuda));

  auto maxdiff = [](const std::vector<float>& a, const std::vector<float>& b) {
    double m = 0, scale = 1e-6;
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::isinf(a[i]) && a[i] == b[i]) continue;
      m = std::max(m, double(std::fabs(a[i] - b[i])));
      scale = std::max(scale, double(std::fabs(b[i])));
    }
    return m / scale;  // relative to the largest magnitude
  };
  const double tol = dtype == UMFA_DTYPE_F32 ? 2e-3 : dtype == UMFA_DTYPE_F16 ? 5e-3 : 3e-2;
  const double e_out = maxdiff(dout_.download<float>(), out_c), e_lse = maxdiff(dlse.download<float>(), lse_c);
  const double e_dq = maxdiff(ddq.download<float>(), dq_c), e_dk = maxdiff(ddk.download<float>(), dk_c),
               e_dv = maxdiff(ddv.download<float>(), dv_c);
  std::printf("dtype %s mask %u: CUDA vs CPU (relative) out %.2e lse %.2e dq %.2e dk %.2e dv %.2e\n",
              dtype == UMFA_DTYPE_F32 ? "f32" : dtype == UMFA_DTYPE_F16 ? "f16" : "bf16", mask_mode, e_out, e_lse,
              e_dq, e_dk, e_dv);
  for (double e : {e_out, e_lse, e_dq, e_dk, e_dv}) CHECK_MSG(e < tol, "CUDA vs CPU differ by %g (tolerance %g)", e, tol);

  // Forward against float64 on a few rows.
  t::Ref4 rq{q.data(), dtype, {NQ * HQ * D, HQ * D, D, 1}}, rk{k.data(), dtype, {NK * HKV * D, HKV * D, D, 1}},
      rv{v.data(), dtype, {NK * HKV * D, HKV * D, D, 1}};
  const std::vector<float> out_g = dout_.download<float>();
  double worst = 0, row[64];
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i : {int64_t(0), int64_t(1), NQ / 2, NQ - 1})
      for (int64_t h = 0; h < HQ; ++h) {
        t::reference_row(rq, rk, rv, b, i, h, NQ, NK, HQ, HKV, D, 1.0 / 8.0, int(mask_mode), row);
        for (int64_t x = 0; x < D; ++x)
          worst = std::max(worst, std::fabs(row[x] - out_g[((b * NQ + i) * HQ + h) * D + x]));
      }
  CHECK_MSG(worst < std::max(1e-3, t::tolerance(dtype)), "CUDA forward vs float64: %g", worst);
}

// Varlen rows after the last sequence and empty problems, written by the CUDA side.
void edges(umfa_context* cuda) {
  const int64_t TQ = 20, TK = 24, H = 2, D = 32;
  std::vector<float> q(TQ * H * D), k(TK * H * D), v(TK * H * D);
  t::Rng rng(5);
  for (auto* x : {&q, &k, &v})
    for (float& f : *x) f = float(rng.uniform());
  std::vector<int32_t> cu_q = {0, 7, 15}, cu_k = {0, 10, 19};  // rows 15.. and 19.. are outside
  DeviceArray gq(cuda, q.data(), q.size() * 4), gk(cuda, k.data(), k.size() * 4), gv(cuda, v.data(), v.size() * 4),
      gcq(cuda, cu_q.data(), 12), gck(cuda, cu_k.data(), 12);
  std::vector<float> sentinel(TQ * H * D, 7.f), lse_sentinel(H * TQ, 7.f);
  DeviceArray go(cuda, sentinel.data(), sentinel.size() * 4), gl(cuda, lse_sentinel.data(), lse_sentinel.size() * 4);
  const int64_t qs[3] = {TQ, H, D}, ks[3] = {TK, H, D}, lsh[2] = {H, TQ}, cs[1] = {3};
  umfa_tensor tq, tk, tv, to, tl, tcq, tck;
  umfa_tensor_init_contiguous(&tq, gq.ptr, UMFA_DTYPE_F32, 3, qs);
  umfa_tensor_init_contiguous(&tk, gk.ptr, UMFA_DTYPE_F32, 3, ks);
  umfa_tensor_init_contiguous(&tv, gv.ptr, UMFA_DTYPE_F32, 3, ks);
  umfa_tensor_init_contiguous(&to, go.ptr, UMFA_DTYPE_F32, 3, qs);
  umfa_tensor_init_contiguous(&tl, gl.ptr, UMFA_DTYPE_F32, 2, lsh);
  umfa_tensor_init_contiguous(&tcq, gcq.ptr, UMFA_DTYPE_I32, 1, cs);
  umfa_tensor_init_contiguous(&tck, gck.ptr, UMFA_DTYPE_I32, 1, cs);
  for (umfa_tensor* x : {&tq, &tk, &tv, &to, &tl, &tcq, &tck}) *x = on_device(*x);
  umfa_attention_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.cu_seqlens_q = &tcq;
  o.cu_seqlens_k = &tck;
  // Device offsets are not read back: the bounds are required.
  CHECK_STATUS(umfa_attention_forward(cuda, &o, &tq, &tk, &tv, &to, &tl), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK_CONTAINS(umfa_last_error(cuda), "max_seqlen_q is 0");
  o.max_seqlen_q = 8;
  o.max_seqlen_k = 10;
  CHECK_STATUS(umfa_attention_forward(cuda, &o, &tq, &tk, &tv, &to, &tl), UMFA_STATUS_OK);
  const std::vector<float> out = go.download<float>(), lse = gl.download<float>();
  bool pad_out = true, pad_lse = true, body = true;
  for (int64_t r = 15; r < TQ; ++r)
    for (int64_t x = 0; x < H * D; ++x) pad_out = pad_out && out[r * H * D + x] == 0.f;
  for (int64_t h = 0; h < H; ++h)
    for (int64_t r = 0; r < TQ; ++r) {
      if (r >= 15) pad_lse = pad_lse && lse[h * TQ + r] == -INFINITY;
      else body = body && std::isfinite(lse[h * TQ + r]);
    }
  CHECK_MSG(pad_out, "varlen rows outside every sequence: out = 0 on CUDA");
  CHECK_MSG(pad_lse, "varlen rows outside every sequence: lse = -inf on CUDA");
  CHECK(body);

  // Invalid offsets on the device are not validated (that would need a synchronizing read):
  // the values are unspecified, but forward and backward run without any out-of-bounds access
  // (the next synchronizing download would report one as an error).
  const std::vector<std::vector<int32_t>> bads = {
      {0, 9, 8}, {-5, 100000, -7}, {3, 2, 1 << 30}, {0, 30, 2}};
  DeviceArray gdo(cuda, sentinel.data(), sentinel.size() * 4), gdq(cuda, nullptr, q.size() * 4),
      gdk(cuda, nullptr, k.size() * 4), gdv(cuda, nullptr, v.size() * 4);
  umfa_tensor tdo, tdq, tdk, tdv;
  umfa_tensor_init_contiguous(&tdo, gdo.ptr, UMFA_DTYPE_F32, 3, qs);
  umfa_tensor_init_contiguous(&tdq, gdq.ptr, UMFA_DTYPE_F32, 3, qs);
  umfa_tensor_init_contiguous(&tdk, gdk.ptr, UMFA_DTYPE_F32, 3, ks);
  umfa_tensor_init_contiguous(&tdv, gdv.ptr, UMFA_DTYPE_F32, 3, ks);
  for (umfa_tensor* x : {&tdo, &tdq, &tdk, &tdv}) *x = on_device(*x);
  for (const std::vector<int32_t>& bad : bads) {
    CHECK_STATUS(umfa_buffer_upload(gcq.buf, 0, bad.data(), 12), UMFA_STATUS_OK);
    CHECK_STATUS(umfa_buffer_upload(gck.buf, 0, bad.data(), 12), UMFA_STATUS_OK);
    CHECK_STATUS(umfa_attention_forward(cuda, &o, &tq, &tk, &tv, &to, &tl), UMFA_STATUS_OK);
    CHECK_STATUS(umfa_attention_backward(cuda, &o, &tq, &tk, &tv, &to, &tdo, &tl, &tdq, &tdk, &tdv),
                 UMFA_STATUS_OK);
    (void)gdq.download<float>();  // synchronizes: a kernel fault would fail this download
  }
  std::vector<float> tail_out = go.download<float>();
  (void)tail_out;

  // Dense problem with seqlen_k = 0: every row fully masked.
  o.cu_seqlens_q = o.cu_seqlens_k = nullptr;
  o.max_seqlen_q = o.max_seqlen_k = 0;
  umfa_tensor dq4 = on_device(t::tensor4(gq.ptr, UMFA_DTYPE_F32, 1, TQ, H, D));
  umfa_tensor dk4 = on_device(t::tensor4(gk.ptr, UMFA_DTYPE_F32, 1, 0, H, D));
  umfa_tensor do4 = on_device(t::tensor4(go.ptr, UMFA_DTYPE_F32, 1, TQ, H, D));
  umfa_tensor dl3;
  const int64_t l3[3] = {1, H, TQ};
  umfa_tensor_init_contiguous(&dl3, gl.ptr, UMFA_DTYPE_F32, 3, l3);
  dl3 = on_device(dl3);
  CHECK_STATUS(umfa_buffer_upload(go.buf, 0, sentinel.data(), sentinel.size() * 4), UMFA_STATUS_OK);
  umfa_status st = umfa_attention_forward(cuda, &o, &dq4, &dk4, &dk4, &do4, &dl3);
  CHECK_MSG(st == UMFA_STATUS_OK, "CUDA forward with seqlen_k = 0: %s", umfa_last_error(cuda));
  bool zeros = true, ninf = true;
  for (float f : go.download<float>()) zeros = zeros && f == 0.f;
  for (float f : gl.download<float>()) ninf = ninf && f == -INFINITY;
  CHECK_MSG(zeros, "seqlen_k = 0 on CUDA: out = 0");
  CHECK_MSG(ninf, "seqlen_k = 0 on CUDA: lse = -inf");

  // Host memory on a CUDA context.
  umfa_tensor host_q = t::tensor4(q.data(), UMFA_DTYPE_F32, 1, TQ, H, D);
  CHECK_STATUS(umfa_attention_forward(cuda, &o, &host_q, &dk4, &dk4, &do4, nullptr), UMFA_STATUS_DEVICE_MISMATCH);
}

void classic() {
  mfa_context_t ctx = nullptr;
  CHECK_EQ(mfa_create_context(&ctx), MFA_SUCCESS);
  uint32_t backend = 0;
  umfa_context_backend(static_cast<umfa_context*>(ctx), &backend);
  CHECK(backend == UMFA_BACKEND_CUDA);
  const uint32_t B = 2, N = 33, H = 3, D = 64;
  const size_t n = size_t(B) * N * H * D;
  mfa_buffer_t q, k, v, out;
  mfa_create_buffer(ctx, n * 2, &q);
  mfa_create_buffer(ctx, n * 2, &k);
  mfa_create_buffer(ctx, n * 2, &v);
  mfa_create_buffer(ctx, n * 4, &out);
  t::Rng rng(9);
  for (mfa_buffer_t b : {q, k, v})
    for (size_t i = 0; i < n; ++i) t::store(mfa_buffer_contents(b), UMFA_DTYPE_F16, i, rng.uniform());
  const mfa_error_t e = mfa_attention_forward(ctx, q, k, v, out, B, N, N, H, D, 0.f, true, MFA_PRECISION_FP16,
                                              MFA_PRECISION_FP32, MFA_PRECISION_FP32, false, true, false, false);
  CHECK_MSG(e == MFA_SUCCESS, "classic on CUDA: %s", umfa_last_error(static_cast<umfa_context*>(ctx)));
  t::Ref4 rq{mfa_buffer_contents(q), UMFA_DTYPE_F16, {N * H * D, H * D, D, 1}};
  t::Ref4 rk{mfa_buffer_contents(k), UMFA_DTYPE_F16, {H * D * N, 1, D * N, N}};  // transposed
  t::Ref4 rv{mfa_buffer_contents(v), UMFA_DTYPE_F16, {N * H * D, H * D, D, 1}};
  const float* o = static_cast<const float*>(mfa_buffer_contents(out));
  double worst = 0, row[64];
  for (uint32_t b = 0; b < B; ++b)
    for (uint32_t i = 0; i < N; ++i)
      for (uint32_t h = 0; h < H; ++h) {
        t::reference_row(rq, rk, rv, b, i, h, N, N, H, H, D, 0.125, 1, row);
        for (uint32_t x = 0; x < D; ++x) worst = std::max(worst, std::fabs(row[x] - o[((b * N + i) * H + h) * D + x]));
      }
  std::printf("classic API staged through CUDA (f16 in, f32 out, causal, k transposed): max error %.3g\n", worst);
  CHECK(worst < 5e-3);
  for (mfa_buffer_t b : {q, k, v, out}) mfa_destroy_buffer(b);
  mfa_destroy_context(ctx);
}

}  // namespace

int main() {
  int32_t available = 0, count = 0;
  umfa_backend_available(UMFA_BACKEND_CUDA, &available, &count);
  std::printf("%s\n", umfa_build_info());
  if (!available) {
    std::printf("test_cuda: skipped (no usable CUDA device)\n");
    return 77;
  }
  umfa_context* cuda = make(UMFA_BACKEND_CUDA);
  umfa_context* autoctx = make(UMFA_BACKEND_AUTO);
  umfa_context* cpu = make(UMFA_BACKEND_CPU);
  if (!cuda || !autoctx || !cpu) return t::summary("test_cuda");
  uint32_t b = 0;
  umfa_context_backend(autoctx, &b);
  CHECK(b == UMFA_BACKEND_CUDA);
  buffers(cuda);
  for (int32_t dtype : {UMFA_DTYPE_F32, UMFA_DTYPE_F16, UMFA_DTYPE_BF16})
    for (uint32_t mask : {uint32_t(UMFA_MASK_NONE), uint32_t(UMFA_MASK_CAUSAL_BOTTOM_RIGHT)}) dense(cuda, cpu, dtype, mask);
  edges(cuda);
  classic();
  umfa_context_destroy(cuda);
  umfa_context_destroy(autoctx);
  umfa_context_destroy(cpu);
  return t::summary("test_cuda");
}
