// A host that unloads libumfa while contexts it never destroyed still own worker threads: koffi
// does this when Node tears down an environment (it dlclose()s every library whose handles are
// finalized), with the binding's default context alive. The library is linked with
// -z nodelete, so dlclose() leaves it mapped and the parked workers never run unmapped code.
// On Windows the program uses LoadLibrary/FreeLibrary, and umfa.dll pins itself in memory
// before its first worker starts (core/src/platform: pin_own_module); on macOS the image is
// marked RTLD_NODELETE the same way.
//
// Usage: test_unload PATH_TO_LIBUMFA   (the program does not link libumfa: it loads it)
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "test_os.h"
#include "umfa.h"

namespace {

template <typename F>
F symbol(void* lib, const char* name) {
  return reinterpret_cast<F>(test_os::library_symbol(lib, name));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: test_unload PATH_TO_LIBUMFA\n");
    return 2;
  }
  int failures = 0;
  for (int round = 0; round < 20; ++round) {
    void* lib = test_os::library_open(argv[1]);
    if (lib == nullptr) {
      std::fprintf(stderr, "%s: %s\n", test_os::library_open_name(), test_os::library_error().c_str());
      return 1;
    }
    auto create = symbol<decltype(&umfa_context_create)>(lib, "umfa_context_create");
    auto tensor_init = symbol<decltype(&umfa_tensor_init_contiguous)>(lib, "umfa_tensor_init_contiguous");
    auto forward = symbol<decltype(&umfa_attention_forward)>(lib, "umfa_attention_forward");
    if (!create || !tensor_init || !forward) {
      std::fprintf(stderr, "missing entry points\n");
      return 1;
    }
    umfa_context_options copts = {};
    copts.struct_size = sizeof copts;
    copts.backend = UMFA_BACKEND_CPU;
    copts.num_threads = 4;
    umfa_context* ctx = nullptr;
    if (create(&copts, &ctx) != UMFA_STATUS_OK) {
      std::fprintf(stderr, "umfa_context_create failed\n");
      return 1;
    }
    // Enough rows that every worker takes part, so the pool has running threads to park.
    const int64_t shape[4] = {2, 256, 4, 64};
    std::vector<float> q(2 * 256 * 4 * 64, 0.25f), out(q.size());
    umfa_tensor tq, to;
    tensor_init(&tq, q.data(), UMFA_DTYPE_F32, 4, shape);
    tensor_init(&to, out.data(), UMFA_DTYPE_F32, 4, shape);
    if (forward(ctx, nullptr, &tq, &tq, &tq, &to, nullptr) != UMFA_STATUS_OK) {
      std::fprintf(stderr, "umfa_attention_forward failed\n");
      ++failures;
    }
    // The context is never destroyed: the host unloads the library under it.
    test_os::library_close(lib);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::printf("test_unload: 20 unloads with live contexts, %d failures\n", failures);
  std::printf("%s\n", failures == 0 ? "1 passed, 0 failed" : "0 passed, 1 failed");
  return failures == 0 ? 0 : 1;
}
