// Windows implementation of os_threads.h: native threads through the C runtime
// (_beginthreadex, so the runtime's per-thread state is set up and freed), and no fork handling:
// Windows has no fork(), so nothing would ever run a handler and none is recorded.
// POSIX systems: os_threads_posix.cpp.
#include "os_threads.h"

#if defined(_WIN32)

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>

#include <process.h>

#include <new>

#include "platform/platform.h"

namespace umfa {
namespace os {
namespace {

struct Start {
  void (*fn)(void*);
  void* arg;
};

unsigned __stdcall thread_entry(void* p) {
  const Start start = *static_cast<Start*>(p);
  delete static_cast<Start*>(p);
  start.fn(start.arg);
  return 0;
}

}  // namespace

bool NativeThread::start(void (*fn)(void*), void* arg) {
  // Workers park inside umfa.dll: it must stay loaded whatever the host unloads later.
  static const bool pinned = (platform::pin_own_module(), true);
  (void)pinned;
  Start* s = new (std::nothrow) Start{fn, arg};
  if (!s) return false;
  const uintptr_t h = _beginthreadex(nullptr, 0, thread_entry, s, 0, nullptr);
  if (h == 0) {
    delete s;
    return false;
  }
  handle_ = reinterpret_cast<void*>(h);
  started_ = true;
  return true;
}

void NativeThread::join() {
  if (!started_) return;
  WaitForSingleObject(static_cast<HANDLE>(handle_), INFINITE);
  CloseHandle(static_cast<HANDLE>(handle_));
  handle_ = nullptr;
  started_ = false;
}

// No fork() on Windows: a handler is never called, so registering one records nothing.
void ForkHandler::register_fork_handler() {}
void ForkHandler::unregister_fork_handler() {}

// Unreachable on Windows (no fork), defined because the class's vtable names it.
void ForkSafeMutex::fork_child() { reconstruct_in_child(mu_); }

}  // namespace os
}  // namespace umfa

#endif  // _WIN32
