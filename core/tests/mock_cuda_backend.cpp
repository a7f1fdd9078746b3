// A stand-in for libumfa_cuda used by test_mock_cuda: it exports umfa_cuda_backend_v1() like
// the real library, reports two "devices", and keeps "device memory" in host memory, so the
// loader, backend selection, device buffers, device checks and the classic API's staging can
// be tested on machines without a GPU. Its forward is a plain float64 loop (dense problems,
// f32 output, no mask/ALiBi/softcap), and so is its merge (f32 views); backward always fails,
// to test error propagation.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend.h"

namespace {

std::atomic<int> g_live_allocations{0};
std::atomic<int> g_copies{0};

struct Impl {
  int32_t device;
};

void report(umfa::ErrorSink* err, const char* msg) {
  if (err && err->message && err->capacity) std::snprintf(err->message, err->capacity, "%s", msg);
}

umfa_status create(int32_t device_index, int32_t, void** out_impl, umfa::ErrorSink* err) {
  if (device_index < 0 || device_index > 1) {
    report(err, "mock: no such device");
    return UMFA_STATUS_INVALID_ARGUMENT;
  }
  *out_impl = new Impl{device_index};
  return UMFA_STATUS_OK;
}
void destroy(void* impl) { delete static_cast<Impl*>(impl); }
uint64_t workspace(void*, const umfa::Problem*) { return 4096; }

double at(const umfa::View& v, int64_t a, int64_t b, int64_t c, int64_t d) {
  const int64_t off = a * v.strides[0] + b * v.strides[1] + c * v.strides[2] + d * v.strides[3];
  return static_cast<const float*>(v.data)[off];
}

umfa_status forward(void*, const umfa::Problem* p, umfa::ErrorSink* err) {
  if (p->q.dtype != UMFA_DTYPE_F32 || p->out.dtype != UMFA_DTYPE_F32 || p->cu_seqlens_q ||
      p->mask.present() || p->alibi.present() || p->softcap != 0.f) {
    report(err, "mock: only dense f32 problems without mask, ALiBi or softcap");
    return UMFA_STATUS_UNSUPPORTED;
  }
  const int64_t nq = p->seqlen_q, nk = p->seqlen_k, d = p->head_dim;
  const int64_t group = p->heads_q / p->heads_kv;
  const int64_t offset = p->bottom_right ? nk - nq : 0;
  std::vector<double> s(static_cast<size_t>(nk)), acc(static_cast<size_t>(d));
  for (int64_t b = 0; b < p->batch; ++b)
    for (int64_t h = 0; h < p->heads_q; ++h)
      for (int64_t i = 0; i < nq; ++i) {
        double mx = -INFINITY;
        for (int64_t j = 0; j < nk; ++j) {
          const int64_t dd = j - i - offset;
          const bool visible = (p->window_left < 0 || dd >= -p->window_left) &&
                               (p->window_right < 0 || dd <= p->window_right);
          s[j] = -INFINITY;
          if (!visible) continue;
          double dot = 0;
          for (int64_t x = 0; x < d; ++x) dot += at(p->q, b, i, h, x) * at(p->k, b, j, h / group, x);
          s[j] = dot * p->scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        std::fill(acc.begin(), acc.end(), 0.0);
        if (mx > -INFINITY)
          for (int64_t j = 0; j < nk; ++j) {
            if (s[j] == -INFINITY) continue;
            const double e = std::exp(s[j] - mx);
            sum += e;
            for (int64_t x = 0; x < d; ++x) acc[x] += e * at(p->v, b, j, h / group, x);
          }
        float* out = static_cast<float*>(p->out.data);
        for (int64_t x = 0; x < d; ++x)
          out[b * p->out.strides[0] + i * p->out.strides[1] + h * p->out.strides[2] + x * p->out.strides[3]] =
              sum > 0 ? static_cast<float>(acc[x] / sum) : 0.f;
        if (p->lse.present())
          static_cast<float*>(p->lse.data)[b * p->lse.strides[0] + h * p->lse.strides[1] + i * p->lse.strides[2]] =
              sum > 0 ? static_cast<float>(mx + std::log(sum)) : -INFINITY;
      }
  return UMFA_STATUS_OK;
}

umfa_status backward(void*, const umfa::Problem*, umfa::ErrorSink* err) {
  report(err, "mock: backward always fails");
  return UMFA_STATUS_BACKEND_ERROR;
}

// umfa_attention_merge in float64 (f32 views only).
umfa_status merge(void*, const umfa::MergeProblem* p, umfa::ErrorSink* err) {
  if (p->out.dtype != UMFA_DTYPE_F32 || p->part_out.dtype != UMFA_DTYPE_F32) {
    report(err, "mock: merge of f32 views only");
    return UMFA_STATUS_UNSUPPORTED;
  }
  float* out = static_cast<float*>(p->out.data);
  float* lse = static_cast<float*>(p->lse.data);
  const float* part = static_cast<const float*>(p->part_out.data);
  const float* part_lse = static_cast<const float*>(p->part_lse.data);
  for (int64_t b = 0; b < p->batch; ++b)
    for (int64_t n = 0; n < p->seqlen; ++n)
      for (int64_t h = 0; h < p->heads; ++h) {
        float& l = lse[b * p->lse.strides[0] + h * p->lse.strides[1] + n * p->lse.strides[2]];
        const double lp = part_lse[b * p->part_lse.strides[0] + h * p->part_lse.strides[1] +
                                   n * p->part_lse.strides[2]];
        const double m = std::max<double>(l, lp);
        const double merged = m == -INFINITY ? m : m + std::log(std::exp(l - m) + std::exp(lp - m));
        const double w_out = l == -INFINITY ? 0 : std::exp(l - merged);
        const double w_part = lp == -INFINITY ? 0 : std::exp(lp - merged);
        for (int64_t c = 0; c < p->head_dim; ++c) {
          float& o = out[b * p->out.strides[0] + n * p->out.strides[1] + h * p->out.strides[2] +
                         c * p->out.strides[3]];
          const float x = part[b * p->part_out.strides[0] + n * p->part_out.strides[1] +
                               h * p->part_out.strides[2] + c * p->part_out.strides[3]];
          o = static_cast<float>((w_out ? w_out * o : 0) + (w_part ? w_part * x : 0));
        }
        l = static_cast<float>(merged);
      }
  return UMFA_STATUS_OK;
}

umfa_status alloc(void*, uint64_t bytes, void** out, umfa::ErrorSink* err) {
  void* p = std::malloc(bytes ? bytes : 1);
  if (!p) {
    report(err, "mock: out of memory");
    return UMFA_STATUS_OUT_OF_MEMORY;
  }
  std::memset(p, 0, bytes);  // zero-filled, as backend.h requires of alloc
  ++g_live_allocations;
  *out = p;
  return UMFA_STATUS_OK;
}
void release(void*, void* p) {
  if (p) --g_live_allocations;
  std::free(p);
}
umfa_status copy(void*, void* dst, const void* src, uint64_t bytes, umfa::ErrorSink*) {
  std::memcpy(dst, src, bytes);
  ++g_copies;
  return UMFA_STATUS_OK;
}
int32_t device_count() { return 2; }

const umfa::BackendTable kTable = {sizeof(umfa::BackendTable), "mock-cuda", create, destroy,
                                   workspace, workspace, forward, backward, alloc, release, copy,
                                   copy, device_count, merge};

// With UMFA_MOCK_CUDA_TABLE=first-release the mock poses as a libumfa_cuda built before the
// table grew: struct_size ends at device_count.
umfa::BackendTable first_release_table() {
  umfa::BackendTable t = kTable;
  t.struct_size = umfa::kBackendTableMinSize;
  t.merge = nullptr;
  return t;
}

}  // namespace

// What the mock exports: the backend's entry point and two counters the tests read.
#if defined(_WIN32)
#define MOCK_EXPORT __declspec(dllexport)
#else
#define MOCK_EXPORT __attribute__((visibility("default")))
#endif

extern "C" MOCK_EXPORT const umfa::BackendTable* umfa_cuda_backend_v1() {
  const char* table = std::getenv("UMFA_MOCK_CUDA_TABLE");
  if (table && std::strcmp(table, "first-release") == 0) {
    static const umfa::BackendTable first_release = first_release_table();
    return &first_release;
  }
  return &kTable;
}
extern "C" MOCK_EXPORT int umfa_mock_live_allocations() {
  return g_live_allocations.load();
}
extern "C" MOCK_EXPORT int umfa_mock_copies() { return g_copies.load(); }
