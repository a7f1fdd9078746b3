// What NaN and infinity in the inputs produce (umfa.h, "Non-finite inputs" under
// umfa_attention_options): pinned for every input dtype, on every CPU kernel variant the machine
// runs, on 1 and 3 threads, for a 200 x 200 causal problem (several key blocks per row) and a
// decode-like 2 x 700 problem (split keys on 3 threads).
#include <cmath>
#include <cstdlib>
#include <functional>
#include <vector>

#include "test_os.h"
#include "test_util.h"

namespace {

constexpr int64_t D = 16;
const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

struct Inputs {
  int64_t nq, nk;
  std::vector<float> q, k, v;
  std::vector<float> add_mask;      // [nq, nk] additive mask, empty = none
  std::vector<uint8_t> bool_mask;   // [nq, nk] boolean mask, empty = none
  std::vector<float> slopes;        // [1], empty = none
  uint32_t mask_mode = UMFA_MASK_NONE;
  int64_t window_left = -1, window_right = -1;  // both -1 = no window
  float softcap = 0.f;

  Inputs(int64_t nq_, int64_t nk_) : nq(nq_), nk(nk_), q(nq_ * D), k(nk_ * D), v(nk_ * D) {
    // No element is 0, and the sign of q's column 0 alternates by row.
    for (int64_t i = 0; i < nq; ++i)
      for (int64_t c = 0; c < D; ++c)
        q[i * D + c] = static_cast<float>((i % 2 ? -1 : 1) * (0.25 + 0.5 * std::fabs(std::sin(0.37 * (i * D + c)))));
    for (int64_t j = 0; j < nk; ++j)
      for (int64_t c = 0; c < D; ++c) {
        k[j * D + c] = static_cast<float>(0.25 + 0.5 * std::fabs(std::sin(0.23 * (j * D + c) + 1)));
        v[j * D + c] = static_cast<float>(std::cos(0.11 * (j * D + c)));
      }
  }
};

struct Result {
  std::vector<float> out, lse, dq;
  bool row_all_nan(int64_t i) const {
    for (int64_t c = 0; c < D; ++c)
      if (!std::isnan(out[i * D + c])) return false;
    return std::isnan(lse[i]);
  }
  bool row_finite(int64_t i) const {
    for (int64_t c = 0; c < D; ++c)
      if (!std::isfinite(out[i * D + c])) return false;
    return std::isfinite(lse[i]);
  }
};

// Runs forward (and, when asked, backward with dout = 1) with q, k, v stored in `dtype`; out and
// dq are F32.
Result run(umfa_context* ctx, const Inputs& in, int32_t dtype, bool backward) {
  const int64_t esize = umfa_dtype_size(dtype);
  std::vector<unsigned char> q(in.q.size() * esize), k(in.k.size() * esize), v(in.v.size() * esize);
  for (size_t i = 0; i < in.q.size(); ++i) t::store(q.data(), dtype, static_cast<int64_t>(i), in.q[i]);
  for (size_t i = 0; i < in.k.size(); ++i) {
    t::store(k.data(), dtype, static_cast<int64_t>(i), in.k[i]);
    t::store(v.data(), dtype, static_cast<int64_t>(i), in.v[i]);
  }
  Result r;
  r.out.assign(in.q.size(), 0.f);
  r.lse.assign(static_cast<size_t>(in.nq), 0.f);
  umfa_tensor tq = t::tensor4(q.data(), dtype, 1, in.nq, 1, D);
  umfa_tensor tk = t::tensor4(k.data(), dtype, 1, in.nk, 1, D);
  umfa_tensor tv = t::tensor4(v.data(), dtype, 1, in.nk, 1, D);
  umfa_tensor to = t::tensor4(r.out.data(), UMFA_DTYPE_F32, 1, in.nq, 1, D);
  umfa_tensor tl;
  const int64_t lse_shape[3] = {1, 1, in.nq};
  umfa_tensor_init_contiguous(&tl, r.lse.data(), UMFA_DTYPE_F32, 3, lse_shape);
  umfa_attention_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.mask_mode = in.mask_mode;
  o.softcap = in.softcap;
  if (in.window_left >= 0 || in.window_right >= 0) {
    o.has_window = 1;
    o.window_left = in.window_left;
    o.window_right = in.window_right;
  }
  umfa_tensor tm, ta;
  const int64_t mask_shape[2] = {in.nq, in.nk};
  if (!in.add_mask.empty()) {
    umfa_tensor_init_contiguous(&tm, const_cast<float*>(in.add_mask.data()), UMFA_DTYPE_F32, 2, mask_shape);
    o.attn_mask = &tm;
  } else if (!in.bool_mask.empty()) {
    umfa_tensor_init_contiguous(&tm, const_cast<uint8_t*>(in.bool_mask.data()), UMFA_DTYPE_BOOL, 2, mask_shape);
    o.attn_mask = &tm;
  }
  const int64_t one = 1;
  if (!in.slopes.empty()) {
    umfa_tensor_init_contiguous(&ta, const_cast<float*>(in.slopes.data()), UMFA_DTYPE_F32, 1, &one);
    o.alibi_slopes = &ta;
  }
  CHECK_STATUS(umfa_attention_forward(ctx, &o, &tq, &tk, &tv, &to, &tl), UMFA_STATUS_OK);
  if (backward) {
    std::vector<float> dout(in.q.size(), 1.f), dk(in.k.size()), dv(in.k.size());
    r.dq.assign(in.q.size(), 0.f);
    umfa_tensor tdo = t::tensor4(dout.data(), UMFA_DTYPE_F32, 1, in.nq, 1, D);
    umfa_tensor tdq = t::tensor4(r.dq.data(), UMFA_DTYPE_F32, 1, in.nq, 1, D);
    umfa_tensor tdk = t::tensor4(dk.data(), UMFA_DTYPE_F32, 1, in.nk, 1, D);
    umfa_tensor tdv = t::tensor4(dv.data(), UMFA_DTYPE_F32, 1, in.nk, 1, D);
    // Backward reads out in q's dtype family: give it the F32 out as F32 (any float dtype).
    CHECK_STATUS(umfa_attention_backward(ctx, &o, &tq, &tk, &tv, &to, &tdo, &tl, &tdq, &tdk, &tdv),
                 UMFA_STATUS_OK);
  }
  return r;
}

// Checks `want(i)` for every row; reports the first row that disagrees.
void rows(const char* label, int64_t nq, const std::function<bool(int64_t)>& ok) {
  for (int64_t i = 0; i < nq; ++i)
    if (!ok(i)) {
      CHECK_MSG(false, "%s: row %lld", label, static_cast<long long>(i));
      return;
    }
  CHECK(true);
}

// The rules for one context and dtype. `tag` prefixes failure messages.
void square_problem(umfa_context* ctx, int32_t dtype, const std::string& tag) {
  const int64_t n = 200, i0 = 77, j0 = 120;
  auto L = [&](const char* what) { return tag + what; };

  for (float bad : {kNaN, kInf}) {  // q: every score of the row is NaN or +inf (k > 0)
    Inputs in(n, n);
    in.q[i0 * D + 3] = bad;
    const Result r = run(ctx, in, dtype, false);
    rows(L(" q non-finite").c_str(), n, [&](int64_t i) { return i == i0 ? r.row_all_nan(i) : r.row_finite(i); });
  }
  {  // q -inf: every score of the row is -inf (k > 0): a fully masked row, out 0 and lse -inf
    Inputs in(n, n);
    in.q[i0 * D + 3] = -kInf;
    const Result r = run(ctx, in, dtype, false);
    rows(L(" q -inf").c_str(), n, [&](int64_t i) {
      if (i != i0) return r.row_finite(i);
      for (int64_t c = 0; c < D; ++c)
        if (r.out[i * D + c] != 0.f) return false;
      return r.lse[i] == -kInf;
    });
  }
  {  // k NaN at key j0, causal: rows that see j0 are NaN, rows it is hidden from are not.
    Inputs in(n, n);
    in.mask_mode = UMFA_MASK_CAUSAL_BOTTOM_RIGHT;
    in.k[j0 * D + 5] = kNaN;
    const Result r = run(ctx, in, dtype, false);
    rows(L(" k NaN, causal").c_str(), n, [&](int64_t i) { return i >= j0 ? r.row_all_nan(i) : r.row_finite(i); });
  }
  {  // ... hidden by the window
    Inputs in(n, n);
    in.window_left = 2;
    in.window_right = 3;
    in.k[j0 * D] = kNaN;
    const Result r = run(ctx, in, dtype, false);
    rows(L(" k NaN, window").c_str(), n, [&](int64_t i) {
      const bool sees = j0 - i >= -2 && j0 - i <= 3;
      return sees ? r.row_all_nan(i) : r.row_finite(i);
    });
  }
  {  // ... hidden by a BOOL mask from one row
    Inputs in(n, n);
    in.bool_mask.assign(static_cast<size_t>(n * n), 1);
    in.bool_mask[static_cast<size_t>(i0 * n + j0)] = 0;
    in.k[j0 * D] = kNaN;
    const Result r = run(ctx, in, dtype, false);
    rows(L(" k NaN, BOOL mask").c_str(), n, [&](int64_t i) { return i == i0 ? r.row_finite(i) : r.row_all_nan(i); });
  }
  {  // ... an additive -inf does not hide a NaN score
    Inputs in(n, n);
    in.add_mask.assign(static_cast<size_t>(n * n), 0.f);
    for (int64_t i = 0; i < n; ++i) in.add_mask[static_cast<size_t>(i * n + j0)] = -kInf;
    in.k[j0 * D] = kNaN;
    const Result r = run(ctx, in, dtype, false);
    rows(L(" k NaN, additive -inf").c_str(), n, [&](int64_t i) { return r.row_all_nan(i); });
  }
  {  // k +inf in column 0: q·k is +inf on even rows (q > 0: NaN rows), -inf on odd rows (the key
     // is hidden: finite rows).
    Inputs in(n, n);
    in.k[j0 * D] = kInf;
    const Result r = run(ctx, in, dtype, false);
    rows(L(" k +inf").c_str(), n, [&](int64_t i) { return i % 2 == 0 ? r.row_all_nan(i) : r.row_finite(i); });
    in.softcap = 5.f;  // softcap maps +inf to the cap: every row finite
    const Result s = run(ctx, in, dtype, false);
    rows(L(" k +inf, softcap").c_str(), n, [&](int64_t i) { return s.row_finite(i); });
  }
  for (float bad : {kNaN, kInf}) {  // additive mask at a visible key: its row is NaN
    Inputs in(n, n);
    in.mask_mode = UMFA_MASK_CAUSAL_BOTTOM_RIGHT;
    in.add_mask.assign(static_cast<size_t>(n * n), 0.f);
    in.add_mask[static_cast<size_t>(i0 * n + 3)] = bad;    // visible to row i0
    in.add_mask[static_cast<size_t>(10 * n + 150)] = bad;  // hidden from row 10: may or may not
    const Result r = run(ctx, in, dtype, false);
    rows(L(" additive mask non-finite").c_str(), n,
         [&](int64_t i) { return i == 10 || (i == i0 ? r.row_all_nan(i) : r.row_finite(i)); });
  }
  {  // a NaN ALiBi slope: every row
    Inputs in(n, n);
    in.slopes.assign(1, kNaN);
    const Result r = run(ctx, in, dtype, false);
    rows(L(" ALiBi NaN").c_str(), n, [&](int64_t i) { return r.row_all_nan(i); });
  }
  for (float bad : {kNaN, kInf}) {  // v: lse stays finite; out column 4 of the rows that see j0
    Inputs in(n, n);
    in.mask_mode = UMFA_MASK_CAUSAL_BOTTOM_RIGHT;
    in.v[j0 * D + 4] = bad;
    const Result r = run(ctx, in, dtype, false);
    rows(L(" v non-finite").c_str(), n, [&](int64_t i) {
      if (!std::isfinite(r.lse[i])) return false;
      if (i < j0) return true;  // may or may not be affected (a key block it shares)
      for (int64_t c = 0; c < D; ++c)
        if (std::isfinite(r.out[i * D + c]) != (c != 4)) return false;
      return true;
    });
  }
  {  // backward: a NaN row's dq row is NaN
    Inputs in(n, n);
    in.mask_mode = UMFA_MASK_CAUSAL_BOTTOM_RIGHT;
    in.q[i0 * D] = kNaN;
    const Result r = run(ctx, in, dtype, true);
    bool all_nan = true;
    for (int64_t c = 0; c < D; ++c) all_nan = all_nan && std::isnan(r.dq[i0 * D + c]);
    CHECK_MSG(all_nan, "%s backward: dq row of the NaN row", tag.c_str());
  }
}

// Two query rows over 700 keys (split across threads on a 3-thread context).
void decode_problem(umfa_context* ctx, int32_t dtype, const std::string& tag) {
  const int64_t nq = 2, nk = 700, j0 = 350;
  auto L = [&](const char* what) { return tag + " decode" + what; };
  {
    Inputs in(nq, nk);
    in.q[1 * D + 2] = kNaN;
    const Result r = run(ctx, in, dtype, false);
    rows(L(" q NaN").c_str(), nq, [&](int64_t i) { return i == 1 ? r.row_all_nan(i) : r.row_finite(i); });
  }
  {
    Inputs in(nq, nk);
    in.k[j0 * D + 1] = kNaN;
    const Result r = run(ctx, in, dtype, false);
    rows(L(" k NaN").c_str(), nq, [&](int64_t i) { return r.row_all_nan(i); });
  }
  {
    Inputs in(nq, nk);
    in.add_mask.assign(static_cast<size_t>(nq * nk), 0.f);
    in.add_mask[static_cast<size_t>(0 * nk + j0)] = kNaN;
    const Result r = run(ctx, in, dtype, false);
    rows(L(" additive mask NaN").c_str(), nq, [&](int64_t i) { return i == 0 ? r.row_all_nan(i) : r.row_finite(i); });
  }
  {
    Inputs in(nq, nk);
    in.v[j0 * D + 4] = kNaN;
    const Result r = run(ctx, in, dtype, false);
    rows(L(" v NaN").c_str(), nq, [&](int64_t i) {
      if (!std::isfinite(r.lse[i])) return false;
      for (int64_t c = 0; c < D; ++c)
        if (std::isfinite(r.out[i * D + c]) != (c != 4)) return false;
      return true;
    });
  }
}

}  // namespace

int main() {
#if defined(__aarch64__)
  const char* isas[] = {"neon_bf16", "neon", "generic"};
#else
  const char* isas[] = {"avx512bf16", "avx512", "avx2", "generic"};
#endif
  const int32_t dtypes[] = {UMFA_DTYPE_F32, UMFA_DTYPE_F16, UMFA_DTYPE_BF16};
  for (const char* isa : isas) {
    setenv("UMFA_CPU_ISA", isa, 1);
    for (int threads : {1, 3}) {
      umfa_context_options o;
      std::memset(&o, 0, sizeof o);
      o.struct_size = sizeof o;
      o.backend = UMFA_BACKEND_CPU;
      o.num_threads = threads;
      umfa_context* ctx = nullptr;
      REQUIRE_OK(umfa_context_create(&o, &ctx));
      for (int32_t dt : dtypes) {
        const std::string tag = t::fmt("[%s, %d threads, dtype %d]", isa, threads, dt);
        square_problem(ctx, dt, tag);
        decode_problem(ctx, dt, tag);
      }
      umfa_context_destroy(ctx);
    }
  }
  unsetenv("UMFA_CPU_ISA");
  return t::summary("test_nonfinite");
}
