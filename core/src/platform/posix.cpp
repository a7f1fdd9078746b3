// platform.h for Linux and macOS.
#if defined(__unix__) || defined(__APPLE__)

#include "platform/platform.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__APPLE__)
#include <sys/sysctl.h>
#include <sys/types.h>
#endif

namespace umfa {
namespace platform {
namespace {

// An address inside libumfa's own code, for dladdr.
void own_code_marker() {}

}  // namespace

int available_cpus() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n >= 1) return n;
  }
  return 0;
#elif defined(__APPLE__)
  // macOS has no CPU affinity; hw.activecpu counts the CPUs currently available to run threads
  // (performance and efficiency cores alike: the thread pool splits work evenly, and the caller
  // can ask for fewer threads with num_threads or UMFA_NUM_THREADS).
  int n = 0;
  size_t len = sizeof n;
  if (sysctlbyname("hw.activecpu", &n, &len, nullptr, 0) == 0 && n >= 1) return n;
  return 0;
#else
  return 0;
#endif
}

void* aligned_alloc(std::size_t alignment, std::size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, alignment, bytes) != 0) return nullptr;
  return p;
}

void aligned_free(void* p) { std::free(p); }

std::string environment(const char* name, bool* set) {
  const char* v = std::getenv(name);
  if (set) *set = v != nullptr;
  return v ? std::string(v) : std::string();
}

std::string backend_library_file(const char* base) {
#if defined(__APPLE__)
  return std::string("lib") + base + ".dylib";
#else
  return std::string("lib") + base + ".so";
#endif
}

std::string own_module_directory() {
  Dl_info info;
  std::memset(&info, 0, sizeof info);
  if (!dladdr(reinterpret_cast<void*>(&own_code_marker), &info) || !info.dli_fname) return "";
  const std::string path = info.dli_fname;
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

std::string path_join(const std::string& dir, const std::string& file) { return dir + "/" + file; }

void* library_open(const std::string& path, std::string* error) {
  dlerror();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle && error) {
    const char* e = dlerror();
    *error = e ? e : "unknown dlopen error";
  }
  return handle;
}

void* library_symbol(void* library, const char* name) { return dlsym(library, name); }

void library_close(void* library) { dlclose(library); }

void pin_own_module() {
#if defined(__APPLE__)
  Dl_info info;
  std::memset(&info, 0, sizeof info);
  if (dladdr(reinterpret_cast<void*>(&own_code_marker), &info) && info.dli_fname) {
    // Marks the already loaded image as never to be unloaded; the reference is kept for good.
    (void)dlopen(info.dli_fname, RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD | RTLD_NODELETE);
  }
#endif
  // Linux: libumfa is linked with -z nodelete (core/CMakeLists.txt).
}

}  // namespace platform
}  // namespace umfa

#endif  // __unix__ || __APPLE__
