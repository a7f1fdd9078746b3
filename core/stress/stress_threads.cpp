// Concurrency stress test of the C ABI (ctest `stress_threads`).
//
// A set of small problems covering every option (dtypes, mixed output dtypes, both causal
// alignments, sliding windows, softcap, ALiBi, boolean and additive masks, GQA, varlen, BHSD
// strides) is first run one call at a time, on a context of each kind, to get the expected
// forward (out, lse) and backward (dq, dk, dv) results; those are checked once against the
// float64 reference. Then many threads repeat the calls at the same time:
//   phase 1  every thread on one shared context (its worker pool shared by all calls);
//   phase 2  each thread on a context of its own;
//   phase 3  threads creating and destroying contexts while making good and bad calls, checking
//            that each failing call gets its own message (umfa_last_error(NULL) and the
//            per-call options.error_message) while others fail on the same context.
// Every result must equal the expected one: bit for bit for deterministic calls (forward, and
// backward with UMFA_FLAG_DETERMINISTIC), within 1e-6 of the largest value otherwise.
//
//   umfa_stress_threads [--threads T] [--calls N] [--seconds S]
// N is the number of forward+backward call pairs per phase (default 2000; UMFA_STRESS_CALLS).
#include <atomic>
#include <cstdarg>
#include <tuple>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../tests/test_os.h"
#include "reference.h"
#include "umfa.h"

