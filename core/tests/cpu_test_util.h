// Test helpers for the CPU backend tests: strided host tensors of any dtype, an independent
// double-precision reference of attention forward/backward (materializes the score matrix, so
// small sizes only), and error statistics.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backend.h"
#include "cpu/cpu_backend.h"

namespace cputest {

using umfa::Problem;
using umfa::View;

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// ---- dtype conversions written independently of the backend's --------------------------------
inline uint32_t fbits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bitsf(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint16_t to_bf16(float f) {
  if (std::isnan(f)) return 0x7fc0;
  uint32_t u = fbits(f);
  const uint32_t lsb = (u >> 16) & 1;
  u += 0x7fff + lsb;
  return static_cast<uint16_t>(u >> 16);
}
inline float from_bf16(uint16_t h) { return bitsf(static_cast<uint32_t>(h) << 16); }
#if defined(__aarch64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
// AArch64 GCC before 13 has no _Float16 in C++; its __fp16 storage type converts with the same
// IEEE binary16 rounding (to nearest even): still independent of the backend's.
inline uint16_t to_f16(float f) {
  __fp16 h = static_cast<__fp16>(f);
  uint16_t u;
  std::memcpy(&u, &h, 2);
  return u;
}
inline float from_f16(uint16_t u) {
  __fp16 h;
  std::memcpy(&h, &u, 2);
  return static_cast<float>(h);
}
#elif defined(__FLT16_MANT_DIG__)
// The compiler's own binary16 conversions (round to nearest even): independent of the backend's.
inline uint16_t to_f16(float f) {
  _Float16 h = static_cast<_Float16>(f);
  uint16_t u;
  std::memcpy(&u, &h, 2);
  return u;
}
inline float from_f16(uint16_t u) {
  _Float16 h;
  std::memcpy(&h, &u, 2);
  return static_cast<float>(h);
}
#else
// Compilers without _Float16: a reference written with <cmath> (frexp/ldexp/nearbyint in the
// default round-to-nearest-even mode), still independent of the backend's bit manipulation.
inline uint16_t to_f16(float f) {
  if (std::isnan(f)) return 0x7e00;
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(f));
  if (a >= 65520.0) return static_cast<uint16_t>(sign | 0x7c00);  // rounds to infinity
  if (a < std::ldexp(1.0, -14)) {  // subnormal (or the smallest normal after rounding)
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(std::nearbyint(std::ldexp(a, 24))));
  }
  int e = 0;
  double q = std::nearbyint(std::frexp(a, &e) * 2048.0);  // a = q * 2^(e - 11), q in [1024, 2048]
  if (q == 2048.0) {
    q = 1024.0;
    ++e;
  }
  return static_cast<uint16_t>(sign | ((e + 14) << 10) | (static_cast<int>(q) - 1024));
}
inline float from_f16(uint16_t u) {
  const int e = (u >> 10) & 31, m = u & 1023;
  const double v = e == 0 ? std::ldexp(m, -24)
                   : e == 31 ? (m ? std::nan("") : HUGE_VAL)
                             : std::ldexp(1024 + m, e - 25);
  return static_cast<float>((u & 0x8000) ? -v : v);
}
#endif
inline const char* dtype_name(int32_t dt) {
  switch (dt) {
    case UMFA_DTYPE_F32: return "f32";
    case UMFA_DTYPE_F16: return "f16";
    case UMFA_DTYPE_BF16: return "bf16";
    case UMFA_DTYPE_BOOL: return "bool";
    default: return "?";
  }
}
inline int64_t esize(int32_t dt) {
  return dt == UMFA_DTYPE_F32 ? 4 : dt == UMFA_DTYPE_BOOL ? 1 : 2;
}

// ---- strided host tensors ------------------------------------------------------------------
// Layouts for a logical 4-D tensor.
enum Layout {
  kContig = 0,     // row-major in logical order
  kBHSD = 1,       // dims 1 and 2 swapped in memory (PyTorch BHSD for q/k/v)
  kPadded = 2,     // order (1, 0, 2, 3) with 3 elements of padding after every innermost row
  kDStride2 = 3,   // row-major with the last dimension at stride 2
  kBroadcast0 = 4  // like kContig but dimension 0 has stride 0 (inputs only)
};
constexpr int kNumLayouts = 5;

struct Tensor {
  std::vector<unsigned char> buf;
  std::vector<bool> covered;  // elements reachable through the view
  View v;
  int64_t n = 0;  // elements in buf

