// The CPU backend's entry point. The API layer calls it once to get the function table.
#pragma once

#include "../backend.h"

namespace umfa {
namespace cpu {

// Static table; never null. Implemented in core/src/cpu/.
const BackendTable* backend_table();

// The SIMD variant the kernels run with on this machine: "avx512", "avx2" or "generic"
// (static string; the environment variable UMFA_CPU_ISA may select a lower one).
const char* kernel_isa();

// The SIMD variant a context's CPU state (the `impl` that create() returned) runs with.
const char* context_isa(const void* impl);

// Worker threads of a context's CPU state (the `impl` that create() returned), caller included.
int32_t context_threads(const void* impl);

}  // namespace cpu
}  // namespace umfa
