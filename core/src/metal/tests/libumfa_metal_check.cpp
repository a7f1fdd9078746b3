// libumfa with the simulated Metal backend (UMFA_METAL_LIB names libumfa_metal_sim.so): what the
// conformance vectors do not show — backend selection, umfa_buffer memory on Metal (page-aligned,
// zero-filled, its contents pointer is its data pointer), that such memory is used in place
// (a call on it needs no workspace, one on unaligned memory does), and results equal to the CPU
// backend's on the same inputs.
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "umfa.h"

static int failures = 0;
#define CHECK(c)                                                              \
  do {                                                                        \
    if (!(c)) {                                                               \
      std::fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #c);    \
      ++failures;                                                             \
    }                                                                         \
  } while (0)

static umfa_context* make(uint32_t backend, uint64_t limit = 0) {
  umfa_context_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.backend = backend;
  o.workspace_limit_bytes = limit;
  umfa_context* ctx = nullptr;
  if (umfa_context_create(&o, &ctx) != UMFA_STATUS_OK) {
    std::fprintf(stderr, "umfa_context_create(%u): %s\n", backend, umfa_last_error(nullptr));
    std::exit(1);
  }
  return ctx;
}

static umfa_tensor view(void* data, int64_t b, int64_t n, int64_t h, int64_t d) {
  umfa_tensor t;
  std::memset(&t, 0, sizeof t);
  t.data = data;
  t.dtype = UMFA_DTYPE_F32;
  t.device = UMFA_DEVICE_CPU;
  t.rank = 4;
  const int64_t shape[4] = {b, n, h, d};
  const int64_t strides[4] = {n * h * d, h * d, d, 1};
  std::memcpy(t.shape, shape, sizeof shape);
  std::memcpy(t.strides, strides, sizeof strides);
  return t;
}

int main() {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  int32_t avail = 0, count = 0;
  CHECK(umfa_backend_available(UMFA_BACKEND_METAL, &avail, &count) == UMFA_STATUS_OK);
  CHECK(avail == 1 && count == 1);
  CHECK(std::strstr(umfa_build_info(), "metal: ") != nullptr);
  CHECK(std::strstr(umfa_build_info(), "simulated, explicit opt-in only") != nullptr);

  // AUTO never picks the simulation.
  umfa_context* autoctx = make(UMFA_BACKEND_AUTO);
  uint32_t b = 0;
  umfa_context_backend(autoctx, &b);
  CHECK(b == UMFA_BACKEND_CPU);
  umfa_context_destroy(autoctx);

  umfa_context* metal = make(UMFA_BACKEND_METAL);
  umfa_context* cpu = make(UMFA_BACKEND_CPU);
  umfa_context_backend(metal, &b);
  CHECK(b == UMFA_BACKEND_METAL);
  int32_t threads = -1;
  umfa_context_num_threads(metal, &threads);
  CHECK(threads == 0);

  // Buffers: page-aligned, zero-filled host memory; contents == data; device CPU.
  const int64_t B = 2, N = 37, H = 3, D = 24, n = B * N * H * D;
  umfa_buffer* bufs[4] = {};
  void* ptr[4] = {};
  for (int i = 0; i < 4; ++i) {
    CHECK(umfa_buffer_create(metal, static_cast<uint64_t>(n) * 4, &bufs[i]) == UMFA_STATUS_OK);
    void* contents = nullptr;
    int32_t device = -1;
    umfa_buffer_data(bufs[i], &ptr[i]);
    CHECK(umfa_buffer_contents(bufs[i], &contents) == UMFA_STATUS_OK && contents == ptr[i]);
    CHECK(umfa_buffer_device(bufs[i], &device) == UMFA_STATUS_OK && device == UMFA_DEVICE_CPU);
    CHECK(reinterpret_cast<uintptr_t>(ptr[i]) % page == 0);
    bool zero = true;
    for (int64_t j = 0; j < n; ++j) zero = zero && static_cast<float*>(ptr[i])[j] == 0.f;
    CHECK(zero);
  }
  std::vector<float> host(static_cast<size_t>(n));
  uint32_t seed = 7;
  for (int i = 0; i < 3; ++i) {
    for (float& x : host) {
      seed = seed * 1664525u + 1013904223u;
      x = static_cast<float>(seed >> 8) / 16777216.0f * 2.f - 1.f;
    }
    CHECK(umfa_buffer_upload(bufs[i], 0, host.data(), host.size() * 4) == UMFA_STATUS_OK);
  }
  umfa_attention_options opt;
  std::memset(&opt, 0, sizeof opt);
  opt.struct_size = sizeof opt;
  opt.mask_mode = UMFA_MASK_CAUSAL_BOTTOM_RIGHT;
  const umfa_tensor q = view(ptr[0], B, N, H, D), k = view(ptr[1], B, N, H, D),
                    v = view(ptr[2], B, N, H, D), out = view(ptr[3], B, N, H, D);
  CHECK(umfa_attention_forward(metal, &opt, &q, &k, &v, &out, nullptr) == UMFA_STATUS_OK);
  std::vector<float> ref(static_cast<size_t>(n), NAN);
  const umfa_tensor ref_out = view(ref.data(), B, N, H, D);
  CHECK(umfa_attention_forward(cpu, &opt, &q, &k, &v, &ref_out, nullptr) == UMFA_STATUS_OK);
  double worst = 0;
  for (int64_t j = 0; j < n; ++j)
    worst = std::fmax(worst, std::fabs(static_cast<double>(static_cast<float*>(ptr[3])[j]) - ref[j]));
  std::printf("metal vs cpu, buffers in place: max |diff| %.3g\n", worst);
  CHECK(worst < 1e-5);

  // Workspace: buffers are used in place (nothing allocated for the call); unaligned host
  // memory is staged, which the limit counts.
  umfa_context* limited = make(UMFA_BACKEND_METAL, 64);
  CHECK(umfa_attention_forward(limited, &opt, &q, &k, &v, &out, nullptr) == UMFA_STATUS_OK);
  const umfa_tensor unaligned = view(ref.data(), B, N, H, D);
  const umfa_status st = umfa_attention_forward(limited, &opt, &q, &k, &v, &unaligned, nullptr);
  CHECK(reinterpret_cast<uintptr_t>(ref.data()) % page != 0 ? st == UMFA_STATUS_WORKSPACE_LIMIT
                                                             : st == UMFA_STATUS_OK);
  umfa_context_destroy(limited);

  for (umfa_buffer* buf : bufs) umfa_buffer_destroy(buf);
  umfa_context_destroy(cpu);
  umfa_context_destroy(metal);
  if (failures) {
    std::fprintf(stderr, "libumfa_metal_check: %d checks failed\n", failures);
    return 1;
  }
  std::printf("libumfa_metal_check: ok\n");
  return 0;
}
