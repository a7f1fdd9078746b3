// Portable kernels: 4-lane GCC/Clang vector extensions (SSE2 on x86-64, NEON on AArch64), or a
// scalar build of the same code on compilers without vector extensions.
#include "cpu_common.h"

#if defined(__GNUC__) || defined(__clang__)
#define UMFA_KNS generic
#define UMFA_KNAME "generic"
#define UMFA_KGET kernels_generic
#include "kernels/simd_generic.h"
#include "kernels/flash_attention.h"
#else
#error "the CPU kernels need GCC or Clang vector extensions"
#endif
