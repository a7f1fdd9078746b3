// Finds and loads the CUDA backend (libumfa_cuda.so; umfa_cuda.dll on Windows,
// libumfa_cuda.dylib on macOS: platform::backend_library_file) at run time.
//
// Search order: $UMFA_CUDA_LIB when set (and nothing else); otherwise the backend library in the
// folder libumfa itself was loaded from, then the system's default library search.
// A missing library, a missing entry point or a machine without a GPU is never an error here:
// the state records why, and umfa_build_info() reports it.

#include "api/internal.h"
#include "platform/platform.h"

namespace umfa {
namespace api {
namespace {

constexpr const char* kLibBase = "umfa_cuda";
constexpr const char* kEntry = "umfa_cuda_backend_v1";

// Tries one library; on success fills `st` and returns true, else appends the reason.
bool try_load(const std::string& lib, CudaState& st, std::string& reasons) {
  const BackendTable* table = open_backend_library(lib, kEntry, reasons);
  if (!table) return false;
  st.table = table;
  st.path = lib;
  return true;
}

CudaState load() {
  CudaState st;
  std::string reasons;
  bool ok = false;
  const std::string lib_name = platform::backend_library_file(kLibBase);
  if (const std::string env = platform::environment("UMFA_CUDA_LIB"); !env.empty()) {
    ok = try_load(env, st, reasons);
    if (!ok) reasons = "UMFA_CUDA_LIB=" + env + ": " + reasons;
  } else {
    const std::string dir = platform::own_module_directory();
    if (!dir.empty()) ok = try_load(platform::path_join(dir, lib_name), st, reasons);
    if (!ok) ok = try_load(lib_name, st, reasons);
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
