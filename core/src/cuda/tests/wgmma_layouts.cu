// Checks the Hopper operand layouts of sm90.cuh against a host reference: one warpgroup runs
// each GEMM shape the sm_90a kernels use (K-major and MN-major shared-memory operands in SW128
// panels, A from registers, column and row offsets inside panels) on random bf16 data.
// Exit 0 = all pass, 1 = a mismatch, 77 = no compute capability 9.0 device.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cuda/sm90.cuh"

using namespace umfa::cuda;
using namespace umfa::cuda::sm90;
using bf16 = __nv_bfloat16;

namespace {

// Stores a rows x cols host matrix (row-major) into SW128 panels in shared memory.
__device__ void to_panels(uint32_t s, const bf16* m, int rows, int cols) {
  for (int i = threadIdx.x; i < rows * cols; i += blockDim.x) {
    const int r = i / cols, c = i % cols;
    const uint16_t v = reinterpret_cast<const uint16_t*>(m)[i];
    asm volatile("st.shared.u16 [%0], %1;\n" ::"r"(s + sw128_offset(rows, r, c)), "h"(v));
  }
}

template <int N>
__device__ void store_acc(float* c, int ldc, const float (&d)[N / 2]) {
  const int w = (threadIdx.x & 127) >> 5, lane = threadIdx.x & 31;
  for (int j = 0; j < N / 8; ++j)
    for (int r = 0; r < 2; ++r)
      for (int e = 0; e < 2; ++e)
        c[(16 * w + (lane >> 2) + 8 * r) * ldc + 8 * j + 2 * (lane & 3) + e] = d[4 * j + 2 * r + e];
}

// mode 0: C[64x64] = A Bt, A = rows 64..127 of a 128 x 128 tile (K-major), B = 64 x 128 (K-major).
// mode 1: C[64x128] = A B, A = 64 x 64 from registers (loaded from a K-major 64 x 64 tile),
//         B = 64 (k) x 128 (n) stored k rows x n columns (MN-major, two panels).
// mode 2: C[64x64] = A B, A stored 128 (k) x 64 (m) (MN-major), B = columns 64..127 of a
//         128 (k) x 128 (n) tile (MN-major, panel 1).
// mode 3: C[64x32] = A B, A as in mode 2, B = columns 32..63 of a 128 x 64 tile (MN-major).
__global__ void probe(int mode, const bf16* a, const bf16* b, float* c, uint32_t lbo,
                      uint32_t sbo) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ unsigned char smem_raw[];
  const uint32_t base = (smem_u32(smem_raw) + 1023) & ~1023u;
  const uint32_t sa = base, sb = base + 32768;
  if (mode == 0) {
    to_panels(sa, a, 128, 128);
    to_panels(sb, b, 64, 128);
  } else if (mode == 1) {
    to_panels(sa, a, 64, 64);
    to_panels(sb, b, 64, 128);
  } else if (mode == 2) {
    to_panels(sa, a, 128, 64);
    to_panels(sb, b, 128, 128);
  } else {
    to_panels(sa, a, 128, 64);
    to_panels(sb, b, 128, 64);
  }
  fence_async_smem();
  __syncthreads();
  if (mode == 0) {
    float d[32];
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < 8; ++kk) {
      const uint64_t da = desc_sw128(sa + 64 * 128 + (kk / 4) * 128 * 128 + (kk % 4) * 32, 16, 1024);
      const uint64_t db = desc_sw128(sb + (kk / 4) * 64 * 128 + (kk % 4) * 32, 16, 1024);
      Wgmma<bf16, 64>::ss<0, 0>(d, da, db, kk > 0);
    }
    wg_commit();
    wg_wait<0>();
    fence_regs(d);
    store_acc<64>(c, 64, d);
  } else if (mode == 1) {
    // A fragments straight from the row-major host matrix (m64k16 fragment layout).
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const uint16_t* ah = reinterpret_cast<const uint16_t*>(a);
    auto pk = [&](int r, int col) {
      return uint32_t(ah[r * 64 + col]) | (uint32_t(ah[r * 64 + col + 1]) << 16);
    };
    float d[64];
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      const int r = 16 * w + g, c0 = 16 * kk + 2 * t;
      const uint32_t af[4] = {pk(r, c0), pk(r + 8, c0), pk(r, c0 + 8), pk(r + 8, c0 + 8)};
      const uint64_t db = desc_sw128(sb + kk * 16 * 128, lbo, sbo);
      Wgmma<bf16, 128>::rs<1>(d, af, db, kk > 0);
    }
    wg_commit();
    wg_wait<0>();
    fence_regs(d);
    store_acc<128>(c, 128, d);
  } else if (mode == 2) {
    float d[32];
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < 8; ++kk) {
      const uint64_t da = desc_sw128(sa + kk * 16 * 128, lbo, sbo);
      const uint64_t db = desc_sw128(sb + 128 * 128 + kk * 16 * 128, lbo, sbo);
      Wgmma<bf16, 64>::ss<1, 1>(d, da, db, kk > 0);
    }
    wg_commit();
    wg_wait<0>();
    fence_regs(d);
    store_acc<64>(c, 64, d);
  } else {
    float d[16];
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < 8; ++kk) {
      const uint64_t da = desc_sw128(sa + kk * 16 * 128, lbo, sbo);
      const uint64_t db = desc_sw128(sb + 64 + kk * 16 * 128, lbo, sbo);
      Wgmma<bf16, 32>::ss<1, 1>(d, da, db, kk > 0);
    }
    wg_commit();
    wg_wait<0>();
    fence_regs(d);
    store_acc<32>(c, 32, d);
  }
