// Shared pieces of the CPU backend: tile sizes, dtype conversions, strided row loads/stores,
// the resolved per-call plan and the kernel-set interface that each SIMD variant implements.
//
// Everything here is plain (default-ISA) code. The SIMD variants (kernels_*.cpp) include this
// header *before* switching the target ISA, so that no inline function defined here is ever
// compiled for an instruction set the running CPU may lack.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <type_traits>

#include "../backend.h"

namespace umfa {
namespace cpu {

// Tile sizes: query rows per tile (BM, held in vector lanes by the kernels) and keys per tile
// (BN). Every scratch buffer is sized from these and the head dimension, so extra memory per
// thread is O((BM + BN) * D).
constexpr int64_t kBM = 64;
constexpr int64_t kBN = 64;
// Forward: up to this many query tiles of one head share a pass over the keys (each K/V block is
// converted once for all of them).
constexpr int64_t kFwdGroup = 4;
// Backward: up to this many key blocks of one KV head per work item (each query block is packed
// once for all of them).
constexpr int64_t kBwdGroup = 4;

constexpr float kInf = std::numeric_limits<float>::infinity();

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// ---------------------------------------------------------------------------------------------
// Scalar dtype conversions (portable; SIMD variants may use hardware conversions instead).
// ---------------------------------------------------------------------------------------------

inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float bf16_to_f32(uint16_t h) { return bits_f32(static_cast<uint32_t>(h) << 16); }

// Round to nearest even; NaN stays NaN (quieted), infinities stay infinite.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  if (exp == 0) {
    // Zero or subnormal: man * 2^-24, exact in f32.
    float v = static_cast<float>(man) * 5.9604644775390625e-8f;
    return bits_f32(f32_bits(v) | sign);
  }
  if (exp == 31) return bits_f32(sign | 0x7f800000u | (man << 13));
  return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

// Round to nearest even, overflow to infinity, subnormals kept, NaN stays NaN (quieted).
inline uint16_t f32_to_f16(float f) {
  uint32_t u = f32_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  u &= 0x7fffffffu;
  if (u >= 0x47800000u) {  // |f| >= 65536 (or inf/NaN): inf, or NaN
    if (u > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((u >> 13) & 0x3ffu));
    return static_cast<uint16_t>(sign | 0x7c00u);
  }
  if (u < 0x38800000u) {  // |f| < 2^-14: the result is subnormal or zero
    // Adding 0.5 (2^-1) places the f16 subnormal's integer mantissa (|f| * 2^24) in the low bits
    // of the f32 mantissa; the addition itself rounds to nearest even.
    const float shifted = bits_f32(u) + 0.5f;
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(f32_bits(shifted) - 0x3f000000u));
  }
  // Normal range: rebias the exponent (127 -> 15) and round the 13 dropped bits to nearest even.
  // A carry out of the mantissa correctly bumps the exponent (up to infinity for >= 65520).
  const uint32_t odd = (u >> 13) & 1u;
  u += 0xc8000fffu + odd;  // (15 - 127) << 23, plus the rounding bias
  return static_cast<uint16_t>(sign | static_cast<uint16_t>(u >> 13));
}

inline int64_t dtype_bytes(int32_t dt) {
  switch (dt) {
    case UMFA_DTYPE_F32:
    case UMFA_DTYPE_I32:
      return 4;
    case UMFA_DTYPE_F16:
    case UMFA_DTYPE_BF16:
      return 2;
    case UMFA_DTYPE_BOOL:
      return 1;
    default:
      return 0;
  }
}

// Element `idx` (in elements from `base`) of a float-typed (F32/F16/BF16) array, as f32.
inline float load_elem(const void* base, int32_t dt, int64_t idx) {
  switch (dt) {
    case UMFA_DTYPE_F16:
      return f16_to_f32(static_cast<const uint16_t*>(base)[idx]);
    case UMFA_DTYPE_BF16:
      return bf16_to_f32(static_cast<const uint16_t*>(base)[idx]);
    case UMFA_DTYPE_BOOL:
      return static_cast<const uint8_t*>(base)[idx] ? 1.f : 0.f;
    default:
      return static_cast<const float*>(base)[idx];
  }
}

