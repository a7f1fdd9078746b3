// The per-call error message (umfa_attention_options.error_message / error_message_capacity):
// written on failure only, NUL-terminated and truncated to the capacity, equal to the message
// umfa_last_error() reports, ignored for callers whose struct_size ends before the fields, and
// private to each call: two threads failing differently at the same time on one context each
// read their own message (the shared context message can only hold one of them).
#include <atomic>
#include <cstddef>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace {

constexpr int64_t B = 1, N = 4, H = 2, D = 8;
constexpr size_t kCap = 256;

struct Problem {
  std::vector<float> q, k, v, out, lse, dout, dq, dk, dv;
  umfa_tensor tq, tk, tv, tout, tlse, tdout, tdq, tdk, tdv;

  Problem()
      : q(B * N * H * D), k(B * N * H * D), v(B * N * H * D), out(B * N * H * D), lse(B * H * N),
        dout(B * N * H * D), dq(B * N * H * D), dk(B * N * H * D), dv(B * N * H * D) {
    t::Rng rng(11);
    for (auto* x : {&q, &k, &v, &dout})
      for (float& f : *x) f = static_cast<float>(rng.uniform());
    tq = t::tensor4(q.data(), UMFA_DTYPE_F32, B, N, H, D);
    tk = t::tensor4(k.data(), UMFA_DTYPE_F32, B, N, H, D);
    tv = t::tensor4(v.data(), UMFA_DTYPE_F32, B, N, H, D);
    tout = t::tensor4(out.data(), UMFA_DTYPE_F32, B, N, H, D);
    tdout = t::tensor4(dout.data(), UMFA_DTYPE_F32, B, N, H, D);
    tdq = t::tensor4(dq.data(), UMFA_DTYPE_F32, B, N, H, D);
    tdk = t::tensor4(dk.data(), UMFA_DTYPE_F32, B, N, H, D);
    tdv = t::tensor4(dv.data(), UMFA_DTYPE_F32, B, N, H, D);
    const int64_t ls[3] = {B, H, N};
    umfa_tensor_init_contiguous(&tlse, lse.data(), UMFA_DTYPE_F32, 3, ls);
  }
  umfa_status forward(umfa_context* ctx, const umfa_attention_options* o) {
    return umfa_attention_forward(ctx, o, &tq, &tk, &tv, &tout, &tlse);
  }
  umfa_status backward(umfa_context* ctx, const umfa_attention_options* o) {
    return umfa_attention_backward(ctx, o, &tq, &tk, &tv, &tout, &tdout, &tlse, &tdq, &tdk, &tdv);
  }
};

umfa_attention_options with_slot(char* slot, uint64_t capacity) {
  umfa_attention_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.error_message = slot;
  o.error_message_capacity = capacity;
  return o;
}

bool all_bytes(const char* p, size_t n, char value) {
  for (size_t i = 0; i < n; ++i)
    if (p[i] != value) return false;
  return true;
}

