// umfa_attention_merge: values against a float64 reference (every out × part dtype pair), -inf
// and NaN handling, strided, broadcast and varlen views, results identical on 1 and 2 threads,
// no workspace needed, every rejected input (exact status, message, nothing written); then the
// two uses it exists for: merging the forwards over key parts gives the forward over all keys,
// and the backward over each part, given the merged out and LSE, gives gradients that sum to
// the full backward's.
//
// With --mock-cuda (UMFA_CUDA_LIB = the mock libumfa_cuda) it checks the CUDA side of the API
// layer instead; with --old-cuda (the mock posing as a libumfa_cuda of the first release, whose
// table ends before the merge entry) that the call returns UNSUPPORTED; with --cuda the real
// CUDA backend on device memory (exit 77, skipped, without a usable device).
#include <cstdlib>
#include <functional>

#include "test_util.h"

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();
const int32_t kFloatDtypes[] = {UMFA_DTYPE_F32, UMFA_DTYPE_F16, UMFA_DTYPE_BF16};

const char* dtype_name(int32_t dt) {
  return dt == UMFA_DTYPE_F32 ? "f32" : dt == UMFA_DTYPE_F16 ? "f16" : "bf16";
}

// A tensor over memory of its own: `elements` of `dtype` (64-byte aligned), viewed with the
// given shape and strides (in elements).
struct Tensor {
  t::Bytes bytes;
  umfa_tensor v;
  Tensor(int32_t dtype, std::vector<int64_t> shape, std::vector<int64_t> strides = {},
         int64_t elements = -1) {
    std::memset(&v, 0, sizeof v);
    v.dtype = dtype;
    v.rank = static_cast<int32_t>(shape.size());
    if (strides.empty()) {
      strides.assign(shape.size(), 1);
      for (int d = v.rank - 2; d >= 0; --d) strides[d] = strides[d + 1] * shape[d + 1];
    }
    int64_t reach = 1;
    for (int d = 0; d < v.rank; ++d) {
      v.shape[d] = shape[d];
      v.strides[d] = strides[d];
      if (shape[d] > 0) reach += (shape[d] - 1) * strides[d];
    }
    if (elements < 0) elements = reach;
    bytes = t::Bytes(static_cast<size_t>(elements) * umfa_dtype_size(dtype));
    v.data = bytes.data();
  }
  int64_t offset(std::initializer_list<int64_t> index) const {
    int64_t off = 0, d = 0;
    for (int64_t i : index) off += i * v.strides[d++];
    return off;
  }
  double get(std::initializer_list<int64_t> index) const { return t::load(v.data, v.dtype, offset(index)); }
  void set(std::initializer_list<int64_t> index, double x) { t::store(v.data, v.dtype, offset(index), x); }
  unsigned char* raw() { return static_cast<unsigned char*>(v.data); }
  size_t size() const { return bytes.v.size() - 64; }
};

umfa_context* make_context(int32_t threads, uint64_t workspace_limit = 0) {
  umfa_context_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.backend = UMFA_BACKEND_CPU;
  o.num_threads = threads;
  o.workspace_limit_bytes = workspace_limit;
  umfa_context* ctx = nullptr;
  if (umfa_context_create(&o, &ctx) != UMFA_STATUS_OK) {
    std::fprintf(stderr, "test_merge: cannot create a CPU context: %s\n", umfa_last_error(nullptr));
    std::exit(1);
  }
  return ctx;
}

// The float64 merge of one row: returns LSE' and writes O' (d elements).
double reference_merge(double lse, double part_lse, const double* out, const double* part,
                       int64_t d, double* merged) {
  const double m = std::max(lse, part_lse);
  if (m == kNegInf) {
    for (int64_t c = 0; c < d; ++c) merged[c] = 0;
    return kNegInf;
  }
  const double result = m + std::log(std::exp(lse - m) + std::exp(part_lse - m));
  const double w_out = lse == kNegInf ? 0 : std::exp(lse - result);
  const double w_part = part_lse == kNegInf ? 0 : std::exp(part_lse - result);
  for (int64_t c = 0; c < d; ++c)
    merged[c] = (w_out ? w_out * out[c] : 0) + (w_part ? w_part * part[c] : 0);
  return result;
}

// Random LSEs in [-3, 3], with -inf on every fifth row of `out` and every seventh of the part
// (some rows have both); the out rows of a -inf LSE are filled with NaN, which must be ignored.
struct MergeCase {
  int64_t b, n, h, d;
  Tensor out, lse, part_out, part_lse;
  MergeCase(int64_t b_, int64_t n_, int64_t h_, int64_t d_, Tensor o, Tensor l, Tensor po, Tensor pl)
      : b(b_), n(n_), h(h_), d(d_), out(std::move(o)), lse(std::move(l)), part_out(std::move(po)),
        part_lse(std::move(pl)) {}

