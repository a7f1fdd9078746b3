// A tiny test helper for the core's ctest executables: checks that count failures instead of
// aborting, element conversions, a deterministic RNG and a float64 reference attention.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "umfa.h"

namespace t {

inline int& failures() {
  static int n = 0;
  return n;
}
inline int& checks() {
  static int n = 0;
  return n;
}

inline bool report(bool ok, const char* file, int line, const std::string& what) {
  ++checks();
  if (!ok) {
    ++failures();
    std::fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what.c_str());
  }
  return ok;
}

// mingw-w64 builds use its C99 printf family (__USE_MINGW_ANSI_STDIO): GNU's format dialect.
#if defined(__MINGW32__)
inline std::string fmt(const char* f, ...) __attribute__((format(gnu_printf, 1, 2)));
#else
inline std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
#endif
inline std::string fmt(const char* f, ...) {
  char buf[2048];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

// Prints the summary; returns the process exit code.
inline int summary(const char* name) {
  std::printf("%s: %d checks, %d failed\n", name, checks(), failures());
  return failures() == 0 ? 0 : 1;
}

}  // namespace t

#define CHECK(cond) t::report(static_cast<bool>(cond), __FILE__, __LINE__, #cond)
#define CHECK_MSG(cond, ...) t::report(static_cast<bool>(cond), __FILE__, __LINE__, t::fmt(__VA_ARGS__))
// Evaluates each argument once (an argument may be a call with side effects, e.g. a create).
#define CHECK_EQ(a, b)                                                                         \
  [&]() {                                                                                      \
    const auto a_ = (a);                                                                       \
    const auto b_ = (b);                                                                       \
    return t::report(a_ == b_, __FILE__, __LINE__,                                             \
                     t::fmt("%s == %s (%lld vs %lld)", #a, #b, static_cast<long long>(a_),     \
                            static_cast<long long>(b_)));                                      \
  }()
#define CHECK_STATUS(call, expected)                                                           \
  do {                                                                                         \
    umfa_status st_ = (call);                                                                  \
    t::report(st_ == (expected), __FILE__, __LINE__,                                           \
              t::fmt("%s returned %s, expected %s (last error: %s)", #call,                   \
                     umfa_status_string(st_), umfa_status_string(expected),                   \
                     umfa_last_error(nullptr)));                                               \
  } while (0)
#define CHECK_CONTAINS(haystack, needle)                                                       \
  do {                                                                                         \
    const char* h_ = (haystack);                                                               \
    const char* n_ = (needle);                                                                 \
    t::report(h_ && std::strstr(h_, n_) != nullptr, __FILE__, __LINE__,                        \
              t::fmt("\"%s\" contains \"%s\"", h_ ? h_ : "(null)", n_));                      \
  } while (0)
#define REQUIRE_OK(call)                                                                       \
  do {                                                                                         \
    umfa_status st_ = (call);                                                                  \
    if (!t::report(st_ == UMFA_STATUS_OK, __FILE__, __LINE__,                                  \
                   t::fmt("%s returned %s: %s", #call, umfa_status_string(st_),               \
                          umfa_last_error(nullptr)))) {                                        \
      return t::summary(__FILE__);                                                             \
    }                                                                                          \
  } while (0)

namespace t {

// --- element conversions (round to nearest even) ------------------------------------------

inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1u, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  float v;
  if (exp == 0)
    v = std::ldexp(static_cast<float>(man), -24);
  else if (exp == 31)
    v = man ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else
    v = std::ldexp(static_cast<float>(man | 0x400u), int(exp) - 25);
  return sign ? -v : v;
}
inline uint16_t f32_to_f16(float f) {
  // Exhaustive-enough: search by rounding through double arithmetic.
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  float a = std::fabs(f);
  if (std::isnan(f)) return sign | 0x7e00u;
  if (a >= 65520.f) return sign | 0x7c00u;  // rounds to infinity
  if (a < std::ldexp(1.f, -14)) {           // subnormal: multiples of 2^-24
    double m = std::nearbyint(static_cast<double>(a) * std::ldexp(1.0, 24));
    return sign | static_cast<uint16_t>(m);
  }
  int e;
  double frac = std::frexp(static_cast<double>(a), &e);  // a = frac * 2^e, frac in [0.5, 1)
  double m = std::nearbyint(frac * 2048.0);              // 11 significant bits
  if (m == 2048.0) {
    m = 1024.0;
    ++e;
  }
  const int biased = e - 1 + 15;
  if (biased >= 31) return sign | 0x7c00u;
  return sign | static_cast<uint16_t>((biased << 10) | (static_cast<uint32_t>(m) & 0x3ffu));
}

