// umfa_context_options.workspace_limit_bytes (ctest `workspace_limit`): a call that needs more
// scratch memory than the limit fails with UMFA_STATUS_WORKSPACE_LIMIT before touching any
// output, with a message giving the bytes it needs; a limit of exactly that many bytes lets the
// same call run, with the result of an unlimited context; a problem whose scratch would be large
// is refused at once (no allocation, no time spent); problems that need no scratch run under
// any limit. Varlen calls count the host copies of cu_seqlens and the backend's per-sequence
// tables: a huge broadcast offset list under a tiny limit is refused at once.
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../tests/test_os.h"
#include "umfa.h"

namespace {

int g_checks = 0, g_failures = 0;

void check(bool ok, const char* what, const std::string& detail = "") {
  ++g_checks;
  if (!ok) {
    ++g_failures;
    std::fprintf(stderr, "FAILED: %s %s\n", what, detail.c_str());
  }
}

umfa_context* context(uint64_t limit, int32_t threads = 2) {
  umfa_context_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.backend = UMFA_BACKEND_CPU;
  o.num_threads = threads;
  o.workspace_limit_bytes = limit;
  umfa_context* c = nullptr;
  if (umfa_context_create(&o, &c) != UMFA_STATUS_OK) {
    std::fprintf(stderr, "cannot create a context: %s\n", umfa_last_error(nullptr));
    std::exit(1);
  }
  return c;
}

umfa_tensor view(void* data, int32_t dtype, std::vector<int64_t> shape) {
  umfa_tensor t;
  umfa_tensor_init_contiguous(&t, data, dtype, static_cast<int32_t>(shape.size()), shape.data());
  return t;
}

// A dense f32 problem with its buffers.
struct Problem {
  int64_t B, N, M, H, D;
  std::vector<float> q, k, v, dout, out, lse, dq, dk, dv;
  Problem(int64_t b, int64_t n, int64_t m, int64_t h, int64_t d) : B(b), N(n), M(m), H(h), D(d) {
    auto fill = [](std::vector<float>& x, size_t count, unsigned seed) {
      x.resize(count);
      for (size_t i = 0; i < count; ++i) x[i] = static_cast<float>(((i * 2654435761u + seed) % 2001) / 1000.0 - 1.0);
    };
    fill(q, static_cast<size_t>(B * N * H * D), 1);
    fill(k, static_cast<size_t>(B * M * H * D), 2);
    fill(v, static_cast<size_t>(B * M * H * D), 3);
    fill(dout, static_cast<size_t>(B * N * H * D), 4);
    reset();
  }
  void reset() {
    out.assign(q.size(), 12345.f);
    lse.assign(static_cast<size_t>(B * H * N), 12345.f);
    dq.assign(q.size(), 12345.f);
    dk.assign(k.size(), 12345.f);
    dv.assign(v.size(), 12345.f);
  }
  umfa_status forward(umfa_context* ctx) {
    umfa_tensor tq = view(q.data(), UMFA_DTYPE_F32, {B, N, H, D}), tk = view(k.data(), UMFA_DTYPE_F32, {B, M, H, D}),
                tv = view(v.data(), UMFA_DTYPE_F32, {B, M, H, D}), to = view(out.data(), UMFA_DTYPE_F32, {B, N, H, D}),
                tl = view(lse.data(), UMFA_DTYPE_F32, {B, H, N});
    return umfa_attention_forward(ctx, nullptr, &tq, &tk, &tv, &to, &tl);
  }
  umfa_status backward(umfa_context* ctx) {
    umfa_tensor tq = view(q.data(), UMFA_DTYPE_F32, {B, N, H, D}), tk = view(k.data(), UMFA_DTYPE_F32, {B, M, H, D}),
                tv = view(v.data(), UMFA_DTYPE_F32, {B, M, H, D}), to = view(out.data(), UMFA_DTYPE_F32, {B, N, H, D}),
                tl = view(lse.data(), UMFA_DTYPE_F32, {B, H, N}), tdo = view(dout.data(), UMFA_DTYPE_F32, {B, N, H, D}),
                tdq = view(dq.data(), UMFA_DTYPE_F32, {B, N, H, D}), tdk = view(dk.data(), UMFA_DTYPE_F32, {B, M, H, D}),
                tdv = view(dv.data(), UMFA_DTYPE_F32, {B, M, H, D});
    return umfa_attention_backward(ctx, nullptr, &tq, &tk, &tv, &to, &tdo, &tl, &tdq, &tdk, &tdv);
  }
};

bool all(const std::vector<float>& x, float value) {
  for (float f : x)
    if (f != value) return false;
  return true;
}

// The byte count in "... needs N bytes of workspace ...", or 0.
uint64_t needed(const char* msg) {
  const char* p = std::strstr(msg, "needs ");
  return p ? std::strtoull(p + 6, nullptr, 10) : 0;
}

}  // namespace