  // Dense views: out [B, N, H, D], lse [B, H, N]. Varlen views: [N, H, D] and [H, N] (b == 1).
  bool varlen() const { return out.v.rank == 3; }
  double& slot(std::vector<double>& v, int64_t bi, int64_t ni, int64_t hi) const {
    return v[static_cast<size_t>((bi * n + ni) * h + hi)];
  }
  double lse_at(const Tensor& t, int64_t bi, int64_t ni, int64_t hi) const {
    return varlen() ? t.get({hi, ni}) : t.get({bi, hi, ni});
  }
  void set_lse(Tensor& t, int64_t bi, int64_t ni, int64_t hi, double x) {
    if (varlen()) t.set({hi, ni}, x); else t.set({bi, hi, ni}, x);
  }
  double out_at(const Tensor& t, int64_t bi, int64_t ni, int64_t hi, int64_t c) const {
    return varlen() ? t.get({ni, hi, c}) : t.get({bi, ni, hi, c});
  }
  void set_out(Tensor& t, int64_t bi, int64_t ni, int64_t hi, int64_t c, double x) {
    if (varlen()) t.set({ni, hi, c}, x); else t.set({bi, ni, hi, c}, x);
  }

  void fill(uint64_t seed) {
    t::Rng rng(seed);
    int64_t row = 0;
    for (int64_t bi = 0; bi < b; ++bi)
      for (int64_t ni = 0; ni < n; ++ni)
        for (int64_t hi = 0; hi < h; ++hi, ++row) {
          const double l = row % 5 == 1 ? kNegInf : 3 * rng.uniform();
          const double pl = row % 7 == 1 ? kNegInf : 3 * rng.uniform();
          set_lse(lse, bi, ni, hi, l);
          set_lse(part_lse, bi, ni, hi, pl);
          for (int64_t c = 0; c < d; ++c) {
            set_out(out, bi, ni, hi, c, l == kNegInf ? NAN : 2 * rng.uniform());
            set_out(part_out, bi, ni, hi, c, pl == kNegInf ? NAN : 2 * rng.uniform());
          }
        }
  }

  // The expected results from the current contents (before the call).
  void expected(std::vector<double>& lse_ref, std::vector<double>& out_ref) const {
    lse_ref.assign(static_cast<size_t>(b * n * h), 0);
    out_ref.assign(static_cast<size_t>(b * n * h * d), 0);
    std::vector<double> o(d), p(d);
    for (int64_t bi = 0; bi < b; ++bi)
      for (int64_t ni = 0; ni < n; ++ni)
        for (int64_t hi = 0; hi < h; ++hi) {
          for (int64_t c = 0; c < d; ++c) {
            o[c] = out_at(out, bi, ni, hi, c);
            p[c] = out_at(part_out, bi, ni, hi, c);
          }
          const size_t r = static_cast<size_t>((bi * n + ni) * h + hi);
          lse_ref[r] = reference_merge(lse_at(lse, bi, ni, hi), lse_at(part_lse, bi, ni, hi),
                                       o.data(), p.data(), d, &out_ref[r * d]);
        }
  }

  umfa_status run(umfa_context* ctx, const umfa_merge_options* o = nullptr) {
    return umfa_attention_merge(ctx, o, &out.v, &lse.v, &part_out.v, &part_lse.v);
  }

  // Compares the results with the expectation; returns the number of mismatches.
  int compare(const std::vector<double>& lse_ref, const std::vector<double>& out_ref,
              const char* what) const {
    int bad = 0;
    const double tol = t::tolerance(out.v.dtype);
    for (int64_t bi = 0; bi < b; ++bi)
      for (int64_t ni = 0; ni < n; ++ni)
        for (int64_t hi = 0; hi < h; ++hi) {
          const size_t r = static_cast<size_t>((bi * n + ni) * h + hi);
          const double got_lse = lse_at(lse, bi, ni, hi);
          const bool lse_ok = lse_ref[r] == kNegInf ? got_lse == kNegInf
                                                    : std::fabs(got_lse - lse_ref[r]) <= 1e-5 * (1 + std::fabs(lse_ref[r]));
          if (!lse_ok && bad++ < 3)
            CHECK_MSG(false, "%s: lse[%lld,%lld,%lld] = %g, expected %g", what, (long long)bi,
                      (long long)hi, (long long)ni, got_lse, lse_ref[r]);
          for (int64_t c = 0; c < d; ++c) {
            const double got = out_at(out, bi, ni, hi, c), want = out_ref[r * d + c];
            // A row where neither side saw a key must be exactly 0, never NaN.
            const bool ok = lse_ref[r] == kNegInf ? got == 0.0
                                                  : std::fabs(got - want) <= tol * (1 + std::fabs(want));
            if (!ok && bad++ < 3)
              CHECK_MSG(false, "%s: out[%lld,%lld,%lld,%lld] = %g, expected %g", what,
                        (long long)bi, (long long)ni, (long long)hi, (long long)c, got, want);
          }
        }
    CHECK_MSG(bad == 0, "%s: %d mismatches", what, bad);
    return bad;
  }
};

MergeCase dense_case(int32_t out_dt, int32_t part_dt, int64_t b, int64_t n, int64_t h, int64_t d) {
  return MergeCase(b, n, h, d, Tensor(out_dt, {b, n, h, d}), Tensor(UMFA_DTYPE_F32, {b, h, n}),
                   Tensor(part_dt, {b, n, h, d}), Tensor(UMFA_DTYPE_F32, {b, h, n}));
}

void check_case(umfa_context* ctx, MergeCase& mc, const char* what) {
  std::vector<double> lse_ref, out_ref;
  mc.expected(lse_ref, out_ref);
  CHECK_STATUS(mc.run(ctx), UMFA_STATUS_OK);
  mc.compare(lse_ref, out_ref, what);
}

