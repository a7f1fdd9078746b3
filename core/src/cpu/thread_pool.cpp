#include "thread_pool.h"

#include <algorithm>
#include <chrono>
#include <system_error>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define UMFA_CPU_RELAX() _mm_pause()
#else
#define UMFA_CPU_RELAX() ((void)0)
#endif

namespace umfa {
namespace cpu {

ThreadPool::ThreadPool(int threads) : threads_(threads > 1 ? threads : 1) {
  workers_.reserve(static_cast<size_t>(threads_ - 1));  // start_workers() never reallocates
  bool started;
  {
    std::lock_guard<std::mutex> lk(mu_);
    started = start_workers();
  }
  if (!started) {
    stop_workers();
    throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                            "the system refused a worker thread");
  }
  register_fork_handler();
}

ThreadPool::~ThreadPool() {
  unregister_fork_handler();
  stop_workers();
}

bool ThreadPool::start_workers() {
  while (static_cast<int>(workers_.size()) < threads_ - 1) {
    os::NativeThread t;
    if (!t.start([](void* self) { static_cast<ThreadPool*>(self)->worker_main(); }, this)) return false;
    workers_.push_back(t);
  }
  return true;
}

void ThreadPool::stop_workers() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (os::NativeThread& t : workers_) t.join();
}

void ThreadPool::fork_prepare() {
  // A worker still starting may be inside the system's thread start-up (which allocates under
  // the allocator's own locks in some runtimes, AddressSanitizer's among them): wait until every
  // worker runs our code, then hold the lock across the fork.
  std::unique_lock<std::mutex> lk(mu_);
  running_cv_.wait(lk, [this] { return running_ == static_cast<int>(workers_.size()); });
  lk.release();
}

void ThreadPool::fork_parent() { mu_.unlock(); }

void ThreadPool::fork_child() {
  // Only the forking thread exists here: the workers and the callers of the listed jobs are
  // gone. The lock (held by this thread since fork_prepare) and the condition variables (which
  // count the vanished workers as waiters) are replaced, never destroyed; run() starts workers.
  for (os::NativeThread& t : workers_) t.forget();
  workers_.clear();
  running_ = 0;
  jobs_.clear();
  os::reconstruct_in_child(mu_);
  os::reconstruct_in_child(work_cv_);
  os::reconstruct_in_child(done_cv_);
  os::reconstruct_in_child(running_cv_);
}

ThreadPool::Job* ThreadPool::find_job() {
  for (Job* j : jobs_) {
    if (j->slots_used < j->max_slots && j->next.load(std::memory_order_relaxed) < j->n) return j;
  }
  return nullptr;
}

namespace {
constexpr int kSpinMicros = 200;
}

void ThreadPool::worker_main() {
  std::unique_lock<std::mutex> lk(mu_);
  ++running_;
  running_cv_.notify_all();
  for (;;) {
    Job* job = nullptr;
    if (!stop_ && (job = find_job()) == nullptr) {
      // Spin (without the lock) until a job is posted or kSpinMicros pass, then block.
      const uint64_t seen = posted_.load(std::memory_order_acquire);
      lk.unlock();
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
      for (int i = 0; posted_.load(std::memory_order_acquire) == seen; ++i) {
        UMFA_CPU_RELAX();
        if ((i & 63) == 63 && std::chrono::steady_clock::now() >= until) break;
      }
      lk.lock();
    }
    work_cv_.wait(lk, [&] { return stop_ || (job = find_job()) != nullptr; });
    if (stop_) return;
    const int slot = job->slots_used++;
    ++job->refs;
    lk.unlock();
    for (;;) {
      const int64_t i = job->next.fetch_add(1, std::memory_order_relaxed);
      if (i >= job->n) break;
      job->fn(job->ctx, i, slot);
    }
    lk.lock();
    if (--job->refs == 0) done_cv_.notify_all();
  }
}

void ThreadPool::run(int64_t n, Fn fn, void* ctx, int max_slots) {
  if (n <= 0) return;
  max_slots = std::min(max_slots, threads());
  if (max_slots <= 1 || n == 1) {
    for (int64_t i = 0; i < n; ++i) fn(ctx, i, 0);
    return;
  }
  Job job;
  job.fn = fn;
  job.ctx = ctx;
  job.n = n;
  job.max_slots = max_slots;
  {
    std::lock_guard<std::mutex> lk(mu_);
    // Workers are missing only in a forked child, until this first call. Should the system
    // refuse a thread, the caller and the workers that did start do the work.
    if (static_cast<int>(workers_.size()) < threads_ - 1) start_workers();
    jobs_.push_back(&job);
    posted_.fetch_add(1, std::memory_order_release);
  }
  work_cv_.notify_all();
  for (;;) {
    const int64_t i = job.next.fetch_add(1, std::memory_order_relaxed);
    if (i >= n) break;
    fn(ctx, i, 0);
  }
  std::unique_lock<std::mutex> lk(mu_);
  jobs_.erase(std::find(jobs_.begin(), jobs_.end(), &job));
  done_cv_.wait(lk, [&] { return job.refs == 0; });
}

}  // namespace cpu
}  // namespace umfa