int main() {
  setenv("UMFA_CUDA_LIB", "/nonexistent/libumfa_cuda.so", 0);
  umfa_context* unlimited = context(0);

  // Forward and backward: the limit just below and exactly at what the call needs.
  Problem p(2, 70, 90, 2, 64);
  check(p.forward(unlimited) == UMFA_STATUS_OK, "unlimited forward");
  const std::vector<float> out0 = p.out, lse0 = p.lse;
  check(p.backward(unlimited) == UMFA_STATUS_OK, "unlimited backward");
  const std::vector<float> dq0 = p.dq, dk0 = p.dk, dv0 = p.dv;

  for (const bool bwd : {false, true}) {
    const char* name = bwd ? "backward" : "forward";
    umfa_context* one = context(1);
    p.reset();
    if (bwd) p.out = out0, p.lse = lse0;
    const umfa_status st = bwd ? p.backward(one) : p.forward(one);
    const std::string msg = umfa_last_error(one);
    const uint64_t need = needed(msg.c_str());
    if (st == UMFA_STATUS_OK) {
      std::printf("note: the CPU backend needs no workspace for this %s call\n", name);
      umfa_context_destroy(one);
      continue;
    }
    check(st == UMFA_STATUS_WORKSPACE_LIMIT, "limit 1: WORKSPACE_LIMIT", umfa_status_string(st));
    check(need > 1, "the message gives the bytes needed", msg);
    check(msg.find("workspace_limit_bytes") != std::string::npos, "the message names workspace_limit_bytes", msg);
    check(bwd ? all(p.dq, 12345.f) && all(p.dk, 12345.f) && all(p.dv, 12345.f)
              : all(p.out, 12345.f) && all(p.lse, 12345.f),
          "nothing written when refused");
    umfa_context_destroy(one);

    umfa_context* below = context(need - 1);
    p.reset();
    if (bwd) p.out = out0, p.lse = lse0;
    check((bwd ? p.backward(below) : p.forward(below)) == UMFA_STATUS_WORKSPACE_LIMIT, "limit need - 1 refused");
    umfa_context_destroy(below);

    umfa_context* exact = context(need);
    p.reset();
    if (bwd) p.out = out0, p.lse = lse0;
    const umfa_status ok = bwd ? p.backward(exact) : p.forward(exact);
    check(ok == UMFA_STATUS_OK, "limit == need runs", umfa_last_error(exact));
    if (bwd)
      check(p.dq == dq0 && p.dk == dk0 && p.dv == dv0, "backward at the limit equals the unlimited result");
    else
      check(p.out == out0 && p.lse == lse0, "forward at the limit equals the unlimited result");
    umfa_context_destroy(exact);
    std::printf("%s: needs %" PRIu64 " bytes of workspace; refused at %" PRIu64 ", runs at %" PRIu64 "\n", name,
                need, need - 1, need);
  }

  // A large problem under a small limit is refused at once: no allocation, no compute.
  {
    Problem big(1, 2048, 2048, 4, 128);
    umfa_context* small = context(64 << 10);
    const auto t0 = std::chrono::steady_clock::now();
    const umfa_status f = big.forward(small);
    const umfa_status b = big.backward(small);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const uint64_t need = needed(umfa_last_error(small));
    std::printf("2048x2048, 4 heads, head_dim 128 under a 64 KiB limit: forward %s, backward %s (needs %" PRIu64
                " bytes) in %.2f ms\n",
                umfa_status_string(f), umfa_status_string(b), need, ms);
    check(b == UMFA_STATUS_WORKSPACE_LIMIT || f == UMFA_STATUS_WORKSPACE_LIMIT, "large problem refused");
    check(all(big.out, 12345.f) || f == UMFA_STATUS_OK, "large forward wrote nothing when refused");
    check(all(big.dq, 12345.f) && all(big.dk, 12345.f), "large backward wrote nothing");
    check(ms < 500.0, "refused at once", std::to_string(ms) + " ms");
    umfa_context_destroy(small);
  }

  // Varlen: the host copies of cu_seqlens count against the limit. A broadcast (stride 0) list
  // of 2^25 offsets would take 256 MiB to copy: refused before reading it, at once, with no
  // memory spent.
  {
    Problem one_row(1, 1, 1, 1, 16);
    int32_t zero = 0;
    const int64_t n = int64_t(1) << 25;
    umfa_tensor cu = view(&zero, UMFA_DTYPE_I32, {n});
    cu.strides[0] = 0;
    umfa_attention_options o;
    std::memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.cu_seqlens_q = &cu;
    o.cu_seqlens_k = &cu;
    umfa_tensor tq = view(one_row.q.data(), UMFA_DTYPE_F32, {1, 1, 16}),
                tk = view(one_row.k.data(), UMFA_DTYPE_F32, {1, 1, 16}),
                tv = view(one_row.v.data(), UMFA_DTYPE_F32, {1, 1, 16}),
                to = view(one_row.out.data(), UMFA_DTYPE_F32, {1, 1, 16});
    umfa_context* one = context(1);
    const int64_t before_kib = test_os::peak_rss_kib();
    const auto t0 = std::chrono::steady_clock::now();
    const umfa_status st = umfa_attention_forward(one, &o, &tq, &tk, &tv, &to, nullptr);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const long grew_kib = static_cast<long>(test_os::peak_rss_kib() - before_kib);
    std::printf("broadcast cu_seqlens of 2^25 offsets under limit 1: %s in %.2f ms, peak RSS +%ld KiB\n",
                umfa_status_string(st), ms, grew_kib);
    check(st == UMFA_STATUS_WORKSPACE_LIMIT, "2^25 broadcast offsets refused", umfa_last_error(one));
    check(needed(umfa_last_error(one)) == uint64_t(2) * n * 4, "the message gives the bytes of both copies",
          umfa_last_error(one));
    check(all(one_row.out, 12345.f), "nothing written");
    check(ms < 100.0, "refused at once", std::to_string(ms) + " ms");
    check(grew_kib < 16 * 1024, "no memory spent", std::to_string(grew_kib) + " KiB");
    umfa_context_destroy(one);
  }
  // The backend's per-sequence tables count too: 2^18 sequences (the last one a single row)
  // need a few MiB of them besides the copies. Refused below what the message says, run at it
  // with the unlimited result.
  {
    Problem one_row(1, 1, 1, 1, 16);
    const int64_t n = (int64_t(1) << 18) + 1;
    std::vector<int32_t> offsets(static_cast<size_t>(n), 0);
    offsets.back() = 1;
    umfa_tensor cu = view(offsets.data(), UMFA_DTYPE_I32, {n});
    umfa_attention_options o;
    std::memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.cu_seqlens_q = &cu;
    o.cu_seqlens_k = &cu;
    auto run = [&](umfa_context* ctx) {
      one_row.reset();
      umfa_tensor tq = view(one_row.q.data(), UMFA_DTYPE_F32, {1, 1, 16}),
                  tk = view(one_row.k.data(), UMFA_DTYPE_F32, {1, 1, 16}),
                  tv = view(one_row.v.data(), UMFA_DTYPE_F32, {1, 1, 16}),
                  to = view(one_row.out.data(), UMFA_DTYPE_F32, {1, 1, 16});
      return umfa_attention_forward(ctx, &o, &tq, &tk, &tv, &to, nullptr);
    };
    check(run(unlimited) == UMFA_STATUS_OK, "2^18 sequences, unlimited", umfa_last_error(unlimited));
    const std::vector<float> want = one_row.out;
    const uint64_t copies = uint64_t(2) * n * 4;
    umfa_context* tight = context(copies + 4096);
    const umfa_status st = run(tight);
    const uint64_t need = needed(umfa_last_error(tight));
    check(st == UMFA_STATUS_WORKSPACE_LIMIT, "tables over the limit refused", umfa_last_error(tight));
    check(need > copies + (uint64_t(1) << 20), "the need counts the per-sequence tables",
          std::to_string(need));
    check(all(one_row.out, 12345.f), "nothing written when refused");
    umfa_context_destroy(tight);
    umfa_context* below = context(need - 1);
    check(run(below) == UMFA_STATUS_WORKSPACE_LIMIT, "2^18 sequences at need - 1 refused");
    umfa_context_destroy(below);
    umfa_context* exact = context(need);
    check(run(exact) == UMFA_STATUS_OK && one_row.out == want, "2^18 sequences at the limit run",
          umfa_last_error(exact));
    umfa_context_destroy(exact);
    std::printf("varlen, 2^18 sequences: needs %" PRIu64 " bytes (%" PRIu64 " of them copies of cu_seqlens)\n",
                need, copies);
  }

  // Nothing to compute needs no workspace: any limit runs it.
  {
    Problem empty(1, 3, 0, 2, 16);
    umfa_context* one = context(1);
    check(empty.forward(one) == UMFA_STATUS_OK, "empty problem under limit 1", umfa_last_error(one));
    check(all(empty.out, 0.f), "empty problem: out = 0");
    umfa_context_destroy(one);
  }
  // The largest limit is no limit.
  {
    umfa_context* huge = context(UINT64_MAX);
    p.reset();
    check(p.forward(huge) == UMFA_STATUS_OK && p.out == out0, "UINT64_MAX limit runs");
    umfa_context_destroy(huge);
  }
  umfa_context_destroy(unlimited);
  std::printf("workspace_limit: %d checks, %d failed\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
