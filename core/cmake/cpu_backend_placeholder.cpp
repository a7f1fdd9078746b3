// Placeholder CPU backend, linked only while core/src/cpu provides no backend_table().
// Every operation reports UMFA_STATUS_BACKEND_UNAVAILABLE.
#include <cstdio>

#include "cpu/cpu_backend.h"

namespace umfa {
namespace cpu {
namespace {

umfa_status unavailable(ErrorSink* err) {
  if (err && err->message && err->capacity)
    std::snprintf(err->message, err->capacity, "the CPU backend is not part of this build");
  return UMFA_STATUS_BACKEND_UNAVAILABLE;
}
umfa_status create(int32_t, int32_t, void** out_impl, ErrorSink*) {
  *out_impl = nullptr;
  return UMFA_STATUS_OK;
}
void destroy(void*) {}
uint64_t workspace(void*, const Problem*) { return 0; }
umfa_status run(void*, const Problem*, ErrorSink* err) { return unavailable(err); }
umfa_status alloc(void*, uint64_t, void**, ErrorSink* err) { return unavailable(err); }
void release(void*, void*) {}
umfa_status copy(void*, void*, const void*, uint64_t, ErrorSink* err) { return unavailable(err); }
int32_t device_count() { return 1; }

const BackendTable kTable = {sizeof(BackendTable), "cpu-placeholder", create, destroy, workspace,
                             workspace, run, run, alloc, release, copy, copy, device_count};

}  // namespace

const BackendTable* backend_table() { return &kTable; }
const char* kernel_isa() { return "none"; }
int32_t context_threads(const void*) { return 1; }

}  // namespace cpu
}  // namespace umfa
