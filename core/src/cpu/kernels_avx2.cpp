// AVX2 + FMA kernels (8 lanes), compiled for that target whatever the global flags; used only
// when the CPU reports AVX2 and FMA (see dispatch.cpp).
#include "cpu_common.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

#define UMFA_KNS avx2
#define UMFA_KNAME "avx2"
#define UMFA_KGET kernels_avx2
#include "kernels/simd_avx2.h"
#include "kernels/flash_attention.h"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else
namespace umfa {
namespace cpu {
const KernelSet* kernels_avx2() { return nullptr; }
}  // namespace cpu
}  // namespace umfa
#endif
