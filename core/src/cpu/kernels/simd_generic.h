// Portable primitives: 4-lane GCC/Clang vector extensions (SSE2 on x86-64, NEON on AArch64 and
// whatever the compiler targets elsewhere), no intrinsics. The fallback on every CPU.
#pragma once

#include "namespace.h"

UMFA_KERNELS_BEGIN
constexpr int kLanes = 4;
constexpr int kRegRows = 6;     // micro-GEMM register block: 6 rows x 2 vectors
constexpr int kRegColVecs = 2;
UMFA_KERNELS_END

#include "simd_types.h"

UMFA_KERNELS_BEGIN

inline vfloat vfma(vfloat a, vfloat b, vfloat c) { return a * b + c; }

UMFA_KERNELS_END

#include "simd_portable.h"

UMFA_KERNELS_BEGIN

#define UMFA_SIMD_F16 0
#define UMFA_SIMD_BF16_DOT 0

inline vfloat vexp(vfloat x) { return vexp_portable(x); }
inline bool all_one(vfloat a) { return all_one_portable(a); }
inline void transpose_block(const float* src, int64_t lds, float* dst, int64_t ldd, int64_t ncols) {
  transpose_block_portable(src, lds, dst, ldd, ncols);
}
inline void reduce16(const vfloat* x, float* out) { reduce16_portable(x, out); }

UMFA_KERNELS_END
