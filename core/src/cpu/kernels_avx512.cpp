// AVX-512 kernels (16 lanes), compiled for that target whatever the global flags; used only
// when the CPU and OS report AVX-512F/BW/VL/DQ (see dispatch.cpp).
#include "cpu_common.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
#endif

#define UMFA_KNS avx512
#define UMFA_KNAME "avx512"
#define UMFA_KGET kernels_avx512
#include "kernels/simd_avx512.h"
#include "kernels/flash_attention.h"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else
namespace umfa {
namespace cpu {
const KernelSet* kernels_avx512() { return nullptr; }
}  // namespace cpu
}  // namespace umfa
#endif