// Every out dtype with every part dtype, odd sizes; both-(-inf) rows and NaN in ignored rows.
void values(umfa_context* ctx) {
  for (int32_t odt : kFloatDtypes)
    for (int32_t pdt : kFloatDtypes) {
      MergeCase mc = dense_case(odt, pdt, 2, 5, 3, 17);
      mc.fill(100 + odt * 3 + pdt);
      check_case(ctx, mc, t::fmt("values out %s part %s", dtype_name(odt), dtype_name(pdt)).c_str());
    }
  // LSEs far apart: the smaller side's weight underflows to 0 without a NaN.
  MergeCase mc = dense_case(UMFA_DTYPE_F32, UMFA_DTYPE_F32, 1, 2, 1, 4);
  mc.fill(7);
  mc.set_lse(mc.lse, 0, 0, 0, 100.0);
  mc.set_lse(mc.part_lse, 0, 0, 0, -100.0);
  mc.set_lse(mc.lse, 0, 1, 0, -1e30);
  mc.set_lse(mc.part_lse, 0, 1, 0, 1e30);
  for (int64_t c = 0; c < 4; ++c) {
    mc.set_out(mc.out, 0, 0, 0, c, 1.0 + c);
    mc.set_out(mc.part_out, 0, 0, 0, c, -1.0);
    mc.set_out(mc.out, 0, 1, 0, c, 5.0);
    mc.set_out(mc.part_out, 0, 1, 0, c, 0.5 * c);
  }
  check_case(ctx, mc, "values: LSEs far apart");
}

// A NaN LSE on either side gives NaN, not a silently dropped part.
void nan_lse(umfa_context* ctx) {
  for (int side = 0; side < 2; ++side) {
    MergeCase mc = dense_case(UMFA_DTYPE_F32, UMFA_DTYPE_F32, 1, 1, 1, 3);
    mc.fill(11);
    mc.set_lse(side ? mc.part_lse : mc.lse, 0, 0, 0, NAN);
    CHECK_STATUS(mc.run(ctx), UMFA_STATUS_OK);
    CHECK_MSG(std::isnan(mc.lse_at(mc.lse, 0, 0, 0)), "NaN %s LSE gives a NaN LSE",
              side ? "part" : "running");
    CHECK_MSG(std::isnan(mc.out_at(mc.out, 0, 0, 0, 0)), "NaN %s LSE gives a NaN out",
              side ? "part" : "running");
  }
}

// Permuted (BHSD) out, a part_out broadcast over the batch (stride 0) with a head_dim stride
// of 2, an lse stored [B, N, H], a part_lse broadcast over heads.
void strides(umfa_context* ctx) {
  const int64_t b = 2, n = 6, h = 3, d = 5;
  Tensor out(UMFA_DTYPE_F32, {b, n, h, d}, {h * n * d, d, n * d, 1});
  Tensor part_out(UMFA_DTYPE_BF16, {b, n, h, d}, {0, h * d * 2, d * 2, 2});
  Tensor lse(UMFA_DTYPE_F32, {b, h, n}, {n * h, 1, h});
  Tensor part_lse(UMFA_DTYPE_F32, {b, h, n}, {n, 0, 1});
  MergeCase mc(b, n, h, d, std::move(out), std::move(lse), std::move(part_out), std::move(part_lse));
  t::Rng rng(5);
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t ni = 0; ni < n; ++ni)
      for (int64_t hi = 0; hi < h; ++hi) {
        mc.set_lse(mc.lse, bi, ni, hi, ni == 2 ? kNegInf : 2 * rng.uniform());
        mc.set_lse(mc.part_lse, bi, ni, 0, ni == 3 ? kNegInf : 2 * rng.uniform());
        for (int64_t c = 0; c < d; ++c) {
          mc.set_out(mc.out, bi, ni, hi, c, rng.uniform());
          if (bi == 0) mc.set_out(mc.part_out, 0, ni, hi, c, rng.uniform());
        }
      }
  check_case(ctx, mc, "strides");
}

// out and part_out interleaved in one [B, N, 2, H, D] buffer, lse and part_lse in one
// [B, H, N, 2]: the views share no byte, so the call is valid.
void interleaved(umfa_context* ctx) {
  const int64_t b = 2, n = 3, h = 2, d = 4;
  MergeCase mc(b, n, h, d, Tensor(UMFA_DTYPE_F32, {b, n, h, d}, {n * 2 * h * d, 2 * h * d, d, 1}, b * n * 2 * h * d),
               Tensor(UMFA_DTYPE_F32, {b, h, n}, {h * n * 2, n * 2, 2}, b * h * n * 2),
               Tensor(UMFA_DTYPE_F32, {1}), Tensor(UMFA_DTYPE_F32, {1}));
  mc.part_out.v = mc.out.v;
  mc.part_out.v.data = static_cast<float*>(mc.out.v.data) + h * d;
  mc.part_lse.v = mc.lse.v;
  mc.part_lse.v.data = static_cast<float*>(mc.lse.v.data) + 1;
  mc.fill(61);
  check_case(ctx, mc, "interleaved in one buffer");
}

// Varlen results: out [total, H, D], lse [H, total].
void varlen(umfa_context* ctx) {
  for (int32_t odt : kFloatDtypes) {
    const int64_t total = 9, h = 2, d = 8;
    MergeCase mc(1, total, h, d, Tensor(odt, {total, h, d}), Tensor(UMFA_DTYPE_F32, {h, total}),
                 Tensor(UMFA_DTYPE_F32, {total, h, d}), Tensor(UMFA_DTYPE_F32, {h, total}));
    mc.fill(21 + odt);
    check_case(ctx, mc, t::fmt("varlen out %s", dtype_name(odt)).c_str());
  }
}

