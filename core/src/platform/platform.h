// The operating-system seams of libumfa's host code, one function per question the core asks
// the system. Everything platform-specific outside the thread layer (cpu/os_threads.h) goes
// through here, so what each platform does is written in one place:
//
//   posix.cpp    Linux and macOS (dlopen/dladdr, posix_memalign; the CPU count per system)
//   windows.cpp  Windows (LoadLibraryExW/GetProcAddress, _aligned_malloc, the process affinity
//                mask, the module pin that stands in for -z nodelete)
//
// docs/platforms.md lists every seam with what each platform does.
#pragma once

#include <cstddef>
#include <string>

namespace umfa {
namespace platform {

// CPUs this process may run on (its affinity mask where the system has one), or 0 when the
// system does not say. Linux: sched_getaffinity. macOS: sysctl hw.activecpu. Windows: the
// process affinity mask (GetProcessAffinityMask), or GetActiveProcessorCount across every
// processor group when the process spans several.
int available_cpus();

// `bytes` (> 0) of memory aligned to `alignment` (a power of two, a multiple of sizeof(void*)),
// or nullptr. Memory from aligned_alloc is released with aligned_free only (on Windows the two
// come from different allocators than malloc/free).
void* aligned_alloc(std::size_t alignment, std::size_t bytes);
void aligned_free(void* p);

// The value of environment variable `name` as UTF-8 (Windows: read as UTF-16 and converted, so
// paths with any characters survive), or an empty string when unset. `*set` tells unset from
// empty when given.
std::string environment(const char* name, bool* set = nullptr);

// The file name of a separately built backend library with base name `base` ("umfa_cuda"):
// libumfa_cuda.so (Linux), libumfa_cuda.dylib (macOS), umfa_cuda.dll (Windows).
std::string backend_library_file(const char* base);

// The folder holding the module that contains libumfa's code (libumfa.so / .dylib / umfa.dll;
// the executable itself when the code is linked into a program), without a trailing separator,
// UTF-8; empty when the system does not say.
std::string own_module_directory();

// Joins a folder and a file name with the platform's separator.
std::string path_join(const std::string& dir, const std::string& file);

// A loaded library. open: `path` (UTF-8) is a file path (searched relative to nothing but the
// current folder) or a bare file name (the system's default library search); on failure returns
// nullptr and sets *error to the system's reason. symbol: the address of an exported function or
// nullptr. close: unloads a library that open returned.
void* library_open(const std::string& path, std::string* error);
void* library_symbol(void* library, const char* name);
void library_close(void* library);

// Keeps the module holding libumfa's code loaded until the process exits, whatever the host
// does later (FreeLibrary). Called before the first worker thread starts: parked workers must
// never return into unmapped code. Linux: the link option -z nodelete does this, and the
// function does nothing. macOS (ld64 has no nodelete option): dlopen of libumfa's own image with
// RTLD_NOLOAD | RTLD_NODELETE. Windows: GetModuleHandleExW with GET_MODULE_HANDLE_EX_FLAG_PIN.
void pin_own_module();

}  // namespace platform
}  // namespace umfa
