// Every head dimension the ABI allows (1..UMFA_MAX_HEAD_DIM), forward and backward, through the
// public API against a float64 reference, on every CPU kernel variant this machine can run
// (UMFA_CPU_ISA is read when a context is created). Each D runs in one input dtype (rotating
// f32, f16, bf16) with GQA 2:1, bottom-right causal masking over Nq != Nk (so some rows are
// fully masked), k/v/dk/dv in BHSD strides and everything else BSHD. Vector kernels handle D in
// chunks plus a tail: a wrong tail, a wrong chunk count or a missed specialization shows up as a
// mismatch at some D.
#include <cstdlib>
#include <string>
#include <vector>

#include "test_os.h"
#include "test_util.h"

namespace {

constexpr int64_t B = 1, HQ = 2, HKV = 1, NQ = 7, NK = 5;

struct Tol {
  double atol, rtol;
};
// The conformance tolerances (conformance/README.md) per dtype: out, gradients.
Tol out_tol(int32_t dt) {
  return dt == UMFA_DTYPE_F32 ? Tol{1e-5, 1e-4} : dt == UMFA_DTYPE_F16 ? Tol{2e-3, 4e-3} : Tol{1.6e-2, 3.2e-2};
}
Tol grad_tol(int32_t dt) {
  return dt == UMFA_DTYPE_F32 ? Tol{5e-5, 5e-4} : dt == UMFA_DTYPE_F16 ? Tol{1e-2, 1e-2} : Tol{8e-2, 8e-2};
}

// A [b, s, h, d] tensor stored BSHD or BHSD, with its storage.
struct T4 {
  std::vector<unsigned char> bytes;
  umfa_tensor t;
  T4(int32_t dt, int64_t s, int64_t h, int64_t d, bool bhsd) : bytes(size_t(B * s * h * d) * umfa_dtype_size(dt) + 1) {
    std::memset(&t, 0, sizeof t);
    t.data = bytes.data();
    t.dtype = dt;
    t.rank = 4;
    t.shape[0] = B, t.shape[1] = s, t.shape[2] = h, t.shape[3] = d;
    t.strides[3] = 1;
    if (bhsd) {
      t.strides[1] = d, t.strides[2] = s * d;
    } else {
      t.strides[2] = d, t.strides[1] = h * d;
    }
    t.strides[0] = s * h * d;
  }
  int64_t at(int64_t s, int64_t h, int64_t d) const { return s * t.strides[1] + h * t.strides[2] + d; }
  double get(int64_t s, int64_t h, int64_t d) const { return t::load(t.data, t.dtype, at(s, h, d)); }
  void set(int64_t s, int64_t h, int64_t d, double v) { t::store(t.data, t.dtype, at(s, h, d), v); }
};

bool close(double got, double want, Tol tol) {
  return std::fabs(got - want) <= tol.atol + tol.rtol * std::fabs(want);
}

// Runs forward + backward for one D and dtype; returns the number of failures (printing the first).
int run(umfa_context* ctx, const char* isa, int64_t D, int32_t dt, t::Rng& rng) {
  T4 q(dt, NQ, HQ, D, false), k(dt, NK, HKV, D, true), v(dt, NK, HKV, D, true), dout(dt, NQ, HQ, D, false);
  T4 out(dt, NQ, HQ, D, false), dq(dt, NQ, HQ, D, false), dk(dt, NK, HKV, D, true), dv(dt, NK, HKV, D, true);
  for (T4* x : {&q, &k, &v, &dout})
    for (int64_t s = 0; s < x->t.shape[1]; ++s)
      for (int64_t h = 0; h < x->t.shape[2]; ++h)
        for (int64_t d = 0; d < D; ++d) x->set(s, h, d, rng.uniform());
  std::vector<float> lse(B * HQ * NQ);
  umfa_tensor tl;
  const int64_t ls[3] = {B, HQ, NQ};
  umfa_tensor_init_contiguous(&tl, lse.data(), UMFA_DTYPE_F32, 3, ls);
  umfa_attention_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.mask_mode = UMFA_MASK_CAUSAL_BOTTOM_RIGHT;
  const char* dname = dt == UMFA_DTYPE_F32 ? "f32" : dt == UMFA_DTYPE_F16 ? "f16" : "bf16";
  umfa_status st = umfa_attention_forward(ctx, &o, &q.t, &k.t, &v.t, &out.t, &tl);
  if (!CHECK_MSG(st == UMFA_STATUS_OK, "[%s D=%lld %s] forward: %s", isa, (long long)D, dname, umfa_last_error(ctx)))
    return 1;
  st = umfa_attention_backward(ctx, &o, &q.t, &k.t, &v.t, &out.t, &dout.t, &tl, &dq.t, &dk.t, &dv.t);
  if (!CHECK_MSG(st == UMFA_STATUS_OK, "[%s D=%lld %s] backward: %s", isa, (long long)D, dname, umfa_last_error(ctx)))
    return 1;

  // float64 reference. The backward's rowsum(dout * out) uses the library's (rounded) out, as
  // the ABI defines backward over the forward's actual results.
  const double scale = 1.0 / std::sqrt(double(D));
  std::vector<double> rdq(NQ * HQ * D, 0), rdk(NK * HKV * D, 0), rdv(NK * HKV * D, 0);
  int bad = 0;
  std::string first;
  auto fail = [&](const std::string& what) {
    if (bad++ == 0) first = what;
  };
  for (int64_t h = 0; h < HQ; ++h) {
    const int64_t kh = h / (HQ / HKV);
    for (int64_t i = 0; i < NQ; ++i) {
      std::vector<double> s(NK, -INFINITY);
      double mx = -INFINITY;
      for (int64_t j = 0; j <= i + NK - NQ && j < NK; ++j) {
        double acc = 0;
        for (int64_t d = 0; d < D; ++d) acc += q.get(i, h, d) * k.get(j, kh, d);
        s[j] = acc * scale;
        mx = std::max(mx, s[j]);
      }
      const float got_lse = lse[h * NQ + i];
      if (mx == -INFINITY) {  // fully masked row: out 0, lse -inf, dq 0
        if (got_lse != -INFINITY) fail(t::fmt("lse[h=%lld,i=%lld] = %g, want -inf", (long long)h, (long long)i, got_lse));
        for (int64_t d = 0; d < D; ++d)
          if (out.get(i, h, d) != 0.0) fail(t::fmt("out[i=%lld,h=%lld,d=%lld] of a masked row is not 0", (long long)i, (long long)h, (long long)d));
        continue;
      }
      double sum = 0;
      for (int64_t j = 0; j < NK; ++j)
        if (s[j] != -INFINITY) sum += std::exp(s[j] - mx);
      const double want_lse = mx + std::log(sum);
      if (!close(got_lse, want_lse, {1e-4, 1e-4}))
        fail(t::fmt("lse[h=%lld,i=%lld] = %.7g, want %.7g", (long long)h, (long long)i, got_lse, want_lse));
      std::vector<double> p(NK, 0);
      for (int64_t j = 0; j < NK; ++j)
        if (s[j] != -INFINITY) p[j] = std::exp(s[j] - mx) / sum;
      double delta = 0;
      for (int64_t d = 0; d < D; ++d) {
        double o_ref = 0;
        for (int64_t j = 0; j < NK; ++j) o_ref += p[j] * v.get(j, kh, d);
        const double o_got = out.get(i, h, d);
        if (!close(o_got, o_ref, out_tol(dt)))
          fail(t::fmt("out[i=%lld,h=%lld,d=%lld] = %.7g, want %.7g", (long long)i, (long long)h, (long long)d, o_got, o_ref));
        delta += dout.get(i, h, d) * o_got;
      }
      for (int64_t j = 0; j < NK; ++j) {
        if (p[j] == 0) continue;
        double dp = 0;
        for (int64_t d = 0; d < D; ++d) dp += dout.get(i, h, d) * v.get(j, kh, d);
        const double ds = p[j] * (dp - delta);
        for (int64_t d = 0; d < D; ++d) {
          rdq[(i * HQ + h) * D + d] += scale * ds * k.get(j, kh, d);
          rdk[(j * HKV + kh) * D + d] += scale * ds * q.get(i, h, d);
          rdv[(j * HKV + kh) * D + d] += p[j] * dout.get(i, h, d);
        }
      }
    }
  }
  const Tol gt = grad_tol(dt);
  for (int64_t i = 0; i < NQ; ++i)
    for (int64_t h = 0; h < HQ; ++h)
      for (int64_t d = 0; d < D; ++d)
        if (!close(dq.get(i, h, d), rdq[(i * HQ + h) * D + d], gt))
          fail(t::fmt("dq[i=%lld,h=%lld,d=%lld] = %.7g, want %.7g", (long long)i, (long long)h, (long long)d,
                      dq.get(i, h, d), rdq[(i * HQ + h) * D + d]));
  for (int64_t j = 0; j < NK; ++j)
    for (int64_t h = 0; h < HKV; ++h)
      for (int64_t d = 0; d < D; ++d) {
        if (!close(dk.get(j, h, d), rdk[(j * HKV + h) * D + d], gt))
          fail(t::fmt("dk[j=%lld,h=%lld,d=%lld] = %.7g, want %.7g", (long long)j, (long long)h, (long long)d,
                      dk.get(j, h, d), rdk[(j * HKV + h) * D + d]));
        if (!close(dv.get(j, h, d), rdv[(j * HKV + h) * D + d], gt))
          fail(t::fmt("dv[j=%lld,h=%lld,d=%lld] = %.7g, want %.7g", (long long)j, (long long)h, (long long)d,
                      dv.get(j, h, d), rdv[(j * HKV + h) * D + d]));
      }
  CHECK_MSG(bad == 0, "[%s D=%lld %s] %d mismatches, first: %s", isa, (long long)D, dname, bad, first.c_str());
  return bad != 0;
}

}  // namespace

