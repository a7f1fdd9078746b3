// Concurrency: many threads calling forward (and deterministic backward) at once on one shared
// context, and on one context per thread; every result must equal, bit for bit, the result of
// the same call made alone on the same context beforehand. Also checks, with a tolerance, that
// a single-worker context computes the same values.
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "test_util.h"

namespace {

struct Case {
  int64_t b, nq, nk, hq, hkv, d;
  int32_t dtype;
  uint32_t mask_mode;
  bool backward;
  std::vector<unsigned char> q, k, v, dout;  // inputs (dtype elements)
  std::vector<float> out, lse;               // forward results (f32), also backward inputs
  std::vector<float> dq, dk, dv;             // expected backward results

  umfa_attention_options options() const {
    umfa_attention_options o;
    std::memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.mask_mode = mask_mode;
    o.flags = UMFA_FLAG_DETERMINISTIC;
    return o;
  }
  umfa_tensor tq() const { return t::tensor4(const_cast<unsigned char*>(q.data()), dtype, b, nq, hq, d); }
  umfa_tensor tk() const { return t::tensor4(const_cast<unsigned char*>(k.data()), dtype, b, nk, hkv, d); }
  umfa_tensor tv() const { return t::tensor4(const_cast<unsigned char*>(v.data()), dtype, b, nk, hkv, d); }
  umfa_tensor tdout() const { return t::tensor4(const_cast<unsigned char*>(dout.data()), dtype, b, nq, hq, d); }
  umfa_tensor tlse(float* p) const {
    umfa_tensor x;
    const int64_t s[3] = {b, hq, nq};
    umfa_tensor_init_contiguous(&x, p, UMFA_DTYPE_F32, 3, s);
    return x;
  }

  // Runs the case into fresh buffers; fills the given vectors.
  umfa_status run(umfa_context* ctx, std::vector<float>& o, std::vector<float>& l, std::vector<float>& gq,
                  std::vector<float>& gk, std::vector<float>& gv) const {
    const umfa_attention_options opts = options();
    o.assign(b * nq * hq * d, 0.f);
    l.assign(b * hq * nq, 0.f);
    umfa_tensor Q = tq(), K = tk(), V = tv();
    umfa_tensor O = t::tensor4(o.data(), UMFA_DTYPE_F32, b, nq, hq, d), L = tlse(l.data());
    umfa_status st = umfa_attention_forward(ctx, &opts, &Q, &K, &V, &O, &L);
    if (st != UMFA_STATUS_OK || !backward) return st;
    gq.assign(b * nq * hq * d, 0.f);
    gk.assign(b * nk * hkv * d, 0.f);
    gv.assign(b * nk * hkv * d, 0.f);
    umfa_tensor DO = tdout();
    umfa_tensor DQ = t::tensor4(gq.data(), UMFA_DTYPE_F32, b, nq, hq, d);
    umfa_tensor DK = t::tensor4(gk.data(), UMFA_DTYPE_F32, b, nk, hkv, d);
    umfa_tensor DV = t::tensor4(gv.data(), UMFA_DTYPE_F32, b, nk, hkv, d);
    return umfa_attention_backward(ctx, &opts, &Q, &K, &V, &O, &DO, &L, &DQ, &DK, &DV);
  }