namespace {

std::atomic<uint64_t> g_calls{0}, g_errors_checked{0}, g_failures{0};
std::mutex g_print;

void failure(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void failure(const char* fmt, ...) {
  if (g_failures.fetch_add(1) > 20) return;  // enough detail
  std::lock_guard<std::mutex> lock(g_print);
  std::fprintf(stderr, "FAILED: ");
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "\n");
}

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 7) {}
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  double uniform(double lo, double hi) { return lo + (hi - lo) * static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

// A dense row-major view of `data` (elements of dtype) with the given shape.
umfa_tensor view(void* data, int32_t dtype, std::initializer_list<int64_t> shape) {
  umfa_tensor t;
  std::vector<int64_t> s(shape);
  umfa_tensor_init_contiguous(&t, data, dtype, static_cast<int32_t>(s.size()), s.data());
  return t;
}

struct Problem {
  std::string name;
  int64_t B = 1, Nq = 1, Nk = 1, Hq = 1, Hkv = 1, D = 16;
  int32_t dtype = UMFA_DTYPE_F32, out_dtype = UMFA_DTYPE_F32;
  bool varlen = false, bhsd = false;
  int mask = 0;  // 0 none, 1 bool, 2 additive
  bool alibi = false;
  umfa_attention_options o{};
  std::vector<int32_t> cu_q, cu_k;
  int64_t Tq = 0, Tk = 0;
  // Inputs (bytes).
  std::vector<unsigned char> q, k, v, dout, mask_data;
  std::vector<float> slopes;
  // Tensors over the inputs (rebuilt per call for outputs).
  umfa_tensor tq{}, tk{}, tv{}, tdout{}, tmask{}, talibi{}, tcuq{}, tcuk{};

  int64_t rows_q() const { return varlen ? Tq : B * Nq; }
  int64_t rows_k() const { return varlen ? Tk : B * Nk; }
  int64_t esize() const { return ref::dtype_size(dtype); }
  int64_t oesize() const { return ref::dtype_size(out_dtype); }

  // A q-like or k-like tensor over `data`, BSHD or (dense, bhsd) BHSD memory.
  umfa_tensor seq(void* data, int32_t dt, bool kv) const {
    const int64_t n = kv ? Nk : Nq, h = kv ? Hkv : Hq;
    if (varlen) return view(data, dt, {kv ? Tk : Tq, h, D});
    umfa_tensor t = view(data, dt, {B, n, h, D});
    if (bhsd) {  // memory [B, H, N, D]
      t.strides[0] = h * n * D;
      t.strides[1] = D;
      t.strides[2] = n * D;
      t.strides[3] = 1;
    }
    return t;
  }
  umfa_tensor lse(float* data) const {
    return varlen ? view(data, UMFA_DTYPE_F32, {Hq, Tq}) : view(data, UMFA_DTYPE_F32, {B, Hq, Nq});
  }
};

void fill(std::vector<unsigned char>& buf, int32_t dtype, int64_t n, Rng& rng, double lo, double hi) {
  buf.assign(static_cast<size_t>(n * ref::dtype_size(dtype)), 0);
  for (int64_t i = 0; i < n; ++i) ref::store(buf.data(), dtype, i, rng.uniform(lo, hi));
}

std::vector<std::unique_ptr<Problem>> make_problems() {
  std::vector<std::unique_ptr<Problem>> ps;
  int seed = 1;
  auto add = [&](const char* name, auto setup) {
    auto p = std::make_unique<Problem>();
    p->name = name;
    std::memset(&p->o, 0, sizeof p->o);
    p->o.struct_size = sizeof p->o;
    setup(*p);
    Rng rng(static_cast<uint64_t>(seed++));
    if (p->varlen) {
      p->Tq = p->cu_q.back() + 1;  // one padding row after the last sequence
      p->Tk = p->cu_k.back();
      p->B = static_cast<int64_t>(p->cu_q.size()) - 1;
    }
    const int64_t nq = p->rows_q() * p->Hq * p->D, nk = p->rows_k() * p->Hkv * p->D;
    fill(p->q, p->dtype, nq, rng, -1, 1);
    fill(p->k, p->dtype, nk, rng, -1, 1);
    fill(p->v, p->dtype, nk, rng, -1, 1);
    fill(p->dout, p->dtype, nq, rng, -1, 1);
    p->tq = p->seq(p->q.data(), p->dtype, false);
    p->tk = p->seq(p->k.data(), p->dtype, true);
    p->tv = p->seq(p->v.data(), p->dtype, true);
    p->tdout = p->seq(p->dout.data(), p->dtype, false);
    if (p->mask == 1) {
      p->mask_data.resize(static_cast<size_t>(p->Nq * p->Nk));
      for (auto& m : p->mask_data) m = rng.next() % 4 != 0;
      p->tmask = view(p->mask_data.data(), UMFA_DTYPE_BOOL, {p->Nq, p->Nk});
      p->o.attn_mask = &p->tmask;
    } else if (p->mask == 2) {
      fill(p->mask_data, UMFA_DTYPE_F32, p->Hq * p->Nq * p->Nk, rng, -2, 2);
      for (int64_t i = 0; i < p->Hq * p->Nq * p->Nk; i += 7)
        ref::store(p->mask_data.data(), UMFA_DTYPE_F32, i, -std::numeric_limits<double>::infinity());
      p->tmask = view(p->mask_data.data(), UMFA_DTYPE_F32, {1, p->Hq, p->Nq, p->Nk});
      p->o.attn_mask = &p->tmask;
    }
    if (p->alibi) {
      for (int64_t h = 0; h < p->Hq; ++h) p->slopes.push_back(static_cast<float>(0.5 / (h + 1)));
      p->talibi = view(p->slopes.data(), UMFA_DTYPE_F32, {p->Hq});
      p->o.alibi_slopes = &p->talibi;
    }
    if (p->varlen) {
      p->tcuq = view(p->cu_q.data(), UMFA_DTYPE_I32, {static_cast<int64_t>(p->cu_q.size())});
      p->tcuk = view(p->cu_k.data(), UMFA_DTYPE_I32, {static_cast<int64_t>(p->cu_k.size())});
      p->o.cu_seqlens_q = &p->tcuq;
      p->o.cu_seqlens_k = &p->tcuk;
    }
    ps.push_back(std::move(p));
  };
  add("plain f32", [](Problem& p) { p.B = 2, p.Nq = 17, p.Nk = 23, p.Hq = 2, p.Hkv = 2, p.D = 32; });
  add("causal bottom-right f16, GQA", [](Problem& p) {
    p.Nq = 20, p.Nk = 33, p.Hq = 4, p.Hkv = 2, p.D = 64, p.dtype = p.out_dtype = UMFA_DTYPE_F16;
    p.o.mask_mode = UMFA_MASK_CAUSAL_BOTTOM_RIGHT;
    p.o.flags = UMFA_FLAG_DETERMINISTIC;
  });
  add("causal top-left bf16, f32 out, BHSD", [](Problem& p) {
    p.B = 2, p.Nq = 31, p.Nk = 19, p.Hq = 2, p.Hkv = 1, p.D = 16, p.dtype = UMFA_DTYPE_BF16, p.bhsd = true;
    p.o.mask_mode = UMFA_MASK_CAUSAL_TOP_LEFT;
  });
  add("window + softcap", [](Problem& p) {
    p.Nq = 40, p.Nk = 40, p.Hq = 3, p.Hkv = 3, p.D = 32;
    p.o.has_window = 1, p.o.window_left = 5, p.o.window_right = 2, p.o.softcap = 2.f;
    p.o.flags = UMFA_FLAG_DETERMINISTIC;
  });
  add("alibi + scale", [](Problem& p) {
    p.Nq = 12, p.Nk = 30, p.Hq = 4, p.Hkv = 1, p.D = 16, p.alibi = true, p.o.softmax_scale = 0.3f;
  });
  add("bool mask", [](Problem& p) { p.Nq = 9, p.Nk = 14, p.Hq = 2, p.Hkv = 2, p.D = 32, p.mask = 1; });
  add("additive mask, f16 in, bf16 out", [](Problem& p) {
    p.Nq = 11, p.Nk = 13, p.Hq = 2, p.Hkv = 1, p.D = 64, p.mask = 2, p.dtype = UMFA_DTYPE_F16,
    p.out_dtype = UMFA_DTYPE_BF16, p.o.flags = UMFA_FLAG_DETERMINISTIC;
  });
  add("varlen causal", [](Problem& p) {
    p.varlen = true, p.Hq = 2, p.Hkv = 2, p.D = 32, p.cu_q = {0, 5, 5, 17}, p.cu_k = {0, 9, 12, 30};
    p.Nq = 12, p.Nk = 18, p.o.mask_mode = UMFA_MASK_CAUSAL_BOTTOM_RIGHT;
  });
  add("varlen window, deterministic", [](Problem& p) {
    p.varlen = true, p.Hq = 4, p.Hkv = 2, p.D = 16, p.cu_q = {0, 7, 20}, p.cu_k = {0, 11, 25};
    p.Nq = 13, p.Nk = 14, p.o.has_window = 1, p.o.window_left = 3, p.o.window_right = -1;
    p.o.flags = UMFA_FLAG_DETERMINISTIC;
  });
  add("multi-block (N > 64)", [](Problem& p) {
    p.Nq = 70, p.Nk = 130, p.Hq = 1, p.Hkv = 1, p.D = 16, p.o.mask_mode = UMFA_MASK_CAUSAL_BOTTOM_RIGHT;
    p.o.flags = UMFA_FLAG_DETERMINISTIC;
  });
  return ps;
}

// One forward + backward result.
struct Result {
  std::vector<unsigned char> out, dq, dk, dv;
  std::vector<float> lse;
};

bool run(umfa_context* ctx, const Problem& p, Result* r, std::string* err) {
  r->out.assign(static_cast<size_t>(p.rows_q() * p.Hq * p.D * p.oesize()), 0xA7);
  r->lse.assign(static_cast<size_t>(p.rows_q() * p.Hq), 0.f);
  umfa_tensor out = p.seq(r->out.data(), p.out_dtype, false);
  umfa_tensor lse = p.lse(r->lse.data());
  umfa_status st = umfa_attention_forward(ctx, &p.o, &p.tq, &p.tk, &p.tv, &out, &lse);
  g_calls.fetch_add(1, std::memory_order_relaxed);
  if (st != UMFA_STATUS_OK) {
    *err = std::string("forward: ") + umfa_status_string(st) + ": " + umfa_last_error(nullptr);
    return false;
  }
  const int64_t nq = p.rows_q() * p.Hq * p.D, nk = p.rows_k() * p.Hkv * p.D;
  r->dq.assign(static_cast<size_t>(nq * p.oesize()), 0xA7);
  r->dk.assign(static_cast<size_t>(nk * p.oesize()), 0xA7);
  r->dv.assign(static_cast<size_t>(nk * p.oesize()), 0xA7);
  umfa_tensor dq = p.seq(r->dq.data(), p.out_dtype, false);
  umfa_tensor dk = p.seq(r->dk.data(), p.out_dtype, true);
  umfa_tensor dv = p.seq(r->dv.data(), p.out_dtype, true);
  st = umfa_attention_backward(ctx, &p.o, &p.tq, &p.tk, &p.tv, &out, &p.tdout, &lse, &dq, &dk, &dv);
  g_calls.fetch_add(1, std::memory_order_relaxed);
  if (st != UMFA_STATUS_OK) {
    *err = std::string("backward: ") + umfa_status_string(st) + ": " + umfa_last_error(nullptr);
    return false;
  }
  return true;
}

// Compares a result with the expected one. Forward and deterministic backward: bit for bit.
bool same(const Problem& p, const Result& a, const Result& b, std::string* why) {
  if (a.out != b.out) return *why = "out differs", false;
  if (std::memcmp(a.lse.data(), b.lse.data(), a.lse.size() * sizeof(float)) != 0) return *why = "lse differs", false;
  const bool exact = (p.o.flags & UMFA_FLAG_DETERMINISTIC) != 0;
  for (auto [name, x, y] : {std::make_tuple("dq", &a.dq, &b.dq), std::make_tuple("dk", &a.dk, &b.dk),
                            std::make_tuple("dv", &a.dv, &b.dv)}) {
    if (exact) {
      if (*x != *y) return *why = std::string(name) + " differs (deterministic)", false;
      continue;
    }
    const int64_t n = static_cast<int64_t>(x->size()) / p.oesize();
    double m = 0.0, worst = 0.0;
    for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(ref::load(y->data(), p.out_dtype, i)));
    for (int64_t i = 0; i < n; ++i)
      worst = std::max(worst, std::fabs(ref::load(x->data(), p.out_dtype, i) - ref::load(y->data(), p.out_dtype, i)));
    const double ulp = p.out_dtype == UMFA_DTYPE_F32 ? 1e-6 : p.out_dtype == UMFA_DTYPE_F16 ? 2e-3 : 1.6e-2;
    if (!(worst <= ulp * std::max(1.0, m))) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "%s differs by %g (largest value %g)", name, worst, m);
      return *why = buf, false;
    }
  }
  return true;
}