// A call large enough to be split over the pool gives the same bits on 1 and 2 threads.
void threads() {
  umfa_context* one = make_context(1);
  umfa_context* two = make_context(2);
  MergeCase a = dense_case(UMFA_DTYPE_F32, UMFA_DTYPE_F16, 3, 257, 4, 64);
  MergeCase c = dense_case(UMFA_DTYPE_F32, UMFA_DTYPE_F16, 3, 257, 4, 64);
  a.fill(3);
  c.fill(3);
  CHECK_STATUS(a.run(one), UMFA_STATUS_OK);
  CHECK_STATUS(c.run(two), UMFA_STATUS_OK);
  CHECK_MSG(std::memcmp(a.out.raw(), c.out.raw(), a.out.size()) == 0 &&
                std::memcmp(a.lse.raw(), c.lse.raw(), a.lse.size()) == 0,
            "threads: 1 and 2 threads give identical results");
  umfa_context_destroy(one);
  umfa_context_destroy(two);
}

// No workspace: a context limited to 1 byte merges; empty problems return OK.
void workspace_and_empty() {
  umfa_context* tiny = make_context(2, 1);
  MergeCase mc = dense_case(UMFA_DTYPE_F32, UMFA_DTYPE_F32, 2, 64, 2, 32);
  mc.fill(9);
  check_case(tiny, mc, "workspace limit of 1 byte");
  umfa_context_destroy(tiny);

  umfa_context* ctx = make_context(1);
  for (int zero = 0; zero < 3; ++zero) {
    MergeCase e = dense_case(UMFA_DTYPE_F32, UMFA_DTYPE_F32, zero == 0 ? 0 : 1, zero == 1 ? 0 : 3,
                             zero == 2 ? 0 : 2, 4);
    CHECK_STATUS(e.run(ctx), UMFA_STATUS_OK);
  }
  umfa_context_destroy(ctx);
}

// ----------------------------------------------------------------------------------------------
// Every rejected input: exact status, a message naming the function and the argument, the
// per-call message slot, and not one byte of any tensor changed.
// ----------------------------------------------------------------------------------------------

struct BadCall {
  umfa_context* ctx;
  umfa_merge_options o;
  bool pass_options = true;
  umfa_tensor out, lse, part_out, part_lse;
  const umfa_tensor *p_out = &out, *p_lse = &lse, *p_part_out = &part_out, *p_part_lse = &part_lse;
};

