// platform.h for Windows (built with mingw-w64; written to the Win32 API only, so MSVC builds it
// as well).
#if defined(_WIN32)

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>

#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "platform/platform.h"

namespace umfa {
namespace platform {
namespace {

// An address inside libumfa's own code, to find the module that holds it.
void own_code_marker() {}

std::wstring widen(const std::string& s) {
  if (s.empty()) return std::wstring();
  const int n = MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), nullptr, 0);
  if (n <= 0) return std::wstring();
  std::wstring w(static_cast<size_t>(n), L'\0');
  MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), &w[0], n);
  return w;
}

std::string narrow(const wchar_t* w, size_t len) {
  if (len == 0) return std::string();
  const int n = WideCharToMultiByte(CP_UTF8, 0, w, static_cast<int>(len), nullptr, 0, nullptr, nullptr);
  if (n <= 0) return std::string();
  std::string s(static_cast<size_t>(n), '\0');
  WideCharToMultiByte(CP_UTF8, 0, w, static_cast<int>(len), &s[0], n, nullptr, nullptr);
  return s;
}

std::string system_message(DWORD code) {
  wchar_t* buf = nullptr;
  const DWORD len = FormatMessageW(
      FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
      nullptr, code, 0, reinterpret_cast<wchar_t*>(&buf), 0, nullptr);
  std::string msg = buf ? narrow(buf, len) : std::string();
  if (buf) LocalFree(buf);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r' || msg.back() == ' ')) msg.pop_back();
  char code_text[32];
  std::snprintf(code_text, sizeof code_text, "error %lu", static_cast<unsigned long>(code));
  return msg.empty() ? std::string(code_text) : msg + " (" + code_text + ")";
}

HMODULE own_module(DWORD extra_flags) {
  HMODULE module = nullptr;
  if (!GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | extra_flags,
                          reinterpret_cast<LPCWSTR>(&own_code_marker), &module)) {
    return nullptr;
  }
  return module;
}

bool is_path(const std::string& p) {
  return p.find('/') != std::string::npos || p.find('\\') != std::string::npos ||
         p.find(':') != std::string::npos;
}

}  // namespace

int available_cpus() {
  // The affinity mask covers the process's processor group (at most 64 CPUs). A process that
  // spans several groups (Windows 11 and Server 2022 put threads on all of them) has a mask of
  // its own group only; there GetActiveProcessorCount(ALL_PROCESSOR_GROUPS) is the count.
  USHORT groups = 0;
  if (!GetProcessGroupAffinity(GetCurrentProcess(), &groups, nullptr) &&
      GetLastError() == ERROR_INSUFFICIENT_BUFFER && groups > 1) {
    const DWORD all = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
    if (all >= 1) return static_cast<int>(all);
  }
  DWORD_PTR process_mask = 0, system_mask = 0;
  if (GetProcessAffinityMask(GetCurrentProcess(), &process_mask, &system_mask) && process_mask) {
    int n = 0;
    for (DWORD_PTR m = process_mask; m; m &= m - 1) ++n;
    return n;
  }
  const DWORD all = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
  return all >= 1 ? static_cast<int>(all) : 0;
}

void* aligned_alloc(std::size_t alignment, std::size_t bytes) { return _aligned_malloc(bytes, alignment); }

void aligned_free(void* p) { _aligned_free(p); }

std::string environment(const char* name, bool* set) {
  // The process environment (the C runtime's putenv/_putenv_s update it too), read as UTF-16.
  const std::wstring wname = widen(name);
  SetLastError(0);
  const DWORD n = GetEnvironmentVariableW(wname.c_str(), nullptr, 0);
  if (n == 0) {  // unset, or set to the empty string
    if (set) *set = GetLastError() != ERROR_ENVVAR_NOT_FOUND;
    return std::string();
  }
  std::wstring value(static_cast<size_t>(n), L'\0');
  const DWORD got = GetEnvironmentVariableW(wname.c_str(), &value[0], n);
  if (set) *set = true;
  return narrow(value.c_str(), got < n ? got : 0);
}

std::string backend_library_file(const char* base) { return std::string(base) + ".dll"; }

std::string own_module_directory() {
  HMODULE module = own_module(GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT);
  if (!module) return std::string();
  std::wstring path(MAX_PATH, L'\0');
  for (;;) {
    const DWORD n = GetModuleFileNameW(module, &path[0], static_cast<DWORD>(path.size()));
    if (n == 0) return std::string();
    if (n < path.size()) {
      path.resize(n);
      break;
    }
    if (path.size() >= 32768) return std::string();
    path.resize(path.size() * 2);
  }
  const size_t sep = path.find_last_of(L"\\/");
  return sep == std::wstring::npos ? std::string() : narrow(path.c_str(), sep);
}

std::string path_join(const std::string& dir, const std::string& file) { return dir + "\\" + file; }

void* library_open(const std::string& path, std::string* error) {
  const std::wstring wpath = widen(path);
  // A path: the library's own folder is searched for the DLLs it depends on (the CUDA backend's
  // runtime next to it), then the default directories (application folder, System32, folders
  // added with AddDllDirectory). Systems without these flags (Windows 7 lacking KB2533623) fall
  // back to LOAD_WITH_ALTERED_SEARCH_PATH. A bare name: the system's standard DLL search.
  const bool by_path = is_path(path);
  // No "cannot find the DLL" dialog box for a missing dependency.
  const UINT old_mode = SetErrorMode(SEM_FAILCRITICALERRORS | SEM_NOOPENFILEERRORBOX);
  HMODULE module = LoadLibraryExW(
      wpath.c_str(), nullptr,
      by_path ? LOAD_LIBRARY_SEARCH_DLL_LOAD_DIR | LOAD_LIBRARY_SEARCH_DEFAULT_DIRS : 0);
  if (!module && by_path && GetLastError() == ERROR_INVALID_PARAMETER) {
    module = LoadLibraryExW(wpath.c_str(), nullptr, LOAD_WITH_ALTERED_SEARCH_PATH);
  }
  const DWORD code = module ? 0 : GetLastError();
  SetErrorMode(old_mode);
  if (!module && error) *error = path + ": " + system_message(code);
  return reinterpret_cast<void*>(module);
}

void* library_symbol(void* library, const char* name) {
  return reinterpret_cast<void*>(GetProcAddress(static_cast<HMODULE>(library), name));
}

void library_close(void* library) { FreeLibrary(static_cast<HMODULE>(library)); }

void pin_own_module() { (void)own_module(GET_MODULE_HANDLE_EX_FLAG_PIN); }

}  // namespace platform
}  // namespace umfa

#endif  // _WIN32