  int64_t off(int64_t a, int64_t b, int64_t c, int64_t d) const {
    return a * v.strides[0] + b * v.strides[1] + c * v.strides[2] + d * v.strides[3];
  }
  double get_at(int64_t o) const {
    switch (v.dtype) {
      case UMFA_DTYPE_F32: return reinterpret_cast<const float*>(buf.data())[o];
      case UMFA_DTYPE_F16: return from_f16(reinterpret_cast<const uint16_t*>(buf.data())[o]);
      case UMFA_DTYPE_BF16: return from_bf16(reinterpret_cast<const uint16_t*>(buf.data())[o]);
      case UMFA_DTYPE_BOOL: return buf[static_cast<size_t>(o)] ? 1.0 : 0.0;
      default: return 0;
    }
  }
  void set_at(int64_t o, double x) {
    const float f = static_cast<float>(x);
    switch (v.dtype) {
      case UMFA_DTYPE_F32: reinterpret_cast<float*>(buf.data())[o] = f; break;
      case UMFA_DTYPE_F16: reinterpret_cast<uint16_t*>(buf.data())[o] = to_f16(f); break;
      case UMFA_DTYPE_BF16: reinterpret_cast<uint16_t*>(buf.data())[o] = to_bf16(f); break;
      case UMFA_DTYPE_BOOL: buf[static_cast<size_t>(o)] = x != 0 ? 1 : 0; break;
      default: break;
    }
  }
  double get(int64_t a, int64_t b, int64_t c, int64_t d) const { return get_at(off(a, b, c, d)); }
  void set(int64_t a, int64_t b, int64_t c, int64_t d, double x) { set_at(off(a, b, c, d), x); }
  const int64_t* shape() const { return v.shape; }
};

// A tensor of logical shape s[4] with the given layout; the whole buffer (padding included) is
// filled with `fill_bits` bytes.
inline Tensor make_tensor(const int64_t s[4], int32_t dtype, int layout, unsigned char fill_byte) {
  Tensor t;
  t.v.dtype = dtype;
  for (int i = 0; i < 4; ++i) t.v.shape[i] = s[i];
  int order[4] = {0, 1, 2, 3};  // outermost .. innermost
  int64_t pad = 0, dstride = 1;
  if (layout == kBHSD) {
    order[1] = 2;
    order[2] = 1;
  } else if (layout == kPadded) {
    order[0] = 1;
    order[1] = 0;
    pad = 3;
  } else if (layout == kDStride2) {
    dstride = 2;
  }
  int64_t stride = dstride;
  for (int k = 3; k >= 0; --k) {
    const int dim = order[k];
    t.v.strides[dim] = stride;
    stride *= s[dim] > 0 ? s[dim] : 1;
    if (k == 3) stride += pad;
  }
  if (layout == kBroadcast0) t.v.strides[0] = 0;
  int64_t maxoff = 0;
  bool empty = false;
  for (int i = 0; i < 4; ++i) {
    if (s[i] == 0) empty = true;
    else maxoff += (s[i] - 1) * t.v.strides[i];
  }
  t.n = empty ? 1 : maxoff + 1 + pad;
  t.buf.assign(static_cast<size_t>(t.n * esize(dtype)), fill_byte);
  t.covered.assign(static_cast<size_t>(t.n), false);
  if (!empty) {
    for (int64_t a = 0; a < s[0]; ++a)
      for (int64_t b = 0; b < s[1]; ++b)
        for (int64_t c = 0; c < s[2]; ++c)
          for (int64_t d = 0; d < s[3]; ++d) t.covered[static_cast<size_t>(t.off(a, b, c, d))] = true;
  }
  t.v.data = t.buf.data();
  return t;
}

// True when every byte outside the view still holds `fill_byte` (nothing written out of bounds).
inline bool untouched_outside(const Tensor& t, unsigned char fill_byte) {
  const int64_t es = esize(t.v.dtype);
  for (int64_t o = 0; o < t.n; ++o) {
    if (t.covered[static_cast<size_t>(o)]) continue;
    for (int64_t k = 0; k < es; ++k)
      if (t.buf[static_cast<size_t>(o * es + k)] != fill_byte) return false;
  }
  return true;
}

// ---- the reference ---------------------------------------------------------------------------
struct Spec {
  int64_t B = 1, Hq = 1, Hkv = 1, Nq = 1, Nk = 1, D = 8;  // dense shape (B = sequences)
  std::vector<int32_t> cu_q, cu_k;                        // varlen when non-empty
  int64_t total_q = 0, total_k = 0;                       // varlen view rows
  bool bottom_right = true;
  int64_t wl = -1, wr = -1;
  double scale = 0, softcap = 0;
  bool varlen() const { return !cu_q.empty(); }
};