inline void store(void* base, int32_t dtype, int64_t index, double value) {
  switch (dtype) {
    case UMFA_DTYPE_F32: static_cast<float*>(base)[index] = static_cast<float>(value); break;
    case UMFA_DTYPE_F16: static_cast<uint16_t*>(base)[index] = f32_to_f16(static_cast<float>(value)); break;
    case UMFA_DTYPE_BF16: static_cast<uint16_t*>(base)[index] = f32_to_bf16(static_cast<float>(value)); break;
    default: break;
  }
}
inline double load(const void* base, int32_t dtype, int64_t index) {
  switch (dtype) {
    case UMFA_DTYPE_F32: return static_cast<const float*>(base)[index];
    case UMFA_DTYPE_F16: return f16_to_f32(static_cast<const uint16_t*>(base)[index]);
    case UMFA_DTYPE_BF16: return bf16_to_f32(static_cast<const uint16_t*>(base)[index]);
    default: return 0.0;
  }
}

// --- deterministic random numbers -----------------------------------------------------------

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9e3779b97f4a7c15ull + 1) {}
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  // Uniform in [-1, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-52 - 1.0; }
};

// --- float64 reference attention ------------------------------------------------------------

// A tensor's element accessor for the reference: [b, s, h, d] with element strides.
struct Ref4 {
  const void* data;
  int32_t dtype;
  int64_t st[4];
  double at(int64_t b, int64_t s, int64_t h, int64_t d) const {
    return load(data, dtype, b * st[0] + s * st[1] + h * st[2] + d * st[3]);
  }
};

// out[b, i, h, :] for one query row; returns lse (natural log), -inf for a fully masked row.
// causal: 0 none, 1 top-left, 2 bottom-right.
inline double reference_row(const Ref4& q, const Ref4& k, const Ref4& v, int64_t b, int64_t i,
                            int64_t h, int64_t nq, int64_t nk, int64_t hq, int64_t hkv,
                            int64_t d, double scale, int causal, double* out_row) {
  const int64_t kh = h / (hq / hkv);
  const int64_t offset = causal == 2 ? nk - nq : 0;
  std::vector<double> s(static_cast<size_t>(nk), -INFINITY);
  double mx = -INFINITY;
  for (int64_t j = 0; j < nk; ++j) {
    if (causal && j > i + offset) continue;
    double acc = 0;
    for (int64_t x = 0; x < d; ++x) acc += q.at(b, i, h, x) * k.at(b, j, kh, x);
    s[j] = acc * scale;
    mx = std::max(mx, s[j]);
  }
  for (int64_t x = 0; x < d; ++x) out_row[x] = 0;
  if (mx == -INFINITY) return -INFINITY;
  double sum = 0;
  for (int64_t j = 0; j < nk; ++j) {
    if (s[j] == -INFINITY) continue;
    double p = std::exp(s[j] - mx);
    sum += p;
    for (int64_t x = 0; x < d; ++x) out_row[x] += p * v.at(b, j, kh, x);
  }
  for (int64_t x = 0; x < d; ++x) out_row[x] /= sum;
  return mx + std::log(sum);
}

// Relative-to-scale tolerance per output dtype.
inline double tolerance(int32_t dtype) {
  switch (dtype) {
    case UMFA_DTYPE_F16: return 2e-3;
    case UMFA_DTYPE_BF16: return 1.6e-2;
    default: return 2e-5;
  }
}

// Fills a dense tensor view described by umfa_tensor with uniform values.
inline void fill_random(const umfa_tensor& tt, Rng& rng, double amplitude = 1.0) {
  int64_t n = 1;
  for (int i = 0; i < tt.rank; ++i) n *= tt.shape[i];
  for (int64_t i = 0; i < n; ++i) store(tt.data, tt.dtype, i, amplitude * rng.uniform());
}

inline umfa_tensor tensor4(void* data, int32_t dtype, int64_t a, int64_t b, int64_t c, int64_t d) {
  umfa_tensor x;
  const int64_t shape[4] = {a, b, c, d};
  umfa_tensor_init_contiguous(&x, data, dtype, 4, shape);
  return x;
}

// Aligned, zeroed bytes that stay alive for the test.
struct Bytes {
  std::vector<unsigned char> v;
  explicit Bytes(size_t n = 0) : v(n + 64) {}
  void* data() {
    uintptr_t p = reinterpret_cast<uintptr_t>(v.data());
    return reinterpret_cast<void*>((p + 63) & ~uintptr_t(63));
  }
};

}  // namespace t