void rejected(umfa_context* ctx) {
  const int64_t b = 2, n = 3, h = 2, d = 4;
  // One arena holds every tensor (generous room for the stride mutations); it must come out
  // of each failed call byte for byte as it went in.
  constexpr size_t kArena = 16384;
  t::Bytes arena(kArena);
  unsigned char* base = static_cast<unsigned char*>(arena.data());
  for (size_t i = 0; i < kArena; ++i) base[i] = static_cast<unsigned char>(i * 37 + 11);
  std::vector<unsigned char> before(base, base + kArena);
  const int64_t shape_o[4] = {b, n, h, d}, shape_l[3] = {b, h, n};

  auto fresh = [&] {
    BadCall c;
    c.ctx = ctx;
    std::memset(&c.o, 0, sizeof c.o);
    c.o.struct_size = sizeof c.o;
    umfa_tensor_init_contiguous(&c.out, base, UMFA_DTYPE_F32, 4, shape_o);
    umfa_tensor_init_contiguous(&c.lse, base + 4096, UMFA_DTYPE_F32, 3, shape_l);
    umfa_tensor_init_contiguous(&c.part_out, base + 8192, UMFA_DTYPE_F32, 4, shape_o);
    umfa_tensor_init_contiguous(&c.part_lse, base + 12288, UMFA_DTYPE_F32, 3, shape_l);
    return c;
  };
  {
    BadCall c = fresh();
    CHECK_STATUS(umfa_attention_merge(ctx, &c.o, &c.out, &c.lse, &c.part_out, &c.part_lse),
                 UMFA_STATUS_OK);
    std::memcpy(before.data(), base, kArena);  // the valid call wrote out and lse
  }

  struct Case {
    const char* what;
    umfa_status status;
    const char* message;
    std::function<void(BadCall&)> mutate;
  };
  const Case cases[] = {
      {"null context", UMFA_STATUS_NULL_CONTEXT, "umfa_attention_merge", [](BadCall& c) { c.ctx = nullptr; }},
      {"not a context", UMFA_STATUS_INVALID_HANDLE, "umfa_attention_merge",
       [&](BadCall& c) { c.ctx = reinterpret_cast<umfa_context*>(base + 64); }},
      {"struct_size 0", UMFA_STATUS_STRUCT_VERSION, "struct_size", [](BadCall& c) { c.o.struct_size = 0; }},
      {"struct_size too large", UMFA_STATUS_STRUCT_VERSION, "struct_size",
       [](BadCall& c) { c.o.struct_size = sizeof(umfa_merge_options) + 8; }},
      {"unknown flag", UMFA_STATUS_INVALID_ARGUMENT, "flags", [](BadCall& c) { c.o.flags = 1; }},
      {"out NULL", UMFA_STATUS_NULL_POINTER, "out is NULL", [](BadCall& c) { c.p_out = nullptr; }},
      {"lse NULL", UMFA_STATUS_NULL_POINTER, "lse is NULL", [](BadCall& c) { c.p_lse = nullptr; }},
      {"part_out NULL", UMFA_STATUS_NULL_POINTER, "part_out is NULL", [](BadCall& c) { c.p_part_out = nullptr; }},
      {"part_lse NULL", UMFA_STATUS_NULL_POINTER, "part_lse is NULL", [](BadCall& c) { c.p_part_lse = nullptr; }},
      {"out data NULL", UMFA_STATUS_NULL_POINTER, "out.data", [](BadCall& c) { c.out.data = nullptr; }},
      {"out rank 2", UMFA_STATUS_INVALID_RANK, "out.rank", [](BadCall& c) { c.out.rank = 2; }},
      {"lse rank 4", UMFA_STATUS_INVALID_RANK, "lse.rank", [](BadCall& c) { c.lse.rank = 4; c.lse.shape[3] = 1; }},
      {"varlen lse of rank 3", UMFA_STATUS_INVALID_RANK, "lse.rank", [](BadCall& c) {
         c.out.rank = 3;
         c.part_out.rank = 3;
       }},
      {"part_out rank 3", UMFA_STATUS_INVALID_RANK, "part_out.rank", [](BadCall& c) { c.part_out.rank = 3; }},
      {"lse F16", UMFA_STATUS_UNSUPPORTED_DTYPE, "lse.dtype", [](BadCall& c) { c.lse.dtype = UMFA_DTYPE_F16; }},
      {"part_lse BF16", UMFA_STATUS_UNSUPPORTED_DTYPE, "part_lse.dtype", [](BadCall& c) { c.part_lse.dtype = UMFA_DTYPE_BF16; }},
      {"out I32", UMFA_STATUS_UNSUPPORTED_DTYPE, "out.dtype", [](BadCall& c) { c.out.dtype = UMFA_DTYPE_I32; }},
      {"part_out BOOL", UMFA_STATUS_UNSUPPORTED_DTYPE, "part_out.dtype", [](BadCall& c) { c.part_out.dtype = UMFA_DTYPE_BOOL; }},
      {"unknown dtype", UMFA_STATUS_UNSUPPORTED_DTYPE, "out.dtype", [](BadCall& c) { c.out.dtype = 42; }},
      {"part_out on CUDA", UMFA_STATUS_DEVICE_MISMATCH, "part_out.device",
       [](BadCall& c) { c.part_out.device = UMFA_DEVICE_CUDA; }},
      {"unknown device", UMFA_STATUS_INVALID_ARGUMENT, "lse.device", [](BadCall& c) { c.lse.device = 9; }},
      {"negative extent", UMFA_STATUS_INVALID_ARGUMENT, "out.shape[1]", [](BadCall& c) { c.out.shape[1] = -1; }},
      {"negative stride", UMFA_STATUS_INVALID_STRIDE, "part_out.strides[2]", [](BadCall& c) { c.part_out.strides[2] = -4; }},
      {"out elements overlap", UMFA_STATUS_INVALID_STRIDE, "out.strides", [](BadCall& c) { c.out.strides[1] = 0; }},
      {"lse elements overlap", UMFA_STATUS_INVALID_STRIDE, "lse.strides", [](BadCall& c) { c.lse.strides[2] = 0; }},
      {"misaligned out", UMFA_STATUS_INVALID_ARGUMENT, "aligned",
       [&](BadCall& c) { c.out.data = base + 2; }},
      {"size overflow", UMFA_STATUS_SIZE_OVERFLOW, "part_out",
       [](BadCall& c) { c.part_out.strides[0] = INT64_MAX / 2; }},
      {"part_out shape", UMFA_STATUS_SHAPE_MISMATCH, "part_out.shape[2] (heads)", [](BadCall& c) { c.part_out.shape[2] = 1; }},
      {"lse shape", UMFA_STATUS_SHAPE_MISMATCH, "lse.shape[2] (seqlen)", [](BadCall& c) { c.lse.shape[2] = 2; }},
      {"part_lse shape", UMFA_STATUS_SHAPE_MISMATCH, "part_lse.shape[0] (batch)", [](BadCall& c) { c.part_lse.shape[0] = 1; }},
      {"head_dim 0", UMFA_STATUS_HEAD_DIM_OUT_OF_RANGE, "head_dim", [](BadCall& c) {
         c.out.shape[3] = 0;
         c.part_out.shape[3] = 0;
       }},
      {"head_dim 257", UMFA_STATUS_HEAD_DIM_OUT_OF_RANGE, "head_dim", [](BadCall& c) {
         // Views reaching past the arena: rejected before any element is read.
         for (umfa_tensor* x : {&c.out, &c.part_out}) {
           x->shape[3] = 257;
           x->strides[2] = 257;
           x->strides[1] = 2 * 257;
           x->strides[0] = 3 * 2 * 257;
         }
       }},
      {"part_out is out", UMFA_STATUS_INVALID_ARGUMENT, "overlaps", [](BadCall& c) { c.part_out = c.out; }},
      {"part_lse is lse", UMFA_STATUS_INVALID_ARGUMENT, "overlaps", [](BadCall& c) { c.part_lse = c.lse; }},
      {"lse inside out", UMFA_STATUS_INVALID_ARGUMENT, "lse.data",
       [&](BadCall& c) { c.lse.data = base + 64; }},
      {"part_out overlapping out's tail", UMFA_STATUS_INVALID_ARGUMENT, "out.data",
       [&](BadCall& c) { c.part_out.data = base + 4 * (b * n * h * d - 1); }},
  };
  for (const Case& k : cases) {
    BadCall c = fresh();
    k.mutate(c);
    char message[256];
    std::memset(message, 0, sizeof message);
    c.o.error_message = message;
    c.o.error_message_capacity = sizeof message;
    const umfa_status st = umfa_attention_merge(c.ctx, &c.o, c.p_out, c.p_lse, c.p_part_out, c.p_part_lse);
    CHECK_MSG(st == k.status, "%s: status %s, expected %s (%s)", k.what, umfa_status_string(st),
              umfa_status_string(k.status), umfa_last_error(nullptr));
    const char* last = umfa_last_error(nullptr);
    CHECK_MSG(std::strstr(last, k.message) && std::strstr(last, "umfa_attention_merge"),
              "%s: message \"%s\" names \"%s\"", k.what, last, k.message);
    // (A struct_size too small to reach the message slot has none.)
    if (c.o.struct_size >= sizeof c.o)
      CHECK_MSG(std::strcmp(message, last) == 0, "%s: the per-call message is the last error", k.what);
    CHECK_MSG(std::memcmp(base, before.data(), kArena) == 0, "%s: nothing written", k.what);
  }

  // NULL options, and an older struct holding only struct_size, mean defaults.
  BadCall c = fresh();
  CHECK_STATUS(umfa_attention_merge(ctx, nullptr, &c.out, &c.lse, &c.part_out, &c.part_lse), UMFA_STATUS_OK);
  c.o.struct_size = sizeof(uint32_t);
  c.o.flags = 1;  // beyond the caller's struct: never read
  CHECK_STATUS(umfa_attention_merge(ctx, &c.o, &c.out, &c.lse, &c.part_out, &c.part_lse), UMFA_STATUS_OK);
  // A per-call message slot is left alone on success.
  char untouched[8] = "keep";
  c.o = umfa_merge_options{sizeof(umfa_merge_options), 0, nullptr, untouched, sizeof untouched};
  CHECK_STATUS(umfa_attention_merge(ctx, &c.o, &c.out, &c.lse, &c.part_out, &c.part_lse), UMFA_STATUS_OK);
  CHECK(std::strcmp(untouched, "keep") == 0);
}