void single_calls(umfa_context* ctx) {
  Problem p;
  char slot[kCap];

  // A failed forward: the slot holds the same message as the context and the thread.
  std::memset(slot, 'x', sizeof slot);
  umfa_attention_options o = with_slot(slot, sizeof slot);
  o.mask_mode = 7;
  CHECK_STATUS(p.forward(ctx, &o), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK_CONTAINS(slot, "options->mask_mode");
  CHECK(std::string(slot) == umfa_last_error(ctx));
  CHECK(std::string(slot) == umfa_last_error(nullptr));

  // A failed backward.
  std::memset(slot, 'x', sizeof slot);
  o = with_slot(slot, sizeof slot);
  p.tdq.dtype = UMFA_DTYPE_I32;
  CHECK_STATUS(p.backward(ctx, &o), UMFA_STATUS_UNSUPPORTED_DTYPE);
  p.tdq.dtype = UMFA_DTYPE_F32;
  CHECK_CONTAINS(slot, "umfa_attention_backward: dq.dtype");
  CHECK(std::string(slot) == umfa_last_error(ctx));

  // A NULL context has no context message: the slot still gets the call's message.
  std::memset(slot, 'x', sizeof slot);
  o = with_slot(slot, sizeof slot);
  CHECK_STATUS(p.forward(nullptr, &o), UMFA_STATUS_NULL_CONTEXT);
  CHECK_CONTAINS(slot, "context is NULL");

  // A struct from a newer caller (larger struct_size) still has the slot at the same place.
  struct {
    umfa_attention_options o;
    unsigned char tail[16];
  } newer;
  std::memset(&newer, 0, sizeof newer);
  std::memset(slot, 'x', sizeof slot);
  newer.o = with_slot(slot, sizeof slot);
  newer.o.struct_size = sizeof newer;
  CHECK_STATUS(p.forward(ctx, &newer.o), UMFA_STATUS_STRUCT_VERSION);
  CHECK_CONTAINS(slot, "options->struct_size");

  // Truncation: capacity - 1 bytes and a NUL; nothing past the capacity.
  std::memset(slot, 'x', sizeof slot);
  o = with_slot(slot, 8);
  o.softcap = -1.f;
  CHECK_STATUS(p.forward(ctx, &o), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK(std::string(slot) == std::string(umfa_last_error(ctx)).substr(0, 7));
  CHECK(all_bytes(slot + 8, sizeof slot - 8, 'x'));
  std::memset(slot, 'x', sizeof slot);
  o = with_slot(slot, 1);
  o.softcap = -1.f;
  CHECK_STATUS(p.forward(ctx, &o), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK(slot[0] == '\0' && all_bytes(slot + 1, sizeof slot - 1, 'x'));

  // Capacity 0, or a NULL pointer: nothing written, no crash.
  std::memset(slot, 'x', sizeof slot);
  o = with_slot(slot, 0);
  o.softcap = -1.f;
  CHECK_STATUS(p.forward(ctx, &o), UMFA_STATUS_INVALID_ARGUMENT);
  CHECK(all_bytes(slot, sizeof slot, 'x'));
  o = with_slot(nullptr, 64);
  o.softcap = -1.f;
  CHECK_STATUS(p.forward(ctx, &o), UMFA_STATUS_INVALID_ARGUMENT);

  // Success leaves the slot alone.
  std::memset(slot, 'x', sizeof slot);
  o = with_slot(slot, sizeof slot);
  CHECK_STATUS(p.forward(ctx, &o), UMFA_STATUS_OK);
  CHECK_STATUS(p.backward(ctx, &o), UMFA_STATUS_OK);
  CHECK(all_bytes(slot, sizeof slot, 'x'));

  // An older caller's struct ends before the fields: whatever lies there is never used.
  for (size_t size : {offsetof(umfa_attention_options, error_message),
                      offsetof(umfa_attention_options, error_message_capacity)}) {
    std::memset(slot, 'x', sizeof slot);
    o = with_slot(slot, sizeof slot);
    o.struct_size = static_cast<uint32_t>(size);
    o.mask_mode = 9;
    CHECK_STATUS(p.forward(ctx, &o), UMFA_STATUS_INVALID_ARGUMENT);
    CHECK_MSG(all_bytes(slot, sizeof slot, 'x'), "struct_size %zu: slot untouched", size);
  }
}

// Two threads on one context, failing at the same time with different errors, many times: each
// must always find its own message in its slot.
void concurrent_failures(umfa_context* ctx) {
  constexpr int kRounds = 2000;
  std::atomic<int> ready{0};
  std::atomic<int> wrong[2] = {{0}, {0}};
  std::atomic<int> context_saw_other{0};
  auto worker = [&](int id) {
    Problem p;
    char slot[kCap];
    const char* mine = id == 0 ? "options->mask_mode" : "options->softcap";
    ready.fetch_add(1);
    while (ready.load() < 2) {
    }
    for (int i = 0; i < kRounds; ++i) {
      std::memset(slot, 0, sizeof slot);
      umfa_attention_options o = with_slot(slot, sizeof slot);
      if (id == 0)
        o.mask_mode = 5;
      else
        o.softcap = -2.f;
      const umfa_status st = (i & 1) ? p.backward(ctx, &o) : p.forward(ctx, &o);
      if (st != UMFA_STATUS_INVALID_ARGUMENT || std::strstr(slot, mine) == nullptr) wrong[id].fetch_add(1);
      // What the shared context message would have said (informative only: it may be either).
      if (std::strstr(umfa_last_error(ctx), mine) == nullptr) context_saw_other.fetch_add(1);
    }
  };
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  CHECK_MSG(wrong[0].load() == 0, "thread 0: %d of %d per-call messages wrong", wrong[0].load(), kRounds);
  CHECK_MSG(wrong[1].load() == 0, "thread 1: %d of %d per-call messages wrong", wrong[1].load(), kRounds);
  std::printf("concurrent failures: %d calls per thread, every per-call message its own; the shared "
              "context message named the other thread's error %d times\n",
              kRounds, context_saw_other.load());
}

}  // namespace

int main() {
  umfa_context_options co;
  std::memset(&co, 0, sizeof co);
  co.struct_size = sizeof co;
  co.backend = UMFA_BACKEND_CPU;
  umfa_context* ctx = nullptr;
  REQUIRE_OK(umfa_context_create(&co, &ctx));
  single_calls(ctx);
  concurrent_failures(ctx);
  umfa_context_destroy(ctx);
  return t::summary("test_call_message");
}
