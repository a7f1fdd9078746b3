// Micro-GEMMs and the blocked GEMMs built on them: the only place the reduction of a tile runs.
// The register block (kRegRows x kRegColVecs vectors of accumulators) comes from the variant's
// primitives file; the bf16 pair form exists where the ISA has bf16 dot products.
#pragma once

#include "simd_types.h"

UMFA_KERNELS_BEGIN

constexpr int64_t BM = kBM;  // query rows per tile (vector lanes of Sᵀ and Oᵀ rows)
constexpr int64_t BN = kBN;  // keys per block
constexpr bool kHasBf16Dot = UMFA_SIMD_BF16_DOT != 0;
static_assert(BM % kLanes == 0 && BN % 2 == 0, "tile sizes");
static_assert(kRegRows >= 1 && kRegRows <= 8 && kRegColVecs >= 1 && kRegColVecs <= 4,
              "register block out of range");

// ---------------------------------------------------------------------------------------------
// Micro-kernels: C[R][CV*kLanes] (+)= A[R][K] · B[K][CV*kLanes]. A is read one element at a time
// (broadcast) at A[r*ars + k*aks], so any strides work, user memory included; B and C are
// vector rows (ldb, ldc). The R x CV accumulators stay in registers across the K loop.
// ---------------------------------------------------------------------------------------------
// With MX, also colmax[c*kLanes ..] = max(colmax, max over the R rows) (the softmax's running max,
// taken while the scores are still in registers).
template <int R, int CV, bool ACC, bool MX = false>
void micro_gemm(const float* __restrict A, int64_t ars, int64_t aks, const float* __restrict B,
        int64_t ldb, int64_t K, float* __restrict C, int64_t ldc, float* __restrict colmax = nullptr) {
  vfloat acc[R][CV];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < CV; ++c) acc[r][c] = ACC ? vload(C + r * ldc + c * kLanes) : vfloat{};
  }
  const float* ar[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) ar[r] = A + r * ars;
  int64_t ao = 0;
  for (int64_t k = 0; k < K; ++k, ao += aks) {
    vfloat b[CV];
#pragma GCC unroll 4
    for (int c = 0; c < CV; ++c) b[c] = vload(B + k * ldb + c * kLanes);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const vfloat a = splat(ar[r][ao]);
#pragma GCC unroll 4
      for (int c = 0; c < CV; ++c) acc[r][c] = vfma(a, b[c], acc[r][c]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < CV; ++c) vstore(C + r * ldc + c * kLanes, acc[r][c]);
  }
  if constexpr (MX) {
#pragma GCC unroll 4
    for (int c = 0; c < CV; ++c) {
      vfloat m = vload(colmax + c * kLanes);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) m = vmax(m, acc[r][c]);
      vstore(colmax + c * kLanes, m);
    }
  }
}


#if UMFA_SIMD_BF16_DOT
// The same on bf16 pairs: A and B hold 32-bit lanes of two bf16 values each (consecutive along
// the reduction), K counts pairs; C is f32. A may be only 2-byte aligned (user memory).
template <int R, int CV, bool ACC>
void micro_gemm_bf16_pairs(const uint32_t* __restrict A, int64_t ars, int64_t aks,
                           const uint32_t* __restrict B, int64_t ldb, int64_t K,
                           float* __restrict C, int64_t ldc) {
  vfloat acc[R][CV];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < CV; ++c) acc[r][c] = ACC ? vload(C + r * ldc + c * kLanes) : vfloat{};
  }
  const u32_unaligned* ar[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) ar[r] = reinterpret_cast<const u32_unaligned*>(A + r * ars);
  int64_t ao = 0;
  for (int64_t k = 0; k < K; ++k, ao += aks) {
    vbf16x2 b[CV];
#pragma GCC unroll 4
    for (int c = 0; c < CV; ++c) b[c] = bf16x2_load(B + k * ldb + c * kLanes);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const vbf16x2 a = bf16x2_broadcast(ar[r][ao]);
#pragma GCC unroll 4
      for (int c = 0; c < CV; ++c) acc[r][c] = bf16x2_dot(acc[r][c], a, b[c]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int c = 0; c < CV; ++c) vstore(C + r * ldc + c * kLanes, acc[r][c]);
  }
}
#else
// Never called without bf16 pair dot products (the bf16 path is off); keeps gemm_blocked uniform.
template <int R, int CV, bool ACC>
void micro_gemm_bf16_pairs(const uint32_t*, int64_t, int64_t, const uint32_t*, int64_t, int64_t,
                           float*, int64_t) {}
#endif

// A strided operand: element (r, k) at p[r*rs + k*ks] (elements of the operand's type).
template <class T>
struct Operand {
  const T* p;
  int64_t rs, ks;
};

