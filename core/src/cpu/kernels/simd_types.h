// Vector types and the primitives every SIMD variant shares, written with GCC/Clang vector
// extensions. Included by a simd_<isa>.h after it has defined
//   constexpr int kLanes      f32 lanes per vector (4, 8, 16)
// inside the variant's namespace. The primitives file then defines, for its instruction set:
//   kRegRows, kRegColVecs     the micro-GEMM's register block (rows x vectors of accumulators)
//   vfma(a, b, c)             a*b + c, fused where the ISA has it
//   vexp(x)                   exp of f32 lanes (see simd_portable.h for the contract)
//   all_one(a)                every lane exactly 1
//   transpose_block(...)      a kLanes x kLanes transpose
//   reduce16(x, out)          the lane sums of 16 vectors
//   UMFA_SIMD_F16             1 when load_f16(p) converts kLanes f16 values to f32 in registers
//   UMFA_SIMD_BF16_DOT        1 when bf16 pair dot products accumulate in f32 (see micro_gemm.h):
//                             then also the type vbf16x2 and bf16x2_load, bf16x2_broadcast,
//                             bf16x2_dot, bf16x2_from_f32, bf16x2_store, bf16_store_row.
#pragma once

#include "namespace.h"

UMFA_KERNELS_BEGIN

static_assert(kLanes == 4 || kLanes == 8 || kLanes == 16, "lanes per vector");

typedef float vfloat __attribute__((vector_size(kLanes * 4)));
typedef float vfloat_u __attribute__((vector_size(kLanes * 4), aligned(4), __may_alias__));
typedef int32_t vint __attribute__((vector_size(kLanes * 4)));
typedef uint32_t vuint __attribute__((vector_size(kLanes * 4)));
typedef uint16_t vhalf_u __attribute__((vector_size(kLanes * 2), aligned(2), __may_alias__));
typedef uint32_t vuint_u __attribute__((vector_size(kLanes * 4), aligned(4), __may_alias__));
typedef uint32_t u32_unaligned __attribute__((aligned(2), __may_alias__));

inline vfloat vload(const float* p) { return *reinterpret_cast<const vfloat_u*>(p); }
inline void vstore(float* p, vfloat v) { *reinterpret_cast<vfloat_u*>(p) = v; }
// x - (+0) == x for every x (incl. -0 and NaN), so the compiler folds it to a plain broadcast.
inline vfloat splat(float x) { return x - vfloat{}; }
inline vint splat_int(int32_t x) { return x - vint{}; }

// Lane-wise max; a NaN in `b` is kept (a NaN in `a` is not, which is fine: NaN scores reach the
// sum through exp() anyway).
inline vfloat vmax(vfloat a, vfloat b) { return a > b ? a : b; }

inline float hsum(vfloat v) {
  float s = 0.f;
  for (int i = 0; i < kLanes; ++i) s += v[i];
  return s;
}

// kLanes raw bf16 values widened to f32 (exact: a bf16 is the top half of an f32).
inline vfloat widen_bf16(const uint16_t* p) {
  const vuint x = __builtin_convertvector(*reinterpret_cast<const vhalf_u*>(p), vuint) << 16;
  return reinterpret_cast<vfloat>(x);
}

UMFA_KERNELS_END