// ----------------------------------------------------------------------------------------------
// Merging the forwards over key parts, and the backward over each part.
// ----------------------------------------------------------------------------------------------

// An attention problem whose keys are cut into parts; a bool mask [Nq, Nk] decides visibility
// (random, with query row 0 seeing no key at all and every row of part 1 masked for the first
// half of the queries: fully masked rows and whole parts).
struct PartsProblem {
  int64_t b = 2, nq = 9, nk = 13, hq = 4, hkv = 2, d = 16;
  std::vector<int64_t> cuts = {0, 4, 7, 13};  // part p holds keys [cuts[p], cuts[p + 1])
  Tensor q{UMFA_DTYPE_F32, {b, nq, hq, d}}, k{UMFA_DTYPE_F32, {b, nk, hkv, d}},
      v{UMFA_DTYPE_F32, {b, nk, hkv, d}}, dout{UMFA_DTYPE_F32, {b, nq, hq, d}};
  Tensor mask{UMFA_DTYPE_BOOL, {nq, nk}};

  explicit PartsProblem(uint64_t seed) {
    t::Rng rng(seed);
    t::fill_random(q.v, rng);
    t::fill_random(k.v, rng);
    t::fill_random(v.v, rng);
    t::fill_random(dout.v, rng);
    unsigned char* m = mask.raw();
    for (int64_t i = 0; i < nq; ++i)
      for (int64_t j = 0; j < nk; ++j) {
        bool visible = (rng.next() >> 40) % 3 != 0;
        if (i == 0) visible = false;
        if (i < nq / 2 && j >= cuts[1] && j < cuts[2]) visible = false;
        m[i * nk + j] = visible;
      }
  }
  int parts() const { return static_cast<int>(cuts.size()) - 1; }
  // Rows [cuts[p], cuts[p + 1]) of a [B, Nk, H, D] tensor, and the mask's columns of part p.
  umfa_tensor keys(const Tensor& t, int p) const {
    umfa_tensor x = t.v;
    x.data = static_cast<float*>(x.data) + cuts[p] * x.strides[1];
    x.shape[1] = cuts[p + 1] - cuts[p];
    return x;
  }
  umfa_tensor mask_of(int p) const {
    umfa_tensor x = mask.v;
    x.data = static_cast<unsigned char*>(x.data) + cuts[p];
    x.shape[1] = cuts[p + 1] - cuts[p];
    return x;
  }
  umfa_attention_options options(const umfa_tensor* m) const {
    umfa_attention_options o;
    std::memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.attn_mask = m;
    return o;
  }
};

bool close_all(const Tensor& got, const Tensor& want, double atol, double rtol, const char* what) {
  int64_t n = 1;
  for (int d = 0; d < got.v.rank; ++d) n *= got.v.shape[d];
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double g = t::load(got.v.data, got.v.dtype, i), w = t::load(want.v.data, want.v.dtype, i);
    const bool ok = (std::isinf(w) && g == w) || std::fabs(g - w) <= atol + rtol * std::fabs(w);
    if (!ok && bad++ < 3) CHECK_MSG(false, "%s[%lld] = %.9g, expected %.9g", what, (long long)i, g, w);
  }
  return CHECK_MSG(bad == 0, "%s: %d of %lld elements differ", what, bad, (long long)n);
}

