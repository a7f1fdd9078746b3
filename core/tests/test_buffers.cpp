// Buffers on a CPU context: create (zero-filled, 64-byte aligned), wrap without copying,
// size/data/device/contents, upload/download with range checks, handle checks, and a forward
// call whose tensors live in buffers.
#include <vector>

#include "test_util.h"

static void create_and_query(umfa_context* ctx) {
  umfa_buffer* b = nullptr;
  CHECK_STATUS(umfa_buffer_create(ctx, 1000, &b), UMFA_STATUS_OK);
  if (!b) return;
  uint64_t size = 0;
  CHECK_STATUS(umfa_buffer_size(b, &size), UMFA_STATUS_OK);
  CHECK_EQ(size, 1000u);
  void* data = nullptr;
  void* contents = nullptr;
  CHECK_STATUS(umfa_buffer_data(b, &data), UMFA_STATUS_OK);
  CHECK_STATUS(umfa_buffer_contents(b, &contents), UMFA_STATUS_OK);
  CHECK(data != nullptr);
  CHECK(data == contents);
  CHECK_EQ(reinterpret_cast<uintptr_t>(data) % 64, 0u);
  int32_t device = -1;
  CHECK_STATUS(umfa_buffer_device(b, &device), UMFA_STATUS_OK);
  CHECK_EQ(device, UMFA_DEVICE_CPU);
  bool zero = true;
  for (int i = 0; i < 1000; ++i) zero = zero && static_cast<unsigned char*>(data)[i] == 0;
  CHECK(zero);

  // Upload / download, including ranges at the edges.
  std::vector<unsigned char> src(1000), dst(1000, 0xee);
  for (int i = 0; i < 1000; ++i) src[i] = static_cast<unsigned char>(i * 7);
  CHECK_STATUS(umfa_buffer_upload(b, 0, src.data(), 1000), UMFA_STATUS_OK);
  CHECK(std::memcmp(data, src.data(), 1000) == 0);
  CHECK_STATUS(umfa_buffer_download(b, 10, dst.data(), 990), UMFA_STATUS_OK);
  CHECK(std::memcmp(dst.data(), src.data() + 10, 990) == 0);
  CHECK_STATUS(umfa_buffer_upload(b, 999, src.data(), 1), UMFA_STATUS_OK);
  CHECK_EQ(static_cast<unsigned char*>(data)[999], src[0]);
  CHECK_STATUS(umfa_buffer_upload(b, 1000, nullptr, 0), UMFA_STATUS_OK);  // empty range at the end
  CHECK_STATUS(umfa_buffer_download(b, 0, nullptr, 0), UMFA_STATUS_OK);

  const std::vector<unsigned char> before(static_cast<unsigned char*>(data),
                                          static_cast<unsigned char*>(data) + 1000);
  CHECK_STATUS(umfa_buffer_upload(b, 1, src.data(), 1000), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK_CONTAINS(umfa_last_error(ctx), "outside the buffer");
  CHECK_STATUS(umfa_buffer_upload(b, 1001, src.data(), 0), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(umfa_buffer_upload(b, UINT64_MAX, src.data(), 2), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(umfa_buffer_upload(b, 2, src.data(), UINT64_MAX), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(umfa_buffer_upload(b, 0, nullptr, 4), UMFA_STATUS_NULL_POINTER);
  CHECK_CONTAINS(umfa_last_error(ctx), "src");
  CHECK(std::memcmp(data, before.data(), 1000) == 0);  // failed uploads wrote nothing
  std::vector<unsigned char> dst2(1000, 0xee);
  CHECK_STATUS(umfa_buffer_download(b, 500, dst2.data(), 501), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(umfa_buffer_download(b, 0, nullptr, 4), UMFA_STATUS_NULL_POINTER);
  CHECK_CONTAINS(umfa_last_error(ctx), "dst");
  bool untouched = true;
  for (unsigned char c : dst2) untouched = untouched && c == 0xee;
  CHECK(untouched);

  // Out-parameters and handles.
  CHECK_STATUS(umfa_buffer_size(b, nullptr), UMFA_STATUS_NULL_POINTER);
  CHECK_STATUS(umfa_buffer_data(b, nullptr), UMFA_STATUS_NULL_POINTER);
  CHECK_STATUS(umfa_buffer_device(b, nullptr), UMFA_STATUS_NULL_POINTER);
  CHECK_STATUS(umfa_buffer_contents(b, nullptr), UMFA_STATUS_NULL_POINTER);
  CHECK_STATUS(umfa_buffer_size(nullptr, &size), UMFA_STATUS_NULL_POINTER);
  CHECK_CONTAINS(umfa_last_error(nullptr), "buffer is NULL");
  CHECK_STATUS(umfa_buffer_data(nullptr, &data), UMFA_STATUS_NULL_POINTER);
  CHECK_STATUS(umfa_buffer_device(nullptr, &device), UMFA_STATUS_NULL_POINTER);
  CHECK_STATUS(umfa_buffer_contents(nullptr, &contents), UMFA_STATUS_NULL_POINTER);
  CHECK_STATUS(umfa_buffer_upload(nullptr, 0, src.data(), 1), UMFA_STATUS_NULL_POINTER);
  CHECK_STATUS(umfa_buffer_download(nullptr, 0, dst.data(), 1), UMFA_STATUS_NULL_POINTER);
  // A context handle is not a buffer.
  CHECK_STATUS(umfa_buffer_size(reinterpret_cast<umfa_buffer*>(ctx), &size), UMFA_STATUS_INVALID_HANDLE);
  umfa_buffer_destroy(b);
  umfa_buffer_destroy(nullptr);  // no-op
}

static void create_errors(umfa_context* ctx) {
  umfa_buffer* b = reinterpret_cast<umfa_buffer*>(uintptr_t(0x99));
  CHECK_STATUS(umfa_buffer_create(ctx, 0, &b), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK_CONTAINS(umfa_last_error(ctx), "size_bytes");
  CHECK_STATUS(umfa_buffer_create(ctx, 16, nullptr), UMFA_STATUS_NULL_POINTER);
  CHECK_CONTAINS(umfa_last_error(ctx), "out_buffer");
  CHECK_STATUS(umfa_buffer_create(nullptr, 16, &b), UMFA_STATUS_NULL_CONTEXT);
  CHECK_STATUS(umfa_buffer_create(ctx, UINT64_MAX, &b), UMFA_STATUS_OUT_OF_MEMORY);
  CHECK_CONTAINS(umfa_last_error(ctx), "could not allocate");
  CHECK(b == reinterpret_cast<umfa_buffer*>(uintptr_t(0x99)));  // untouched on failure

  char mem[64];
  CHECK_STATUS(umfa_buffer_wrap(ctx, nullptr, 16, &b), UMFA_STATUS_NULL_POINTER);
  CHECK_CONTAINS(umfa_last_error(ctx), "host_ptr");
  CHECK_STATUS(umfa_buffer_wrap(ctx, mem, 0, &b), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK_STATUS(umfa_buffer_wrap(ctx, mem, 16, nullptr), UMFA_STATUS_NULL_POINTER);
  CHECK_STATUS(umfa_buffer_wrap(nullptr, mem, 16, &b), UMFA_STATUS_NULL_CONTEXT);
  CHECK_STATUS(umfa_buffer_wrap(ctx, mem, UINT64_MAX, &b), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK(b == reinterpret_cast<umfa_buffer*>(uintptr_t(0x99)));
}

static void wrap(umfa_context* ctx) {
  std::vector<float> host(64, 1.5f);
  umfa_buffer* b = nullptr;
  CHECK_STATUS(umfa_buffer_wrap(ctx, host.data(), host.size() * 4, &b), UMFA_STATUS_OK);
  if (!b) return;
  void* p = nullptr;
  CHECK_STATUS(umfa_buffer_contents(b, &p), UMFA_STATUS_OK);
  CHECK(p == host.data());  // no copy
  CHECK_STATUS(umfa_buffer_data(b, &p), UMFA_STATUS_OK);
  CHECK(p == host.data());
  uint64_t size = 0;
  umfa_buffer_size(b, &size);
  CHECK_EQ(size, 256u);
  float two = 2.f;
  CHECK_STATUS(umfa_buffer_upload(b, 8, &two, 4), UMFA_STATUS_OK);
  CHECK(host[2] == 2.f);  // writes through to the caller's memory
  umfa_buffer_destroy(b);
  CHECK(host[0] == 1.5f);  // the wrapped memory is still the caller's
  host[0] = 3.f;
}

// Attention over buffers: q/k/v wrapped, out in a library buffer, lse in another.
static void forward_on_buffers(umfa_context* ctx) {
  const int64_t Bn = 1, N = 6, H = 2, Dd = 4;
  std::vector<float> q(Bn * N * H * Dd), k(q.size()), v(q.size());
  t::Rng rng(3);
  for (auto* vec : {&q, &k, &v})
    for (float& x : *vec) x = static_cast<float>(rng.uniform());
  umfa_buffer *bq, *bk, *bv, *bo, *bl;
  if (umfa_status e_ = umfa_buffer_wrap(ctx, q.data(), q.size() * 4, &bq)) { CHECK_STATUS(e_, UMFA_STATUS_OK); return; }
  if (umfa_status e_ = umfa_buffer_wrap(ctx, k.data(), k.size() * 4, &bk)) { CHECK_STATUS(e_, UMFA_STATUS_OK); return; }
  if (umfa_status e_ = umfa_buffer_wrap(ctx, v.data(), v.size() * 4, &bv)) { CHECK_STATUS(e_, UMFA_STATUS_OK); return; }
  if (umfa_status e_ = umfa_buffer_create(ctx, q.size() * 4, &bo)) { CHECK_STATUS(e_, UMFA_STATUS_OK); return; }
  if (umfa_status e_ = umfa_buffer_create(ctx, Bn * H * N * 4, &bl)) { CHECK_STATUS(e_, UMFA_STATUS_OK); return; }
  void *pq, *pk, *pv, *po, *pl;
  umfa_buffer_data(bq, &pq);
  umfa_buffer_data(bk, &pk);
  umfa_buffer_data(bv, &pv);
  umfa_buffer_data(bo, &po);
  umfa_buffer_data(bl, &pl);
  umfa_tensor tq = t::tensor4(pq, UMFA_DTYPE_F32, Bn, N, H, Dd), tk = t::tensor4(pk, UMFA_DTYPE_F32, Bn, N, H, Dd),
              tv = t::tensor4(pv, UMFA_DTYPE_F32, Bn, N, H, Dd), to = t::tensor4(po, UMFA_DTYPE_F32, Bn, N, H, Dd);
  umfa_tensor tl;
  const int64_t ls[3] = {Bn, H, N};
  umfa_tensor_init_contiguous(&tl, pl, UMFA_DTYPE_F32, 3, ls);
  CHECK_STATUS(umfa_attention_forward(ctx, nullptr, &tq, &tk, &tv, &to, &tl), UMFA_STATUS_OK);
  std::vector<float> out(q.size()), lse(Bn * H * N);
  CHECK_STATUS(umfa_buffer_download(bo, 0, out.data(), out.size() * 4), UMFA_STATUS_OK);
  CHECK_STATUS(umfa_buffer_download(bl, 0, lse.data(), lse.size() * 4), UMFA_STATUS_OK);
  t::Ref4 rq{q.data(), UMFA_DTYPE_F32, {N * H * Dd, H * Dd, Dd, 1}}, rk{k.data(), UMFA_DTYPE_F32, {N * H * Dd, H * Dd, Dd, 1}},
      rv{v.data(), UMFA_DTYPE_F32, {N * H * Dd, H * Dd, Dd, 1}};
  double worst = 0;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t h = 0; h < H; ++h) {
      double row[4];
      double l = t::reference_row(rq, rk, rv, 0, i, h, N, N, H, H, Dd, 1.0 / std::sqrt(double(Dd)), 0, row);
      for (int64_t x = 0; x < Dd; ++x) worst = std::max(worst, std::fabs(row[x] - out[(i * H + h) * Dd + x]));
      worst = std::max(worst, std::fabs(l - lse[h * N + i]));
    }
  CHECK_MSG(worst < 1e-5, "forward on buffers: max error %g", worst);
  for (umfa_buffer* b : {bq, bk, bv, bo, bl}) umfa_buffer_destroy(b);
}

int main() {
  umfa_context* ctx = nullptr;
  REQUIRE_OK(umfa_context_create(nullptr, &ctx));
  create_and_query(ctx);
  create_errors(ctx);
  wrap(ctx);
  forward_on_buffers(ctx);
  umfa_context_destroy(ctx);
  return t::summary("test_buffers");
}
