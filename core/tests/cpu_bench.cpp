// Times the CPU backend directly (no API layer): forward or backward of one shape, median of
// repeated runs after a warm-up, in GFLOP/s with FlashAttention's FLOP count (forward
// 4*B*Hq*Nq*Nk*D, halved when causal; backward 2.5x forward). Also prints the median CPU time
// of the process per call as "GFLOP/s per busy core" (work / CPU seconds): on a machine shared
// with other jobs this tracks the kernels' efficiency better than the wall clock does.
//
// Usage: cpu_bench [--fwd|--bwd] [--b B] [--hq H] [--hkv H] [--nq N] [--nk N] [--d D]
//                  [--dtype f32|f16|bf16] [--causal] [--threads T] [--reps R] [--det] [--bhsd]
// --bhsd stores q/k/v/out/grads as [B, H, N, D] (PyTorch's layout) instead of [B, N, H, D].
// UMFA_CPU_ISA=generic|avx2|avx512 picks a kernel variant.
//
// cpu_bench --peak [--threads T]: the machine's arithmetic ceilings instead, GFLOP/s of
// independent AVX-512 FMA chains on T threads (default: all cores): f32 (vfmadd231ps), and f16
// (vfmadd231ph) where the CPU has AVX512-FP16. The attention kernels compute in f32, so the f32
// figure bounds every dtype's speed. On AArch64: NEON FMLA chains (f32), the ceiling of the neon
// variant. --peak-iters N sets the iterations per chain and run (default 20000000).
#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#include <algorithm>
#include <chrono>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <ctime>
#include <vector>

#include "backend.h"
#include "cpu/cpu_backend.h"
#include "cpu/cpu_common.h"

#if defined(__x86_64__) && defined(__GNUC__)
// 12 independent chains of 16 (f32) or 32 (f16) lanes, enough to cover the FMA latency on two
// ports. Returns FLOPs done.
__attribute__((target("avx512f"))) double fma_f32(long iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.001f * float(i));
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.0001f);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 sum = acc[0];
  for (int i = 1; i < 12; ++i) sum = _mm512_add_ps(sum, acc[i]);
  float lanes[16];
  _mm512_storeu_ps(lanes, sum);
  volatile float sink = lanes[0] + lanes[15];  // keeps the chains live
  (void)sink;
  return 2.0 * 16 * 12 * double(iters);
}
#if __GNUC__ >= 12
__attribute__((target("avx512fp16,avx512vl,avx512bw,avx512f"))) double fma_f16(long iters) {
  __m512h acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ph(_Float16(0.001f * float(i)));
  const __m512h a = _mm512_set1_ph(_Float16(0.999f)), b = _mm512_set1_ph(_Float16(0.0001f));
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ph(acc[i], a, b);
  __m512h sum = acc[0];
  for (int i = 1; i < 12; ++i) sum = _mm512_add_ph(sum, acc[i]);
  _Float16 lanes[32];
  _mm512_storeu_ph(lanes, sum);
  volatile float sink = float(lanes[0]) + float(lanes[31]);  // keeps the chains live
  (void)sink;
  return 2.0 * 32 * 12 * double(iters);
}
#endif

long g_peak_iters = 20000000;

// GFLOP/s of fn on `threads` threads at once (best of 5 runs of about 0.2 s).
double peak_gflops(double (*fn)(long), int threads) {
  const long iters = g_peak_iters;
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<double> flops(size_t(threads), 0.0);
    std::vector<std::thread> pool;
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) pool.emplace_back([&, t] { flops[size_t(t)] = fn(iters); });
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double total = 0;
    for (double f : flops) total += f;
    best = std::max(best, total / s * 1e-9);
  }
  return best;
}

