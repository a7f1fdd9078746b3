// Runtime choice of the kernel variant from the CPU's features.
//
// UMFA_CPU_ISA=generic|avx2|avx512|avx512bf16 (x86-64) or generic|neon|neon_bf16 (AArch64)
// (environment) asks for a specific variant, for testing and for comparing; a variant the CPU
// cannot run is never chosen.
#include <cstdlib>
#include <cstring>

#include "cpu_common.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif
#if defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>
#include <sys/types.h>
#endif

namespace umfa {
namespace cpu {
namespace {

struct Features {
  bool avx2 = false;     // AVX2 + FMA + F16C, with OS support for YMM state
  bool avx512 = false;   // AVX-512 F/BW/VL/DQ, with OS support for ZMM state
  bool avx512bf16 = false;  // AVX-512 as above plus AVX512_BF16 (vdpbf16ps, vcvtne2ps2bf16)
  bool neon = false;        // AArch64 Advanced SIMD (FMLA, FCVTL)
  bool neon_bf16 = false;   // NEON plus FEAT_BF16 (BFDOT)
};

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

Features detect() {
  Features f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1,
             f16c = (c >> 29) & 1;
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool ymm_os = (xcr0 & 0x6) == 0x6;
  const bool zmm_os = (xcr0 & 0xe6) == 0xe6;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);  // a: the highest subleaf of leaf 7
  const bool avx2 = (b >> 5) & 1;
  const bool avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1, avx512bw = (b >> 30) & 1,
             avx512vl = (b >> 31) & 1;
  f.avx2 = ymm_os && avx2 && fma && f16c;
  f.avx512 = f.avx2 && zmm_os && avx512f && avx512dq && avx512bw && avx512vl;
  if (f.avx512 && a >= 1) {
    unsigned a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    f.avx512bf16 = (a1 >> 5) & 1;
  }
  return f;
}
#elif defined(__aarch64__) && defined(__linux__)
// The kernel reports the CPU's features in the auxiliary vector (values from the arm64 uapi
// <asm/hwcap.h>, repeated here so that old kernel headers still build).
Features detect() {
  constexpr unsigned long kHwcapAsimd = 1ul << 1;   // HWCAP_ASIMD
  constexpr unsigned long kHwcap2Bf16 = 1ul << 14;  // HWCAP2_BF16
  Features f;
  const unsigned long hw = getauxval(AT_HWCAP);
#ifdef AT_HWCAP2
  const unsigned long hw2 = getauxval(AT_HWCAP2);
#else
  const unsigned long hw2 = 0;
#endif
  f.neon = (hw & kHwcapAsimd) != 0;
  f.neon_bf16 = f.neon && (hw2 & kHwcap2Bf16) != 0;
  return f;
}
#elif defined(__aarch64__) && defined(__APPLE__)
// Every Apple silicon CPU has NEON; BF16 (M2 and later) is reported by sysctl.
Features detect() {
  Features f;
  f.neon = true;
  int v = 0;
  size_t len = sizeof(v);
  if (sysctlbyname("hw.optional.arm.FEAT_BF16", &v, &len, nullptr, 0) == 0 && v == 1)
    f.neon_bf16 = true;
  return f;
}
#else
Features detect() { return Features{}; }
#endif

}  // namespace

const KernelSet* select_kernels() {
  const Features f = detect();
  const KernelSet* best = kernels_generic();
  if (f.avx2 && kernels_avx2()) best = kernels_avx2();
  if (f.avx512 && kernels_avx512()) best = kernels_avx512();
  if (f.neon && kernels_neon()) best = kernels_neon();
  // BFDOT does twice the multiply-adds of an FMLA per instruction (docs/performance.md counts
  // them), so neon_bf16 is the default where the CPU has it; unlike on x86, no ARM CPU has been
  // timed yet. f32 and f16 inputs run the same code in both NEON variants.
  if (f.neon_bf16 && kernels_neon_bf16()) best = kernels_neon_bf16();
  // avx512bf16 is never picked by default: where it was measured (Intel Xeon, 2023 generation),
  // vdpbf16ps retires at half the f32 FMA rate in FLOPs, so bf16 inputs run faster converted to
  // f32 (the avx512 variant). It stays available by name for CPUs where it pays.
  if (const char* want = std::getenv("UMFA_CPU_ISA"); want && *want) {
    if (!std::strcmp(want, "generic")) return kernels_generic();
    if (!std::strcmp(want, "avx2") && f.avx2 && kernels_avx2()) return kernels_avx2();
    if (!std::strcmp(want, "avx512") && f.avx512 && kernels_avx512()) return kernels_avx512();
    if (!std::strcmp(want, "avx512bf16") && f.avx512bf16 && kernels_avx512bf16())
      return kernels_avx512bf16();
    if (!std::strcmp(want, "neon") && f.neon && kernels_neon()) return kernels_neon();
    if (!std::strcmp(want, "neon_bf16") && f.neon_bf16 && kernels_neon_bf16())
      return kernels_neon_bf16();
  }
  return best;
}

}  // namespace cpu
}  // namespace umfa