// dst[0..n) = mul * src[off + k*st], k in [0, n), converted from dtype `dt`.
inline void load_row(const void* base, int32_t dt, int64_t off, int64_t st, int64_t n, float mul,
                     float* dst) {
  switch (dt) {
    case UMFA_DTYPE_F32: {
      const float* s = static_cast<const float*>(base) + off;
      if (st == 1) {
        for (int64_t k = 0; k < n; ++k) dst[k] = s[k] * mul;
      } else {
        for (int64_t k = 0; k < n; ++k) dst[k] = s[k * st] * mul;
      }
      break;
    }
    case UMFA_DTYPE_F16: {
      const uint16_t* s = static_cast<const uint16_t*>(base) + off;
      for (int64_t k = 0; k < n; ++k) dst[k] = f16_to_f32(s[k * st]) * mul;
      break;
    }
    case UMFA_DTYPE_BF16: {
      const uint16_t* s = static_cast<const uint16_t*>(base) + off;
      if (st == 1) {
        for (int64_t k = 0; k < n; ++k) dst[k] = bf16_to_f32(s[k]) * mul;
      } else {
        for (int64_t k = 0; k < n; ++k) dst[k] = bf16_to_f32(s[k * st]) * mul;
      }
      break;
    }
    default:
      for (int64_t k = 0; k < n; ++k) dst[k] = 0.f;
      break;
  }
}

// dst[off + k*st] = convert(mul * src[k]), k in [0, n).
inline void store_row(void* base, int32_t dt, int64_t off, int64_t st, int64_t n, float mul,
                      const float* src) {
  switch (dt) {
    case UMFA_DTYPE_F32: {
      float* d = static_cast<float*>(base) + off;
      if (st == 1) {
        for (int64_t k = 0; k < n; ++k) d[k] = src[k] * mul;
      } else {
        for (int64_t k = 0; k < n; ++k) d[k * st] = src[k] * mul;
      }
      break;
    }
    case UMFA_DTYPE_F16: {
      uint16_t* d = static_cast<uint16_t*>(base) + off;
      for (int64_t k = 0; k < n; ++k) d[k * st] = f32_to_f16(src[k] * mul);
      break;
    }
    case UMFA_DTYPE_BF16: {
      uint16_t* d = static_cast<uint16_t*>(base) + off;
      for (int64_t k = 0; k < n; ++k) d[k * st] = f32_to_bf16(src[k] * mul);
      break;
    }
    default:
      break;
  }
}

// Writes `value` (0 or -inf make sense) to n elements of a float-typed array.
inline void fill_row(void* base, int32_t dt, int64_t off, int64_t st, int64_t n, float value) {
  for (int64_t k = 0; k < n; ++k) {
    switch (dt) {
      case UMFA_DTYPE_F32:
        static_cast<float*>(base)[off + k * st] = value;
        break;
      case UMFA_DTYPE_F16:
        static_cast<uint16_t*>(base)[off + k * st] = f32_to_f16(value);
        break;
      case UMFA_DTYPE_BF16:
        static_cast<uint16_t*>(base)[off + k * st] = f32_to_bf16(value);
        break;
      default:
        break;
    }
  }
}

// Offset in elements of (a, b, c, 0) in a 4-D view.
inline int64_t voff(const View& v, int64_t a, int64_t b, int64_t c) {
  return a * v.strides[0] + b * v.strides[1] + c * v.strides[2];
}

// ---------------------------------------------------------------------------------------------
// The resolved plan of one call.
// ---------------------------------------------------------------------------------------------

// One sequence: rows [q0, q0 + nq) of the q-side views and [k0, k0 + nk) of the k-side views,
// in view batch `vb` (b for dense problems, 0 for varlen). `off` is the diagonal offset.
struct Seq {
  int64_t vb = 0;
  int64_t q0 = 0, nq = 0;
  int64_t k0 = 0, nk = 0;
  int64_t off = 0;
};

struct Plan {
  const Problem* p = nullptr;
  const Seq* seqs = nullptr;  // p->batch entries
  int64_t batch = 0, hq = 0, hkv = 0, group = 1, d = 0;
  int64_t q_rows = 0;  // rows of the q-side views (Nq dense, total_q varlen)
  int64_t k_rows = 0;

  // Sliding window / causal, with "unbounded" made explicit (overflow-free arithmetic).
  bool has_left = false, has_right = false;
  int64_t left = 0, right = 0;

  bool softcap = false;
  float cap = 0.f, inv_cap = 0.f;
  bool alibi = false;
  bool mask = false, mask_bool = false;

  int64_t fwd_group = 1;  // forward: query tiles per item (FwdTile::ntile), 1..kFwdGroup
  int64_t bwd_group = 1;  // backward: key blocks per item, 1..kBwdGroup

  // Forward with split keys (split-KV): tiles whose FwdTile::split >= 0 write their partial,
  // normalized output and their (max, sum) here, indexed by part_index(); a combine step merges
  // the `nsplit` parts of each row.
  int64_t nsplit = 1;
  float* part_o = nullptr;  // [vb][hq][q_rows][nsplit][d]
  float* part_m = nullptr;  // [vb][hq][q_rows][nsplit]
  float* part_l = nullptr;