int main() {
#if defined(__aarch64__)
  const char* isas[] = {"", "neon_bf16", "neon", "generic"};
#else
  const char* isas[] = {"", "avx512bf16", "avx512", "avx2", "generic"};
#endif
  // UMFA_TEST_BACKEND=metal runs the same sweep once on the Metal backend (the Metal suite does,
  // with UMFA_METAL_LIB naming the simulated backend) instead of the CPU kernel variants.
  const char* backend_env = std::getenv("UMFA_TEST_BACKEND");
  const bool metal = backend_env && std::string(backend_env) == "metal";
  for (const char* isa : isas) {
    if (metal && *isa) break;
    if (*isa)
      setenv("UMFA_CPU_ISA", isa, 1);
    else
      unsetenv("UMFA_CPU_ISA");
    umfa_context_options co;
    std::memset(&co, 0, sizeof co);
    co.struct_size = sizeof co;
    co.backend = metal ? UMFA_BACKEND_METAL : UMFA_BACKEND_CPU;
    co.num_threads = 2;
    umfa_context* ctx = nullptr;
    REQUIRE_OK(umfa_context_create(&co, &ctx));
    const char* label = metal ? "metal" : *isa ? isa : "default";
    t::Rng rng(1234);
    int failed = 0;
    for (int64_t D = 1; D <= UMFA_MAX_HEAD_DIM; ++D) {
      const int32_t dtypes[3] = {UMFA_DTYPE_F32, UMFA_DTYPE_F16, UMFA_DTYPE_BF16};
      failed += run(ctx, label, D, dtypes[D % 3], rng);
    }
    std::printf("kernels %-10s: head_dim 1..%d forward + backward, %d failed\n", label, UMFA_MAX_HEAD_DIM, failed);
    umfa_context_destroy(ctx);
  }
  unsetenv("UMFA_CPU_ISA");
  return t::summary("test_head_dims");
}