// C[M][NV*kLanes] (+)= A[M][K] · B[K][NV*kLanes] with micro_gemm (f32) or micro_gemm_bf16_pairs (BF).
template <class T, bool ACC, bool BF, bool MX = false>
void gemm_blocked(int64_t M, int64_t NV, int64_t K, Operand<T> A, const T* B, int64_t ldb, float* C,
            int64_t ldc, float* colmax = nullptr) {
  if (M <= 0 || NV <= 0) return;
  if (K <= 0) {
    if (!ACC)
      for (int64_t r = 0; r < M; ++r)
        for (int64_t c = 0; c < NV * kLanes; ++c) C[r * ldc + c] = 0.f;
    if (MX)
      for (int64_t c = 0; c < NV * kLanes; ++c) colmax[c] = colmax[c] > 0.f ? colmax[c] : 0.f;
    return;
  }
  for (int64_t c0 = 0; c0 < NV; c0 += kRegColVecs) {
    const int cv = static_cast<int>(imin(kRegColVecs, NV - c0));
    for (int64_t r0 = 0; r0 < M; r0 += kRegRows) {
      const int r = static_cast<int>(imin(kRegRows, M - r0));
      const T* a = A.p + r0 * A.rs;
      const T* b = B + c0 * kLanes;
      float* c = C + r0 * ldc + c0 * kLanes;
#define UMFA_MICRO_GEMM(RR, CC)                                                              \
  do {                                                                               \
    if constexpr (BF) {                                                              \
      micro_gemm_bf16_pairs<RR, CC, ACC>(reinterpret_cast<const uint32_t*>(a),                        \
                                              A.rs, A.ks,                            \
                                              reinterpret_cast<const uint32_t*>(b), \
                                              ldb, K, c, ldc);                       \
    } else {                                                                         \
      micro_gemm<RR, CC, ACC, MX>(reinterpret_cast<const float*>(a), A.rs, A.ks,             \
                          reinterpret_cast<const float*>(b), ldb, K, c, ldc,         \
                          MX ? colmax + c0 * kLanes : nullptr);                           \
    }                                                                                \
  } while (0)
#define UMFA_MICRO_GEMM_ROWS(CC)                                         \
  switch (r) {                                               \
    case 1: UMFA_MICRO_GEMM(1, CC); break;                           \
    case 2: if constexpr (kRegRows >= 2) UMFA_MICRO_GEMM(2, CC); break;    \
    case 3: if constexpr (kRegRows >= 3) UMFA_MICRO_GEMM(3, CC); break;    \
    case 4: if constexpr (kRegRows >= 4) UMFA_MICRO_GEMM(4, CC); break;    \
    case 5: if constexpr (kRegRows >= 5) UMFA_MICRO_GEMM(5, CC); break;    \
    case 6: if constexpr (kRegRows >= 6) UMFA_MICRO_GEMM(6, CC); break;    \
    case 7: if constexpr (kRegRows >= 7) UMFA_MICRO_GEMM(7, CC); break;    \
    case 8: if constexpr (kRegRows >= 8) UMFA_MICRO_GEMM(8, CC); break;    \
    default: break;                                          \
  }
      switch (cv) {
        case 1: UMFA_MICRO_GEMM_ROWS(1); break;
        case 2: if constexpr (kRegColVecs >= 2) { UMFA_MICRO_GEMM_ROWS(2); } break;
        case 3: if constexpr (kRegColVecs >= 3) { UMFA_MICRO_GEMM_ROWS(3); } break;
        case 4: if constexpr (kRegColVecs >= 4) { UMFA_MICRO_GEMM_ROWS(4); } break;
        default: break;
      }
#undef UMFA_MICRO_GEMM_ROWS
#undef UMFA_MICRO_GEMM
    }
  }
}

// The reduction is cut into chunks of at most kKChunk rows of B, so that the B panel a pass of the
// micro-kernel streams (kKChunk x 64 lanes of f32 = 16 KiB) stays in L1 across all row blocks.
constexpr int64_t kKChunk = 64;

template <bool ACC, bool MX = false>
inline void gemm_kchunked(int64_t M, int64_t NV, int64_t K, Operand<float> A, const float* B, int64_t ldb,
                    float* C, int64_t ldc, float* colmax = nullptr) {
  if (K <= kKChunk) {
    gemm_blocked<float, ACC, false, MX>(M, NV, K, A, B, ldb, C, ldc, colmax);
    return;
  }
  for (int64_t k0 = 0; k0 < K; k0 += kKChunk) {
    const int64_t kc = imin(kKChunk, K - k0);
    const Operand<float> a{A.p + k0 * A.ks, A.rs, A.ks};
    const float* b = B + k0 * ldb;
    if (k0 == 0) gemm_blocked<float, ACC, false, false>(M, NV, kc, a, b, ldb, C, ldc);
    else if (k0 + kc < K) gemm_blocked<float, true, false, false>(M, NV, kc, a, b, ldb, C, ldc);
    else gemm_blocked<float, true, false, MX>(M, NV, kc, a, b, ldb, C, ldc, colmax);
  }
}

template <bool ACC>
inline void gemm_f32(int64_t M, int64_t NV, int64_t K, Operand<float> A, const float* B, int64_t ldb,
                 float* C, int64_t ldc) {
  gemm_kchunked<ACC>(M, NV, K, A, B, ldb, C, ldc);
}
// C = A · B, and colmax[0 .. NV*kLanes) = max(colmax, column maxima of C).
inline void gemm_f32_colmax(int64_t M, int64_t NV, int64_t K, Operand<float> A, const float* B,
                     int64_t ldb, float* C, int64_t ldc, float* colmax) {
  gemm_kchunked<false, true>(M, NV, K, A, B, ldb, C, ldc, colmax);
}
template <bool ACC>
inline void gemm_bf16_pairs(int64_t M, int64_t NV, int64_t K, Operand<uint32_t> A, const uint32_t* B,
                    int64_t ldb, float* C, int64_t ldc) {
  gemm_blocked<uint32_t, ACC, true>(M, NV, K, A, B, ldb, C, ldc);
}

UMFA_KERNELS_END