  // Backward only.
  float* delta = nullptr;   // [vb][hq][q_rows]: rowsum(dO * O)
  // [vb][hq][d][q_rows] (transposed: query rows contiguous), f32; null when dQ is computed per
  // query block (the deterministic path).
  float* dq_acc = nullptr;
  std::mutex* locks = nullptr;
  int64_t nlocks = 0;
  int64_t q_blocks = 0;  // ceil(max nq / BM), for lock indices
};

// Visible key range [jlo, jhi) of query rows [i0, i1) of a sequence (may be empty).
inline void key_range(const Plan& pl, const Seq& s, int64_t i0, int64_t i1, int64_t* jlo,
                      int64_t* jhi) {
  int64_t lo = 0, hi = s.nk;
  if (pl.has_left) lo = imax(lo, i0 + s.off - pl.left);
  if (pl.has_right) hi = imin(hi, i1 - 1 + s.off + pl.right + 1);
  *jlo = lo;
  *jhi = hi;
}

// Query rows [ilo, ihi) that see at least one key of [j0, j1) through the window (may be empty).
inline void query_range(const Plan& pl, const Seq& s, int64_t j0, int64_t j1, int64_t* ilo,
                        int64_t* ihi) {
  int64_t lo = 0, hi = s.nq;
  if (pl.has_right) lo = imax(lo, j0 - s.off - pl.right);
  if (pl.has_left) hi = imin(hi, j1 - 1 - s.off + pl.left + 1);
  *ilo = lo;
  *ihi = hi;
}

// True when every (i, j) in [i0, i1) x [j0, j1) is inside the window.
inline bool tile_fully_visible(const Plan& pl, const Seq& s, int64_t i0, int64_t i1, int64_t j0,
                               int64_t j1) {
  const int64_t dmin = j0 - (i1 - 1) - s.off;
  const int64_t dmax = (j1 - 1) - i0 - s.off;
  return (!pl.has_left || dmin >= -pl.left) && (!pl.has_right || dmax <= pl.right);
}

inline bool visible(const Plan& pl, const Seq& s, int64_t i, int64_t j) {
  const int64_t d = j - i - s.off;
  return (!pl.has_left || d >= -pl.left) && (!pl.has_right || d <= pl.right);
}

// Work units handed to the kernels.
struct FwdTile {
  int64_t b = 0;      // sequence
  int64_t kvh = 0;    // key/value head
  int64_t hbase = 0;  // first query head (of kvh's group)
  int64_t hcnt = 1;   // query heads stacked in the tile (rows = hcnt * qr)
  int64_t i0 = 0;     // first query row in the sequence
  int64_t qr = 0;     // query rows per head (per tile)
  // Consecutive query tiles of qr rows handled together (1..kFwdGroup; > 1 only when hcnt == 1
  // and qr == kBM): tile g covers rows [i0 + g*qr, i0 + (g+1)*qr) clipped to the sequence.
  int64_t ntile = 1;
  // Split-KV: part `split` of `Plan::nsplit` of the tile's visible key blocks; -1 = all of them
  // (and the tile writes out/lse itself).
  int64_t split = -1;
};

// Row index into Plan::part_o / part_m / part_l.
inline int64_t part_index(const Plan& pl, int64_t vb, int64_t h, int64_t row, int64_t split) {
  return ((vb * pl.hq + h) * pl.q_rows + row) * pl.nsplit + split;
}

struct BwdKvTile {
  int64_t b = 0, kvh = 0;
  int64_t j0 = 0, nc = 0;  // keys [j0, j0 + nc) of the sequence, nc <= kBwdGroup * kBN
};

struct BwdQTile {
  int64_t b = 0, h = 0;
  int64_t i0 = 0, rows = 0;
};

// One SIMD variant of the kernels. Scratch sizes are in bytes, per worker.
struct KernelSet {
  const char* name;
  size_t (*fwd_scratch_bytes)(int64_t d);
  size_t (*bwd_scratch_bytes)(int64_t d);
  void (*fwd_tile)(const Plan& pl, const FwdTile& t, unsigned char* scratch);
  // Accumulates dK/dV of one key block over its query heads and query blocks and stores them;
  // when pl.dq_acc is set also adds dQ contributions into it (under pl.locks).
  void (*bwd_kv_tile)(const Plan& pl, const BwdKvTile& t, unsigned char* scratch);
  // Computes and stores dQ of one query block (the deterministic path).
  void (*bwd_q_tile)(const Plan& pl, const BwdQTile& t, unsigned char* scratch);
};

// Implemented in kernels_*.cpp; null when the variant is not compiled in.
const KernelSet* kernels_generic();
const KernelSet* kernels_avx2();
const KernelSet* kernels_avx512();
const KernelSet* kernels_avx512bf16();
const KernelSet* kernels_neon();
const KernelSet* kernels_neon_bf16();

// Picks the best variant the CPU supports (or the one UMFA_CPU_ISA names, if supported).
const KernelSet* select_kernels();

}  // namespace cpu
}  // namespace umfa
