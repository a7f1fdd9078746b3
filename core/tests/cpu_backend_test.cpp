// CPU backend tests against a double-precision reference, calling the backend table directly
// (no API layer): randomized and hand-picked shapes over every option, dtype, layout and SIMD
// variant; fully masked rows, huge logits, NaN propagation; a finite-difference check of the
// backward pass; concurrent calls on one context; deterministic backward.
//
// Usage: cpu_backend_test [random-cases (default 120)] [seed]
//
// Sanitizer builds (configured with UMFA_TEST_REDUCED=ON, or UMFA_TEST_REDUCED=1 in the
// environment) run a reduced sweep: the same fixed cases, the heaviest with smaller shapes that
// still reach the same code paths (grouped tiles, several key blocks with a partial last one,
// every head-dim class), and 24 random cases of at most half the sequence length. A kernel
// variant this CPU cannot run falls back to another; it is run once, under the first name.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <thread>

#include "cpu_test_util.h"
#include "test_os.h"

using namespace cputest;

namespace {

int g_failures = 0;
int g_checks = 0;

#define CHECK(cond, ...)                                   \
  do {                                                     \
    ++g_checks;                                            \
    if (!(cond)) {                                         \
      ++g_failures;                                        \
      std::printf("FAIL %s:%d: ", __FILE__, __LINE__);     \
      std::printf(__VA_ARGS__);                            \
      std::printf("\n");                                   \
    }                                                      \
  } while (0)

const umfa::BackendTable* T() { return umfa::cpu::backend_table(); }

bool reduced_sweep() {
#if defined(UMFA_TEST_REDUCED)
  return true;
#else
  const char* e = std::getenv("UMFA_TEST_REDUCED");
  return e && *e && std::strcmp(e, "0") != 0;
#endif
}

struct Ctx {
  void* impl = nullptr;
  Ctx(int threads, const char* isa) {
    if (isa) setenv("UMFA_CPU_ISA", isa, 1);
    else unsetenv("UMFA_CPU_ISA");
    char msg[256] = {0};
    umfa::ErrorSink sink{msg, sizeof msg};
    if (T()->create(0, threads, &impl, &sink) != UMFA_STATUS_OK) {
      std::printf("create failed: %s\n", msg);
      std::exit(2);
    }
    unsetenv("UMFA_CPU_ISA");
  }
  ~Ctx() { T()->destroy(impl); }
};

// Error statistics by result kind and dtypes, for the summary.
std::map<std::string, double> g_stats;
void note(const std::string& key, double err) { g_stats[key] = std::max(g_stats[key], err); }

// ---- one test case ----------------------------------------------------------------------------
struct Case {
  std::string name;
  int64_t B = 1, Hq = 1, Hkv = 1, Nq = 4, Nk = 4, D = 8;
  std::vector<int32_t> seqq, seqk;  // varlen lengths when non-empty
  int64_t extra_q = 0, extra_k = 0;  // varlen rows after the last sequence
  int32_t dt_in = UMFA_DTYPE_F32, dt_out = UMFA_DTYPE_F32, dt_grad = UMFA_DTYPE_F32;
  int32_t dt_dout = -1;  // -1 = dt_in
  int lay_q = 0, lay_k = 0, lay_v = 0, lay_o = 0, lay_g = 0;
  int mask_mode = 0;  // 0 none, 1 causal top-left, 2 causal bottom-right
  bool window = false;
  int64_t wl = -1, wr = -1;
  float scale = 0, softcap = 0;
  int alibi = 0;       // 0 none, 1 [Hq] broadcast over batch, 2 [B, Hq]
  int mask = 0;        // 0 none, 1 bool, 2 additive f32, 3 additive bf16, 4 additive f16
  int mask_bcast = 0;  // 0 full, 1 [Nq, Nk], 2 [B, 1, 1, Nk], 3 [Hq, 1, Nk]
  bool mask_dead_rows = false;  // some rows fully masked by the mask
  int values = 0;      // 0 random, 1 huge logits (exact), 2 NaN in q, 3 NaN in k, 4 NaN in v
  bool backward = true;
  bool deterministic = false;
  bool with_lse = true;
  bool threaded = false;  // always run on the 3-thread context (split-KV, grouped items)
};

struct Prepared {
  Spec sp;
  Tensor q, k, v, dout, mask, alibi, cuq, cuk;
  bool has_mask = false, has_alibi = false;
};

double rnd(std::mt19937_64& rng, double lo, double hi) {
  return std::uniform_real_distribution<double>(lo, hi)(rng);
}

void fill_random(Tensor& t, std::mt19937_64& rng, double lo, double hi) {
  // Fill every element of the buffer (broadcast views read some of them many times).
  const int64_t* s = t.shape();
  for (int64_t a = 0; a < s[0]; ++a)
    for (int64_t b = 0; b < s[1]; ++b)
      for (int64_t c = 0; c < s[2]; ++c)
        for (int64_t d = 0; d < s[3]; ++d) t.set(a, b, c, d, rnd(rng, lo, hi));
}

Prepared prepare(const Case& c, std::mt19937_64& rng) {
  Prepared P;
  Spec& sp = P.sp;
  sp.Hq = c.Hq;
  sp.Hkv = c.Hkv;
  sp.D = c.D;
  int64_t qshape[4], kshape[4];
  if (!c.seqq.empty()) {
    sp.cu_q.push_back(0);
    sp.cu_k.push_back(0);
    for (size_t i = 0; i < c.seqq.size(); ++i) {
      sp.cu_q.push_back(sp.cu_q.back() + c.seqq[i]);
      sp.cu_k.push_back(sp.cu_k.back() + c.seqk[i]);
    }
    sp.B = static_cast<int64_t>(c.seqq.size());
    sp.total_q = sp.cu_q.back() + c.extra_q;
    sp.total_k = sp.cu_k.back() + c.extra_k;
    sp.Nq = *std::max_element(c.seqq.begin(), c.seqq.end());
    sp.Nk = *std::max_element(c.seqk.begin(), c.seqk.end());
    const int64_t qs[4] = {1, sp.total_q, c.Hq, c.D}, ks[4] = {1, sp.total_k, c.Hkv, c.D};
    std::copy(qs, qs + 4, qshape);
    std::copy(ks, ks + 4, kshape);
  } else {
    sp.B = c.B;
    sp.Nq = c.Nq;
    sp.Nk = c.Nk;
    const int64_t qs[4] = {c.B, c.Nq, c.Hq, c.D}, ks[4] = {c.B, c.Nk, c.Hkv, c.D};
    std::copy(qs, qs + 4, qshape);
    std::copy(ks, ks + 4, kshape);
  }
  sp.bottom_right = c.mask_mode != 1;
  sp.wl = c.window ? c.wl : -1;
  sp.wr = c.window ? c.wr : -1;
  if (c.mask_mode != 0) sp.wr = 0;  // causal forces the right edge to the diagonal
  sp.scale = c.scale != 0 ? c.scale : 1.0 / std::sqrt(static_cast<double>(c.D));
  sp.softcap = c.softcap;

  P.q = make_tensor(qshape, c.dt_in, c.lay_q, 0);
  P.k = make_tensor(kshape, c.dt_in, c.lay_k, 0);
  P.v = make_tensor(kshape, c.dt_in, c.lay_v, 0);
  P.dout = make_tensor(qshape, c.dt_dout < 0 ? c.dt_in : c.dt_dout, c.lay_o, 0);
  if (c.values == 1) {
    // Huge, exactly representable logits: small integers times 2^10, scale 1 (scores are exact
    // multiples of 2^20, far beyond where exp() overflows).
    for (Tensor* t : {&P.q, &P.k}) {
      const int64_t* s = t->shape();
      for (int64_t a = 0; a < s[0]; ++a)
        for (int64_t b = 0; b < s[1]; ++b)
          for (int64_t cc = 0; cc < s[2]; ++cc)
            for (int64_t d = 0; d < s[3]; ++d)
              t->set(a, b, cc, d, 1024.0 * static_cast<double>(static_cast<int>(rnd(rng, -4, 5))));
    }
    sp.scale = 1.0;
  } else {
    fill_random(P.q, rng, -1.5, 1.5);
    fill_random(P.k, rng, -1.5, 1.5);
  }
  fill_random(P.v, rng, -1, 1);
  fill_random(P.dout, rng, -1, 1);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (c.values == 2 && qshape[1] > 0) P.q.set(0, qshape[1] / 2, 0, c.D - 1, nan);
  if (c.values == 3 && kshape[1] > 0) P.k.set(0, kshape[1] / 2, 0, 0, nan);
  if (c.values == 4 && kshape[1] > 0) P.v.set(0, kshape[1] - 1, 0, c.D / 2, nan);

  if (c.alibi) {
    const int64_t as[4] = {sp.B, c.Hq, 1, 1};
    P.alibi = make_tensor(as, UMFA_DTYPE_F32, c.alibi == 1 ? kBroadcast0 : kContig, 0);
    for (int64_t b = 0; b < sp.B; ++b)
      for (int64_t h = 0; h < c.Hq; ++h)
        P.alibi.set(b, h, 0, 0, std::pow(2.0, -static_cast<double>((h % 8) + 1)) * (1 + 0.25 * b));
    P.has_alibi = true;
  }
  if (c.mask) {
    const int32_t mdt = c.mask == 1 ? UMFA_DTYPE_BOOL
                        : c.mask == 2 ? UMFA_DTYPE_F32
                        : c.mask == 3 ? UMFA_DTYPE_BF16
                                      : UMFA_DTYPE_F16;
    const int64_t ms[4] = {sp.B, c.Hq, sp.Nq, sp.Nk};
    P.mask = make_tensor(ms, mdt, kContig, 0);
    if (c.mask_bcast == 1) P.mask.v.strides[0] = P.mask.v.strides[1] = 0;
    if (c.mask_bcast == 2) P.mask.v.strides[1] = P.mask.v.strides[2] = 0;
    if (c.mask_bcast == 3) P.mask.v.strides[0] = P.mask.v.strides[2] = 0;
    for (int64_t b = 0; b < sp.B; ++b)
      for (int64_t h = 0; h < c.Hq; ++h)
        for (int64_t i = 0; i < sp.Nq; ++i)
          for (int64_t j = 0; j < sp.Nk; ++j) {
            double x;
            if (mdt == UMFA_DTYPE_BOOL) x = rnd(rng, 0, 1) < 0.75 ? 1 : 0;
            else x = rnd(rng, 0, 1) < 0.1 ? -std::numeric_limits<double>::infinity() : rnd(rng, -2, 2);
            if (c.mask_dead_rows && i % 5 == 2)
              x = mdt == UMFA_DTYPE_BOOL ? 0 : -std::numeric_limits<double>::infinity();
            P.mask.set(b, h, i, j, x);
          }
    P.has_mask = true;
  }
  return P;
}

Problem make_problem(const Case& c, const Prepared& P) {
  Problem pr;
  pr.batch = P.sp.B;
  pr.heads_q = c.Hq;
  pr.heads_kv = c.Hkv;
  pr.seqlen_q = P.sp.Nq;
  pr.seqlen_k = P.sp.Nk;
  pr.head_dim = c.D;
  pr.q = P.q.v;
  pr.k = P.k.v;
  pr.v = P.v.v;
  if (P.sp.varlen()) {
    pr.cu_seqlens_q = P.sp.cu_q.data();
    pr.cu_seqlens_k = P.sp.cu_k.data();
  }
  pr.scale = static_cast<float>(P.sp.scale);
  pr.softcap = c.softcap;
  pr.bottom_right = P.sp.bottom_right;
  pr.window_left = P.sp.wl;
  pr.window_right = P.sp.wr;
  if (P.has_mask) pr.mask = P.mask.v;
  if (P.has_alibi) pr.alibi = P.alibi.v;
  pr.flags = c.deterministic ? UMFA_FLAG_DETERMINISTIC : 0;
  return pr;
}

std::string describe(const Case& c) {
  char buf[512];
  std::string sq, sk;
  for (size_t i = 0; i < c.seqq.size(); ++i) {
    sq += std::to_string(c.seqq[i]) + ",";
    sk += std::to_string(c.seqk[i]) + ",";
  }
  std::snprintf(buf, sizeof buf,
                "B=%lld Hq=%lld Hkv=%lld Nq=%lld Nk=%lld D=%lld varlen=[%s]/[%s]+%lld/%lld in=%s "
                "out=%s grad=%s lay=%d%d%d%d%d mask_mode=%d window=%d(%lld,%lld) scale=%g "
                "softcap=%g alibi=%d mask=%d/%d%s values=%d det=%d lse=%d",
                (long long)c.B, (long long)c.Hq, (long long)c.Hkv, (long long)c.Nq,
                (long long)c.Nk, (long long)c.D, sq.c_str(), sk.c_str(), (long long)c.extra_q,
                (long long)c.extra_k, dtype_name(c.dt_in), dtype_name(c.dt_out),
                dtype_name(c.dt_grad), c.lay_q, c.lay_k, c.lay_v, c.lay_o, c.lay_g, c.mask_mode,
                c.window, (long long)c.wl, (long long)c.wr, c.scale, c.softcap, c.alibi, c.mask,
                c.mask_bcast, c.mask_dead_rows ? " dead-rows" : "", c.values, c.deterministic,
                c.with_lse);
  return buf;
}

std::string case_key(const char* what, int32_t in, int32_t out) {
  return std::string(what) + " in=" + dtype_name(in) + " out=" + dtype_name(out);
}

// Runs forward (and backward) of one case on one context and checks everything.
void run_case(const Case& c, void* impl, const char* isa, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Prepared P = prepare(c, rng);
  const int64_t* qs = P.q.shape();
  const int64_t* ks = P.k.shape();
  const unsigned char kFill = 0x7f;  // f32 0x7f7f7f7f is a large finite number: detectable
  Tensor out = make_tensor(qs, c.dt_out, c.lay_o, kFill);
  const int64_t ls[4] = {qs[0], c.Hq, qs[1], 1};
  Tensor lse = make_tensor(ls, UMFA_DTYPE_F32, c.lay_o == kPadded ? kPadded : kContig, kFill);

  Problem pr = make_problem(c, P);
  pr.out = out.v;
  if (c.with_lse) pr.lse = lse.v;
  char msg[256] = {0};
  umfa::ErrorSink sink{msg, sizeof msg};
  const std::string tag = c.name + " [" + isa + "]";
  const int failures_before = g_failures;
  struct Report {
    const Case& c;
    const int& before;
    ~Report() {
      if (g_failures != before) std::printf("  case: %s\n", describe(c).c_str());
    }
  } report{c, failures_before};
  umfa_status st = T()->forward(impl, &pr, &sink);
  CHECK(st == UMFA_STATUS_OK, "%s: forward status %d (%s)", tag.c_str(), st, msg);

  const RefOut ref = reference(P.sp, P.q, P.k, P.v, c.backward ? &P.dout : nullptr,
                               P.has_mask ? &P.mask : nullptr, P.has_alibi ? &P.alibi : nullptr,
                               &out);
  const bool nan_case = c.values >= 2;
  // bf16 inputs: the kernels may round P (and dS) to bf16 before their products, as GPU kernels
  // do, so bf16 is the tolerance class whatever the output dtype (the conformance rule: the
  // lowest precision among the input and output dtypes).
  const int32_t out_class = c.dt_in == UMFA_DTYPE_BF16 ? UMFA_DTYPE_BF16 : c.dt_out;
  Cmp co = compare(out, ref.out, tol_for(out_class), 1e-3, false);
  CHECK(co.bad == 0, "%s: out: %lld bad (first at %lld: got %g ref %g), max err %.3g",
        tag.c_str(), (long long)co.bad, (long long)co.first_bad, co.got_at_bad, co.ref_at_bad,
        co.max_norm_err);
  CHECK(untouched_outside(out, kFill), "%s: out written outside its view", tag.c_str());
  if (!nan_case) note(case_key("out", c.dt_in, c.dt_out), co.max_norm_err);
  if (c.with_lse) {
    // LSE: absolute error, relative to max(1, |lse|) (normalize by the max magnitude).
    Cmp cl = compare(lse, ref.lse, 2e-5, 1.0, false);
    CHECK(cl.bad == 0, "%s: lse: %lld bad (first at %lld: got %g ref %g), max err %.3g",
          tag.c_str(), (long long)cl.bad, (long long)cl.first_bad, cl.got_at_bad, cl.ref_at_bad,
          cl.max_norm_err);
    CHECK(untouched_outside(lse, kFill), "%s: lse written outside its view", tag.c_str());
    if (!nan_case) note(case_key("lse", c.dt_in, UMFA_DTYPE_F32), cl.max_norm_err);
  }
  if (!c.backward || !c.with_lse) return;

  Tensor dq = make_tensor(qs, c.dt_grad, c.lay_g, kFill);
  Tensor dk = make_tensor(ks, c.dt_grad, c.lay_g, kFill);
  Tensor dv = make_tensor(ks, c.dt_grad, c.lay_g == kDStride2 ? kBHSD : c.lay_g, kFill);
  pr.dout = P.dout.v;
  pr.dq = dq.v;
  pr.dk = dk.v;
  pr.dv = dv.v;
  st = T()->backward(impl, &pr, &sink);
  CHECK(st == UMFA_STATUS_OK, "%s: backward status %d (%s)", tag.c_str(), st, msg);
  // The reference's delta uses `out` as stored, like the backward does; the gradients' own
  // rounding and the f32 arithmetic remain (the coarser of the out and gradient dtypes).
  const int32_t coarse = (c.dt_in == UMFA_DTYPE_BF16 || c.dt_out == UMFA_DTYPE_BF16 ||
                          c.dt_grad == UMFA_DTYPE_BF16) ? UMFA_DTYPE_BF16
                         : (c.dt_out == UMFA_DTYPE_F16 || c.dt_grad == UMFA_DTYPE_F16) ? UMFA_DTYPE_F16
                                                                                     : UMFA_DTYPE_F32;
  const double gt = tol_for(coarse) * 2;
  const char* names[3] = {"dq", "dk", "dv"};
  Tensor* got[3] = {&dq, &dk, &dv};
  const std::vector<double>* refs[3] = {&ref.dq, &ref.dk, &ref.dv};
  for (int g = 0; g < 3; ++g) {
    if (c.values == 1) {
      // Huge logits with exact ties: the f32 LSE cannot hold m + log(ties) when ulp(m) > 1, so
      // gradients of tied rows are off by the tie count in any f32-LSE implementation. Check
      // only that nothing overflowed.
      bool finite = true;
      const int64_t* s = got[g]->shape();
      for (int64_t a = 0; a < s[0]; ++a)
        for (int64_t b = 0; b < s[1]; ++b)
          for (int64_t cc = 0; cc < s[2]; ++cc)
            for (int64_t d = 0; d < s[3]; ++d) finite = finite && std::isfinite(got[g]->get(a, b, cc, d));
      CHECK(finite, "%s: %s has non-finite values", tag.c_str(), names[g]);
      continue;
    }
    // Floor 0.05: inputs are O(1), so gradients are O(0.1..1); an exactly-zero reference (e.g.
    // one visible key: dS = P(dP - delta) = 0) is compared at that scale, not at 1e-3.
    Cmp cg = compare(*got[g], *refs[g], gt, 5e-2, nan_case);
    CHECK(cg.bad == 0, "%s: %s: %lld bad (first at %lld: got %g ref %g), max err %.3g", tag.c_str(),
          names[g], (long long)cg.bad, (long long)cg.first_bad, cg.got_at_bad, cg.ref_at_bad,
          cg.max_norm_err);
    CHECK(untouched_outside(*got[g], kFill), "%s: %s written outside its view", tag.c_str(),
          names[g]);
    if (!nan_case)
      note(case_key(names[g], c.dt_in, c.dt_out) + " grad=" + dtype_name(c.dt_grad), cg.max_norm_err);
    if (std::getenv("CPU_TEST_VERBOSE") && cg.max_norm_err > 1e-5 && c.dt_in == UMFA_DTYPE_F32 &&
        coarse == UMFA_DTYPE_F32)
      std::printf("  %s %s err %.3g: %s\n", tag.c_str(), names[g], cg.max_norm_err, describe(c).c_str());
  }
}

// ---- case lists -------------------------------------------------------------------------------
// `reduced`: smaller shapes for the heaviest cases, covering the same paths.
std::vector<Case> fixed_cases(bool reduced) {
  std::vector<Case> v;
  auto add = [&](const char* name, auto fn) {
    Case c;
    c.name = name;
    fn(c);
    v.push_back(c);
  };
  add("plain", [](Case&) {});
  add("N=1", [](Case& c) { c.Nq = c.Nk = 1; });
  add("Nq=0", [](Case& c) { c.Nq = 0; c.Nk = 5; });
  add("Nk=0", [](Case& c) { c.Nq = 5; c.Nk = 0; });
  add("N=0", [](Case& c) { c.Nq = c.Nk = 0; });
  add("D=1", [](Case& c) { c.D = 1; c.Nq = 9; c.Nk = 70; });
  add("D=256 N=127", [=](Case& c) { c.D = 256; c.Nq = c.Nk = reduced ? 70 : 127; });
  add("D=40 N=3", [](Case& c) { c.D = 40; c.Nq = c.Nk = 3; });
  add("D=72 GQA 4:1 N=127", [=](Case& c) { c.D = 72; c.Hq = 4; c.Hkv = 1; c.Nq = c.Nk = reduced ? 70 : 127; });
  add("D=96 GQA 8:2", [=](Case& c) { c.D = 96; c.Hq = 8; c.Hkv = 2; c.Nq = reduced ? 33 : 65; c.Nk = reduced ? 70 : 130; });
  add("causal TL Nq<Nk", [](Case& c) { c.mask_mode = 1; c.Nq = 70; c.Nk = 140; });
  add("causal BR Nq<Nk", [](Case& c) { c.mask_mode = 2; c.Nq = 70; c.Nk = 140; });
  add("causal BR Nq>Nk (dead rows)", [](Case& c) { c.mask_mode = 2; c.Nq = 140; c.Nk = 70; });
  add("causal TL Nq>Nk", [](Case& c) { c.mask_mode = 1; c.Nq = 140; c.Nk = 70; });
  add("window 3/2", [](Case& c) { c.window = true; c.wl = 3; c.wr = 2; c.Nq = c.Nk = 130; });
  add("window left 0 right 0", [](Case& c) { c.window = true; c.wl = 0; c.wr = 0; c.Nq = 50; c.Nk = 60; });
  add("window left only", [](Case& c) { c.window = true; c.wl = 17; c.Nq = 100; c.Nk = 150; });
  add("window right only", [](Case& c) { c.window = true; c.wr = 5; c.Nq = 100; c.Nk = 90; });
  add("window huge", [](Case& c) { c.window = true; c.wl = INT64_MAX; c.wr = INT64_MAX / 2; c.Nq = 20; });
  add("causal+window", [](Case& c) { c.mask_mode = 2; c.window = true; c.wl = 9; c.wr = 4; c.Nq = c.Nk = 129; });
  add("softcap", [](Case& c) { c.softcap = 2.5f; c.scale = 3.0f; c.Nq = 33; c.Nk = 77; });
  add("softcap huge", [](Case& c) { c.softcap = 1e6f; c.Nq = 20; c.Nk = 30; });
  add("alibi [Hq]", [](Case& c) { c.alibi = 1; c.B = 2; c.Hq = 4; c.Hkv = 2; c.Nq = 40; c.Nk = 90; });
  add("alibi [B,Hq] causal", [](Case& c) { c.alibi = 2; c.B = 2; c.Hq = 2; c.mask_mode = 2; c.Nq = 40; c.Nk = 90; });
  add("bool mask", [](Case& c) { c.mask = 1; c.B = 2; c.Hq = 2; c.Nq = 70; c.Nk = 80; });
  add("bool mask dead rows", [](Case& c) { c.mask = 1; c.mask_dead_rows = true; c.Nq = 30; c.Nk = 20; });
  add("additive f32 mask", [](Case& c) { c.mask = 2; c.mask_bcast = 1; c.B = 2; c.Hq = 2; c.Nq = 65; c.Nk = 66; });
  add("additive bf16 mask [B,1,1,Nk]", [](Case& c) { c.mask = 3; c.mask_bcast = 2; c.B = 2; c.Hq = 2; c.Nq = 30; c.Nk = 70; });
  add("additive f16 mask [Hq,1,Nk]", [](Case& c) { c.mask = 4; c.mask_bcast = 3; c.Hq = 3; c.Nq = 30; c.Nk = 70; });
  add("additive -inf rows", [](Case& c) { c.mask = 2; c.mask_dead_rows = true; c.Nq = 30; c.Nk = 20; });
  add("huge logits", [](Case& c) { c.values = 1; c.Nq = 40; c.Nk = 100; c.D = 16; });
  add("huge logits f16", [](Case& c) { c.values = 1; c.dt_in = UMFA_DTYPE_F16; c.Nq = 40; c.Nk = 100; c.D = 16; });
  add("NaN in q", [](Case& c) { c.values = 2; c.Nq = 20; c.Nk = 30; });
  add("NaN in k", [](Case& c) { c.values = 3; c.Nq = 20; c.Nk = 30; });
  add("NaN in v", [](Case& c) { c.values = 4; c.Nq = 20; c.Nk = 30; });
  add("BHSD f16", [](Case& c) { c.dt_in = c.dt_out = c.dt_grad = UMFA_DTYPE_F16; c.lay_q = c.lay_k = c.lay_v = c.lay_o = c.lay_g = kBHSD; c.Nq = c.Nk = 100; c.Hq = 2; });
  add("bf16 in, f32 out", [](Case& c) { c.dt_in = UMFA_DTYPE_BF16; c.Nq = c.Nk = 100; });
  add("f32 in, bf16 out", [](Case& c) { c.dt_out = c.dt_grad = UMFA_DTYPE_BF16; c.Nq = c.Nk = 100; });
  add("strided everything", [](Case& c) { c.lay_q = kPadded; c.lay_k = kDStride2; c.lay_v = kBHSD; c.lay_o = kPadded; c.lay_g = kDStride2; c.B = 2; c.Hq = 2; c.Nq = 33; c.Nk = 45; c.D = 24; });
  add("broadcast k/v over batch", [](Case& c) { c.lay_k = c.lay_v = kBroadcast0; c.B = 3; c.Nq = 20; c.Nk = 25; });
  add("no lse", [](Case& c) { c.with_lse = false; c.Nq = 70; });
  add("varlen", [](Case& c) { c.seqq = {5, 0, 70, 1}; c.seqk = {7, 3, 66, 0}; c.Hq = 4; c.Hkv = 2; c.extra_q = 3; c.extra_k = 2; });
  add("varlen causal BR", [](Case& c) { c.seqq = {30, 65, 2}; c.seqk = {20, 130, 9}; c.mask_mode = 2; });
  add("varlen window alibi softcap", [](Case& c) { c.seqq = {64, 17}; c.seqk = {64, 40}; c.window = true; c.wl = 6; c.wr = 3; c.alibi = 2; c.softcap = 4.f; c.Hq = 2; });
  add("decode GQA", [](Case& c) { c.Nq = 1; c.Nk = 300; c.Hq = 8; c.Hkv = 2; c.D = 64; c.mask_mode = 2; });
  // Long keys with few tiles: the 3-thread context splits the keys (split-KV) and combines.
  add("split-KV decode f32", [](Case& c) { c.threaded = true; c.Nq = 1; c.Nk = 1100; c.Hq = 4; c.Hkv = 1; c.D = 64; c.mask_mode = 2; });
  add("split-KV decode bf16 BHSD", [](Case& c) { c.threaded = true; c.Nq = 1; c.Nk = 1500; c.Hq = 2; c.Hkv = 2; c.D = 128; c.dt_in = c.dt_out = c.dt_grad = UMFA_DTYPE_BF16; c.lay_k = c.lay_v = kBHSD; });
  add("split-KV f16 window alibi", [](Case& c) { c.threaded = true; c.Nq = 3; c.Nk = 1300; c.D = 40; c.dt_in = UMFA_DTYPE_F16; c.window = true; c.wl = 700; c.wr = 0; c.alibi = 1; c.mask_mode = 2; });
  add("split-KV dead rows", [](Case& c) { c.threaded = true; c.Nq = 2; c.Nk = 1100; c.D = 16; c.mask = 1; c.mask_dead_rows = true; c.mask_bcast = 1; });
  add("split-KV varlen", [](Case& c) { c.threaded = true; c.seqq = {1, 2}; c.seqk = {1200, 5}; c.extra_q = 1; c.D = 24; c.dt_in = UMFA_DTYPE_BF16; });
  // Enough tiles for the 3-thread context to group query tiles (forward) and key blocks
  // (backward) into one item: causal diagonals, partial blocks, odd D.
  // Reduced: the fewest rows that still give 3 threads at least 48 tiles and 48 key blocks
  // (groups of 2), with a partial last block.
  add("grouped tiles causal", [=](Case& c) {
    c.threaded = true; c.Nq = c.Nk = reduced ? 129 : 777; c.B = reduced ? 4 : 1; c.Hq = 4; c.Hkv = 4; c.D = 20; c.mask_mode = 2; });
  add("grouped tiles window GQA bf16", [=](Case& c) {
    c.threaded = true; c.B = reduced ? 2 : 1; c.Nq = reduced ? 180 : 700; c.Nk = reduced ? 330 : 901; c.Hq = 8; c.Hkv = 4; c.D = 8; c.window = true;
    c.wl = reduced ? 70 : 150; c.wr = reduced ? 30 : 70; c.dt_in = c.dt_out = c.dt_grad = UMFA_DTYPE_BF16; });
  add("short q stacked heads", [](Case& c) { c.Nq = 5; c.Nk = 80; c.Hq = 12; c.Hkv = 1; c.D = 32; c.alibi = 1; c.mask = 2; });
  add("deterministic", [](Case& c) { c.deterministic = true; c.Nq = 130; c.Nk = 100; c.Hq = 4; c.Hkv = 2; c.mask_mode = 2; });
  add("deterministic varlen", [](Case& c) { c.deterministic = true; c.seqq = {5, 70}; c.seqk = {9, 70}; c.extra_q = 2; c.softcap = 3.f; });
  return v;
}

// `reduced`: sequences of at most half the length.
Case random_case(std::mt19937_64& rng, int idx, bool reduced) {
  auto pick = [&](std::initializer_list<int64_t> xs) {
    const auto n = static_cast<int64_t>(xs.size());
    return *(xs.begin() + static_cast<int64_t>(rnd(rng, 0, static_cast<double>(n))) % n);
  };
  auto coin = [&](double p) { return rnd(rng, 0, 1) < p; };
  Case c;
  c.name = "random #" + std::to_string(idx);
  c.D = pick({1, 3, 8, 16, 40, 64, 72, 96, 128, 256});
  const int64_t nmax = (c.D >= 128 ? 80 : 140) / (reduced ? 2 : 1);
  auto len = [&] { return coin(0.15) ? pick({0, 1, 3}) : static_cast<int64_t>(rnd(rng, 1, static_cast<double>(nmax))); };
  c.Hkv = pick({1, 2});
  c.Hq = c.Hkv * pick({1, 2, 3, 4});
  c.dt_in = static_cast<int32_t>(pick({UMFA_DTYPE_F32, UMFA_DTYPE_F16, UMFA_DTYPE_BF16}));
  c.dt_out = coin(0.5) ? c.dt_in : static_cast<int32_t>(pick({UMFA_DTYPE_F32, UMFA_DTYPE_F16, UMFA_DTYPE_BF16}));
  c.dt_grad = coin(0.5) ? c.dt_out : static_cast<int32_t>(pick({UMFA_DTYPE_F32, UMFA_DTYPE_F16, UMFA_DTYPE_BF16}));
  c.lay_q = static_cast<int>(pick({0, 1, 2, 3}));
  c.lay_k = static_cast<int>(pick({0, 1, 2, 3, 4}));
  c.lay_v = static_cast<int>(pick({0, 1, 2, 3, 4}));
  c.lay_o = static_cast<int>(pick({0, 1, 2, 3}));
  c.lay_g = static_cast<int>(pick({0, 1, 2, 3}));
  const bool varlen = coin(0.2);
  if (varlen) {
    const int n = static_cast<int>(pick({1, 2, 3}));
    for (int i = 0; i < n; ++i) {
      c.seqq.push_back(static_cast<int32_t>(len()));
      c.seqk.push_back(static_cast<int32_t>(len()));
    }
    c.extra_q = pick({0, 0, 2});
    c.extra_k = pick({0, 1});
    if (c.lay_k == kBroadcast0) c.lay_k = 0;
    if (c.lay_v == kBroadcast0) c.lay_v = 0;
  } else {
    c.B = pick({1, 1, 2});
    c.Nq = len();
    c.Nk = coin(0.3) ? c.Nq : len();
  }
  c.mask_mode = static_cast<int>(pick({0, 0, 1, 2}));
  c.window = coin(0.3);
  if (c.window) {
    c.wl = pick({-1, 0, 1, 5, 31, 200});
    c.wr = pick({-1, 0, 2, 40});
  }
  c.softcap = coin(0.25) ? static_cast<float>(pick({1, 5, 30})) : 0.f;
  c.scale = coin(0.2) ? static_cast<float>(rnd(rng, 0.05, 2.0)) : 0.f;
  c.alibi = coin(0.25) ? static_cast<int>(pick({1, 2})) : 0;
  if (!varlen && coin(0.3)) {
    c.mask = static_cast<int>(pick({1, 2, 3, 4}));
    c.mask_bcast = static_cast<int>(pick({0, 1, 2, 3}));
    c.mask_dead_rows = coin(0.3);
  }
  c.deterministic = coin(0.3);
  c.with_lse = coin(0.95);
  return c;
}

// ---- finite differences ----------------------------------------------------------------------
// L = sum(out * G): compares the backward's dq/dk/dv with central differences of the forward,
// in f32, on a tiny case with softcap, ALiBi, an additive mask and GQA.
void finite_difference_test(void* impl) {
  Case c;
  c.name = "finite-difference";
  c.B = 1; c.Hq = 2; c.Hkv = 1; c.Nq = 5; c.Nk = 6; c.D = 3;
  c.softcap = 2.f; c.alibi = 1; c.mask = 2; c.mask_mode = 2; c.scale = 0.9f;
  std::mt19937_64 rng(1234);
  Prepared P = prepare(c, rng);
  // No -inf in the bias for this test (keeps every score differentiable and finite).
  for (int64_t h = 0; h < c.Hq; ++h)
    for (int64_t i = 0; i < c.Nq; ++i)
      for (int64_t j = 0; j < c.Nk; ++j) P.mask.set(0, h, i, j, rnd(rng, -1, 1));
  const int64_t* qs = P.q.shape();
  const int64_t* ks = P.k.shape();
  Tensor out = make_tensor(qs, UMFA_DTYPE_F32, 0, 0);
  const int64_t ls[4] = {1, c.Hq, c.Nq, 1};
  Tensor lse = make_tensor(ls, UMFA_DTYPE_F32, 0, 0);
  Problem pr = make_problem(c, P);
  pr.out = out.v;
  pr.lse = lse.v;
  auto loss = [&]() {
    T()->forward(impl, &pr, nullptr);
    double L = 0;
    for (int64_t i = 0; i < qs[1]; ++i)
      for (int64_t h = 0; h < qs[2]; ++h)
        for (int64_t d = 0; d < qs[3]; ++d) L += out.get(0, i, h, d) * P.dout.get(0, i, h, d);
    return L;
  };
  loss();
  Tensor dq = make_tensor(qs, UMFA_DTYPE_F32, 0, 0), dk = make_tensor(ks, UMFA_DTYPE_F32, 0, 0),
         dv = make_tensor(ks, UMFA_DTYPE_F32, 0, 0);
  pr.dout = P.dout.v;
  pr.dq = dq.v;
  pr.dk = dk.v;
  pr.dv = dv.v;
  CHECK(T()->backward(impl, &pr, nullptr) == UMFA_STATUS_OK, "finite-difference: backward failed");
  double worst = 0;
  Tensor* inputs[3] = {&P.q, &P.k, &P.v};
  Tensor* grads[3] = {&dq, &dk, &dv};
  for (int w = 0; w < 3; ++w) {
    const int64_t* s = inputs[w]->shape();
    for (int64_t i = 0; i < s[1]; ++i)
      for (int64_t h = 0; h < s[2]; ++h)
        for (int64_t d = 0; d < s[3]; ++d) {
          const double x = inputs[w]->get(0, i, h, d);
          const double eps = 1e-2;
          inputs[w]->set(0, i, h, d, x + eps);
          const double lp = loss();
          inputs[w]->set(0, i, h, d, x - eps);
          const double lm = loss();
          inputs[w]->set(0, i, h, d, x);
          const double fd = (lp - lm) / (2 * eps);
          const double an = grads[w]->get(0, i, h, d);
          const double err = std::fabs(fd - an) / std::max(1.0, std::fabs(fd));
          worst = std::max(worst, err);
          CHECK(err < 2e-3, "finite-difference: grad %d (%lld,%lld,%lld): analytic %g numeric %g", w,
                (long long)i, (long long)h, (long long)d, an, fd);
        }
  }
  std::printf("finite-difference check: max error %.2e\n", worst);
}

// ---- concurrency -----------------------------------------------------------------------------
// Several threads call forward and backward on one context at once; results must equal the
// single-caller results bit for bit (forward is deterministic; backward in deterministic mode).
void concurrency_test(void* impl) {
  Case c;
  c.name = "concurrency";
  c.B = 2; c.Hq = 4; c.Hkv = 2; c.Nq = 150; c.Nk = 170; c.D = 40; c.mask_mode = 2;
  c.deterministic = true;
  std::mt19937_64 rng(99);
  Prepared P = prepare(c, rng);
  const int64_t* qs = P.q.shape();
  const int64_t* ks = P.k.shape();
  const int64_t ls[4] = {c.B, c.Hq, c.Nq, 1};
  struct Outs {
    Tensor out, lse, dq, dk, dv;
  };
  auto make_outs = [&]() {
    return Outs{make_tensor(qs, UMFA_DTYPE_F32, 0, 0), make_tensor(ls, UMFA_DTYPE_F32, 0, 0),
                make_tensor(qs, UMFA_DTYPE_F32, 0, 0), make_tensor(ks, UMFA_DTYPE_F32, 0, 0),
                make_tensor(ks, UMFA_DTYPE_F32, 0, 0)};
  };
  auto run = [&](Outs& o) {
    Problem pr = make_problem(c, P);
    pr.out = o.out.v;
    pr.lse = o.lse.v;
    if (T()->forward(impl, &pr, nullptr) != UMFA_STATUS_OK) return false;
    pr.dout = P.dout.v;
    pr.dq = o.dq.v;
    pr.dk = o.dk.v;
    pr.dv = o.dv.v;
    return T()->backward(impl, &pr, nullptr) == UMFA_STATUS_OK;
  };
  Outs base = make_outs();
  CHECK(run(base), "concurrency: baseline failed");
  const int kThreads = 4, kIters = 3;
  std::vector<Outs> outs;
  for (int t = 0; t < kThreads; ++t) outs.push_back(make_outs());
  std::atomic<int> ok{0};
  std::vector<std::thread> th;
  for (int t = 0; t < kThreads; ++t)
    th.emplace_back([&, t] {
      for (int it = 0; it < kIters; ++it)
        if (run(outs[static_cast<size_t>(t)])) ++ok;
    });
  for (auto& x : th) x.join();
  CHECK(ok == kThreads * kIters, "concurrency: %d of %d calls failed", kThreads * kIters - ok.load(),
        kThreads * kIters);
  for (int t = 0; t < kThreads; ++t) {
    Outs& o = outs[static_cast<size_t>(t)];
    CHECK(o.out.buf == base.out.buf && o.lse.buf == base.lse.buf, "concurrency: forward differs (thread %d)", t);
    CHECK(o.dq.buf == base.dq.buf && o.dk.buf == base.dk.buf && o.dv.buf == base.dv.buf,
          "concurrency: deterministic backward differs (thread %d)", t);
  }
}

// ---- the rest of the table ---------------------------------------------------------------------
void table_test() {
  const umfa::BackendTable* t = T();
  CHECK(t->struct_size == sizeof(umfa::BackendTable), "table: struct_size");
  CHECK(std::string(t->name) == "cpu", "table: name %s", t->name);
  CHECK(t->device_count() == 1, "table: device_count");
  void* impl = nullptr;
  CHECK(t->create(0, -1, &impl, nullptr) == UMFA_STATUS_INVALID_ARGUMENT, "create(-1 threads)");
  setenv("UMFA_NUM_THREADS", "3", 1);
  CHECK(t->create(0, 0, &impl, nullptr) == UMFA_STATUS_OK, "create(0 threads)");
  CHECK(umfa::cpu::context_threads(impl) == 3, "UMFA_NUM_THREADS=3 gives %d threads",
        umfa::cpu::context_threads(impl));
  unsetenv("UMFA_NUM_THREADS");
  void* p = nullptr;
  CHECK(t->alloc(impl, 1000, &p, nullptr) == UMFA_STATUS_OK && p, "alloc");
  CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0, "alloc: 64-byte aligned");
  bool zero = true;
  for (int i = 0; i < 1000; ++i) zero = zero && static_cast<unsigned char*>(p)[i] == 0;
  CHECK(zero, "alloc: zero-filled");
  std::vector<unsigned char> src(1000), dst(1000);
  for (int i = 0; i < 1000; ++i) src[static_cast<size_t>(i)] = static_cast<unsigned char>(i * 7);
  CHECK(t->copy_to_device(impl, p, src.data(), 1000, nullptr) == UMFA_STATUS_OK, "copy_to_device");
  CHECK(t->copy_to_host(impl, dst.data(), p, 1000, nullptr) == UMFA_STATUS_OK && dst == src,
        "copy_to_host round trip");
  t->free(impl, p);
  void* huge = nullptr;
  CHECK(t->alloc(impl, UINT64_MAX / 2, &huge, nullptr) == UMFA_STATUS_OUT_OF_MEMORY && !huge,
        "alloc(2^63) fails cleanly");