// The expected results against the float64 reference (once, single-threaded).
void check_reference(const Problem& p, const Result& r) {
  ref::Problem rp;
  rp.batch = p.B, rp.nq = p.Nq, rp.nk = p.Nk, rp.hq = p.Hq, rp.hkv = p.Hkv, rp.d = p.D, rp.varlen = p.varlen;
  for (int32_t x : p.cu_q) rp.cu_q.push_back(x);
  for (int32_t x : p.cu_k) rp.cu_k.push_back(x);
  rp.total_q = p.Tq, rp.total_k = p.Tk;
  rp.mask_mode = p.o.mask_mode;
  rp.scale = p.o.softmax_scale != 0.f ? p.o.softmax_scale : static_cast<float>(1.0 / std::sqrt(double(p.D)));
  rp.softcap = p.o.softcap, rp.has_window = p.o.has_window != 0;
  rp.window_left = p.o.window_left, rp.window_right = p.o.window_right;
  rp.mask = p.o.attn_mask, rp.alibi = p.o.alibi_slopes;
  rp.q = p.tq, rp.k = p.tk, rp.v = p.tv;
  const ref::ForwardResult f = ref::forward(rp);
  const ref::Tol tf = ref::tolerance(p.dtype, p.out_dtype, false, f.max_abs_score);
  Result& rr = const_cast<Result&>(r);
  const umfa_tensor out = p.seq(rr.out.data(), p.out_dtype, false);
  double m = 0.0;
  for (double w : f.out) m = std::max(m, std::fabs(w));
  ref::for_each_element(out, [&](int64_t flat, int64_t off) {
    const double g = ref::load(out.data, out.dtype, off), w = f.out[static_cast<size_t>(flat)];
    if (!(std::fabs(g - w) <= tf.atol + tf.rtol * std::fabs(w) + tf.ctol * m + 1.5 * f.out_err[static_cast<size_t>(flat / p.D)]))
      failure("%s: out[%" PRId64 "] = %g, reference %g", p.name.c_str(), flat, g, w);
  });
  const umfa_tensor lse = p.lse(rr.lse.data());
  const auto lse_at = [&](int64_t h, int64_t row) {
    return p.varlen ? ref::at(lse, h, row) : ref::at(lse, row / p.Nq, h, row % p.Nq);
  };
  const ref::BackwardResult g = ref::backward(rp, out, p.tdout, lse_at);
  const ref::Tol tb = ref::tolerance(p.dtype, p.out_dtype, true, f.max_abs_score);
  auto cmp = [&](const char* name, std::vector<unsigned char>& buf, const std::vector<double>& want,
                 const std::vector<double>& extra, bool kv) {
    const umfa_tensor t = p.seq(buf.data(), p.out_dtype, kv);
    double mm = 0.0;
    for (double w : want) mm = std::max(mm, std::fabs(w));
    ref::for_each_element(t, [&](int64_t flat, int64_t off) {
      const double gv = ref::load(t.data, t.dtype, off), w = want[static_cast<size_t>(flat)];
      if (!(std::fabs(gv - w) <= tb.atol + tb.rtol * std::fabs(w) + tb.ctol * mm + 1.5 * extra[static_cast<size_t>(flat / p.D)]))
        failure("%s: %s[%" PRId64 "] = %g, reference %g", p.name.c_str(), name, flat, gv, w);
    });
  };
  cmp("dq", rr.dq, g.dq, g.dq_err, false);
  cmp("dk", rr.dk, g.dk, g.dk_err, true);
  cmp("dv", rr.dv, g.dv, g.dv_err, true);
}

