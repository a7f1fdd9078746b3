#include "thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define UMFA_CPU_RELAX() _mm_pause()
#else
#define UMFA_CPU_RELAX() ((void)0)
#endif

namespace umfa {
namespace cpu {

ThreadPool::ThreadPool(int threads) {
  const int workers = threads > 1 ? threads - 1 : 0;
  workers_.reserve(static_cast<size_t>(workers));
  try {
    for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { worker_main(); });
  } catch (...) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : workers_) t.join();
    throw;
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
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