int run_peak(int threads) {
  if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
  if (!__builtin_cpu_supports("avx512f")) {
    std::printf("no AVX-512 on this CPU\n");
    return 0;
  }
  for (int t : {1, threads}) {
    std::printf("f32 FMA (AVX-512), %d thread(s): %.1f GFLOP/s\n", t, peak_gflops(fma_f32, t));
#if __GNUC__ >= 12
    if (__builtin_cpu_supports("avx512fp16"))
      std::printf("f16 FMA (AVX512-FP16), %d thread(s): %.1f GFLOP/s\n", t,
                  peak_gflops(fma_f16, t));
#endif
    if (t == threads) break;
  }
  return 0;
}
#elif defined(__aarch64__) && defined(__GNUC__)
// 24 independent chains of 4 lanes: FMLA latency (4 cycles) times up to 4 pipes, and 24 of the
// 32 vector registers, as the kernels' 6 x 4 register block. Returns FLOPs done.
double fma_f32(long iters) {
  float32x4_t acc[24];
  for (int i = 0; i < 24; ++i) acc[i] = vdupq_n_f32(0.001f * float(i));
  const float32x4_t a = vdupq_n_f32(0.999f), b = vdupq_n_f32(0.0001f);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 24; ++i) acc[i] = vfmaq_f32(b, acc[i], a);
  float32x4_t sum = acc[0];
  for (int i = 1; i < 24; ++i) sum = vaddq_f32(sum, acc[i]);
  volatile float sink = vgetq_lane_f32(sum, 0) + vgetq_lane_f32(sum, 3);  // keeps the chains live
  (void)sink;
  return 2.0 * 4 * 24 * double(iters);
}

long g_peak_iters = 20000000;

double peak_gflops(double (*fn)(long), int threads) {
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<double> flops(size_t(threads), 0.0);
    std::vector<std::thread> pool;
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) pool.emplace_back([&, t] { flops[size_t(t)] = fn(g_peak_iters); });
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double total = 0;
    for (double f : flops) total += f;
    best = std::max(best, total / s * 1e-9);
  }
  return best;
}

