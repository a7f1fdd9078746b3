// A slow float64 attention reference for the reliability tests (core/fuzz, core/stress).
//
// Written from the definitions in include/umfa.h only (no code shared with the library): element
// conversions, reading and writing through strided views, and forward/backward attention with
// every option (causal masks, sliding window, softcap, ALiBi, boolean/additive masks, GQA,
// varlen). Inputs are read in their own dtype and converted exactly to double; the results are
// double, so the only differences a correct library may show are float32 accumulation and the
// rounding of its outputs.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "umfa.h"

namespace ref {

// ---------------------------------------------------------------------------------------------
// Element conversions
// ---------------------------------------------------------------------------------------------

inline float bits_to_f32(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}
inline uint32_t f32_to_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

inline float bf16_to_f32(uint16_t h) { return bits_to_f32(static_cast<uint32_t>(h) << 16); }

// Round to nearest even; NaN stays a (quiet) NaN.
inline uint16_t f32_to_bf16(float f) {
  const uint32_t x = f32_to_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x0040u);
  const uint32_t rounded = x + 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(rounded >> 16);
}

inline float f16_to_f32(uint16_t h) {
  const double sign = (h & 0x8000u) ? -1.0 : 1.0;
  const int exp = (h >> 10) & 0x1f;
  const int man = h & 0x3ff;
  if (exp == 0) return static_cast<float>(sign * std::ldexp(static_cast<double>(man), -24));
  if (exp == 31)
    return man ? std::numeric_limits<float>::quiet_NaN()
               : static_cast<float>(sign * std::numeric_limits<double>::infinity());
  return static_cast<float>(sign * std::ldexp(1024.0 + man, exp - 25));
}

// IEEE binary16, round to nearest even (overflow to infinity).
inline uint16_t f32_to_f16(float f) {
  const uint32_t x = f32_to_bits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return sign | 0x7e00u;
  if (ax == 0x7f800000u) return sign | 0x7c00u;
  const double a = std::fabs(static_cast<double>(f));
  if (a < 6.103515625e-05) {  // below the smallest normal: multiples of 2^-24
    const double units = std::nearbyint(a * 16777216.0);
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(units));  // 1024 = smallest normal
  }
  int e = 0;
  const double fr = std::frexp(a, &e);  // a = fr * 2^e, fr in [0.5, 1)
  uint32_t mant = static_cast<uint32_t>(std::nearbyint(fr * 2048.0));  // 1024..2048
  int biased = e - 1 + 15;
  if (mant == 2048) {
    mant = 1024;
    ++biased;
  }
  if (biased >= 31) return sign | 0x7c00u;
  return static_cast<uint16_t>(sign | (biased << 10) | (mant - 1024));
}

inline int64_t dtype_size(int32_t dtype) {
  switch (dtype) {
    case UMFA_DTYPE_F32:
    case UMFA_DTYPE_I32: return 4;
    case UMFA_DTYPE_F16:
    case UMFA_DTYPE_BF16: return 2;
    case UMFA_DTYPE_BOOL: return 1;
    default: return 0;
  }
}