// Forward over each part, merged one part at a time into a running (out, lse) that starts as
// lse = -inf and out = NaN, equals the forward over all keys. Then the backward over each part
// with the merged out/lse: dk/dv of each part equal the full backward's rows, and the parts' dq
// sum to the full dq.
void parts(umfa_context* ctx) {
  PartsProblem pp(77);
  const int64_t b = pp.b, nq = pp.nq, hq = pp.hq, d = pp.d;

  Tensor full_out(UMFA_DTYPE_F32, {b, nq, hq, d}), full_lse(UMFA_DTYPE_F32, {b, hq, nq});
  umfa_attention_options o = pp.options(&pp.mask.v);
  CHECK_STATUS(umfa_attention_forward(ctx, &o, &pp.q.v, &pp.k.v, &pp.v.v, &full_out.v, &full_lse.v),
               UMFA_STATUS_OK);

  Tensor out(UMFA_DTYPE_F32, {b, nq, hq, d}), lse(UMFA_DTYPE_F32, {b, hq, nq});
  for (int64_t i = 0; i < b * nq * hq * d; ++i) static_cast<float*>(out.v.data)[i] = NAN;
  for (int64_t i = 0; i < b * hq * nq; ++i) static_cast<float*>(lse.v.data)[i] = -INFINITY;
  for (int p = 0; p < pp.parts(); ++p) {
    Tensor part_out(UMFA_DTYPE_F32, {b, nq, hq, d}), part_lse(UMFA_DTYPE_F32, {b, hq, nq});
    const umfa_tensor kp = pp.keys(pp.k, p), vp = pp.keys(pp.v, p), mp = pp.mask_of(p);
    umfa_attention_options po = pp.options(&mp);
    CHECK_STATUS(umfa_attention_forward(ctx, &po, &pp.q.v, &kp, &vp, &part_out.v, &part_lse.v),
                 UMFA_STATUS_OK);
    CHECK_STATUS(umfa_attention_merge(ctx, nullptr, &out.v, &lse.v, &part_out.v, &part_lse.v),
                 UMFA_STATUS_OK);
  }
  close_all(out, full_out, 1e-6, 1e-5, "merged forward out");
  close_all(lse, full_lse, 1e-6, 1e-5, "merged forward lse");

  Tensor full_dq(UMFA_DTYPE_F32, {b, nq, hq, d}), full_dk(UMFA_DTYPE_F32, {b, pp.nk, pp.hkv, d}),
      full_dv(UMFA_DTYPE_F32, {b, pp.nk, pp.hkv, d});
  CHECK_STATUS(umfa_attention_backward(ctx, &o, &pp.q.v, &pp.k.v, &pp.v.v, &full_out.v, &pp.dout.v,
                                       &full_lse.v, &full_dq.v, &full_dk.v, &full_dv.v),
               UMFA_STATUS_OK);
  Tensor dq_sum(UMFA_DTYPE_F32, {b, nq, hq, d}), dk(UMFA_DTYPE_F32, {b, pp.nk, pp.hkv, d}),
      dv(UMFA_DTYPE_F32, {b, pp.nk, pp.hkv, d});
  for (int p = 0; p < pp.parts(); ++p) {
    Tensor dq_p(UMFA_DTYPE_F32, {b, nq, hq, d});
    const umfa_tensor kp = pp.keys(pp.k, p), vp = pp.keys(pp.v, p), mp = pp.mask_of(p);
    const umfa_tensor dkp = pp.keys(dk, p), dvp = pp.keys(dv, p);
    umfa_attention_options po = pp.options(&mp);
    CHECK_STATUS(umfa_attention_backward(ctx, &po, &pp.q.v, &kp, &vp, &out.v, &pp.dout.v, &lse.v,
                                         &dq_p.v, &dkp, &dvp),
                 UMFA_STATUS_OK);
    float* s = static_cast<float*>(dq_sum.v.data);
    for (int64_t i = 0; i < b * nq * hq * d; ++i) s[i] += static_cast<const float*>(dq_p.v.data)[i];
  }
  close_all(dq_sum, full_dq, 1e-5, 1e-4, "sum of the parts' dq");
  close_all(dk, full_dk, 1e-5, 1e-4, "the parts' dk");
  close_all(dv, full_dv, 1e-5, 1e-4, "the parts' dv");
}

// ----------------------------------------------------------------------------------------------
// The CUDA side of the API layer, against the mock libumfa_cuda (host memory posing as device).
// ----------------------------------------------------------------------------------------------

umfa_context* cuda_context() {
  umfa_context_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.backend = UMFA_BACKEND_CUDA;
  umfa_context* ctx = nullptr;
  if (umfa_context_create(&o, &ctx) != UMFA_STATUS_OK) {
    std::fprintf(stderr, "test_merge: no (mock) CUDA context: %s\n", umfa_last_error(nullptr));
    std::exit(1);
  }
  return ctx;
}

void set_device(MergeCase& mc, int32_t device) {
  for (Tensor* x : {&mc.out, &mc.lse, &mc.part_out, &mc.part_lse}) x->v.device = device;
}