  bool same(const std::vector<float>& o, const std::vector<float>& l, const std::vector<float>& gq,
            const std::vector<float>& gk, const std::vector<float>& gv) const {
    auto eq = [](const std::vector<float>& a, const std::vector<float>& e) {
      return a.size() == e.size() && std::memcmp(a.data(), e.data(), a.size() * 4) == 0;
    };
    return eq(o, out) && eq(l, lse) && (!backward || (eq(gq, dq) && eq(gk, dk) && eq(gv, dv)));
  }
};

std::vector<std::unique_ptr<Case>> make_cases() {
  struct Spec {
    int64_t b, nq, nk, hq, hkv, d;
    int32_t dtype;
    uint32_t mask;
    bool backward;
  } specs[] = {
      {2, 64, 64, 4, 4, 32, UMFA_DTYPE_F32, UMFA_MASK_NONE, false},
      {1, 97, 130, 4, 2, 64, UMFA_DTYPE_F32, UMFA_MASK_CAUSAL_BOTTOM_RIGHT, false},
      {2, 33, 33, 6, 1, 16, UMFA_DTYPE_BF16, UMFA_MASK_CAUSAL_TOP_LEFT, false},
      {1, 128, 96, 2, 2, 40, UMFA_DTYPE_F16, UMFA_MASK_NONE, false},
      {1, 48, 48, 2, 1, 32, UMFA_DTYPE_F32, UMFA_MASK_CAUSAL_TOP_LEFT, true},
      {2, 17, 29, 4, 2, 8, UMFA_DTYPE_F32, UMFA_MASK_NONE, true},
  };
  std::vector<std::unique_ptr<Case>> cases;
  uint64_t seed = 1;
  for (const Spec& s : specs) {
    auto c = std::make_unique<Case>();
    c->b = s.b, c->nq = s.nq, c->nk = s.nk, c->hq = s.hq, c->hkv = s.hkv, c->d = s.d;
    c->dtype = s.dtype, c->mask_mode = s.mask, c->backward = s.backward;
    const size_t es = umfa_dtype_size(s.dtype);
    c->q.resize(s.b * s.nq * s.hq * s.d * es);
    c->k.resize(s.b * s.nk * s.hkv * s.d * es);
    c->v.resize(c->k.size());
    c->dout.resize(c->q.size());
    t::Rng rng(seed++);
    for (auto* buf : {&c->q, &c->k, &c->v, &c->dout})
      for (size_t i = 0; i < buf->size() / es; ++i) t::store(buf->data(), s.dtype, i, 1.5 * rng.uniform());
    cases.push_back(std::move(c));
  }
  return cases;
}

void hammer(const std::vector<std::unique_ptr<Case>>& cases, umfa_context* shared, int threads, int iters,
            bool own_contexts) {
  std::atomic<int> mismatches{0}, failures{0}, calls{0};
  std::vector<std::thread> pool;
  for (int tid = 0; tid < threads; ++tid)
    pool.emplace_back([&, tid] {
      umfa_context* ctx = shared;
      if (own_contexts && umfa_context_create(nullptr, &ctx) != UMFA_STATUS_OK) {
        ++failures;
        return;
      }
      std::vector<float> o, l, gq, gk, gv;
      for (int it = 0; it < iters; ++it) {
        const Case& c = *cases[(tid * 7 + it) % cases.size()];
        if (c.run(ctx, o, l, gq, gk, gv) != UMFA_STATUS_OK) ++failures;
        else if (!c.same(o, l, gq, gk, gv)) ++mismatches;
        ++calls;
      }
      if (own_contexts) umfa_context_destroy(ctx);
    });
  for (auto& th : pool) th.join();
  std::printf("%d threads on %s: %d calls, %d failed, %d differed from the single-threaded run\n", threads,
              own_contexts ? "one context each" : "one shared context", calls.load(), failures.load(),
              mismatches.load());
  CHECK_EQ(failures.load(), 0);
  CHECK_EQ(mismatches.load(), 0);
}

}  // namespace

int main() {
  auto cases = make_cases();
  umfa_context* shared = nullptr;
  REQUIRE_OK(umfa_context_create(nullptr, &shared));
  int32_t workers = 0;
  umfa_context_num_threads(shared, &workers);
  std::printf("shared context: %d worker threads\n", workers);

  // Expected results: each case alone, on the shared context.
  for (auto& c : cases) REQUIRE_OK(c->run(shared, c->out, c->lse, c->dq, c->dk, c->dv));

  // A single-worker context agrees (to rounding: the work split may differ).
  umfa_context_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.backend = UMFA_BACKEND_CPU;
  o.num_threads = 1;
  umfa_context* single = nullptr;
  REQUIRE_OK(umfa_context_create(&o, &single));
  for (auto& c : cases) {
    std::vector<float> a, l, gq, gk, gv;
    REQUIRE_OK(c->run(single, a, l, gq, gk, gv));
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::fabs(a[i] - c->out[i])));
    for (size_t i = 0; c->backward && i < gq.size(); ++i) worst = std::max(worst, double(std::fabs(gq[i] - c->dq[i])));
    CHECK_MSG(worst < 1e-5, "single-worker context differs by %g", worst);
  }
  umfa_context_destroy(single);

  hammer(cases, shared, 8, 64, false);
  hammer(cases, shared, 16, 16, false);
  hammer(cases, nullptr, 4, 32, true);
  umfa_context_destroy(shared);
  return t::summary("test_threads");
}