#else
  (void)mode, (void)a, (void)b, (void)c, (void)lbo, (void)sbo;
#endif
}

float bf(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

int main() {
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDeviceCount(&dev) != cudaSuccess || dev == 0) return 77;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0);
  if (major != 9 || minor != 0) {
    std::printf("skip: compute capability %d.%d\n", major, minor);
    return 77;
  }
  cudaFuncSetAttribute(probe, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024);
  // A: up to 128 x 128, B: up to 128 x 128, random bf16 in [-1, 1].
  std::vector<uint16_t> ha(128 * 128), hb(128 * 128);
  srand(7);
  for (auto* v : {&ha, &hb})
    for (auto& x : *v) {
      const float f = float(rand()) / RAND_MAX * 2.f - 1.f;
      uint32_t u;
      std::memcpy(&u, &f, 4);
      x = uint16_t(u >> 16);
    }
  bf16 *da, *db;
  float* dc;
  cudaMalloc(&da, ha.size() * 2);
  cudaMalloc(&db, hb.size() * 2);
  cudaMalloc(&dc, 128 * 128 * 4);
  cudaMemcpy(da, ha.data(), ha.size() * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(db, hb.data(), hb.size() * 2, cudaMemcpyHostToDevice);
  struct Case {
    int mode;
    const char* name;
    int m, n, k;
    uint32_t lbo, sbo;
  };
  const Case cases[] = {
      {0, "K-major A (row offset 64) x K-major B, n64 k128", 64, 64, 128, 16, 1024},
      {1, "A regs x MN-major B, n128 (2 panels) k64, LBO=panel SBO=1024", 64, 128, 64, 64 * 128, 1024},
      {2, "MN-major A x MN-major B (panel 1), n64 k128, LBO=panel SBO=1024", 64, 64, 128, 128 * 128, 1024},
      {3, "MN-major A x MN-major B (+32 columns), n32 k128, LBO=panel SBO=1024", 64, 32, 128, 128 * 128, 1024},
  };
  int failures = 0;
  for (const Case& cs : cases) {
    cudaMemset(dc, 0, 128 * 128 * 4);
    probe<<<1, 128, 100 * 1024>>>(cs.mode, da, db, dc, cs.lbo, cs.sbo);
    cudaError_t e = cudaDeviceSynchronize();
    if (e != cudaSuccess) {
      std::printf("FAIL %s: %s\n", cs.name, cudaGetErrorString(e));
      return 1;
    }
    std::vector<float> hc(cs.m * cs.n);
    cudaMemcpy(hc.data(), dc, hc.size() * 4, cudaMemcpyDeviceToHost);
    double worst = 0;
    for (int i = 0; i < cs.m; ++i)
      for (int j = 0; j < cs.n; ++j) {
        double ref = 0;
        for (int k = 0; k < cs.k; ++k) {
          double x, y;
          switch (cs.mode) {
            case 0: x = bf(ha[(64 + i) * 128 + k]); y = bf(hb[j * 128 + k]); break;
            case 1: x = bf(ha[i * 64 + k]); y = bf(hb[k * 128 + j]); break;
            case 2: x = bf(ha[k * 64 + i]); y = bf(hb[k * 128 + 64 + j]); break;
            default: x = bf(ha[k * 64 + i]); y = bf(hb[k * 64 + 32 + j]); break;
          }
          ref += x * y;
        }
        worst = std::fmax(worst, std::fabs(ref - hc[i * cs.n + j]));
      }
    const bool ok = worst < 1e-3;
    failures += ok ? 0 : 1;
    std::printf("%s %s: max error %.3g\n", ok ? "pass" : "FAIL", cs.name, worst);
  }
  std::printf("%s\n", failures ? "layout check FAILED" : "layout check passed");
  return failures ? 1 : 0;
}
