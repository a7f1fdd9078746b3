// The CPU backend spreads one call over its worker threads even when batch × heads is 1 (it
// splits the query blocks): a single-head, single-batch forward and backward on a 2-thread
// context must keep at least two threads of this process busy. Measured with the per-thread
// CPU time Linux keeps in /proc/self/task/<tid>/stat (Windows: GetThreadTimes of every thread
// of the process, in the same 10 ms ticks); the calls repeat until two threads have each used a
// few clock ticks (or a time budget runs out, which fails the test), so a loaded machine only
// makes it slower. Exits 77 (skipped) where the per-thread times are unreadable.
#if defined(_WIN32)
#include "test_os.h"  // windows.h
#include <tlhelp32.h>
#else
#include <dirent.h>
#endif

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace {

// CPU clock ticks (user + system) of every thread of this process.
#if defined(_WIN32)
bool thread_ticks(std::map<long, long>* out) {
  out->clear();
  HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
  if (snap == INVALID_HANDLE_VALUE) return false;
  const DWORD pid = GetCurrentProcessId();
  THREADENTRY32 te;
  te.dwSize = sizeof te;
  for (BOOL more = Thread32First(snap, &te); more; more = Thread32Next(snap, &te)) {
    if (te.th32OwnerProcessID != pid) continue;
    HANDLE th = OpenThread(THREAD_QUERY_LIMITED_INFORMATION, FALSE, te.th32ThreadID);
    if (!th) continue;
    FILETIME created, exited, kernel, user;
    if (GetThreadTimes(th, &created, &exited, &kernel, &user)) {
      const auto ticks100ns = [](const FILETIME& f) {
        return (static_cast<long long>(f.dwHighDateTime) << 32) | f.dwLowDateTime;
      };
      (*out)[static_cast<long>(te.th32ThreadID)] =
          static_cast<long>((ticks100ns(kernel) + ticks100ns(user)) / 100000);  // 10 ms ticks
    }
    CloseHandle(th);
  }
  CloseHandle(snap);
  return true;
}
#else
bool thread_ticks(std::map<long, long>* out) {
  out->clear();
  DIR* dir = opendir("/proc/self/task");
  if (!dir) return false;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(std::string("/proc/self/task/") + e->d_name + "/stat");
    std::string line;
    if (!std::getline(f, line)) continue;
    const size_t paren = line.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream fields(line.substr(paren + 2));  // from field 3 (state) on
    std::string skip;
    for (int i = 3; i < 14; ++i) fields >> skip;
    long utime = 0, stime = 0;
    fields >> utime >> stime;
    (*out)[std::stol(e->d_name)] = utime + stime;
  }
  closedir(dir);
  return true;
}
#endif

}  // namespace

int main() {
  std::map<long, long> probe;
  if (!thread_ticks(&probe) || probe.empty()) {
    std::printf("SKIP: the per-thread CPU times are not readable here\n");
    return 77;
  }
  const int64_t N = 2048, D = 64;
  std::vector<float> q(N * D), k(N * D), v(N * D), out(N * D), lse(N), dout(N * D), dq(N * D), dk(N * D), dv(N * D);
  t::Rng rng(5);
  for (auto* x : {&q, &k, &v, &dout})
    for (float& f : *x) f = static_cast<float>(rng.uniform());
  umfa_tensor tq = t::tensor4(q.data(), UMFA_DTYPE_F32, 1, N, 1, D), tk = t::tensor4(k.data(), UMFA_DTYPE_F32, 1, N, 1, D),
              tv = t::tensor4(v.data(), UMFA_DTYPE_F32, 1, N, 1, D), to = t::tensor4(out.data(), UMFA_DTYPE_F32, 1, N, 1, D),
              tdo = t::tensor4(dout.data(), UMFA_DTYPE_F32, 1, N, 1, D), tdq = t::tensor4(dq.data(), UMFA_DTYPE_F32, 1, N, 1, D),
              tdk = t::tensor4(dk.data(), UMFA_DTYPE_F32, 1, N, 1, D), tdv = t::tensor4(dv.data(), UMFA_DTYPE_F32, 1, N, 1, D);
  umfa_tensor tl;
  const int64_t ls[3] = {1, 1, N};
  umfa_tensor_init_contiguous(&tl, lse.data(), UMFA_DTYPE_F32, 3, ls);

  umfa_context_options co;
  std::memset(&co, 0, sizeof co);
  co.struct_size = sizeof co;
  co.backend = UMFA_BACKEND_CPU;
  co.num_threads = 2;
  umfa_context* ctx = nullptr;
  REQUIRE_OK(umfa_context_create(&co, &ctx));
  REQUIRE_OK(umfa_attention_forward(ctx, nullptr, &tq, &tk, &tv, &to, &tl));  // starts the pool

  for (int backward = 0; backward < 2; ++backward) {
    std::map<long, long> before, after;
    thread_ticks(&before);
    const auto start = std::chrono::steady_clock::now();
    int calls = 0, busy = 0;
    std::string per_thread;
    for (;;) {
      umfa_status st = backward ? umfa_attention_backward(ctx, nullptr, &tq, &tk, &tv, &to, &tdo, &tl, &tdq, &tdk, &tdv)
                                : umfa_attention_forward(ctx, nullptr, &tq, &tk, &tv, &to, &tl);
      if (st != UMFA_STATUS_OK) {
        CHECK_STATUS(st, UMFA_STATUS_OK);
        break;
      }
      ++calls;
      thread_ticks(&after);
      busy = 0;
      per_thread.clear();
      for (const auto& [tid, ticks] : after) {
        const auto it = before.find(tid);
        const long used = ticks - (it == before.end() ? 0 : it->second);
        if (used >= 3) ++busy;
        if (used > 0) per_thread += t::fmt(" %ld", used);
      }
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (busy >= 2 || secs > 60) break;
    }
    std::printf("%s, B = 1, H = 1, N = %lld, D = %lld, 2-thread context: %d calls; CPU ticks per thread:%s\n",
                backward ? "backward" : "forward", (long long)N, (long long)D, calls, per_thread.c_str());
    CHECK_MSG(busy >= 2, "%s: only %d thread(s) of the process did work (ticks:%s)",
              backward ? "backward" : "forward", busy, per_thread.c_str());
  }
  umfa_context_destroy(ctx);
  return t::summary("test_parallel");
}
