// fork() after use: a child process inherits contexts whose worker threads did not survive the
// fork (PyTorch DataLoader workers, multiprocessing). The child must be able to run calls on
// them, get the parent's results, and destroy them; also when another thread of the parent
// was in the middle of a call (or of a failing call) at the moment of the fork, and after a
// second fork from the child.
//
// Every child runs under alarm() and the parent waits with a deadline, so a regression fails
// the test instead of hanging it.
//
// Under AddressSanitizer the forks during calls are skipped: that runtime (clang 14's) does not
// hold its allocator's locks across fork(), so a child forked while another thread is inside
// malloc (as a call's thread often is) can block in its next allocation, whatever the library
// does. glibc's malloc is fork-safe; the normal build runs every case.
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "test_util.h"

namespace {

constexpr int kChildAlarmSeconds = 30;
constexpr double kWaitSeconds = 40.0;

// B=2, N=96, H=2, D=32: enough query blocks to give every worker of a 4-thread context items.
constexpr int64_t B = 2, N = 96, H = 2, D = 32;
constexpr int64_t kElems = B * N * H * D;

struct Problem {
  std::vector<float> q, k, v;
  Problem() : q(kElems), k(kElems), v(kElems) {
    t::Rng rng(7);
    for (auto* x : {&q, &k, &v})
      for (float& f : *x) f = static_cast<float>(rng.uniform());
  }
  // out = attention(q, k, v); returns the status.
  umfa_status forward(umfa_context* ctx, std::vector<float>& out) {
    out.assign(kElems, 0.f);
    umfa_tensor tq = t::tensor4(q.data(), UMFA_DTYPE_F32, B, N, H, D);
    umfa_tensor tk = t::tensor4(k.data(), UMFA_DTYPE_F32, B, N, H, D);
    umfa_tensor tv = t::tensor4(v.data(), UMFA_DTYPE_F32, B, N, H, D);
    umfa_tensor to = t::tensor4(out.data(), UMFA_DTYPE_F32, B, N, H, D);
    return umfa_attention_forward(ctx, nullptr, &tq, &tk, &tv, &to, nullptr);
  }
  // A call that fails validation (out is q's memory): exercises the context's error message.
  umfa_status failing(umfa_context* ctx) {
    umfa_tensor tq = t::tensor4(q.data(), UMFA_DTYPE_F32, B, N, H, D);
    umfa_tensor tk = t::tensor4(k.data(), UMFA_DTYPE_F32, B, N, H, D);
    umfa_tensor tv = t::tensor4(v.data(), UMFA_DTYPE_F32, B, N, H, D);
    umfa_tensor to = tq;
    return umfa_attention_forward(ctx, nullptr, &tq, &tk, &tv, &to, nullptr);
  }
};

umfa_context* make_context(int threads) {
  umfa_context_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.backend = UMFA_BACKEND_CPU;
  o.num_threads = threads;
  umfa_context* ctx = nullptr;
  if (umfa_context_create(&o, &ctx) != UMFA_STATUS_OK) return nullptr;
  return ctx;
}

double now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Child exit codes.
enum { kChildOk = 0, kChildCallFailed = 10, kChildWrongResult = 11, kChildCreateFailed = 12,
       kChildBadMessage = 13, kChildGrandchildFailed = 14 };

// Waits for `pid` with a deadline; kills it when the deadline passes. Returns a description of
// the outcome ("" for a clean exit with code 0).
std::string wait_child(pid_t pid) {
  const double deadline = now() + kWaitSeconds;
  int status = 0;
  for (;;) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0) return t::fmt("waitpid failed (errno %d)", errno);
    if (now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return t::fmt("the child hung for %.0f s (killed)", kWaitSeconds);
    }
    usleep(2000);
  }
  if (WIFSIGNALED(status))
    return t::fmt("the child died of signal %d%s", WTERMSIG(status),
                  WTERMSIG(status) == SIGALRM ? " (its own alarm: it hung)" : "");
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
    return t::fmt("the child exited with code %d", WEXITSTATUS(status));
  return "";
}

// What a child does with an inherited context: a forward call that must reproduce the parent's
// result on that context bit for bit, a failing call whose message must be readable, optionally
// a fork of its own (the grandchild does the same), then destroy. Never returns.
[[noreturn]] void child_body(Problem& p, umfa_context* ctx, const std::vector<float>& expected,
                             bool fork_again) {
  alarm(kChildAlarmSeconds);
  std::vector<float> out;
  if (p.forward(ctx, out) != UMFA_STATUS_OK) _exit(kChildCallFailed);
  if (out != expected) _exit(kChildWrongResult);
  if (p.failing(ctx) != UMFA_STATUS_INVALID_ARGUMENT) _exit(kChildCallFailed);
  if (!std::strstr(umfa_last_error(ctx), "out.data")) _exit(kChildBadMessage);
  if (fork_again) {
    const pid_t pid = fork();
    if (pid == 0) child_body(p, ctx, expected, false);
    if (pid < 0 || !wait_child(pid).empty()) _exit(kChildGrandchildFailed);
  }
  // A context made in the child works too (same thread count: the same work split, the same
  // result).
  int32_t threads = 0;
  umfa_context_num_threads(ctx, &threads);
  umfa_context* fresh = make_context(threads);
  if (!fresh) _exit(kChildCreateFailed);
  if (p.forward(fresh, out) != UMFA_STATUS_OK) _exit(kChildCallFailed);
  if (out != expected) _exit(kChildWrongResult);
  umfa_context_destroy(fresh);
  umfa_context_destroy(ctx);
  _exit(kChildOk);
}

