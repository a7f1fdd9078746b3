// Finds and loads the CUDA backend (libumfa_cuda.so) at run time.
//
// Search order: $UMFA_CUDA_LIB when set (and nothing else); otherwise libumfa_cuda.so in the
// folder libumfa itself was loaded from, then the dynamic linker's default search path.
// A missing library, a missing entry point or a machine without a GPU is never an error here:
// the state records why, and umfa_build_info() reports it.
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>

#include "api/internal.h"

namespace umfa {
namespace api {
namespace {

constexpr const char* kLibName = "libumfa_cuda.so";
constexpr const char* kEntry = "umfa_cuda_backend_v1";

std::string own_directory() {
  Dl_info info;
  std::memset(&info, 0, sizeof info);
  if (!dladdr(reinterpret_cast<void*>(&umfa_version), &info) || !info.dli_fname) return "";
  std::string path = info.dli_fname;
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

std::string dl_error() {
  const char* e = dlerror();
  return e ? e : "unknown dlopen error";
}

// Tries one library; on success fills `st` and returns true, else appends the reason.
bool try_load(const std::string& lib, CudaState& st, std::string& reasons) {
  dlerror();
  void* handle = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    if (!reasons.empty()) reasons += "; ";
    reasons += dl_error();
    return false;
  }
  auto entry = reinterpret_cast<umfa_cuda_backend_v1_fn>(dlsym(handle, kEntry));
  const BackendTable* table = entry ? entry() : nullptr;
  std::string why;
  if (!entry) {
    why = lib + " does not export " + kEntry;
  } else if (!table) {
    why = std::string(kEntry) + "() returned NULL";
  } else if (table->struct_size < kBackendTableMinSize || !table->create || !table->destroy ||
             !table->forward || !table->backward || !table->forward_workspace ||
             !table->backward_workspace || !table->alloc || !table->free ||
             !table->copy_to_device || !table->copy_to_host || !table->device_count) {
    why = lib + " has an incompatible backend table";
  }
  if (!why.empty()) {
    dlclose(handle);
    if (!reasons.empty()) reasons += "; ";
    reasons += why;
    return false;
  }
  // Loaded for the life of the process (never dlclose'd: contexts may hold its state).
  st.table = table;
  st.path = lib;
  return true;
}

CudaState load() {
  CudaState st;
  std::string reasons;
  bool ok = false;
  if (const char* env = std::getenv("UMFA_CUDA_LIB"); env && *env) {
    ok = try_load(env, st, reasons);
    if (!ok) reasons = "UMFA_CUDA_LIB=" + std::string(env) + ": " + reasons;
  } else {
    std::string dir = own_directory();
    if (!dir.empty()) ok = try_load(dir + "/" + kLibName, st, reasons);
    if (!ok) ok = try_load(kLibName, st, reasons);
  }
  if (!ok) {
    st.reason = "libumfa_cuda not loadable (" + reasons + ")";
    return st;
  }
  st.device_count = st.table->device_count();
  if (st.device_count <= 0) {
    st.device_count = 0;
    st.reason = "no CUDA device found (" + st.path + " loaded)";
  }
  return st;
}

}  // namespace

const CudaState& cuda_state() {
  static const CudaState state = load();  // thread-safe one-time initialization
  return state;
}

}  // namespace api
}  // namespace umfa
