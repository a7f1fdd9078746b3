// POSIX implementation of os_threads.h (Linux, macOS): pthreads, and one pthread_atfork
// registration that runs every registered ForkHandler. Windows: os_threads_win32.cpp.
#include "os_threads.h"

#if defined(__unix__) || defined(__APPLE__)

#include <mutex>
#include <new>

#include "platform/platform.h"

namespace umfa {
namespace os {
namespace {

struct Start {
  void (*fn)(void*);
  void* arg;
};

void* thread_entry(void* p) {
  const Start start = *static_cast<Start*>(p);
  delete static_cast<Start*>(p);
  start.fn(start.arg);
  return nullptr;
}

// The registered handlers, as a list threaded through the handlers themselves. g_registry_mu
// is held from fork_prepare to fork_parent (parent) and reconstructed in the child, so the list
// cannot change while a fork is in progress.
std::mutex g_registry_mu;
ForkHandler* g_first = nullptr;
ForkHandler* g_last = nullptr;
std::once_flag g_atfork_once;

}  // namespace

// The pthread_atfork callbacks.
struct ForkRegistry {
  static void prepare() {
    g_registry_mu.lock();
    for (ForkHandler* h = g_first; h; h = h->next_) h->fork_prepare();
  }
  static void parent() {
    for (ForkHandler* h = g_last; h; h = h->prev_) h->fork_parent();
    g_registry_mu.unlock();
  }
  static void child() {
    for (ForkHandler* h = g_last; h; h = h->prev_) h->fork_child();
    reconstruct_in_child(g_registry_mu);
  }
};

bool NativeThread::start(void (*fn)(void*), void* arg) {
  // Workers park inside libumfa's code: it must stay loaded whatever the host unloads later.
  static const bool pinned = (platform::pin_own_module(), true);
  (void)pinned;
  Start* s = new (std::nothrow) Start{fn, arg};
  if (!s) return false;
  if (pthread_create(&handle_, nullptr, thread_entry, s) != 0) {
    delete s;
    return false;
  }
  started_ = true;
  return true;
}

void NativeThread::join() {
  if (!started_) return;
  pthread_join(handle_, nullptr);
  started_ = false;
}

void ForkHandler::register_fork_handler() {
  std::call_once(g_atfork_once, [] {
    pthread_atfork(ForkRegistry::prepare, ForkRegistry::parent, ForkRegistry::child);
  });
  std::lock_guard<std::mutex> lock(g_registry_mu);
  prev_ = g_last;
  next_ = nullptr;
  (g_last ? g_last->next_ : g_first) = this;
  g_last = this;
}

void ForkHandler::unregister_fork_handler() {
  std::lock_guard<std::mutex> lock(g_registry_mu);
  (prev_ ? prev_->next_ : g_first) = next_;
  (next_ ? next_->prev_ : g_last) = prev_;
  prev_ = next_ = nullptr;
}

void ForkSafeMutex::fork_child() { reconstruct_in_child(mu_); }

}  // namespace os
}  // namespace umfa

#endif  // __unix__ || __APPLE__
