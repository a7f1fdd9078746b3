// Overlap of two strided views (overlap.h).
//
// View A covers the bytes  base_a + sum_i sa_i * x_i + u,  0 <= x_i <= na_i - 1,  0 <= u < ea
// (sa_i: stride in bytes, ea: element size), and view B likewise with y_j, v. They share a byte
// when those are equal for some indices. Substituting y'_j = (nb_j - 1) - y_j and
// w = u - v + eb - 1 turns the equation into one with positive coefficients only:
//
//   sum_i sa_i * x_i + sum_j sb_j * y'_j + w = base_b - base_a + span_b + eb - 1,
//   0 <= w <= ea + eb - 2,   span_b = sum_j sb_j * (nb_j - 1),
//
// a bounded knapsack: are there bounded non-negative z_k with sum a_k z_k within
// [target - W, target]? A depth-first search over the terms from the largest coefficient down,
// each z_k limited to the values that leave the rest reachable, decides it. Terms with equal
// coefficients are merged (dq/dk/dv of one packed buffer share every stride) and the gcd of the
// remaining coefficients prunes targets no combination can hit. For the layouts tensors have in
// practice (each stride beyond the reach of the smaller ones) every level keeps two or three
// candidate values, so the search visits a few dozen nodes; it stops after kMaxNodes.
#include "api/overlap.h"

#include <algorithm>
#include <cstdint>

namespace umfa {
namespace api {
namespace {

using u128 = unsigned __int128;
using i128 = __int128;

constexpr int kMaxTerms = 2 * UMFA_MAX_RANK;
constexpr int64_t kMaxNodes = 1 << 16;

struct Term {
  u128 coef;   // bytes per index step (> 0)
  u128 bound;  // largest index (> 0)
};

u128 gcd(u128 a, u128 b) {
  while (b != 0) {
    const u128 t = a % b;
    a = b;
    b = t;
  }
  return a;
}

struct Search {
  Term terms[kMaxTerms];
  int n = 0;
  u128 reach[kMaxTerms + 1];    // reach[k]: largest sum the terms k.. can make
  u128 divisor[kMaxTerms + 1];  // divisor[k]: gcd of the coefficients k.. (0 for none)
  u128 slack = 0;               // W: the sum may fall short of the target by up to this
  int64_t nodes = 0;
  bool gave_up = false;

  // Whether terms k.. can make a sum in [target - slack, target].
  bool solve(int k, u128 target) {
    if (++nodes > kMaxNodes) {
      gave_up = true;
      return false;
    }
    if (k == n) return target <= slack;
    if (target > reach[k] + slack) return false;
    if (target % divisor[k] > slack) return false;  // no multiple of the gcd in the window
    const Term& t = terms[k];
    u128 hi = std::min(t.bound, target / t.coef);
    const u128 rest = reach[k + 1] + slack;
    const u128 lo = target > rest ? (target - rest + t.coef - 1) / t.coef : 0;
    for (u128 z = hi + 1; z-- > lo;) {
      if (solve(k + 1, target - t.coef * z)) return true;
      if (gave_up) return false;
    }
    return false;
  }
};

// Adds the dimensions of `t` (extent > 1, stride > 0) as terms; returns the view's span in bytes
// (offset of its last element's first byte).
u128 add_terms(Search& s, const umfa_tensor& t) {
  const u128 esize = umfa_dtype_size(t.dtype);
  u128 span = 0;
  for (int d = 0; d < t.rank; ++d) {
    if (t.shape[d] <= 1 || t.strides[d] == 0) continue;
    const Term term{static_cast<u128>(t.strides[d]) * esize, static_cast<u128>(t.shape[d] - 1)};
    s.terms[s.n++] = term;
    span += term.coef * term.bound;
  }
  return span;
}

bool empty(const umfa_tensor& t) {
  for (int d = 0; d < t.rank; ++d)
    if (t.shape[d] == 0) return true;
  return false;
}

}  // namespace

Overlap views_overlap(const umfa_tensor& a, const umfa_tensor& b) {
  if (empty(a) || empty(b) || !a.data || !b.data) return Overlap::kDisjoint;
  Search s;
  const u128 ea = umfa_dtype_size(a.dtype), eb = umfa_dtype_size(b.dtype);
  const u128 span_a = add_terms(s, a);
  const u128 span_b = add_terms(s, b);
  const i128 base_a = static_cast<i128>(reinterpret_cast<uintptr_t>(a.data));
  const i128 base_b = static_cast<i128>(reinterpret_cast<uintptr_t>(b.data));
  // Byte ranges that do not intersect: the common case, decided here.
  if (base_a + static_cast<i128>(span_a + ea) <= base_b ||
      base_b + static_cast<i128>(span_b + eb) <= base_a)
    return Overlap::kDisjoint;

  // Intersecting ranges make the target non-negative.
  const u128 target = static_cast<u128>(base_b - base_a + static_cast<i128>(span_b + eb - 1));
  s.slack = ea + eb - 2;
  std::sort(s.terms, s.terms + s.n, [](const Term& x, const Term& y) { return x.coef > y.coef; });
  int merged = 0;
  for (int k = 0; k < s.n; ++k) {
    if (merged > 0 && s.terms[merged - 1].coef == s.terms[k].coef)
      s.terms[merged - 1].bound += s.terms[k].bound;
    else
      s.terms[merged++] = s.terms[k];
  }
  s.n = merged;
  s.reach[s.n] = 0;
  s.divisor[s.n] = 0;
  for (int k = s.n - 1; k >= 0; --k) {
    s.reach[k] = s.reach[k + 1] + s.terms[k].coef * s.terms[k].bound;
    s.divisor[k] = gcd(s.terms[k].coef, s.divisor[k + 1]);
  }
  if (s.solve(0, target)) return Overlap::kShared;
  return s.gave_up ? Overlap::kUndecided : Overlap::kDisjoint;
}

}  // namespace api
}  // namespace umfa