// Reads element `index` (in elements from `base`) as double.
inline double load(const void* base, int32_t dtype, int64_t index) {
  const char* p = static_cast<const char*>(base) + index * dtype_size(dtype);
  switch (dtype) {
    case UMFA_DTYPE_F32: {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
    case UMFA_DTYPE_F16: {
      uint16_t h;
      std::memcpy(&h, p, 2);
      return f16_to_f32(h);
    }
    case UMFA_DTYPE_BF16: {
      uint16_t h;
      std::memcpy(&h, p, 2);
      return bf16_to_f32(h);
    }
    case UMFA_DTYPE_BOOL: return *reinterpret_cast<const uint8_t*>(p) != 0 ? 1.0 : 0.0;
    case UMFA_DTYPE_I32: {
      int32_t i;
      std::memcpy(&i, p, 4);
      return i;
    }
    default: return 0.0;
  }
}

// Writes `value` rounded to `dtype` at element `index`.
inline void store(void* base, int32_t dtype, int64_t index, double value) {
  char* p = static_cast<char*>(base) + index * dtype_size(dtype);
  switch (dtype) {
    case UMFA_DTYPE_F32: {
      const float f = static_cast<float>(value);
      std::memcpy(p, &f, 4);
      break;
    }
    case UMFA_DTYPE_F16: {
      const uint16_t h = f32_to_f16(static_cast<float>(value));
      std::memcpy(p, &h, 2);
      break;
    }
    case UMFA_DTYPE_BF16: {
      const uint16_t h = f32_to_bf16(static_cast<float>(value));
      std::memcpy(p, &h, 2);
      break;
    }
    case UMFA_DTYPE_BOOL: *reinterpret_cast<uint8_t*>(p) = value != 0.0 ? 1 : 0; break;
    case UMFA_DTYPE_I32: {
      const double c = std::isnan(value) ? 0.0 : std::min(2147483647.0, std::max(-2147483648.0, value));
      const int32_t i = static_cast<int32_t>(c);
      std::memcpy(p, &i, 4);
      break;
    }
    default: break;
  }
}

// The value `value` takes once stored as `dtype` (the rounding a library output goes through).
inline double round_to(int32_t dtype, double value) {
  unsigned char tmp[8];
  store(tmp, dtype, 0, value);
  return load(tmp, dtype, 0);
}

// ---------------------------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------------------------

// Element offset of index `idx` (rank entries) in a view.
inline int64_t offset_of(const umfa_tensor& t, const int64_t* idx) {
  int64_t off = 0;
  for (int d = 0; d < t.rank; ++d) off += idx[d] * t.strides[d];
  return off;
}

inline double at(const umfa_tensor& t, int64_t i0, int64_t i1 = 0, int64_t i2 = 0, int64_t i3 = 0) {
  const int64_t idx[4] = {i0, i1, i2, i3};
  return load(t.data, t.dtype, offset_of(t, idx));
}

inline void put(const umfa_tensor& t, double value, int64_t i0, int64_t i1 = 0, int64_t i2 = 0,
                int64_t i3 = 0) {
  const int64_t idx[4] = {i0, i1, i2, i3};
  store(t.data, t.dtype, offset_of(t, idx), value);
}

inline int64_t numel(const umfa_tensor& t) {
  int64_t n = 1;
  for (int d = 0; d < t.rank; ++d) n *= t.shape[d];
  return n;
}

// Calls fn(flat_index, element_offset) for every element of a view, in row-major logical order.
template <class Fn>
void for_each_element(const umfa_tensor& t, Fn fn) {
  const int64_t n = numel(t);
  if (n <= 0) return;
  int64_t idx[4] = {0, 0, 0, 0};
  for (int64_t flat = 0; flat < n; ++flat) {
    fn(flat, offset_of(t, idx));
    for (int d = t.rank - 1; d >= 0; --d) {
      if (++idx[d] < t.shape[d]) break;
      idx[d] = 0;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Attention
// ---------------------------------------------------------------------------------------------

// A problem as the header defines it, already known to be valid. Dense tensors are
// [B, N, H, D] (lse [B, Hq, Nq]); varlen ones [T, H, D] (lse [Hq, Tq]) with cu_q/cu_k offsets.
struct Problem {
  int64_t batch = 0, nq = 0, nk = 0, hq = 0, hkv = 0, d = 0;
  bool varlen = false;
  std::vector<int64_t> cu_q, cu_k;  // varlen: batch + 1 offsets
  int64_t total_q = 0, total_k = 0;  // varlen: rows of q / k

  uint32_t mask_mode = UMFA_MASK_NONE;
  double scale = 0.0;  // resolved (never 0)
  double softcap = 0.0;
  bool has_window = false;
  int64_t window_left = -1, window_right = -1;
  const umfa_tensor* mask = nullptr;   // rank 1..4, broadcast to [B, Hq, Nq, Nk]
  const umfa_tensor* alibi = nullptr;  // [Hq] or [B, Hq]

  umfa_tensor q{}, k{}, v{};

  int64_t rows_q() const { return varlen ? total_q : batch * nq; }
  int64_t rows_k() const { return varlen ? total_k : batch * nk; }
  // Sequence b: first row (in the packed numbering) and length.
  int64_t q_begin(int64_t b) const { return varlen ? cu_q[b] : b * nq; }
  int64_t k_begin(int64_t b) const { return varlen ? cu_k[b] : b * nk; }
  int64_t q_len(int64_t b) const { return varlen ? cu_q[b + 1] - cu_q[b] : nq; }
  int64_t k_len(int64_t b) const { return varlen ? cu_k[b + 1] - cu_k[b] : nk; }
};

// Element (row, head, dim) of a q/k/v-like tensor, with `row` in the packed numbering.
inline double seq_at(const Problem& p, const umfa_tensor& t, int64_t row, int64_t h, int64_t d,
                     bool kv) {
  if (p.varlen) return at(t, row, h, d);
  const int64_t n = kv ? p.nk : p.nq;
  return at(t, row / n, row % n, h, d);
}

// Logical flat index of (row, head, dim) in a [rows, H, D] array.
inline size_t flat3(int64_t row, int64_t h, int64_t d, int64_t heads, int64_t dim) {
  return static_cast<size_t>((row * heads + h) * dim + d);
}

// A q/k/v-like tensor gathered into a dense [rows, heads, dim] array of doubles.
inline std::vector<double> gather(const Problem& p, const umfa_tensor& t, bool kv) {
  const int64_t rows = kv ? p.rows_k() : p.rows_q(), heads = kv ? p.hkv : p.hq;
  std::vector<double> out(static_cast<size_t>(rows * heads * p.d));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t d = 0; d < p.d; ++d) out[flat3(r, h, d, heads, p.d)] = seq_at(p, t, r, h, d, kv);
  return out;
}

struct Gathered {
  std::vector<double> q, k, v;
  explicit Gathered(const Problem& p) : q(gather(p, p.q, false)), k(gather(p, p.k, true)), v(gather(p, p.v, true)) {}
};

struct Scores {
  // For one (b, h): s[i * nk + j] (score after softcap/alibi/additive mask), raw (scale * q.k),
  // visible flags, and err: a bound on the absolute error of a float32 computation of s.
  std::vector<double> s, raw, err;
  std::vector<char> visible;
};

// Unit roundoff of float32, and a bound on the error of a float32 dot product of n terms whose
// absolute values sum to `abs_sum` (worst case, the terms may all round the same way).
constexpr double kEps32 = 5.9604644775390625e-08;
inline double dot_error(int64_t n, double abs_sum) { return 1.01 * static_cast<double>(n + 2) * kEps32 * abs_sum; }

inline bool window_visible(const Problem& p, int64_t i, int64_t j, int64_t nq, int64_t nk) {
  const int64_t offset = p.mask_mode == UMFA_MASK_CAUSAL_TOP_LEFT ? 0 : nk - nq;
  // d = j - (i + offset), computed without overflow (|i|, |j|, |offset| are small).
  const int64_t dd = j - (i + offset);
  int64_t left = p.has_window ? p.window_left : -1;
  int64_t right = p.has_window ? p.window_right : -1;
  if (left < 0) left = -1;
  if (right < 0) right = -1;
  if (p.mask_mode != UMFA_MASK_NONE) right = 0;
  if (left >= 0 && dd < -left) return false;
  if (right >= 0 && dd > right) return false;
  return true;
}

inline double mask_at(const umfa_tensor& m, int64_t b, int64_t h, int64_t i, int64_t j) {
  const int64_t full[4] = {b, h, i, j};
  int64_t idx[4] = {0, 0, 0, 0};
  for (int r = 0; r < m.rank; ++r) {
    const int64_t fi = full[4 - m.rank + r];
    idx[r] = m.shape[r] == 1 ? 0 : fi;
  }
  return load(m.data, m.dtype, offset_of(m, idx));
}

inline void scores(const Problem& p, const Gathered& g, int64_t b, int64_t h, Scores* out) {
  const int64_t nq = p.q_len(b), nk = p.k_len(b);
  const int64_t q0 = p.q_begin(b), k0 = p.k_begin(b);
  const int64_t hk = h / (p.hq / p.hkv);
  const int64_t offset = p.mask_mode == UMFA_MASK_CAUSAL_TOP_LEFT ? 0 : nk - nq;
  out->s.assign(static_cast<size_t>(nq * nk), 0.0);
  out->raw.assign(static_cast<size_t>(nq * nk), 0.0);
  out->err.assign(static_cast<size_t>(nq * nk), 0.0);
  out->visible.assign(static_cast<size_t>(nq * nk), 0);
  double slope = 0.0;
  if (p.alibi) slope = p.alibi->rank == 1 ? at(*p.alibi, h) : at(*p.alibi, b, h);
  for (int64_t i = 0; i < nq; ++i) {
    for (int64_t j = 0; j < nk; ++j) {
      const size_t ij = static_cast<size_t>(i * nk + j);
      double dot = 0.0, abs_sum = 0.0;
      const double* qr = &g.q[flat3(q0 + i, h, 0, p.hq, p.d)];
      const double* kr = &g.k[flat3(k0 + j, hk, 0, p.hkv, p.d)];
      for (int64_t d = 0; d < p.d; ++d) {
        dot += qr[d] * kr[d];
        abs_sum += std::fabs(qr[d] * kr[d]);
      }
      const double raw = dot * p.scale;
      double s = raw;
      if (p.softcap > 0.0) s = p.softcap * std::tanh(s / p.softcap);
      if (p.alibi) s += -slope * std::fabs(static_cast<double>(i + offset - j));
      bool vis = window_visible(p, i, j, nq, nk);
      if (p.mask) {
        const double m = mask_at(*p.mask, b, h, i, j);
        if (p.mask->dtype == UMFA_DTYPE_BOOL)
          vis = vis && m != 0.0;
        else
          s += m;
      }
      if (s == -std::numeric_limits<double>::infinity()) vis = false;
      out->raw[ij] = raw;
      out->s[ij] = s;
      // The scaled dot product, then the bias terms, each rounded once or twice.
      out->err[ij] = dot_error(p.d, abs_sum) * std::fabs(p.scale) + 4.0 * kEps32 * (std::fabs(s) + std::fabs(raw));
      out->visible[ij] = vis ? 1 : 0;
    }
  }
}

struct ForwardResult {
  std::vector<double> out;  // [rows_q, Hq, D]
  std::vector<double> lse;  // [Hq, rows_q] (the caller maps it to its layout)
  double max_abs_score = 0.0;  // largest |visible score|
  // Bounds on the error a float32 computation may show, from score errors: per query row and
  // head, for out ([rows_q, Hq]) and lse ([Hq, rows_q]).
  std::vector<double> out_err, lse_err;
};

inline ForwardResult forward(const Problem& p) {
  ForwardResult r;
  const int64_t rows = p.rows_q();
  r.out.assign(static_cast<size_t>(rows * p.hq * p.d), 0.0);
  r.lse.assign(static_cast<size_t>(p.hq * rows), -std::numeric_limits<double>::infinity());
  r.out_err.assign(static_cast<size_t>(rows * p.hq), 0.0);
  r.lse_err.assign(static_cast<size_t>(p.hq * rows), 0.0);
  if (p.hkv == 0) return r;
  const Gathered g(p);
  Scores sc;
  for (int64_t b = 0; b < p.batch; ++b) {
    const int64_t nq = p.q_len(b), nk = p.k_len(b);
    const int64_t q0 = p.q_begin(b), k0 = p.k_begin(b);
    for (int64_t h = 0; h < p.hq; ++h) {
      const int64_t hk = h / (p.hq / p.hkv);
      scores(p, g, b, h, &sc);
      for (int64_t i = 0; i < nq; ++i) {
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < nk; ++j) {
          const size_t ij = static_cast<size_t>(i * nk + j);
          if (!sc.visible[ij]) continue;
          mx = std::max(mx, sc.s[ij]);
          r.max_abs_score = std::max(r.max_abs_score, std::fabs(sc.s[ij]));
          r.max_abs_score = std::max(r.max_abs_score, std::fabs(sc.raw[ij]));
        }
        if (mx == -std::numeric_limits<double>::infinity()) continue;  // fully masked row
        double sum = 0.0;
        for (int64_t j = 0; j < nk; ++j) {
          const size_t ij = static_cast<size_t>(i * nk + j);
          if (sc.visible[ij]) sum += std::exp(sc.s[ij] - mx);
        }
        r.lse[static_cast<size_t>(h * rows + q0 + i)] = mx + std::log(sum);
        double err_s = 0.0, vmax = 0.0;
        for (int64_t j = 0; j < nk; ++j) {
          const size_t ij = static_cast<size_t>(i * nk + j);
          if (!sc.visible[ij]) continue;
          const double pr = std::exp(sc.s[ij] - mx) / sum;
          const double* vr = &g.v[flat3(k0 + j, hk, 0, p.hkv, p.d)];
          double* orow = &r.out[flat3(q0 + i, h, 0, p.hq, p.d)];
          for (int64_t d = 0; d < p.d; ++d) {
            orow[d] += pr * vr[d];
            vmax = std::max(vmax, std::fabs(vr[d]));
          }
          err_s = std::max(err_s, sc.err[ij]);
        }
        // A score error e changes the softmax weights by a factor within exp(+-2e).
        r.out_err[static_cast<size_t>((q0 + i) * p.hq + h)] = 2.0 * std::expm1(2.0 * err_s) * vmax;
        r.lse_err[static_cast<size_t>(h * rows + q0 + i)] = err_s;
      }
    }
  }
  return r;
}

struct BackwardResult {
  std::vector<double> dq;  // [rows_q, Hq, D]
  std::vector<double> dk;  // [rows_k, Hkv, D]
  std::vector<double> dv;  // [rows_k, Hkv, D]
  // Error bounds of a float32 computation, per row and head: dq [rows_q, Hq], dk and dv
  // [rows_k, Hkv] (from the float32 dot products dP = dO.V, delta = dO.O, s = q.k, which may
  // cancel: dS = P (dP - delta)).
  std::vector<double> dq_err, dk_err, dv_err;
};

// Backward with the forward output `out` and `lse` the caller passes (as the library reads
// them): P = exp(s - lse), delta = rowsum(dout * out). out/dout are accessed like q; lse_at(h,
// row) gives the lse of a query row (-inf = fully masked: zero gradients).
template <class LseAt>
BackwardResult backward(const Problem& p, const umfa_tensor& out, const umfa_tensor& dout,
                        LseAt lse_at) {
  BackwardResult r;
  const int64_t rq = p.rows_q(), rk = p.rows_k();
  r.dq.assign(static_cast<size_t>(rq * p.hq * p.d), 0.0);
  r.dk.assign(static_cast<size_t>(rk * p.hkv * p.d), 0.0);
  r.dv.assign(static_cast<size_t>(rk * p.hkv * p.d), 0.0);
  r.dq_err.assign(static_cast<size_t>(rq * p.hq), 0.0);
  r.dk_err.assign(static_cast<size_t>(rk * p.hkv), 0.0);
  r.dv_err.assign(static_cast<size_t>(rk * p.hkv), 0.0);
  if (p.hkv == 0) return r;
  const Gathered g(p);
  const std::vector<double> o = gather(p, out, false), dO = gather(p, dout, false);
  auto row_max = [&](const std::vector<double>& x, size_t at) {
    double m = 0.0;
    for (int64_t d = 0; d < p.d; ++d) m = std::max(m, std::fabs(x[at + static_cast<size_t>(d)]));
    return m;
  };
  Scores sc;
  for (int64_t b = 0; b < p.batch; ++b) {
    const int64_t nq = p.q_len(b), nk = p.k_len(b);
    const int64_t q0 = p.q_begin(b), k0 = p.k_begin(b);
    for (int64_t h = 0; h < p.hq; ++h) {
      const int64_t hk = h / (p.hq / p.hkv);
      scores(p, g, b, h, &sc);
      for (int64_t i = 0; i < nq; ++i) {
        const double lse = lse_at(h, q0 + i);
        if (lse == -std::numeric_limits<double>::infinity()) continue;
        const size_t qi = flat3(q0 + i, h, 0, p.hq, p.d);
        double delta = 0.0, delta_abs = 0.0;
        for (int64_t d = 0; d < p.d; ++d) {
          delta += dO[qi + d] * o[qi + d];
          delta_abs += std::fabs(dO[qi + d] * o[qi + d]);
        }
        const double qmax = row_max(g.q, qi), domax = row_max(dO, qi);
        for (int64_t j = 0; j < nk; ++j) {
          const size_t ij = static_cast<size_t>(i * nk + j);
          if (!sc.visible[ij]) continue;
          const size_t kj = flat3(k0 + j, hk, 0, p.hkv, p.d);
          const double pr = std::exp(sc.s[ij] - lse);
          double dp = 0.0, dp_abs = 0.0;
          for (int64_t d = 0; d < p.d; ++d) {
            dp += dO[qi + d] * g.v[kj + d];
            dp_abs += std::fabs(dO[qi + d] * g.v[kj + d]);
          }
          double dsij = pr * (dp - delta);
          // Error of dS: from dP and delta (cancellation), and P's relative error from the
          // score (and lse) error.
          const double p_rel = std::expm1(2.0 * sc.err[ij] + 4.0 * kEps32 * std::fabs(lse));
          const double ds_err = pr * (dot_error(p.d, dp_abs) + dot_error(p.d, delta_abs)) +
                                std::fabs(dsij) * p_rel + pr * p_rel * std::fabs(dp - delta);
          const double kmax = row_max(g.k, kj);
          r.dq_err[static_cast<size_t>((q0 + i) * p.hq + h)] += std::fabs(p.scale) * ds_err * kmax;
          r.dk_err[static_cast<size_t>((k0 + j) * p.hkv + hk)] += std::fabs(p.scale) * ds_err * qmax;
          r.dv_err[static_cast<size_t>((k0 + j) * p.hkv + hk)] += pr * p_rel * domax;
          if (p.softcap > 0.0) {
            const double t = std::tanh(sc.raw[ij] / p.softcap);
            dsij *= 1.0 - t * t;
          }
          for (int64_t d = 0; d < p.d; ++d) {
            r.dq[qi + d] += p.scale * dsij * g.k[kj + d];
            r.dk[kj + d] += p.scale * dsij * g.q[qi + d];
            r.dv[kj + d] += pr * dO[qi + d];
          }
        }
      }
    }
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------------

// Tolerances by the lowest precision among the inputs and the output (the conformance table's
// classes), plus a term proportional to the largest reference magnitude that covers float32
// cancellation.
struct Tol {
  double atol, rtol, ctol;
};

inline int precision_rank(int32_t dtype) {
  return dtype == UMFA_DTYPE_BF16 ? 2 : dtype == UMFA_DTYPE_F16 ? 1 : 0;
}

inline Tol tolerance(int32_t in_dtype, int32_t out_dtype, bool gradient, double max_abs_score) {
  const int cls = std::max(precision_rank(in_dtype), precision_rank(out_dtype));
  Tol t;
  if (!gradient) {
    static const Tol table[3] = {{1e-5, 1e-4, 1e-4}, {2e-3, 4e-3, 1e-3}, {1.6e-2, 3.2e-2, 8e-3}};
    t = table[cls];
  } else {
    static const Tol table[3] = {{5e-5, 5e-4, 2e-4}, {1e-2, 1e-2, 4e-3}, {8e-2, 8e-2, 3e-2}};
    t = table[cls];
  }
  // Scores are computed in float32: an absolute error of about |s| * 2^-23 * sqrt(terms) in a
  // score moves the softmax by as much, relative.
  t.ctol += 4e-7 * max_abs_score;
  return t;
}

}  // namespace ref