// Forks; the child runs child_body. Checks the outcome.
void fork_and_check(const char* label, Problem& p, umfa_context* ctx,
                    const std::vector<float>& expected, bool fork_again) {
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid == 0) child_body(p, ctx, expected, fork_again);
  CHECK_MSG(pid > 0, "[%s] fork failed (errno %d)", label, errno);
  if (pid <= 0) return;
  const std::string outcome = wait_child(pid);
  CHECK_MSG(outcome.empty(), "[%s] %s", label, outcome.c_str());
}

// The parent used the context (its workers exist and are parked), then forks.
void after_use(Problem& p) {
  for (int threads : {2, 4}) {
    umfa_context* ctx = make_context(threads);
    CHECK(ctx != nullptr);
    if (!ctx) return;
    std::vector<float> expected, out;
    CHECK_STATUS(p.forward(ctx, expected), UMFA_STATUS_OK);
    fork_and_check(threads == 2 ? "after use, 2 threads" : "after use, 4 threads", p, ctx, expected,
                   false);
    // The parent's context is unaffected.
    CHECK_STATUS(p.forward(ctx, out), UMFA_STATUS_OK);
    CHECK(out == expected);
    umfa_context_destroy(ctx);
  }
  // Only destroying in the child: the case that used to hang in pthread_cond_destroy.
  umfa_context* ctx = make_context(4);
  std::vector<float> out;
  CHECK_STATUS(p.forward(ctx, out), UMFA_STATUS_OK);
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(kChildAlarmSeconds);
    umfa_context_destroy(ctx);
    _exit(kChildOk);
  }
  const std::string outcome = wait_child(pid);
  CHECK_MSG(outcome.empty(), "[destroy only] %s", outcome.c_str());
  umfa_context_destroy(ctx);
}

// Another thread of the parent runs calls (valid and failing) on the context while the main
// thread forks: the fork lands in the middle of calls, with workers busy, spinning or parked,
// and sometimes while that thread records an error message.
void during_calls(Problem& p) {
  umfa_context* ctx = make_context(4);
  CHECK(ctx != nullptr);
  if (!ctx) return;
  std::vector<float> expected;
  CHECK_STATUS(p.forward(ctx, expected), UMFA_STATUS_OK);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> calls{0};
  std::atomic<int> errors{0};
  std::thread busy([&] {
    Problem mine;
    std::vector<float> out;
    while (!stop.load()) {
      if (mine.forward(ctx, out) != UMFA_STATUS_OK || out != expected) ++errors;
      if (mine.failing(ctx) != UMFA_STATUS_INVALID_ARGUMENT) ++errors;
      calls.fetch_add(1);
    }
  });
  const int kForks = 12;
  for (int i = 0; i < kForks; ++i) {
    const uint64_t seen = calls.load();
    while (calls.load() == seen) std::this_thread::yield();  // calls are running
    usleep(static_cast<useconds_t>(i * 150));                // land at different points of a call
    fork_and_check(i % 3 == 2 ? "during calls, then a grandchild" : "during calls", p, ctx,
                   expected, i % 3 == 2);
  }
  stop = true;
  busy.join();
  CHECK_EQ(errors.load(), 0);
  umfa_context_destroy(ctx);
}

// A context created but never used (workers parked since creation; the expected result comes
// from another context of the same thread count), and a 1-thread context.
void unused_and_single(Problem& p) {
  for (int threads : {4, 1}) {
    std::vector<float> expected;
    umfa_context* twin = make_context(threads);
    CHECK_STATUS(p.forward(twin, expected), UMFA_STATUS_OK);
    umfa_context_destroy(twin);
    umfa_context* ctx = make_context(threads);
    CHECK(ctx != nullptr);
    if (!ctx) return;
    fork_and_check(threads == 4 ? "never used" : "one thread", p, ctx, expected, false);
    umfa_context_destroy(ctx);
  }
}

}  // namespace

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UMFA_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define UMFA_TEST_ASAN 1
#endif

int main() {
  Problem p;
  after_use(p);
#if defined(UMFA_TEST_ASAN)
  std::printf("test_fork: forks during calls skipped under AddressSanitizer (see the top of the file)\n");
#else
  during_calls(p);
#endif
  unused_and_single(p);
  return t::summary("test_fork");
}