int run_peak(int threads) {
  if (threads <= 0) threads = int(std::max(1u, std::thread::hardware_concurrency()));
  for (int t : {1, threads}) {
    std::printf("f32 FMA (NEON), %d thread(s): %.1f GFLOP/s\n", t, peak_gflops(fma_f32, t));
    if (t == threads) break;
  }
  return 0;
}
#else
long g_peak_iters = 0;
int run_peak(int) {
  std::printf("--peak measures x86-64 AVX-512 and AArch64 NEON only\n");
  return 0;
}
#endif

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--peak") {
      int threads = 0;
      for (int j = 1; j + 1 < argc; ++j)
        if (std::string(argv[j]) == "--threads") threads = std::atoi(argv[j + 1]);
        else if (std::string(argv[j]) == "--peak-iters") g_peak_iters = std::atol(argv[j + 1]);
      return run_peak(threads);
    }
  bool bwd = false, causal = false, det = false, bhsd = false;
  int64_t B = 1, Hq = 1, Hkv = 0, Nq = 4096, Nk = 0, D = 64;
  int threads = 0, reps = 5;
  int32_t dt = UMFA_DTYPE_F32;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::atoll(argv[++i]) : 0LL; };
    if (a == "--fwd") bwd = false;
    else if (a == "--bwd") bwd = true;
    else if (a == "--causal") causal = true;
    else if (a == "--det") det = true;
    else if (a == "--bhsd") bhsd = true;
    else if (a == "--b") B = next();
    else if (a == "--hq") Hq = next();
    else if (a == "--hkv") Hkv = next();
    else if (a == "--nq") Nq = next();
    else if (a == "--nk") Nk = next();
    else if (a == "--d") D = next();
    else if (a == "--threads") threads = static_cast<int>(next());
    else if (a == "--reps") reps = static_cast<int>(next());
    else if (a == "--dtype" && i + 1 < argc) {
      const std::string d = argv[++i];
      dt = d == "f16" ? UMFA_DTYPE_F16 : d == "bf16" ? UMFA_DTYPE_BF16 : UMFA_DTYPE_F32;
    } else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (Hkv <= 0) Hkv = Hq;
  if (Nk <= 0) Nk = Nq;
  const umfa::BackendTable* t = umfa::cpu::backend_table();
  void* impl = nullptr;
  if (t->create(0, threads, &impl, nullptr) != UMFA_STATUS_OK) return 1;
  const int64_t es = dt == UMFA_DTYPE_F32 ? 4 : 2;

  auto view = [&](int64_t n, int64_t h, std::vector<unsigned char>& buf, int32_t dtype, int64_t e) {
    buf.assign(static_cast<size_t>(B * n * h * D * e), 0);
    umfa::View v;
    v.data = buf.data();
    v.dtype = dtype;
    const int64_t s[4] = {B, n, h, D};
    for (int k = 0; k < 4; ++k) v.shape[k] = s[k];
    v.strides[3] = 1;
    v.strides[2] = bhsd ? n * D : D;
    v.strides[1] = bhsd ? D : h * D;
    v.strides[0] = n * h * D;
    return v;
  };
  std::vector<unsigned char> q, k, v, o, dO, dq, dk, dv, lse;
  umfa::Problem p;
  p.batch = B;
  p.heads_q = Hq;
  p.heads_kv = Hkv;
  p.seqlen_q = Nq;
  p.seqlen_k = Nk;
  p.head_dim = D;
  p.q = view(Nq, Hq, q, dt, es);
  p.k = view(Nk, Hkv, k, dt, es);
  p.v = view(Nk, Hkv, v, dt, es);
  p.out = view(Nq, Hq, o, dt, es);
  p.dout = view(Nq, Hq, dO, dt, es);
  p.dq = view(Nq, Hq, dq, dt, es);
  p.dk = view(Nk, Hkv, dk, dt, es);
  p.dv = view(Nk, Hkv, dv, dt, es);
  lse.assign(static_cast<size_t>(B * Hq * Nq * 4), 0);
  p.lse.data = lse.data();
  p.lse.dtype = UMFA_DTYPE_F32;
  p.lse.shape[0] = B;
  p.lse.shape[1] = Hq;
  p.lse.shape[2] = Nq;
  p.lse.strides[0] = Hq * Nq;
  p.lse.strides[1] = Nq;
  p.lse.strides[2] = 1;
  p.scale = 1.0f / std::sqrt(static_cast<float>(D));
  p.bottom_right = true;
  p.window_right = causal ? 0 : -1;
  p.flags = det ? UMFA_FLAG_DETERMINISTIC : 0;

  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (auto* buf : {&q, &k, &v, &dO}) {
    const size_t n = buf->size() / static_cast<size_t>(es);
    for (size_t i = 0; i < n; ++i) {
      const float x = u(rng);
      if (dt == UMFA_DTYPE_F32) {
        std::memcpy(buf->data() + i * 4, &x, 4);
      } else {
        uint32_t bits;
        std::memcpy(&bits, &x, 4);
        uint16_t h = static_cast<uint16_t>(bits >> 16);  // bf16 truncation
        if (dt == UMFA_DTYPE_F16) h = umfa::cpu::f32_to_f16(x);
        std::memcpy(buf->data() + i * 2, &h, 2);
      }
    }
  }
  if (t->forward(impl, &p, nullptr) != UMFA_STATUS_OK) return 1;  // also produces out/lse
  std::vector<double> times, cpu;
  auto cpu_now = [] {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  };
  for (int r = 0; r < reps + 1; ++r) {
    const double c0 = cpu_now();
    const auto t0 = std::chrono::steady_clock::now();
    const umfa_status st = bwd ? t->backward(impl, &p, nullptr) : t->forward(impl, &p, nullptr);
    const auto t1 = std::chrono::steady_clock::now();
    const double c1 = cpu_now();
    if (st != UMFA_STATUS_OK) return 1;
    if (r > 0) {
      times.push_back(std::chrono::duration<double>(t1 - t0).count());
      cpu.push_back(c1 - c0);
    }
  }
  std::sort(times.begin(), times.end());
  std::sort(cpu.begin(), cpu.end());
  const double med = times[times.size() / 2];
  const double cmed = cpu[cpu.size() / 2];
  double flops = 4.0 * B * Hq * Nq * Nk * D * (causal ? 0.5 : 1.0);
  if (bwd) flops *= 2.5;
  std::printf("%s %s B=%lld Hq=%lld Hkv=%lld Nq=%lld Nk=%lld D=%lld %s%s threads=%d kernels=%s: "
              "median %.4f s, %.1f GFLOP/s (%.1f per busy core)\n",
              bwd ? "backward" : "forward", dt == UMFA_DTYPE_F32 ? "f32" : dt == UMFA_DTYPE_F16 ? "f16" : "bf16",
              (long long)B, (long long)Hq, (long long)Hkv, (long long)Nq, (long long)Nk, (long long)D,
              causal ? "causal" : "full", det ? " deterministic" : "", umfa::cpu::context_threads(impl),
              umfa::cpu::context_isa(impl), med, flops / med * 1e-9, flops / cmed * 1e-9);
  t->destroy(impl);
  return 0;
}
