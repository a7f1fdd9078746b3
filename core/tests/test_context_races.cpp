// Races the header leaves to the caller, which must still be harmless where they involve
// *different* contexts: destroying one context while calls run on another, and calls on several
// contexts from several threads while other threads create and destroy contexts (each with its
// own thread pool, fork handlers and error state). Every call's result must equal the result of
// a quiet run on a context with the same thread count, and every failing call must report its
// own status and message. Time-bounded (about 2 s), also under ThreadSanitizer
// (scripts/sanitize.sh tsan).
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "test_util.h"

namespace {

constexpr int64_t B = 1, N = 80, H = 2, D = 16;
constexpr int64_t kElems = B * N * H * D;
constexpr int kMaxThreads = 3;

struct Data {
  std::vector<float> q, k, v, dout;
  Data() : q(kElems), k(kElems), v(kElems), dout(kElems) {
    t::Rng rng(11);
    for (auto* x : {&q, &k, &v, &dout})
      for (float& f : *x) f = static_cast<float>(rng.uniform());
  }
};

// Forward then deterministic backward; writes out, dq, dk, dv. Returns the first failing status.
umfa_status attention(umfa_context* ctx, const Data& d, std::vector<float>& results) {
  results.assign(4 * kElems, 0.f);
  float* out = results.data();
  std::vector<float> lse(B * H * N);
  auto view = [](const float* p) {
    return t::tensor4(const_cast<float*>(p), UMFA_DTYPE_F32, B, N, H, D);
  };
  umfa_tensor tq = view(d.q.data()), tk = view(d.k.data()), tv = view(d.v.data()),
              tdo = view(d.dout.data()), to = view(out), tdq = view(out + kElems),
              tdk = view(out + 2 * kElems), tdv = view(out + 3 * kElems);
  umfa_tensor tl;
  const int64_t ls[3] = {B, H, N};
  umfa_tensor_init_contiguous(&tl, lse.data(), UMFA_DTYPE_F32, 3, ls);
  umfa_attention_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.mask_mode = UMFA_MASK_CAUSAL_BOTTOM_RIGHT;
  o.flags = UMFA_FLAG_DETERMINISTIC;
  if (umfa_status st = umfa_attention_forward(ctx, &o, &tq, &tk, &tv, &to, &tl)) return st;
  return umfa_attention_backward(ctx, &o, &tq, &tk, &tv, &to, &tdo, &tl, &tdq, &tdk, &tdv);
}

// A call that fails validation with a per-call message: its status and message are its own.
bool failing_call(umfa_context* ctx, const Data& d) {
  std::vector<float> out(kElems);
  umfa_tensor tq = t::tensor4(const_cast<float*>(d.q.data()), UMFA_DTYPE_F32, B, N, H, D);
  umfa_tensor tk = tq, tv = tq;
  umfa_tensor to = t::tensor4(out.data(), UMFA_DTYPE_F32, B, N, H, D / 2);  // out.shape[3] mismatch
  char msg[256] = {0};
  umfa_attention_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.error_message = msg;
  o.error_message_capacity = sizeof msg;
  const umfa_status st = umfa_attention_forward(ctx, &o, &tq, &tk, &tv, &to, nullptr);
  return st == UMFA_STATUS_SHAPE_MISMATCH && std::strstr(msg, "out.shape[3]") != nullptr;
}

umfa_context* make_context(int threads) {
  umfa_context_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.backend = UMFA_BACKEND_CPU;
  o.num_threads = threads;
  umfa_context* ctx = nullptr;
  return umfa_context_create(&o, &ctx) == UMFA_STATUS_OK ? ctx : nullptr;
}

using Clock = std::chrono::steady_clock;

struct Counters {
  std::atomic<int> wrong{0}, failed{0};
  std::atomic<uint64_t> calls{0}, created{0};
};

// Calls run on one context while the main thread creates, uses and destroys others.
void destroy_another(const Data& d, const std::vector<std::vector<float>>& expected, double seconds) {
  umfa_context* first = make_context(2);
  if (!CHECK(first != nullptr)) return;
  Counters n;
  std::atomic<bool> stop{false};
  std::thread caller([&] {
    std::vector<float> got;
    while (!stop.load()) {
      if (attention(first, d, got) != UMFA_STATUS_OK) ++n.failed;
      else if (got != expected[2]) ++n.wrong;
      if (!failing_call(first, d)) ++n.wrong;
      ++n.calls;
    }
  });
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  std::vector<float> got;
  int i = 0;
  while (Clock::now() < end || n.calls.load() < 3) {
    const int threads = 1 + i++ % kMaxThreads;
    umfa_context* other = make_context(threads);
    if (!other) {
      ++n.failed;
      continue;
    }
    ++n.created;
    if (i % 2 == 0) {  // used, so that its workers are running or spinning when it is destroyed
      if (attention(other, d, got) != UMFA_STATUS_OK) ++n.failed;
      else if (got != expected[static_cast<size_t>(threads)]) ++n.wrong;
    }
    umfa_context_destroy(other);
  }
  stop = true;
  caller.join();
  umfa_context_destroy(first);
  CHECK_EQ(n.failed.load(), 0);
  CHECK_EQ(n.wrong.load(), 0);
  std::printf("destroy another context: %llu call pairs on the first context while %llu others were created and destroyed\n",
              static_cast<unsigned long long>(n.calls.load()), static_cast<unsigned long long>(n.created.load()));
}

// Threads run calls on shared contexts and on contexts of their own, created and destroyed all
// the time, while other threads do the same.
void churn(const Data& d, const std::vector<std::vector<float>>& expected, double seconds) {
  umfa_context* shared[2] = {make_context(1), make_context(3)};
  const int shared_threads[2] = {1, 3};
  if (!CHECK(shared[0] && shared[1])) return;
  Counters n;
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w)
    workers.emplace_back([&, w] {
      std::vector<float> got;
      for (int i = 0; Clock::now() < end || i < 2; ++i) {
        const int action = (w + i) % 4;
        if (action < 2) {
          umfa_context* ctx = shared[action];
          if (attention(ctx, d, got) != UMFA_STATUS_OK) ++n.failed;
          else if (got != expected[static_cast<size_t>(shared_threads[action])]) ++n.wrong;
          if (!failing_call(ctx, d)) ++n.wrong;
        } else {
          const int threads = 1 + (w + i) % kMaxThreads;
          umfa_context* own = make_context(threads);
          if (!own) {
            ++n.failed;
            continue;
          }
          ++n.created;
          if (action == 2) {
            if (attention(own, d, got) != UMFA_STATUS_OK) ++n.failed;
            else if (got != expected[static_cast<size_t>(threads)]) ++n.wrong;
          } else if (!failing_call(own, d)) {
            ++n.wrong;
          }
          umfa_context_destroy(own);
        }
        ++n.calls;
      }
    });
  for (auto& t : workers) t.join();
  for (umfa_context* c : shared) umfa_context_destroy(c);
  CHECK_EQ(n.failed.load(), 0);
  CHECK_EQ(n.wrong.load(), 0);
  std::printf("churn: %llu steps on 4 threads, %llu contexts created and destroyed meanwhile\n",
              static_cast<unsigned long long>(n.calls.load()), static_cast<unsigned long long>(n.created.load()));
}

}  // namespace

int main() {
  const Data d;
  // Results of a quiet run per thread count (the work split, and with it the rounding, depends
  // on the thread count; deterministic backward makes the rest bit-exact).
  std::vector<std::vector<float>> expected(kMaxThreads + 1);
  for (int threads = 1; threads <= kMaxThreads; ++threads) {
    umfa_context* ctx = make_context(threads);
    REQUIRE_OK(ctx ? attention(ctx, d, expected[static_cast<size_t>(threads)]) : UMFA_STATUS_INTERNAL);
    umfa_context_destroy(ctx);
  }
  destroy_another(d, expected, 1.0);
  churn(d, expected, 1.0);
  return t::summary("test_context_races");
}
