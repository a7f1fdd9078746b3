// Finds and loads the Metal backend (libumfa_metal) at run time.
//
// Apple platforms: $UMFA_METAL_LIB when set (and nothing else); otherwise libumfa_metal.dylib in
// the folder libumfa itself was loaded from, then the dynamic linker's default search path. AUTO
// may pick it when it loads and sees a GPU.
// Elsewhere there is no Metal: only the library named by $UMFA_METAL_LIB is loaded (the Linux
// test build of the backend, which runs its kernels in a simulator: core/src/metal), it is
// reachable only by asking for UMFA_BACKEND_METAL, and AUTO never picks it.
// A missing library or device is never an error here: the state records why.
#include "api/internal.h"
#include "platform/platform.h"

namespace umfa {
namespace api {
namespace {

#if defined(__APPLE__)
constexpr bool kNativePlatform = true;
#else
constexpr bool kNativePlatform = false;
#endif

constexpr const char* kLibName = "libumfa_metal.dylib";
constexpr const char* kEntry = "umfa_metal_backend_v1";

// Tries one library; on success fills `st` and returns true, else appends the reason.
bool try_load(const std::string& lib, MetalState& st, std::string& reasons) {
  const BackendTable* table = open_backend_library(lib, kEntry, reasons);
  if (!table) return false;
  st.table = table;
  st.path = lib;
  return true;
}

MetalState load() {
  MetalState st;
  std::string reasons;
  bool ok = false;
  if (const std::string env = platform::environment("UMFA_METAL_LIB"); !env.empty()) {
    ok = try_load(env, st, reasons);
    if (!ok) reasons = "UMFA_METAL_LIB=" + env + ": " + reasons;
  } else if (kNativePlatform) {
    const std::string dir = platform::own_module_directory();
    if (!dir.empty()) ok = try_load(platform::path_join(dir, kLibName), st, reasons);
    if (!ok) ok = try_load(kLibName, st, reasons);
  } else {
    st.reason = "Metal exists only on Apple platforms (a simulated backend for tests is loaded "
                "only when UMFA_METAL_LIB names it)";
    return st;
  }
  if (!ok) {
    st.reason = "libumfa_metal not loadable (" + reasons + ")";
    return st;
  }
  st.device_count = st.table->device_count();
  if (st.device_count <= 0) {
    st.device_count = 0;
    st.reason = "no Metal device found (" + st.path + " loaded)";
  }
  st.auto_eligible = kNativePlatform && st.device_count > 0;
  return st;
}


}  // namespace

const MetalState& metal_state() {
  static const MetalState state = load();  // thread-safe one-time initialization
  return state;
}

}  // namespace api
}  // namespace umfa