  Case c;
  c.Nq = 300; c.Nk = 200; c.D = 64; c.Hq = 2;
  std::mt19937_64 rng(3);
  Prepared P = prepare(c, rng);
  Problem pr = make_problem(c, P);
  Tensor out = make_tensor(P.q.shape(), UMFA_DTYPE_F32, 0, 0);
  pr.out = out.v;
  const uint64_t fw = t->forward_workspace(impl, &pr);
  CHECK(fw > 0 && fw < (16u << 20), "forward_workspace %llu", (unsigned long long)fw);
  pr.flags = 0;
  const uint64_t bw = t->backward_workspace(impl, &pr);
  pr.flags = UMFA_FLAG_DETERMINISTIC;
  const uint64_t bwd = t->backward_workspace(impl, &pr);
  // The non-deterministic path holds an f32 dQ accumulator (Nq * Hq * D floats) on top.
  CHECK(bw >= bwd + 300u * 2u * 64u * 4u, "backward_workspace %llu vs deterministic %llu",
        (unsigned long long)bw, (unsigned long long)bwd);
  char msg[256] = {0};
  umfa::ErrorSink sink{msg, sizeof msg};
  pr.q.data = nullptr;
  CHECK(t->forward(impl, &pr, &sink) == UMFA_STATUS_INTERNAL && std::strstr(msg, "q"),
        "forward with a null q view: %s", msg);
  t->destroy(impl);
  t->destroy(nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  const bool reduced = reduced_sweep();
  const int n_random = argc > 1 ? std::atoi(argv[1]) : reduced ? 24 : 120;
  const uint64_t seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 20240611;
  std::printf("cpu backend: %s, default kernels %s%s\n", T()->name, umfa::cpu::kernel_isa(),
              reduced ? "; reduced sweep (sanitizer build)" : "");

  table_test();
  // Every variant of either architecture; names this CPU cannot run fall back (and are skipped).
  const char* isas[] = {"avx512bf16", "avx512", "avx2", "neon_bf16", "neon", "generic"};
  std::vector<Case> cases = fixed_cases(reduced);
  std::mt19937_64 rng(seed);
  for (int i = 0; i < n_random; ++i) cases.push_back(random_case(rng, i, reduced));

  std::vector<std::string> ran;
  for (const char* isa : isas) {
    Ctx one(1, isa), three(3, isa);
    // A variant this CPU cannot run falls back to the best supported one: run each once.
    const std::string runs = umfa::cpu::context_isa(one.impl);
    if (std::find(ran.begin(), ran.end(), runs) != ran.end()) {
      std::printf("variant %s runs %s: already tested\n", isa, runs.c_str());
      continue;
    }
    ran.push_back(runs);
    std::printf("variant %s (runs %s): %zu cases\n", isa, runs.c_str(), cases.size());
    for (size_t i = 0; i < cases.size(); ++i) {
      void* impl = (i % 2 == 0 || cases[i].threaded) ? three.impl : one.impl;
      run_case(cases[i], impl, isa, seed * 1000003u + i);
    }
  }
  {
    Ctx ctx(3, nullptr);
    finite_difference_test(ctx.impl);
    concurrency_test(ctx.impl);
  }
  {
    // Deterministic backward: bit-identical across runs and thread counts.
    Case c;
    c.name = "deterministic repeat";
    c.B = 1; c.Hq = 2; c.Nq = 200; c.Nk = 180; c.D = 64; c.deterministic = true; c.softcap = 5.f;
    std::mt19937_64 r2(5);
    Prepared P = prepare(c, r2);
    const int64_t* qs = P.q.shape();
    const int64_t* ks = P.k.shape();
    const int64_t ls[4] = {1, c.Hq, c.Nq, 1};
    std::vector<std::vector<unsigned char>> results;
    for (int threads : {1, 3, 2}) {
      Ctx ctx(threads, nullptr);
      Tensor out = make_tensor(qs, UMFA_DTYPE_F32, 0, 0), lse = make_tensor(ls, UMFA_DTYPE_F32, 0, 0);
      Tensor dq = make_tensor(qs, UMFA_DTYPE_F32, 0, 0), dk = make_tensor(ks, UMFA_DTYPE_F32, 0, 0),
             dv = make_tensor(ks, UMFA_DTYPE_F32, 0, 0);
      Problem pr = make_problem(c, P);
      pr.out = out.v; pr.lse = lse.v; pr.dout = P.dout.v; pr.dq = dq.v; pr.dk = dk.v; pr.dv = dv.v;
      T()->forward(ctx.impl, &pr, nullptr);
      T()->backward(ctx.impl, &pr, nullptr);
      std::vector<unsigned char> all = dq.buf;
      all.insert(all.end(), dk.buf.begin(), dk.buf.end());
      all.insert(all.end(), dv.buf.begin(), dv.buf.end());
      results.push_back(all);
    }
    CHECK(results[0] == results[1] && results[1] == results[2],
          "deterministic backward differs across thread counts");
  }

  std::printf("\nmax normalized error (|got - ref| / max|ref|) by result and dtypes:\n");
  for (const auto& kv : g_stats) std::printf("  %-28s %.3e\n", kv.first.c_str(), kv.second);
  std::printf("\n%d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
