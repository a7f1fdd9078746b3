// The CUDA side of the API layer, against a mock libumfa_cuda (mock_cuda_backend.cpp, loaded
// through UMFA_CUDA_LIB): loading and build info, AUTO selection, device indices, buffers in
// device memory, device checks on tensors, the workspace limit, propagation of backend errors,
// varlen offsets on the device (never read back: max_seqlen required), and the classic API
// staging host buffers.
#include <cstdlib>
#include <vector>

#include "test_os.h"
#include "test_util.h"

namespace {

int (*live_allocations)() = nullptr;
int (*copies)() = nullptr;

umfa_context* make(uint32_t backend, int32_t device_index, uint64_t limit = 0) {
  umfa_context_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.backend = backend;
  o.device_index = device_index;
  o.workspace_limit_bytes = limit;
  umfa_context* ctx = nullptr;
  CHECK_STATUS(umfa_context_create(&o, &ctx), UMFA_STATUS_OK);
  return ctx;
}

void loading() {
  int32_t avail = 0, count = 0;
  CHECK_STATUS(umfa_backend_available(UMFA_BACKEND_CUDA, &avail, &count), UMFA_STATUS_OK);
  CHECK_EQ(avail, 1);
  CHECK_EQ(count, 2);
  CHECK_CONTAINS(umfa_build_info(), "2 device(s)");
  CHECK_CONTAINS(umfa_build_info(), std::getenv("UMFA_CUDA_LIB"));
  std::printf("build info: %s\n", umfa_build_info());

  umfa_context* ctx = make(UMFA_BACKEND_AUTO, 0);
  uint32_t b = 0;
  umfa_context_backend(ctx, &b);
  CHECK(b == UMFA_BACKEND_CUDA);  // AUTO prefers CUDA when a device exists
  int32_t threads = -1;
  umfa_context_num_threads(ctx, &threads);
  CHECK_EQ(threads, 0);
  umfa_context_destroy(ctx);
  ctx = make(UMFA_BACKEND_CUDA, 1);
  umfa_context_destroy(ctx);
  ctx = make(UMFA_BACKEND_CPU, 0);
  umfa_context_backend(ctx, &b);
  CHECK(b == UMFA_BACKEND_CPU);
  umfa_context_destroy(ctx);

  umfa_context_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.backend = UMFA_BACKEND_CUDA;
  o.device_index = 2;
  CHECK_STATUS(umfa_context_create(&o, &ctx), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK_CONTAINS(umfa_last_error(nullptr), "device_index");
}

void buffers() {
  umfa_context* ctx = make(UMFA_BACKEND_CUDA, 0);
  const int base = live_allocations();
  umfa_buffer* b = nullptr;
  CHECK_STATUS(umfa_buffer_create(ctx, 3 << 20, &b), UMFA_STATUS_OK);  // a few MiB
  CHECK_EQ(live_allocations(), base + 1);
  int32_t device = -1;
  umfa_buffer_device(b, &device);
  CHECK_EQ(device, UMFA_DEVICE_CUDA);
  void* p = reinterpret_cast<void*>(uintptr_t(1));
  CHECK_STATUS(umfa_buffer_contents(b, &p), UMFA_STATUS_UNSUPPORTED);
  CHECK(p == nullptr);
  CHECK_STATUS(umfa_buffer_data(b, &p), UMFA_STATUS_OK);
  CHECK(p != nullptr);
  std::vector<unsigned char> host(3 << 20, 0xff);
  CHECK_STATUS(umfa_buffer_download(b, 0, host.data(), host.size()), UMFA_STATUS_OK);
  bool zero = true;
  for (unsigned char c : host) zero = zero && c == 0;
  CHECK(zero);  // the backend zero-fills, umfa_buffer_create promises it
  for (size_t i = 0; i < 100; ++i) host[i] = static_cast<unsigned char>(i);
  CHECK_STATUS(umfa_buffer_upload(b, 1000, host.data(), 100), UMFA_STATUS_OK);
  std::vector<unsigned char> back(100);
  CHECK_STATUS(umfa_buffer_download(b, 1000, back.data(), 100), UMFA_STATUS_OK);
  CHECK(std::memcmp(back.data(), host.data(), 100) == 0);
  umfa_buffer_destroy(b);
  CHECK_EQ(live_allocations(), base);
  char mem[16];
  CHECK_STATUS(umfa_buffer_wrap(ctx, mem, 16, &b), UMFA_STATUS_UNSUPPORTED);
  CHECK_CONTAINS(umfa_last_error(ctx), "CPU context");
  umfa_context_destroy(ctx);
}

struct Problem {
  int64_t B = 2, NQ = 5, NK = 6, H = 2, D = 4;
  std::vector<float> q, k, v;
  Problem() : q(B * NQ * H * D), k(B * NK * H * D), v(B * NK * H * D) {
    t::Rng rng(11);
    for (auto* x : {&q, &k, &v})
      for (float& f : *x) f = static_cast<float>(rng.uniform());
  }
  double check(const float* out, bool causal_top_left) const {
    t::Ref4 rq{q.data(), UMFA_DTYPE_F32, {NQ * H * D, H * D, D, 1}};
    t::Ref4 rk{k.data(), UMFA_DTYPE_F32, {NK * H * D, H * D, D, 1}};
    t::Ref4 rv{v.data(), UMFA_DTYPE_F32, {NK * H * D, H * D, D, 1}};
    double worst = 0;
    std::vector<double> row(D);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < NQ; ++i)
        for (int64_t h = 0; h < H; ++h) {
          t::reference_row(rq, rk, rv, b, i, h, NQ, NK, H, H, D, 1.0 / std::sqrt(double(D)),
                           causal_top_left ? 1 : 0, row.data());
          for (int64_t x = 0; x < D; ++x)
            worst = std::max(worst, std::fabs(row[x] - out[((b * NQ + i) * H + h) * D + x]));
        }
    return worst;
  }
};

// Device tensors through buffers.
void device_attention() {
  umfa_context* ctx = make(UMFA_BACKEND_CUDA, 1);
  Problem pr;
  umfa_buffer *bq, *bk, *bv, *bo;
  umfa_buffer_create(ctx, pr.q.size() * 4, &bq);
  umfa_buffer_create(ctx, pr.k.size() * 4, &bk);
  umfa_buffer_create(ctx, pr.v.size() * 4, &bv);
  umfa_buffer_create(ctx, pr.q.size() * 4, &bo);
  umfa_buffer_upload(bq, 0, pr.q.data(), pr.q.size() * 4);
  umfa_buffer_upload(bk, 0, pr.k.data(), pr.k.size() * 4);
  umfa_buffer_upload(bv, 0, pr.v.data(), pr.v.size() * 4);
  void *dq, *dk, *dv, *dout;
  umfa_buffer_data(bq, &dq);
  umfa_buffer_data(bk, &dk);
  umfa_buffer_data(bv, &dv);
  umfa_buffer_data(bo, &dout);
  auto dev = [](umfa_tensor x, int32_t index) {
    x.device = UMFA_DEVICE_CUDA;
    x.device_index = index;
    return x;
  };
  umfa_tensor q = dev(t::tensor4(dq, UMFA_DTYPE_F32, pr.B, pr.NQ, pr.H, pr.D), 1);
  umfa_tensor k = dev(t::tensor4(dk, UMFA_DTYPE_F32, pr.B, pr.NK, pr.H, pr.D), 1);
  umfa_tensor v = dev(t::tensor4(dv, UMFA_DTYPE_F32, pr.B, pr.NK, pr.H, pr.D), 1);
  umfa_tensor out = dev(t::tensor4(dout, UMFA_DTYPE_F32, pr.B, pr.NQ, pr.H, pr.D), 1);
  umfa_attention_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  CHECK_STATUS(umfa_attention_forward(ctx, &o, &q, &k, &v, &out, nullptr), UMFA_STATUS_OK);
  std::vector<float> host(pr.q.size());
  umfa_buffer_download(bo, 0, host.data(), host.size() * 4);
  CHECK_MSG(pr.check(host.data(), false) < 1e-5, "device forward error %g", pr.check(host.data(), false));

  // Device checks: CPU tensors, another device index.
  umfa_tensor cpu_q = t::tensor4(pr.q.data(), UMFA_DTYPE_F32, pr.B, pr.NQ, pr.H, pr.D);
  CHECK_STATUS(umfa_attention_forward(ctx, &o, &cpu_q, &k, &v, &out, nullptr), UMFA_STATUS_DEVICE_MISMATCH);
  CHECK_CONTAINS(umfa_last_error(ctx), "q.device is CPU");
  umfa_tensor other = dev(k, 0);
  CHECK_STATUS(umfa_attention_forward(ctx, &o, &q, &other, &v, &out, nullptr), UMFA_STATUS_DEVICE_MISMATCH);
  CHECK_CONTAINS(umfa_last_error(ctx), "k.device_index");

  // Backend errors propagate with the backend's message.
  o.softcap = 5.f;
  CHECK_STATUS(umfa_attention_forward(ctx, &o, &q, &k, &v, &out, nullptr), UMFA_STATUS_UNSUPPORTED);
  CHECK_CONTAINS(umfa_last_error(ctx), "mock: only dense f32");
  o.softcap = 0.f;
  umfa_tensor lse;
  umfa_buffer* bl;
  umfa_buffer_create(ctx, pr.B * pr.H * pr.NQ * 4, &bl);
  void* dl;
  umfa_buffer_data(bl, &dl);
  const int64_t ls[3] = {pr.B, pr.H, pr.NQ};
  umfa_tensor_init_contiguous(&lse, dl, UMFA_DTYPE_F32, 3, ls);
  lse = dev(lse, 1);
  umfa_tensor dq_t = out, dk_t = k, dv_t = v;  // (their contents do not matter here)
  umfa_buffer *g1, *g2, *g3;
  umfa_buffer_create(ctx, pr.q.size() * 4, &g1);
  umfa_buffer_create(ctx, pr.k.size() * 4, &g2);
  umfa_buffer_create(ctx, pr.v.size() * 4, &g3);
  umfa_buffer_data(g1, &dq_t.data);
  umfa_buffer_data(g2, &dk_t.data);
  umfa_buffer_data(g3, &dv_t.data);
  CHECK_STATUS(umfa_attention_backward(ctx, &o, &q, &k, &v, &out, &out, &lse, &dq_t, &dk_t, &dv_t),
               UMFA_STATUS_BACKEND_ERROR);
  CHECK_CONTAINS(umfa_last_error(ctx), "umfa_attention_backward: the mock-cuda backend failed: mock: backward always fails");

  // Varlen offsets on the device are never read back (no synchronization): max_seqlen_q/k are
  // required instead, and the contents (here invalid: 10 > total rows) are not validated.
  std::vector<int32_t> cu = {0, 4, 10};  // 10 > total rows (9)
  umfa_buffer* bcu;
  umfa_buffer_create(ctx, cu.size() * 4, &bcu);
  umfa_buffer_upload(bcu, 0, cu.data(), cu.size() * 4);
  umfa_tensor tcu;
  const int64_t cs[1] = {3};
  void* dcu;
  umfa_buffer_data(bcu, &dcu);
  umfa_tensor_init_contiguous(&tcu, dcu, UMFA_DTYPE_I32, 1, cs);
  tcu = dev(tcu, 1);
  umfa_tensor vq = q, vk = k, vv = v, vo = out;
  for (umfa_tensor* x : {&vq, &vk, &vv, &vo}) {
    x->rank = 3;
    x->shape[0] = 9;
    x->shape[1] = pr.H;
    x->shape[2] = pr.D;
    x->strides[0] = pr.H * pr.D;
    x->strides[1] = pr.D;
    x->strides[2] = 1;
  }
  o.cu_seqlens_q = &tcu;
  o.cu_seqlens_k = &tcu;
  const int copies_before = copies();
  CHECK_STATUS(umfa_attention_forward(ctx, &o, &vq, &vk, &vv, &vo, nullptr), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK_CONTAINS(umfa_last_error(ctx), "max_seqlen_q is 0");
  o.max_seqlen_q = 6;
  CHECK_STATUS(umfa_attention_forward(ctx, &o, &vq, &vk, &vv, &vo, nullptr), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK_CONTAINS(umfa_last_error(ctx), "max_seqlen_k is 0");
  // With both bounds the call reaches the backend (the mock runs dense problems only) and the
  // invalid offsets are not reported: nothing was read back.
  o.max_seqlen_k = 6;
  CHECK_STATUS(umfa_attention_forward(ctx, &o, &vq, &vk, &vv, &vo, nullptr), UMFA_STATUS_UNSUPPORTED);
  CHECK_CONTAINS(umfa_last_error(ctx), "mock: only dense f32");
  CHECK_EQ(copies(), copies_before);
  tcu.strides[0] = 2;
  tcu.shape[0] = 2;
  CHECK_STATUS(umfa_attention_forward(ctx, &o, &vq, &vk, &vv, &vo, nullptr), UMFA_STATUS_INVALID_STRIDE);
  CHECK_CONTAINS(umfa_last_error(ctx), "contiguous");
  o.cu_seqlens_q = o.cu_seqlens_k = nullptr;
  o.max_seqlen_q = o.max_seqlen_k = 0;

  for (umfa_buffer* x : {bq, bk, bv, bo, bl, g1, g2, g3, bcu}) umfa_buffer_destroy(x);
  umfa_context_destroy(ctx);

  // The workspace limit applies to every backend.
  ctx = make(UMFA_BACKEND_CUDA, 1, 100);
  CHECK_STATUS(umfa_attention_forward(ctx, &o, &q, &k, &v, &out, nullptr), UMFA_STATUS_WORKSPACE_LIMIT);
  CHECK_CONTAINS(umfa_last_error(ctx), "needs 4096 bytes of workspace");
  umfa_context_destroy(ctx);
}

// The classic API on a CUDA context: host-visible buffers, staged through device memory.
void classic() {
  mfa_context_t ctx = nullptr;
  CHECK_EQ(mfa_create_context(&ctx), MFA_SUCCESS);
  uint32_t b = 0;
  umfa_context_backend(static_cast<umfa_context*>(ctx), &b);
  CHECK(b == UMFA_BACKEND_CUDA);
  Problem pr;
  mfa_buffer_t q, k, v, out;
  CHECK_EQ(mfa_buffer_from_ptr(ctx, pr.q.data(), pr.q.size() * 4, &q), MFA_SUCCESS);
  CHECK_EQ(mfa_create_buffer(ctx, pr.k.size() * 4, &k), MFA_SUCCESS);
  CHECK_EQ(mfa_create_buffer(ctx, pr.v.size() * 4, &v), MFA_SUCCESS);
  CHECK_EQ(mfa_create_buffer(ctx, pr.q.size() * 4, &out), MFA_SUCCESS);
  CHECK(mfa_buffer_contents(q) == pr.q.data());
  CHECK(mfa_buffer_contents(k) != nullptr);  // host-visible on a CUDA context
  std::memcpy(mfa_buffer_contents(k), pr.k.data(), pr.k.size() * 4);
  std::memcpy(mfa_buffer_contents(v), pr.v.data(), pr.v.size() * 4);
  const int allocs = live_allocations(), before = copies();
  CHECK_EQ(mfa_attention_forward(ctx, q, k, v, out, pr.B, pr.NQ, pr.NK, pr.H, pr.D, 0.f, true,
                                 MFA_PRECISION_FP32, MFA_PRECISION_FP32, MFA_PRECISION_FP32, false,
                                 false, false, false),
           MFA_SUCCESS);
  CHECK_EQ(live_allocations(), allocs);  // staging memory freed
  CHECK(copies() - before >= 4);          // q, k, v in; out back
  const double err = pr.check(static_cast<const float*>(mfa_buffer_contents(out)), true);
  CHECK_MSG(err < 1e-5, "classic staged forward error %g", err);
  for (mfa_buffer_t x : {q, k, v, out}) mfa_destroy_buffer(x);
  mfa_destroy_context(ctx);
}

}  // namespace

int main() {
  const char* lib = std::getenv("UMFA_CUDA_LIB");
  void* h = lib ? test_os::library_open(lib) : nullptr;
  if (!h) {
    std::printf("test_mock_cuda: UMFA_CUDA_LIB must name the mock library\n");
    return 1;
  }
  live_allocations = reinterpret_cast<int (*)()>(test_os::library_symbol(h, "umfa_mock_live_allocations"));
  copies = reinterpret_cast<int (*)()>(test_os::library_symbol(h, "umfa_mock_copies"));
  if (!live_allocations || !copies) return 1;
  loading();
  buffers();
  device_attention();
  classic();
  return t::summary("test_mock_cuda");
}