void mock_cuda() {
  umfa_context* ctx = cuda_context();
  MergeCase mc = dense_case(UMFA_DTYPE_F32, UMFA_DTYPE_F32, 2, 5, 3, 8);
  mc.fill(31);
  std::vector<unsigned char> before(mc.out.raw(), mc.out.raw() + mc.out.size());
  CHECK_STATUS(mc.run(ctx), UMFA_STATUS_DEVICE_MISMATCH);  // host tensors on a CUDA context
  CHECK(std::memcmp(before.data(), mc.out.raw(), before.size()) == 0);
  set_device(mc, UMFA_DEVICE_CUDA);
  mc.part_lse.v.device_index = 1;
  CHECK_STATUS(mc.run(ctx), UMFA_STATUS_DEVICE_MISMATCH);  // another device
  mc.part_lse.v.device_index = 0;
  umfa_merge_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.stream = reinterpret_cast<void*>(uintptr_t(0x1234));  // passed through; the mock ignores it
  std::vector<double> lse_ref, out_ref;
  mc.expected(lse_ref, out_ref);
  CHECK_STATUS(mc.run(ctx, &o), UMFA_STATUS_OK);
  mc.compare(lse_ref, out_ref, "mock CUDA merge");
  umfa_context_destroy(ctx);
}

void old_cuda() {
  umfa_context* ctx = cuda_context();
  MergeCase mc = dense_case(UMFA_DTYPE_F32, UMFA_DTYPE_F32, 1, 2, 1, 4);
  mc.fill(41);
  set_device(mc, UMFA_DEVICE_CUDA);
  std::vector<unsigned char> before(mc.out.raw(), mc.out.raw() + mc.out.size());
  CHECK_STATUS(mc.run(ctx), UMFA_STATUS_UNSUPPORTED);
  CHECK_CONTAINS(umfa_last_error(ctx), "predates");
  CHECK(std::memcmp(before.data(), mc.out.raw(), before.size()) == 0);
  umfa_context_destroy(ctx);
}

// The real CUDA backend: the cases of values(), strides() and varlen() on device memory.
struct DeviceCopy {
  umfa_buffer* buffer = nullptr;
  Tensor* host;
  DeviceCopy(umfa_context* ctx, Tensor* t) : host(t) {
    if (umfa_buffer_create(ctx, t->size() + 64, &buffer) != UMFA_STATUS_OK ||
        umfa_buffer_upload(buffer, 0, t->raw(), t->size()) != UMFA_STATUS_OK ||
        umfa_buffer_data(buffer, &t->v.data) != UMFA_STATUS_OK) {
      std::fprintf(stderr, "test_merge: device buffer: %s\n", umfa_last_error(ctx));
      std::exit(1);
    }
    t->v.device = UMFA_DEVICE_CUDA;
  }
  ~DeviceCopy() {
    umfa_buffer_download(buffer, 0, host->bytes.data(), host->size());
    host->v.data = host->bytes.data();
    host->v.device = UMFA_DEVICE_CPU;
    umfa_buffer_destroy(buffer);
  }
};

void check_on_device(umfa_context* ctx, MergeCase& mc, const char* what) {
  std::vector<double> lse_ref, out_ref;
  mc.expected(lse_ref, out_ref);
  {
    DeviceCopy o(ctx, &mc.out), l(ctx, &mc.lse), po(ctx, &mc.part_out), pl(ctx, &mc.part_lse);
    CHECK_STATUS(mc.run(ctx), UMFA_STATUS_OK);
  }  // downloads the results
  mc.compare(lse_ref, out_ref, what);
}

int real_cuda() {
  int32_t available = 0, count = 0;
  umfa_backend_available(UMFA_BACKEND_CUDA, &available, &count);
  if (!available) {
    std::printf("test_merge --cuda: skipped (%s)\n", umfa_build_info());
    return 77;
  }
  umfa_context* ctx = cuda_context();
  for (int32_t odt : kFloatDtypes)
    for (int32_t pdt : kFloatDtypes) {
      MergeCase mc = dense_case(odt, pdt, 2, 37, 3, 72);
      mc.fill(500 + odt * 3 + pdt);
      check_on_device(ctx, mc, t::fmt("cuda out %s part %s", dtype_name(odt), dtype_name(pdt)).c_str());
    }
  MergeCase big = dense_case(UMFA_DTYPE_F32, UMFA_DTYPE_BF16, 3, 1000, 8, 128);
  big.fill(77);
  check_on_device(ctx, big, "cuda, 24000 rows");
  MergeCase packed(1, 9, 2, 8, Tensor(UMFA_DTYPE_F16, {9, 2, 8}), Tensor(UMFA_DTYPE_F32, {2, 9}),
                   Tensor(UMFA_DTYPE_F32, {9, 2, 8}), Tensor(UMFA_DTYPE_F32, {2, 9}));
  packed.fill(78);
  check_on_device(ctx, packed, "cuda varlen");
  umfa_context_destroy(ctx);
  return t::summary("test_merge --cuda");
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "--mock-cuda") {
    mock_cuda();
    return t::summary("test_merge --mock-cuda");
  }
  if (mode == "--old-cuda") {
    old_cuda();
    return t::summary("test_merge --old-cuda");
  }
  if (mode == "--cuda") return real_cuda();
  umfa_context* ctx = make_context(2);
  values(ctx);
  nan_lse(ctx);
  strides(ctx);
  varlen(ctx);
  interleaved(ctx);
  rejected(ctx);
  parts(ctx);
  umfa_context_destroy(ctx);
  threads();
  workspace_and_empty();
  return t::summary("test_merge");
}
