// Memory at long sequences: forward attention with Nq = Nk = 32768 (B = 1, H = 1, D = 64, f32).
// A materialized score matrix would take 32768^2 * 4 bytes = 4 GiB; a flash (blockwise)
// implementation needs only the inputs plus O(block * D) scratch per thread. The test reads
// the peak resident set size (VmHWM; Windows: the peak working set) before and after the call,
// asserts the call's growth stays a small multiple of the inputs' size, prints the figures, and
// checks a few output rows against a float64 reference. A reduced build (UMFA_TEST_REDUCED,
// compile time or environment: sanitizer and emulated builds, where 32768^2 scores take many
// minutes) runs Nq = Nk = 8192 instead: 256 MiB of scores against 8 MiB of tensors; the process
// must then stay below half a score matrix (an emulator's own memory counts in the resident set).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "test_os.h"
#include "test_util.h"

namespace {

// VmHWM / VmRSS from /proc/self/status, in bytes (0 when unavailable).
int64_t proc_status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::stoll(line.substr(std::strlen(key))) * 1024;
  return 0;
}
// Without /proc (Windows, macOS): the resident size and its peak from the system.
int64_t peak_rss() {
  const int64_t b = proc_status_kb("VmHWM:");
  return b ? b : test_os::peak_rss_kib() * 1024;
}
int64_t current_rss() {
  const int64_t b = proc_status_kb("VmRSS:");
  return b ? b : test_os::current_rss_bytes_without_proc();
}
// Resets the peak to the current RSS (Linux: write 5 to clear_refs). False if unsupported.
bool reset_peak() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}
double mib(int64_t bytes) { return double(bytes) / (1024.0 * 1024.0); }

}  // namespace

bool reduced_run() {
#if defined(UMFA_TEST_REDUCED)
  return true;
#else
  const char* e = std::getenv("UMFA_TEST_REDUCED");
  return e && *e && std::strcmp(e, "0") != 0;
#endif
}

int main() {
  const int64_t N = reduced_run() ? 8192 : 32768, H = 1, D = 64;
  const int64_t score_bytes = N * N * 4;

  umfa_context* ctx = nullptr;
  REQUIRE_OK(umfa_context_create(nullptr, &ctx));
  int32_t threads = 0;
  umfa_context_num_threads(ctx, &threads);
  const int64_t rss_start = current_rss();

  // Inputs and outputs, touched so that they count as resident.
  std::vector<float> q(N * H * D), k(N * H * D), v(N * H * D), out(N * H * D, 0.f), lse(H * N, 0.f);
  t::Rng rng(2024);
  for (auto* x : {&q, &k, &v})
    for (float& f : *x) f = static_cast<float>(rng.uniform());
  const int64_t tensor_bytes = int64_t(q.size() + k.size() + v.size() + out.size() + lse.size()) * 4;

  umfa_tensor tq = t::tensor4(q.data(), UMFA_DTYPE_F32, 1, N, H, D);
  umfa_tensor tk = t::tensor4(k.data(), UMFA_DTYPE_F32, 1, N, H, D);
  umfa_tensor tv = t::tensor4(v.data(), UMFA_DTYPE_F32, 1, N, H, D);
  umfa_tensor to = t::tensor4(out.data(), UMFA_DTYPE_F32, 1, N, H, D);
  umfa_tensor tl;
  const int64_t ls[3] = {1, H, N};
  umfa_tensor_init_contiguous(&tl, lse.data(), UMFA_DTYPE_F32, 3, ls);

  const bool resettable = reset_peak();
  const int64_t before = resettable ? peak_rss() : current_rss();
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE_OK(umfa_attention_forward(ctx, nullptr, &tq, &tk, &tv, &to, &tl));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int64_t after = peak_rss();
  const int64_t growth = after - before;

  std::printf("Nq = Nk = %lld, B = 1, H = %lld, D = %lld, f32, %d worker threads\n", (long long)N,
              (long long)H, (long long)D, threads);
  std::printf("forward: %.2f s (%.1f GFLOP/s)\n", secs, 4.0 * N * N * D * H / secs / 1e9);
  std::printf("q, k, v, out, lse:            %8.1f MiB\n", mib(tensor_bytes));
  std::printf("resident before the inputs:   %8.1f MiB\n", mib(rss_start));
  std::printf("peak before the call:         %8.1f MiB%s\n", mib(before),
              resettable ? " (peak reset to current RSS)" : " (current RSS; peak not resettable)");
  std::printf("peak after the call:          %8.1f MiB (getrusage maxrss %.1f MiB)\n", mib(after),
              test_os::peak_rss_kib() / 1024.0);
  std::printf("growth during the call:       %8.1f MiB = %.3f x the tensors, %.5f x a score matrix (%.0f MiB)\n",
              mib(growth), double(growth) / tensor_bytes, double(growth) / score_bytes, mib(score_bytes));

  // The call may add scratch and thread stacks, but a small multiple of the tensors at most,
  // and the whole process stays far below one score matrix.
  CHECK_MSG(growth <= tensor_bytes, "growth %.1f MiB exceeds the tensors' %.1f MiB", mib(growth), mib(tensor_bytes));
  CHECK_MSG(after <= 4 * tensor_bytes + (64 << 20), "peak %.1f MiB is not a small multiple of the tensors",
            mib(after));
  CHECK(after < (N == 32768 ? score_bytes / 16 : score_bytes / 2));

  // Spot-check rows against float64.
  t::Ref4 rq{q.data(), UMFA_DTYPE_F32, {N * H * D, H * D, D, 1}};
  t::Ref4 rk{k.data(), UMFA_DTYPE_F32, {N * H * D, H * D, D, 1}};
  t::Ref4 rv{v.data(), UMFA_DTYPE_F32, {N * H * D, H * D, D, 1}};
  double worst = 0, worst_lse = 0;
  std::vector<double> row(D);
  for (int64_t i : {int64_t(0), int64_t(1), N / 8 - 1, N / 2, N - 1}) {
    const double l = t::reference_row(rq, rk, rv, 0, i, 0, N, N, H, H, D, 1.0 / std::sqrt(double(D)), 0, row.data());
    for (int64_t x = 0; x < D; ++x) worst = std::max(worst, std::fabs(row[x] - out[i * H * D + x]));
    worst_lse = std::max(worst_lse, std::fabs(l - lse[i]));
  }
  std::printf("spot-checked rows: max |out - ref| %.3g, max |lse - ref| %.3g\n", worst, worst_lse);
  CHECK(worst < 1e-4);
  CHECK(worst_lse < 1e-4);

  umfa_context_destroy(ctx);
  return t::summary("test_memory_32k");
}
