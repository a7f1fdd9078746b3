// Hopper (sm_90a) building blocks: shared-memory tiles in the 128-byte swizzled layout that
// wgmma reads through matrix descriptors, the descriptors themselves, and the warpgroup
// fences. Kernels built on these compile to empty bodies on other architectures; the host only
// launches them on compute capability 9.0.
//
// Tile layout ("SW128 panels"): a tile of R rows x C 16-bit columns (C a multiple of 64) is C/64
// panels of R x 64 elements, each panel R * 128 bytes, 1024-byte aligned. Row r of a panel
// occupies bytes [r * 128, r * 128 + 128) with its 16-byte chunk c stored at chunk c ^ (r % 8).
// The same bytes serve as a K-major operand (rows = M or N, columns = K) and as an MN-major one
// (rows = K, columns = M or N); only the descriptor differs:
//   K-major:  start = panel of the k-step + 32 bytes per 16 columns inside it; SBO = 1024 (eight
//             rows), LBO unused.
//   MN-major: start = row of the k-step (16 rows = 2048 bytes); SBO = 1024 (eight K rows),
//             LBO = the panel stride (the next 64 M/N columns).
#pragma once

#include "common.cuh"
#include "wgmma.cuh"

namespace umfa {
namespace cuda {
namespace sm90 {

// Byte offset of element (r, c) of a tile stored as SW128 panels of `rows` rows.
__device__ __forceinline__ uint32_t sw128_offset(int rows, int r, int c) {
  return uint32_t((c >> 6) * rows * 128 + r * 128 + ((((c >> 3) & 7) ^ (r & 7)) << 4) + (c & 7) * 2);
}

// Matrix descriptor of a 128-byte-swizzled operand (PTX ISA, "matrix descriptor format").
__device__ __forceinline__ uint64_t desc_sw128(uint32_t saddr, uint32_t lbo_bytes,
                                               uint32_t sbo_bytes) {
  uint64_t d = uint64_t((saddr & 0x3FFFF) >> 4);
  d |= uint64_t((lbo_bytes >> 4) & 0x3FFF) << 16;
  d |= uint64_t((sbo_bytes >> 4) & 0x3FFF) << 32;
  d |= uint64_t(1) << 62;  // swizzle mode: 128 bytes
  return d;
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wg_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Generic-proxy writes to shared memory (st.shared, cp.async) become visible to wgmma's reads.
__device__ __forceinline__ void fence_async_smem() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// Keeps the compiler from moving accumulator reads or writes across wgmma issue / wait.
template <int N>
__device__ __forceinline__ void fence_regs(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
#endif

// Copies rows [0, ROWS) x columns [0, D) of a global tile (row r at g + r * row_stride) into SW128
// panels at s; rows >= rows_valid and columns >= d_valid become zeros. Each thread keeps one
// 16-byte column chunk (THREADS a multiple of D / 8).
template <int ROWS, int D, int THREADS, typename T>
__device__ __forceinline__ void load_tile_sw128(uint32_t s, const T* g, int64_t row_stride,
                                                int rows_valid, int d_valid, const void* fallback,
                                                int tid) {
  constexpr int CPR = D / 8;
  static_assert(THREADS % CPR == 0, "threads per tile row");
  constexpr int RS = THREADS / CPR;
  static_assert(ROWS % RS == 0 && RS % 8 == 0, "rows per pass");
  const int c = tid % CPR;
  const int r0 = tid / CPR;
  const bool col_ok = c * 8 < d_valid;
  const T* src = g + int64_t(r0) * row_stride + c * 8;
  // r0 + k * RS has the same r % 8 for every k (RS is a multiple of 8): one swizzled chunk.
  uint32_t dst = s + uint32_t((c >> 3) * ROWS * 128 + r0 * 128 + ((((c & 7) ^ (r0 & 7))) << 4));
#pragma unroll
  for (int it = 0; it < ROWS / RS; ++it) {
    const int r = r0 + it * RS;
    const bool ok = col_ok && r < rows_valid;
    cp_async16(dst, ok ? static_cast<const void*>(src) : fallback, ok);
    src += int64_t(RS) * row_stride;
    dst += uint32_t(RS * 128);
  }
}

// The m64k16 A fragment of k-step kk from an accumulator whose columns are that K (register
// 4j + 2r + e = row g + 8r, column 8j + 2t + e): columns 16kk .. 16kk + 15.
template <typename T, int NACC>
__device__ __forceinline__ void acc_to_a_frag(uint32_t (&a)[4], const float (&c)[NACC], int kk) {
  const int j = 2 * kk;
  a[0] = Elem<T>::pack(c[4 * j + 0], c[4 * j + 1]);
  a[1] = Elem<T>::pack(c[4 * j + 2], c[4 * j + 3]);
  a[2] = Elem<T>::pack(c[4 * j + 4], c[4 * j + 5]);
  a[3] = Elem<T>::pack(c[4 * j + 6], c[4 * j + 7]);
}

}  // namespace sm90
}  // namespace cuda
}  // namespace umfa
