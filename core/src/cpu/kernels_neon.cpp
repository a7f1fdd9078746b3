// AArch64 NEON kernels (4 lanes, FMLA, f16 widened with FCVTL, bf16 widened by a shift): the
// baseline ARMv8.0 variant, used on every AArch64 CPU that reports Advanced SIMD (dispatch.cpp).
#include "cpu_common.h"

#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))

#define UMFA_KNS neon
#define UMFA_KNAME "neon"
#define UMFA_KGET kernels_neon
#include "kernels/simd_neon.h"
#include "kernels/flash_attention.h"

#else
namespace umfa {
namespace cpu {
const KernelSet* kernels_neon() { return nullptr; }
}  // namespace cpu
}  // namespace umfa
#endif