umfa_context* context(int32_t threads) {
  umfa_context_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.backend = UMFA_BACKEND_CPU;
  o.num_threads = threads;
  umfa_context* c = nullptr;
  if (umfa_context_create(&o, &c) != UMFA_STATUS_OK) {
    std::fprintf(stderr, "cannot create a context: %s\n", umfa_last_error(nullptr));
    std::exit(1);
  }
  return c;
}

// A bad call whose message must name `token`; returns false on a wrong status or message.
bool bad_call(umfa_context* ctx, const Problem& p, int which, std::string* why) {
  Result r;
  r.out.assign(static_cast<size_t>(p.rows_q() * p.Hq * p.D * p.oesize()), 0xA7);
  const std::vector<unsigned char> before = r.out;
  umfa_tensor out = p.seq(r.out.data(), p.out_dtype, false);
  umfa_tensor q = p.tq;
  umfa_attention_options o = p.o;
  const char* token;
  umfa_status want;
  switch (which % 3) {
    case 0: q.strides[1] = -1; token = "q.strides[1]"; want = UMFA_STATUS_INVALID_STRIDE; break;
    case 1: o.softcap = -1.f; token = "softcap"; want = UMFA_STATUS_INVALID_ARGUMENT; break;
    default: out.rank = 2; token = "out.rank"; want = UMFA_STATUS_INVALID_RANK; break;
  }
  char call_msg[1024];
  std::memset(call_msg, 0x5A, sizeof call_msg);
  o.error_message = call_msg;  // the per-call message: this call's, whatever the others do
  o.error_message_capacity = sizeof call_msg;
  const umfa_status st = umfa_attention_forward(ctx, &o, &q, &p.tk, &p.tv, &out, nullptr);
  g_calls.fetch_add(1, std::memory_order_relaxed);
  g_errors_checked.fetch_add(1, std::memory_order_relaxed);
  const std::string msg = umfa_last_error(nullptr);  // this thread's own failure
  if (st != want) return *why = std::string("bad call returned ") + umfa_status_string(st), false;
  if (msg.find(token) == std::string::npos)
    return *why = "thread message \"" + msg + "\" does not name " + token, false;
  if (strnlen(call_msg, sizeof call_msg) == sizeof call_msg || msg != call_msg)
    return *why = "per-call message \"" + std::string(call_msg, strnlen(call_msg, sizeof call_msg)) +
                  "\" differs from the thread's \"" + msg + "\"", false;
  if (r.out != before) return *why = "a rejected call wrote out", false;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  setenv("UMFA_CUDA_LIB", "/nonexistent/libumfa_cuda.so", 0);
  int threads = 8;
  long calls = 2000;
  if (const char* e = std::getenv("UMFA_STRESS_CALLS")) calls = std::atol(e);
  double seconds = 0.0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--calls" && i + 1 < argc) calls = std::atol(argv[++i]);
    else if (a == "--seconds" && i + 1 < argc) seconds = std::atof(argv[++i]);
    else {
      std::printf("usage: %s [--threads T] [--calls N] [--seconds S]\n", argv[0]);
      return a == "-h" || a == "--help" ? 0 : 2;
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto ps = make_problems();
  const int n = static_cast<int>(ps.size());

  // Expected results: one call at a time, on a shared-kind (2 workers) and a 1-worker context.
  umfa_context* shared = context(2);
  umfa_context* single = context(1);
  std::vector<Result> want_shared(static_cast<size_t>(n)), want_single(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    std::string err;
    if (!run(shared, *ps[static_cast<size_t>(i)], &want_shared[static_cast<size_t>(i)], &err) ||
        !run(single, *ps[static_cast<size_t>(i)], &want_single[static_cast<size_t>(i)], &err)) {
      failure("%s: %s", ps[static_cast<size_t>(i)]->name.c_str(), err.c_str());
      continue;
    }
    check_reference(*ps[static_cast<size_t>(i)], want_shared[static_cast<size_t>(i)]);
  }
  const uint64_t setup_calls = g_calls.load();

  auto deadline_hit = [&]() {
    return seconds > 0 && std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > seconds;
  };
  auto phase = [&](const char* label, auto body) {
    const uint64_t before = g_calls.load();
    const auto s = std::chrono::steady_clock::now();
    std::vector<std::thread> ts;
    std::atomic<long> next{0};
    for (int t = 0; t < threads; ++t) ts.emplace_back([&, t] { body(t, next); });
    for (auto& th : ts) th.join();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - s).count();
    std::printf("  %-44s %8" PRIu64 " calls in %6.2f s\n", label, g_calls.load() - before, dt);
  };

  std::printf("stress_threads: %d problems, %d threads, %ld forward+backward pairs per phase\n", n, threads, calls);
  phase("phase 1: one shared context (2 workers)", [&](int, std::atomic<long>& next) {
    for (long i; (i = next.fetch_add(1)) < calls && !deadline_hit();) {
      const int k = static_cast<int>(i % n);
      Result r;
      std::string err;
      if (!run(shared, *ps[static_cast<size_t>(k)], &r, &err)) failure("shared %s: %s", ps[static_cast<size_t>(k)]->name.c_str(), err.c_str());
      else if (!same(*ps[static_cast<size_t>(k)], r, want_shared[static_cast<size_t>(k)], &err))
        failure("shared %s: %s", ps[static_cast<size_t>(k)]->name.c_str(), err.c_str());
    }
  });
  phase("phase 2: a context per thread (1 worker)", [&](int, std::atomic<long>& next) {
    umfa_context* own = context(1);
    for (long i; (i = next.fetch_add(1)) < calls && !deadline_hit();) {
      const int k = static_cast<int>((i * 7) % n);
      Result r;
      std::string err;
      if (!run(own, *ps[static_cast<size_t>(k)], &r, &err)) failure("own %s: %s", ps[static_cast<size_t>(k)]->name.c_str(), err.c_str());
      else if (!same(*ps[static_cast<size_t>(k)], r, want_single[static_cast<size_t>(k)], &err))
        failure("own %s: %s", ps[static_cast<size_t>(k)]->name.c_str(), err.c_str());
    }
    umfa_context_destroy(own);
  });
  phase("phase 3: context churn, good and bad calls", [&](int t, std::atomic<long>& next) {
    umfa_context* own = nullptr;
    int own_threads = 0;
    for (long i; (i = next.fetch_add(1)) < calls && !deadline_hit();) {
      if (i % 16 == static_cast<long>(t % 16) || !own) {  // a fresh context now and then
        umfa_context_destroy(own);
        own_threads = 1 + static_cast<int>(i % 2);
        own = context(own_threads);
      }
      const int k = static_cast<int>((i * 3) % n);
      const Problem& p = *ps[static_cast<size_t>(k)];
      std::string err;
      if (i % 3 == 0) {
        // Bad calls on the context every thread shares: each thread must read its own message.
        if (!bad_call(shared, p, static_cast<int>(i / 3), &err)) failure("bad call %s: %s", p.name.c_str(), err.c_str());
        continue;
      }
      // Results depend on the worker count only: compare with the expectation of that count.
      umfa_context* c = i % 3 == 1 ? shared : own;
      const bool two = c == shared || own_threads == 2;
      const Result& want = two ? want_shared[static_cast<size_t>(k)] : want_single[static_cast<size_t>(k)];
      Result r;
      if (!run(c, p, &r, &err)) failure("churn %s: %s", p.name.c_str(), err.c_str());
      else if (!same(p, r, want, &err)) failure("churn %s: %s", p.name.c_str(), err.c_str());
    }
    umfa_context_destroy(own);
  });
  umfa_context_destroy(shared);
  umfa_context_destroy(single);

  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const uint64_t total = g_calls.load();
  std::printf("stress_threads: %" PRIu64 " calls (%" PRIu64 " setup, %" PRIu64
              " concurrent, of which %" PRIu64 " expected errors) in %.1f s: %" PRIu64 " failures\n",
              total, setup_calls, total - setup_calls, g_errors_checked.load(), dt, g_failures.load());
  return g_failures.load() == 0 ? 0 : 1;
}
