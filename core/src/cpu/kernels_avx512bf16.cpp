// AVX-512 kernels with AVX512-BF16 dot products (vdpbf16ps) for bf16 inputs; f32 and f16 inputs
// run the same code as the plain AVX-512 variant. Compiled for that target whatever the global
// flags; used only when the CPU and OS report AVX-512F/BW/VL/DQ and AVX512_BF16 (dispatch.cpp).
#include "cpu_common.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c")
#endif

#define UMFA_KNS avx512bf16
#define UMFA_KNAME "avx512bf16"
#define UMFA_KGET kernels_avx512bf16
#include "kernels/simd_avx512_bf16.h"
#include "kernels/flash_attention.h"

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else
namespace umfa {
namespace cpu {
const KernelSet* kernels_avx512bf16() { return nullptr; }
}  // namespace cpu
}  // namespace umfa
#endif