struct RefOut {
  // Indexed like the views: [vb][row][h][d] flattened with the view's logical shape.
  std::vector<double> out, lse, dq, dk, dv;
};

// Logical [a][b][c][d] index into a dense vector of the given shape.
inline size_t lidx(const int64_t* s, int64_t a, int64_t b, int64_t c, int64_t d) {
  return static_cast<size_t>(((a * s[1] + b) * s[2] + c) * s[3] + d);
}

// q, k, v, dout: input tensors; mask (may have null data): [B, Hq, Nq, Nk] broadcast view;
// alibi (may be null): {B, Hq, 1, 1}. Forward only when dout is null.
// When out_given is set, delta = rowsum(dout * out) uses it (the backward's input `out`, as the
// forward stored it, possibly rounded to f16/bf16) instead of the exact output.
inline RefOut reference(const Spec& sp, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor* dout, const Tensor* mask, const Tensor* alibi,
                        const Tensor* out_given = nullptr) {
  RefOut r;
  const int64_t* qs = q.shape();
  const int64_t* ks = k.shape();
  const int64_t D = sp.D, Hq = sp.Hq, Hkv = sp.Hkv, G = Hq / Hkv;
  r.out.assign(static_cast<size_t>(qs[0] * qs[1] * qs[2] * qs[3]), 0.0);
  r.lse.assign(static_cast<size_t>(qs[0] * Hq * qs[1]), kNegInf);
  if (dout) {
    r.dq.assign(r.out.size(), 0.0);
    r.dk.assign(static_cast<size_t>(ks[0] * ks[1] * ks[2] * ks[3]), 0.0);
    r.dv.assign(r.dk.size(), 0.0);
  }
  const int64_t nseq = sp.varlen() ? static_cast<int64_t>(sp.cu_q.size()) - 1 : sp.B;
  for (int64_t b = 0; b < nseq; ++b) {
    const int64_t vb = sp.varlen() ? 0 : b;
    const int64_t q0 = sp.varlen() ? sp.cu_q[b] : 0;
    const int64_t k0 = sp.varlen() ? sp.cu_k[b] : 0;
    const int64_t nq = sp.varlen() ? sp.cu_q[b + 1] - sp.cu_q[b] : sp.Nq;
    const int64_t nk = sp.varlen() ? sp.cu_k[b + 1] - sp.cu_k[b] : sp.Nk;
    const int64_t offd = sp.bottom_right ? nk - nq : 0;
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t kh = h / G;
      const double slope = alibi ? alibi->get(b, h, 0, 0) : 0.0;
      for (int64_t i = 0; i < nq; ++i) {
        std::vector<double> s(static_cast<size_t>(nk), kNegInf), t(static_cast<size_t>(nk), 0.0);
        std::vector<char> vis(static_cast<size_t>(nk), 0);
        double m = kNegInf;
        for (int64_t j = 0; j < nk; ++j) {
          const int64_t dd = j - i - offd;
          bool ok = (sp.wl < 0 || dd >= -sp.wl) && (sp.wr < 0 || dd <= sp.wr);
          if (ok && mask && mask->v.dtype == UMFA_DTYPE_BOOL && mask->get(b, h, i, j) == 0) ok = false;
          if (!ok) continue;
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += q.get(vb, q0 + i, h, d) * k.get(vb, k0 + j, kh, d);
          double x = dot * sp.scale;
          if (sp.softcap > 0) {
            t[static_cast<size_t>(j)] = std::tanh(x / sp.softcap);
            x = sp.softcap * t[static_cast<size_t>(j)];
          }
          x -= slope * std::fabs(static_cast<double>(i + offd - j));
          if (mask && mask->v.dtype != UMFA_DTYPE_BOOL) x += mask->get(b, h, i, j);
          s[static_cast<size_t>(j)] = x;
          vis[static_cast<size_t>(j)] = 1;
          if (x > m || std::isnan(x)) m = std::isnan(m) ? m : x;
        }
        double l = 0;
        std::vector<double> p(static_cast<size_t>(nk), 0.0);
        if (m != kNegInf) {
          for (int64_t j = 0; j < nk; ++j) {
            if (!vis[static_cast<size_t>(j)]) continue;
            p[static_cast<size_t>(j)] = std::exp(s[static_cast<size_t>(j)] - m);
            l += p[static_cast<size_t>(j)];
          }
        }
        const size_t lrow = static_cast<size_t>((vb * Hq + h) * qs[1] + q0 + i);
        if (l == 0) continue;  // fully masked: out 0, lse -inf, gradients 0
        r.lse[lrow] = m + std::log(l);
        for (auto& x : p) x /= l;
        std::vector<double> o(static_cast<size_t>(D), 0.0);
        for (int64_t j = 0; j < nk; ++j) {
          if (!vis[static_cast<size_t>(j)]) continue;
          for (int64_t d = 0; d < D; ++d) o[static_cast<size_t>(d)] += p[static_cast<size_t>(j)] * v.get(vb, k0 + j, kh, d);
        }
        for (int64_t d = 0; d < D; ++d) r.out[lidx(qs, vb, q0 + i, h, d)] = o[static_cast<size_t>(d)];
        if (!dout) continue;
        double delta = 0;
        for (int64_t d = 0; d < D; ++d)
          delta += dout->get(vb, q0 + i, h, d) *
                   (out_given ? out_given->get(vb, q0 + i, h, d) : o[static_cast<size_t>(d)]);
        for (int64_t j = 0; j < nk; ++j) {
          if (!vis[static_cast<size_t>(j)]) continue;
          const double pj = p[static_cast<size_t>(j)];
          double dp = 0;
          for (int64_t d = 0; d < D; ++d) dp += dout->get(vb, q0 + i, h, d) * v.get(vb, k0 + j, kh, d);
          double ds = pj * (dp - delta);
          if (sp.softcap > 0) ds *= 1.0 - t[static_cast<size_t>(j)] * t[static_cast<size_t>(j)];
          ds *= sp.scale;
          for (int64_t d = 0; d < D; ++d) {
            r.dv[lidx(ks, vb, k0 + j, kh, d)] += pj * dout->get(vb, q0 + i, h, d);
            r.dq[lidx(qs, vb, q0 + i, h, d)] += ds * k.get(vb, k0 + j, kh, d);
            r.dk[lidx(ks, vb, k0 + j, kh, d)] += ds * q.get(vb, q0 + i, h, d);
          }
        }
      }
    }
  }
  return r;
}

