// AArch64 NEON kernels with BFDOT for bf16 inputs (pairs along the reduction, f32 accumulation);
// f32 and f16 inputs run the same code as the neon variant. Compiled for armv8.2-a+bf16 whatever
// the global flags (the rest of the library stays ARMv8.0); used only when the CPU reports BF16
// (HWCAP2_BF16 on Linux, hw.optional.arm.FEAT_BF16 on macOS; see dispatch.cpp).
#include "cpu_common.h"

#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
#include <arm_neon.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("bf16"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+bf16")
#endif

#define UMFA_KNS neon_bf16
#define UMFA_KNAME "neon_bf16"
#define UMFA_KGET kernels_neon_bf16
#include "kernels/simd_neon_bf16.h"
#include "kernels/flash_attention.h"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else
namespace umfa {
namespace cpu {
const KernelSet* kernels_neon_bf16() { return nullptr; }
}  // namespace cpu
}  // namespace umfa
#endif
