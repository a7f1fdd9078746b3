// Operating-system helpers shared by the core's tests, fuzz replay and stress programs, so that
// they build and run on POSIX systems and on Windows (mingw-w64, run under wine in CI) without
// #ifdefs in each test: environment changes, loading a library by path, peak resident memory.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#include <psapi.h>
// windows.h defines IN, OUT and OPTIONAL as empty macros (SAL annotations); tests use them as
// names.
#undef IN
#undef OUT
#undef OPTIONAL

// POSIX setenv/unsetenv over the C runtime's _putenv_s, which updates the process environment
// too (the library reads both std::getenv and, for paths, GetEnvironmentVariableW).
inline int setenv(const char* name, const char* value, int overwrite) {
  if (!overwrite && std::getenv(name)) return 0;
  return _putenv_s(name, value) == 0 ? 0 : -1;
}
inline int unsetenv(const char* name) { return _putenv_s(name, "") == 0 ? 0 : -1; }
#else
#include <dlfcn.h>
#include <sys/resource.h>
#if defined(__APPLE__)
#include <mach/mach.h>
#endif
#endif

// The printf dialect for format checks: mingw-w64 builds use its C99 printf family
// (__USE_MINGW_ANSI_STDIO, core/CMakeLists.txt), GNU's dialect rather than msvcrt's.
#if defined(__MINGW32__)
#define TEST_PRINTF_FORMAT gnu_printf
#else
#define TEST_PRINTF_FORMAT printf
#endif

namespace test_os {

// A library loaded by path (dlopen / LoadLibraryA), its exported symbols, and why it failed.
inline void* library_open(const char* path) {
#if defined(_WIN32)
  return reinterpret_cast<void*>(LoadLibraryA(path));
#else
  return dlopen(path, RTLD_NOW | RTLD_LOCAL);
#endif
}
inline void* library_symbol(void* lib, const char* name) {
#if defined(_WIN32)
  return reinterpret_cast<void*>(GetProcAddress(static_cast<HMODULE>(lib), name));
#else
  return dlsym(lib, name);
#endif
}
inline void library_close(void* lib) {
#if defined(_WIN32)
  FreeLibrary(static_cast<HMODULE>(lib));
#else
  dlclose(lib);
#endif
}
inline std::string library_error() {
#if defined(_WIN32)
  return "LoadLibrary error " + std::to_string(static_cast<unsigned long>(GetLastError()));
#else
  const char* e = dlerror();
  return e ? e : "unknown dlopen error";
#endif
}
// What the platform calls the operation, for messages.
inline const char* library_open_name() {
#if defined(_WIN32)
  return "LoadLibrary";
#else
  return "dlopen";
#endif
}

// The process's peak resident memory so far in KiB (getrusage ru_maxrss: KiB on Linux, bytes on
// macOS; Windows: the peak working set), 0 when unknown.
inline int64_t peak_rss_kib() {
#if defined(_WIN32)
  PROCESS_MEMORY_COUNTERS pmc;
  if (!GetProcessMemoryInfo(GetCurrentProcess(), &pmc, sizeof pmc)) return 0;
  return static_cast<int64_t>(pmc.PeakWorkingSetSize / 1024);
#else
  rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
#if defined(__APPLE__)
  return static_cast<int64_t>(ru.ru_maxrss / 1024);
#else
  return static_cast<int64_t>(ru.ru_maxrss);
#endif
#endif
}

// The current resident memory in bytes on systems without /proc (Windows: the working set;
// macOS: the task's resident size), 0 elsewhere (Linux reads /proc/self/status instead).
inline int64_t current_rss_bytes_without_proc() {
#if defined(_WIN32)
  PROCESS_MEMORY_COUNTERS pmc;
  if (!GetProcessMemoryInfo(GetCurrentProcess(), &pmc, sizeof pmc)) return 0;
  return static_cast<int64_t>(pmc.WorkingSetSize);
#elif defined(__APPLE__)
  mach_task_basic_info_data_t info;
  mach_msg_type_number_t count = MACH_TASK_BASIC_INFO_COUNT;
  if (task_info(mach_task_self(), MACH_TASK_BASIC_INFO, reinterpret_cast<task_info_t>(&info),
                &count) != KERN_SUCCESS) {
    return 0;
  }
  return static_cast<int64_t>(info.resident_size);
#else
  return 0;
#endif
}

}  // namespace test_os
