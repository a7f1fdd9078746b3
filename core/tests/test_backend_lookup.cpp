// Where libumfa looks for its GPU backend when UMFA_CUDA_LIB is not set: the backend library
// (libumfa_cuda.so, umfa_cuda.dll, libumfa_cuda.dylib) in the folder libumfa itself was loaded
// from (core/src/platform: own_module_directory, backend_library_file). The program copies
// libumfa and the mock backend, under the backend's file name, into a fresh folder, loads that
// copy of libumfa by path, and checks that it found the mock next to itself.
//
// Usage: test_backend_lookup PATH_TO_LIBUMFA PATH_TO_MOCK_BACKEND
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "test_os.h"
#include "umfa.h"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: test_backend_lookup PATH_TO_LIBUMFA PATH_TO_MOCK_BACKEND\n");
    return 2;
  }
#if defined(_WIN32)
  const char* backend_file = "umfa_cuda.dll";
#elif defined(__APPLE__)
  const char* backend_file = "libumfa_cuda.dylib";
#else
  const char* backend_file = "libumfa_cuda.so";
#endif
  unsetenv("UMFA_CUDA_LIB");  // the search order without the override

  std::error_code ec;
  const auto stamp = static_cast<unsigned long long>(
      std::chrono::steady_clock::now().time_since_epoch().count());
  const fs::path dir = fs::temp_directory_path(ec) / ("umfa_backend_lookup_" + std::to_string(stamp));
  fs::create_directories(dir, ec);
  const fs::path lib = dir / fs::path(argv[1]).filename();
  if (ec || !fs::copy_file(argv[1], lib, ec) || !fs::copy_file(argv[2], dir / backend_file, ec)) {
    std::fprintf(stderr, "cannot set up %s: %s\n", dir.string().c_str(), ec.message().c_str());
    return 1;
  }

  int failures = 0;
  void* h = test_os::library_open(lib.string().c_str());
  if (!h) {
    std::fprintf(stderr, "%s %s: %s\n", test_os::library_open_name(), lib.string().c_str(),
                 test_os::library_error().c_str());
    return 1;
  }
  auto available = reinterpret_cast<decltype(&umfa_backend_available)>(
      test_os::library_symbol(h, "umfa_backend_available"));
  auto build_info = reinterpret_cast<decltype(&umfa_build_info)>(test_os::library_symbol(h, "umfa_build_info"));
  if (!available || !build_info) {
    std::fprintf(stderr, "missing entry points\n");
    return 1;
  }
  int32_t is_available = -1, devices = -1;
  const umfa_status st = available(UMFA_BACKEND_CUDA, &is_available, &devices);
  const std::string info = build_info();
  std::printf("libumfa copy: %s\nbuild info: %s\n", lib.string().c_str(), info.c_str());
  if (st != UMFA_STATUS_OK || is_available != 1 || devices != 2) {
    std::fprintf(stderr, "FAILED: the backend next to the library was not loaded (status %d, available %d, devices %d)\n",
                 static_cast<int>(st), is_available, devices);
    ++failures;
  }
  if (info.find(backend_file) == std::string::npos || info.find(dir.filename().string()) == std::string::npos) {
    std::fprintf(stderr, "FAILED: the build info does not name %s in %s\n", backend_file, dir.string().c_str());
    ++failures;
  }
  // The library stays loaded (its CUDA state holds the backend); only the copies' folder goes
  // where the system allows removing loaded files.
  fs::remove_all(dir, ec);
  std::printf("%s\n", failures == 0 ? "1 passed, 0 failed" : "0 passed, 1 failed");
  return failures == 0 ? 0 : 1;
}
