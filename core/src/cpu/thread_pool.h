// A persistent thread pool shared by every call made on one CPU context.
//
// run() may be called from any number of threads at once: each call is its own job (an item
// counter plus a reference count on the caller's stack). Idle workers join whichever job still
// has unclaimed items; the calling thread works on its own job too, so a pool of N threads has
// N - 1 workers and a 1-thread pool runs everything on the caller. Items are claimed with an
// atomic counter, so every item runs exactly once; run() returns after every claimed item has
// finished and no worker references the job any more.
//
// Workers spin for a short while (kSpinMicros) after their last job before they block: on a busy
// machine a blocked thread can take milliseconds to be scheduled again, which matters for calls
// that themselves take a few milliseconds (OpenMP runtimes do the same).
//
// fork(): a child process inherits the pool without its workers (os_threads.h). The pool's lock
// and condition variables are constructed afresh in the child and the workers are started again
// by the child's first run() that needs them, so a forked child can use and destroy the pool.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "os_threads.h"

namespace umfa {
namespace cpu {

class ThreadPool final : private os::ForkHandler {
 public:
  // fn(ctx, item, slot): slot is in [0, max_slots) and unique among the threads working on one
  // job at a time (slot 0 is the calling thread), so it can index per-thread scratch.
  using Fn = void (*)(void* ctx, int64_t item, int slot);

  // Starts threads - 1 workers. Throws std::system_error / std::bad_alloc on failure.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Threads that can work on one job, the caller included (as configured: a forked child may
  // run with fewer until its workers are started again).
  int threads() const { return threads_; }

  // Runs fn for every item in [0, n) using at most max_slots threads; blocks until done.
  void run(int64_t n, Fn fn, void* ctx, int max_slots);

 private:
  struct Job {
    Fn fn = nullptr;
    void* ctx = nullptr;
    int64_t n = 0;
    std::atomic<int64_t> next{0};
    int refs = 0;        // workers inside the job; guarded by mu_
    int slots_used = 1;  // slot 0 belongs to the caller; guarded by mu_
    int max_slots = 1;
  };

  Job* find_job();  // requires mu_
  void worker_main();
  // Starts the workers that are missing (all of them at construction, again in a forked
  // child). Requires mu_. Returns false when the system refused a thread.
  bool start_workers();
  // Stops and joins every worker (destruction, or a failed construction).
  void stop_workers();

  void fork_prepare() override;
  void fork_parent() override;
  void fork_child() override;

  const int threads_;
  std::mutex mu_;
  std::condition_variable work_cv_;  // workers wait here for jobs
  std::condition_variable done_cv_;  // callers wait here for their job's workers to leave
  std::condition_variable running_cv_;  // fork_prepare waits here for workers still starting
  int running_ = 0;                  // workers that reached worker_main; guarded by mu_
  std::vector<Job*> jobs_;           // guarded by mu_
  bool stop_ = false;                // guarded by mu_
  std::atomic<uint64_t> posted_{0};  // jobs posted so far (lets spinning workers notice work)
  std::vector<os::NativeThread> workers_;  // guarded by mu_
};

}  // namespace cpu
}  // namespace umfa
