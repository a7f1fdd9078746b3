// The platform seam of the host code: native threads, and what fork() does to them.
//
// After fork() only the forking thread exists in the child. Every other thread is gone, a lock
// one of them held stays locked forever, and a condition variable still counts the waiters
// that vanished (glibc's pthread_cond_destroy, and a broadcast that must wait for them to
// leave, then block forever). So an object that owns threads, locks or condition variables
// derives from ForkHandler and says what to do around a fork:
//
//   fork_prepare()  parent, just before fork(): take its locks, so that no other thread is
//                   halfway through changing the state the child inherits;
//   fork_parent()   parent, just after: release them;
//   fork_child()    child, just after (one thread, the one that forked): make the state usable
//                   again without destroying anything that counts vanished threads: construct
//                   fresh locks and condition variables over the old ones, forget the threads.
//
// Handlers run in registration order before fork() and in reverse order after it. They must not
// take any lock other than their own (a handler never nests with another one).
//
// NativeThread exists because a std::thread of a vanished thread can be neither joined nor
// destroyed (its destructor calls std::terminate); a native handle can simply be forgotten.
//
// Implementations: os_threads_posix.cpp (Linux, macOS: pthreads and pthread_atfork) and
// os_threads_win32.cpp (Windows: _beginthreadex; Windows has no fork(), so the handlers are never
// run and registering one records nothing). Either starts the first thread only after pinning
// libumfa in memory (platform::pin_own_module), so a host that unloads the library under live
// contexts never leaves a parked worker in unmapped code.
#pragma once

#include <mutex>
#include <new>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#elif !defined(_WIN32)
#error "os_threads.h: no thread implementation for this platform (see os_threads_*.cpp)"
#endif

namespace umfa {
namespace os {

class NativeThread {
 public:
  // Runs fn(arg) on a new thread. Returns false, with nothing started, when the system refuses.
  bool start(void (*fn)(void*), void* arg);
  // Waits for the thread to finish (started threads only).
  void join();
  // Drops the handle of a thread that does not exist in this process (a child after fork()).
  void forget() { started_ = false; }
  bool started() const { return started_; }

 private:
#if defined(__unix__) || defined(__APPLE__)
  pthread_t handle_{};
#else
  void* handle_ = nullptr;  // the thread's HANDLE
#endif
  bool started_ = false;
};

struct ForkRegistry;

class ForkHandler {
 public:
  virtual void fork_prepare() = 0;
  virtual void fork_parent() = 0;
  virtual void fork_child() = 0;

 protected:
  ForkHandler() = default;
  ~ForkHandler() = default;
  ForkHandler(const ForkHandler&) = delete;
  ForkHandler& operator=(const ForkHandler&) = delete;

  // Call once the object is fully constructed, and before it starts being torn down.
  void register_fork_handler();
  void unregister_fork_handler();

 private:
  friend struct ForkRegistry;
  ForkHandler* prev_ = nullptr;
  ForkHandler* next_ = nullptr;
};

// A mutex that a forked child can lock: held across fork() by the forking thread (so the state
// it guards is consistent in the child) and constructed afresh in the child.
class ForkSafeMutex final : private ForkHandler {
 public:
  ForkSafeMutex() { register_fork_handler(); }
  ~ForkSafeMutex() { unregister_fork_handler(); }
  void lock() { mu_.lock(); }
  void unlock() { mu_.unlock(); }

 private:
  void fork_prepare() override { mu_.lock(); }
  void fork_parent() override { mu_.unlock(); }
  void fork_child() override;

  std::mutex mu_;
};

// Constructs a fresh T over `object` without running its destructor: the child-side reset of a
// lock or condition variable whose old state refers to threads that no longer exist.
template <class T>
void reconstruct_in_child(T& object) {
  ::new (static_cast<void*>(&object)) T();
}

}  // namespace os
}  // namespace umfa