// ---- comparison ------------------------------------------------------------------------------
struct Cmp {
  double max_norm_err = 0;  // max |got - ref| / max(|ref|, floor)
  int64_t bad = 0;          // elements over tolerance, or NaN/inf mismatches
  int64_t first_bad = -1;
  double got_at_bad = 0, ref_at_bad = 0;
};

// Compares a 4-D tensor against a dense reference of the same logical shape. Error is normalized
// by the reference's max magnitude (at least `floor`). Non-finite reference values must match
// exactly (NaN with NaN, -inf with -inf). When nan_only, only NaN positions of ref are checked.
inline Cmp compare(const Tensor& t, const std::vector<double>& ref, double tol, double floor = 1e-3,
                   bool nan_only = false) {
  Cmp c;
  const int64_t* s = t.shape();
  double mag = floor;
  for (double x : ref)
    if (std::isfinite(x)) mag = std::max(mag, std::fabs(x));
  for (int64_t a = 0; a < s[0]; ++a)
    for (int64_t b = 0; b < s[1]; ++b)
      for (int64_t cc = 0; cc < s[2]; ++cc)
        for (int64_t d = 0; d < s[3]; ++d) {
          const size_t li = lidx(s, a, b, cc, d);
          const double r = ref[li], g = t.get(a, b, cc, d);
          bool ok;
          if (std::isnan(r)) ok = std::isnan(g);
          else if (nan_only) ok = true;
          else if (std::isinf(r)) ok = g == r;
          else if (!std::isfinite(g)) ok = false;
          else {
            const double e = std::fabs(g - r) / mag;
            c.max_norm_err = std::max(c.max_norm_err, e);
            ok = e <= tol;
          }
          if (!ok) {
            if (c.bad == 0) {
              c.first_bad = static_cast<int64_t>(li);
              c.got_at_bad = g;
              c.ref_at_bad = r;
            }
            ++c.bad;
          }
        }
  return c;
}

// Tolerance of a result stored in dtype `dt` (normalized by the tensor's max magnitude).
inline double tol_for(int32_t dt) {
  switch (dt) {
    case UMFA_DTYPE_F32: return 1e-4;
    case UMFA_DTYPE_F16: return 4e-3;
    default: return 3e-2;
  }
}

}  // namespace cputest
