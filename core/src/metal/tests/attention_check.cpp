// Runs umfa's MSL attention kernels (kernels/*.metal, compiled here as C++) in the simulator
// against the conformance vectors: every case of conformance/manifest.json, forward outputs (out
// and LSE, and dq/dk/dv for backward cases) compared with the float64 reference within the
// case's tolerances; the backward runs on the out and LSE this forward produced. Every buffer and the
// threadgroup memory sit against guard pages, so an out-of-bounds access fails the case; each case
// runs under two thread schedules (in order, and shuffled), which must agree bit for bit.
//
// This is the simulator's harness, not the backend's host: it binds buffers and specializes the
// kernels the way the Objective-C host will (see README.md), without the umfa C ABI in between.
//
// Usage: metal_attention_check <conformance dir> [case-id-substring]
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "json.h"
#include "npy.h"
#include "numeric.h"
#include "runtime.h"
// The kernels' argument block, shared with the MSL sources.
#include "attention_params.h"
#include "attention_dispatch.h"
#ifdef UMFA_METAL_VIA_HOST
#include "umfa_metal_host.h"
#endif

using conf::Json;
using namespace metal_sim;

#ifdef UMFA_METAL_VIA_HOST
static umfa_metal_host* g_host = nullptr;
#endif

static_assert(sizeof(long) == 8, "UmfaAttentionParams needs a 64-bit long");

namespace {

struct Spec {
  std::string file, dtype;
  std::vector<int64_t> shape, strides;  // logical shape; logical strides (view strides if given)
};

Spec parse_spec(const Json& j) {
  Spec s;
  s.file = j["file"].as_string();
  s.dtype = j["dtype"].as_string();
  s.shape = j["shape"].as_int_vector();
  std::vector<int64_t> order = j["storage_order"].as_int_vector();
  s.strides.assign(s.shape.size(), 0);
  int64_t acc = 1;
  for (size_t a = order.size(); a-- > 0;) {
    s.strides[size_t(order[a])] = acc;
    acc *= s.shape[size_t(order[a])];
  }
  if (j.has("view_strides") && !j["view_strides"].is_null()) s.strides = j["view_strides"].as_int_vector();
  return s;
}

int64_t count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

size_t dtype_size(const std::string& d) { return d == "f32" || d == "i32" ? 4 : d == "bool" ? 1 : 2; }
int dtype_code(const std::string& d) { return d == "f32" ? 0 : d == "f16" ? 1 : 2; }

double element(const uint8_t* p, const std::string& dtype, int64_t i) {
  if (dtype == "f32") {
    float f;
    std::memcpy(&f, p + i * 4, 4);
    return f;
  }
  uint16_t b;
  std::memcpy(&b, p + i * 2, 2);
  return dtype == "f16" ? half_bits_to_float(b) : bfloat_bits_to_float(b);
}

struct Case {
  std::string root;
  Allocation load(const Spec& s, const char* name, Guard guard = Guard::after) {
    conf::NpyArray a = conf::npy_read(root + "/" + s.file);
    Allocation m(std::max<size_t>(a.bytes.size(), 1), guard, name);
    if (!a.bytes.empty()) std::memcpy(m.data(), a.bytes.data(), a.bytes.size());
    return m;
  }
};

// Compares `got` (logical element i at flat storage index = i, since outputs use the expected
// file's storage order) with the expected file; returns the number of elements outside tolerance.
int64_t compare(const char* what, const std::string& root, const Json& ej, const Json& tol,
                const uint8_t* got, const std::string& dtype, std::string* why) {
  conf::NpyArray e = conf::npy_read(root + "/" + ej["file"].as_string());
  const double atol = tol["atol"].as_double(), rtol = tol["rtol"].as_double();
  int64_t bad = 0;
  for (int64_t i = 0; i < e.count(); ++i) {
    float w;
    std::memcpy(&w, e.bytes.data() + i * 4, 4);
    const double g = element(got, dtype, i);
    bool ok;
    if (std::isnan(g)) ok = false;
    else if (std::isinf(w)) ok = g == double(w);
    else ok = std::fabs(g - w) <= atol + rtol * std::fabs(double(w));
    if (!ok && bad++ == 0) {
      char buf[256];
      std::snprintf(buf, sizeof buf, "%s[%" PRId64 "]: got %.9g, expected %.9g (atol %g, rtol %g)", what, i,
                    g, double(w), atol, rtol);
      *why = buf;
    }
  }
  return bad;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <conformance dir> [case-id-substring]\n", argv[0]);
    return 2;
  }
  const std::string root = argv[1];
  const std::string filter = argc > 2 ? argv[2] : "";
  std::ifstream f(root + "/manifest.json");
  std::stringstream ss;
  ss << f.rdbuf();
  const Json manifest = Json::parse(ss.str());
  Case io{root};
  int passed = 0, failed = 0;
#ifdef UMFA_METAL_VIA_HOST
  char create_err[4096] = "";
  g_host = umfa_metal_host_create(create_err, sizeof create_err);
  if (!g_host) {
    std::printf("FAIL: umfa_metal_host_create: %s\n", create_err);
    return 1;
  }
  {
    // What the host itself rejects, with its message, writing nothing.
    std::vector<float> qv(2 * 3 * 2 * 300, 0.0f), ov(qv.size(), 7.0f);
    umfa_metal_tensor t;
    std::memset(&t, 0, sizeof t);
    t.data = qv.data(); t.dtype = UMFA_METAL_F32; t.rank = 4;
    const int64_t shape[4] = {2, 3, 2, 300}, strides[4] = {1800, 600, 300, 1};
    for (int a = 0; a < 4; ++a) { t.shape[a] = shape[a]; t.strides[a] = strides[a]; }
    umfa_metal_tensor o = t;
    o.data = ov.data();
    umfa_metal_options mo;
    std::memset(&mo, 0, sizeof mo);
    char herr[256] = "";
    const bool rejected = umfa_metal_host_forward(g_host, &mo, &t, &t, &t, &o, nullptr, herr, sizeof herr) != 0 &&
                          std::string(herr).find("head_dim above 256") != std::string::npos;
    umfa_metal_tensor k3 = t;
    k3.shape[2] = 3;  // heads_q 2 not a multiple of 3
    t.shape[3] = o.shape[3] = k3.shape[3] = 16;
    char herr2[256] = "";
    const bool rejected2 = umfa_metal_host_forward(g_host, &mo, &t, &k3, &k3, &o, nullptr, herr2, sizeof herr2) != 0 &&
                           std::string(herr2).find("not a multiple of heads_kv") != std::string::npos;
    bool untouched = true;
    for (float x : ov) untouched = untouched && x == 7.0f;
    if (!rejected || !rejected2 || !untouched) {
      std::printf("FAIL: host rejections: '%s' / '%s' untouched=%d\n", herr, herr2, int(untouched));
      ++failed;
    } else {
      std::printf("ok   host rejects head_dim 300 (%s) and heads_q %% heads_kv != 0 (%s)\n", herr, herr2);
    }
  }
#endif
  const auto t0 = std::chrono::steady_clock::now();
  const Json& cases = manifest["cases"];
  for (size_t ci = 0; ci < cases.items().size(); ++ci) {
    const Json& c = cases[ci];
    const std::string id = c["id"].as_string();
    if (!filter.empty() && id.find(filter) == std::string::npos) continue;
    const Json& o = c["options"];
    const bool varlen = c["varlen"].as_bool();
    const std::string dtype = c["dtype"].as_string(), out_dtype = c["out_dtype"].as_string();
    const Spec qs = parse_spec(c["inputs"]["q"]), ks = parse_spec(c["inputs"]["k"]), vs = parse_spec(c["inputs"]["v"]);
    const Spec os = parse_spec(c["expected"]["out"]), ls = parse_spec(c["expected"]["lse"]);

    UmfaAttentionParams p;
    std::memset(&p, 0, sizeof p);
    auto strides4 = [&](const Spec& s, long* dst) {
      if (varlen) { dst[0] = 0; dst[1] = s.strides[0]; dst[2] = s.strides[1]; dst[3] = s.strides[2]; }
      else for (int a = 0; a < 4; ++a) dst[a] = s.strides[size_t(a)];
    };
    strides4(qs, p.q_stride);
    strides4(ks, p.k_stride);
    strides4(vs, p.v_stride);
    strides4(os, p.o_stride);
    if (varlen) { p.lse_stride[0] = 0; p.lse_stride[1] = ls.strides[0]; p.lse_stride[2] = ls.strides[1]; }
    else for (int a = 0; a < 3; ++a) p.lse_stride[a] = ls.strides[size_t(a)];
    const int rank_off = varlen ? 1 : 0;
    p.heads_q = int(qs.shape[size_t(2 - rank_off)]);
    p.heads_kv = int(ks.shape[size_t(2 - rank_off)]);
    p.head_dim = int(qs.shape[size_t(3 - rank_off)]);
    p.seqlen_q = varlen ? 0 : int(qs.shape[1]);
    p.seqlen_k = varlen ? 0 : int(ks.shape[1]);
    p.window_left = int(o["window_left"].as_int());
    p.window_right = int(o["window_right"].as_int());
    const double sm = o["softmax_scale"].as_double();
    p.scale = sm != 0.0 ? float(sm) : float(1.0 / std::sqrt(double(p.head_dim)));
    p.softcap = float(o["softcap"].as_double());

    FunctionConstants fc;
    fc.set<int32_t>(UMFA_FC_MASK_MODE, int32_t(o["mask_mode"].as_int()));
    fc.set<bool>(UMFA_FC_HAS_WINDOW, o["has_window"].as_int() != 0);
    fc.set<bool>(UMFA_FC_HAS_SOFTCAP, p.softcap > 0);
    fc.set<bool>(UMFA_FC_HAS_ALIBI, !o["alibi_slopes"].is_null());
    fc.set<int32_t>(UMFA_FC_OUT_DTYPE, dtype_code(out_dtype));
    fc.set<bool>(UMFA_FC_VARLEN, varlen);
    fc.set<bool>(UMFA_FC_HAS_LSE, true);

#ifdef UMFA_METAL_VIA_HOST
    // Inputs start on a page boundary (the host wraps them without a copy); outputs end on one
    // (the host stages them).
    Allocation q = io.load(qs, "q", Guard::before), k = io.load(ks, "k", Guard::before), v = io.load(vs, "v", Guard::before);
#else
    Allocation q = io.load(qs, "q"), k = io.load(ks, "k"), v = io.load(vs, "v");
#endif
    Allocation mask(16, Guard::after, "mask (unused)"), alibi(16, Guard::after, "alibi (unused)");
    Allocation cu_q(16, Guard::after, "cu_seqlens_q (unused)"), cu_k(16, Guard::after, "cu_seqlens_k (unused)");
    int32_t mask_kind = 0, mask_dtype = 0;
    if (!o["attn_mask"].is_null()) {
      const Spec ms = parse_spec(o["attn_mask"]);
      mask = io.load(ms, "attn_mask");
      mask_kind = ms.dtype == "bool" ? 1 : 2;
      mask_dtype = ms.dtype == "bool" ? 0 : dtype_code(ms.dtype);
      const size_t r = ms.shape.size();
      for (size_t a = 0; a < r; ++a)
        p.mask_stride[4 - r + a] = ms.shape[a] == 1 ? 0 : ms.strides[a];
    }
    fc.set<int32_t>(UMFA_FC_MASK_KIND, mask_kind);
    fc.set<int32_t>(UMFA_FC_MASK_DTYPE, mask_dtype);
    if (!o["alibi_slopes"].is_null()) {
      const Spec as = parse_spec(o["alibi_slopes"]);
      alibi = io.load(as, "alibi_slopes");
      if (as.shape.size() == 1) { p.alibi_stride[0] = 0; p.alibi_stride[1] = as.strides[0]; }
      else { p.alibi_stride[0] = as.strides[0]; p.alibi_stride[1] = as.strides[1]; }
    }
    int batch = 0, max_nq = 0;
    if (varlen) {
      const Spec cqs = parse_spec(o["cu_seqlens_q"]), cks = parse_spec(o["cu_seqlens_k"]);
      cu_q = io.load(cqs, "cu_seqlens_q");
      cu_k = io.load(cks, "cu_seqlens_k");
      batch = int(cqs.shape[0]) - 1;
      const int32_t* cq = static_cast<const int32_t*>(cu_q.data());
      for (int b = 0; b < batch; ++b) max_nq = std::max(max_nq, cq[b + 1] - cq[b]);
    } else {
      batch = int(qs.shape[0]);
      max_nq = p.seqlen_q;
    }
    p.batch = batch;

    const bool backward = c["backward"].as_bool();
    Spec dos, dqs, dks, dvs;
    Allocation dout(16, Guard::after, "dout (unused)");
    if (backward) {
      dos = parse_spec(c["inputs"]["dout"]);
      dqs = parse_spec(c["expected"]["dq"]);
      dks = parse_spec(c["expected"]["dk"]);
      dvs = parse_spec(c["expected"]["dv"]);
      strides4(dos, p.do_stride);
      strides4(dqs, p.dq_stride);
      strides4(dks, p.dk_stride);
      strides4(dvs, p.dv_stride);
      dout = io.load(dos, "dout");
    }
    Allocation params(sizeof p, Guard::after, "params");
    std::memcpy(params.data(), &p, sizeof p);
    const size_t osz = dtype_size(out_dtype);
    const size_t out_bytes = size_t(count(os.shape)) * osz;
    const size_t lse_bytes = size_t(count(ls.shape)) * 4;
    const size_t dq_bytes = backward ? size_t(count(dqs.shape)) * osz : 0;
    const size_t dk_bytes = backward ? size_t(count(dks.shape)) * osz : 0;
    const size_t dv_bytes = backward ? size_t(count(dvs.shape)) * osz : 0;
    int max_nk = p.seqlen_k;
    if (varlen) {
      const int32_t* ck = static_cast<const int32_t*>(cu_k.data());
      max_nk = 0;
      for (int b = 0; b < batch; ++b) max_nk = std::max(max_nk, ck[b + 1] - ck[b]);
    }
    std::vector<uint8_t> first[5];
    std::string why;
    bool ok = true;
    const Schedule schedules[2] = {Schedule::in_order, Schedule::shuffled};
    for (int si = 0; si < 2 && ok; ++si) {
      Allocation out(std::max<size_t>(out_bytes, 1), Guard::after, "out");
      Allocation lse(std::max<size_t>(lse_bytes, 1), Guard::after, "lse");
      Allocation delta(std::max<size_t>(lse_bytes, 1), Guard::after, "delta");
      Allocation dq(std::max<size_t>(dq_bytes, 1), Guard::after, "dq");
      Allocation dk(std::max<size_t>(dk_bytes, 1), Guard::after, "dk");
      Allocation dv(std::max<size_t>(dv_bytes, 1), Guard::after, "dv");
      for (Allocation* a : {&out, &lse, &delta, &dq, &dk, &dv}) std::memset(a->data(), 0xff, a->length());  // NaN until written
      const std::vector<BufferBinding> buffers = {
          {q.data(), q.length()},       {k.data(), k.length()},         {v.data(), v.length()},
          {out.data(), out.length()},   {lse.data(), lse.length()},     {params.data(), params.length()},
          {mask.data(), mask.length()}, {alibi.data(), alibi.length()}, {cu_q.data(), cu_q.length()},
          {cu_k.data(), cu_k.length()}, {dout.data(), dout.length()},   {delta.data(), delta.length()},
          {dq.data(), dq.length()},     {dk.data(), dk.length()},       {dv.data(), dv.length()}};
#ifdef UMFA_METAL_VIA_HOST
      // Through the Objective-C host and the stand-in Metal API (the host computes the argument
      // block, constants and grids itself from the tensor views).
      (void)buffers;
      if (si == 1) break;  // the host has no schedule control; one run
      auto view = [&](const Spec& sp, const Allocation& m, int32_t dt) {
        umfa_metal_tensor t;
        std::memset(&t, 0, sizeof t);
        t.data = m.data();
        t.dtype = dt;
        t.rank = int32_t(sp.shape.size());
        for (size_t a = 0; a < sp.shape.size(); ++a) { t.shape[a] = sp.shape[a]; t.strides[a] = sp.strides[a]; }
        return t;
      };
      auto code = [](const std::string& d) { return d == "f32" ? UMFA_METAL_F32 : d == "f16" ? UMFA_METAL_F16 : d == "bf16" ? UMFA_METAL_BF16 : d == "bool" ? UMFA_METAL_BOOL : UMFA_METAL_I32; };
      umfa_metal_tensor tq = view(qs, q, code(dtype)), tk = view(ks, k, code(dtype)), tv = view(vs, v, code(dtype));
      umfa_metal_tensor to = view(os, out, code(out_dtype)), tl = view(ls, lse, UMFA_METAL_F32);
      umfa_metal_tensor tm, ta, tcq, tck;
      umfa_metal_options mo;
      std::memset(&mo, 0, sizeof mo);
      mo.mask_mode = int32_t(o["mask_mode"].as_int());
      mo.has_window = int32_t(o["has_window"].as_int());
      mo.window_left = p.window_left;
      mo.window_right = p.window_right;
      mo.softmax_scale = float(o["softmax_scale"].as_double());
      mo.softcap = p.softcap;
      if (!o["attn_mask"].is_null()) { const Spec ms = parse_spec(o["attn_mask"]); tm = view(ms, mask, code(ms.dtype)); mo.attn_mask = &tm; }
      if (!o["alibi_slopes"].is_null()) { ta = view(parse_spec(o["alibi_slopes"]), alibi, UMFA_METAL_F32); mo.alibi_slopes = &ta; }
      if (varlen) {
        tcq = view(parse_spec(o["cu_seqlens_q"]), cu_q, UMFA_METAL_I32);
        tck = view(parse_spec(o["cu_seqlens_k"]), cu_k, UMFA_METAL_I32);
        mo.cu_seqlens_q = &tcq;
        mo.cu_seqlens_k = &tck;
      }
      char herr[1024] = "";
      int rc = umfa_metal_host_forward(g_host, &mo, &tq, &tk, &tv, &to, &tl, herr, sizeof herr);
      if (rc == 0 && backward) {
        umfa_metal_tensor tdo = view(dos, dout, code(dtype)), tdq = view(dqs, dq, code(out_dtype));
        umfa_metal_tensor tdk = view(dks, dk, code(out_dtype)), tdv = view(dvs, dv, code(out_dtype));
        rc = umfa_metal_host_backward(g_host, &mo, &tq, &tk, &tv, &to, &tdo, &tl, &tdq, &tdk, &tdv, herr, sizeof herr);
      }
      if (rc == 0) {
        // The same forward again creates no pipeline (cache hit) and gives the same bytes; a
        // forward without LSE (another pipeline) gives the same out.
        const size_t pipelines = umfa_metal_host_pipeline_count(g_host);
        Allocation out2(std::max<size_t>(out_bytes, 1), Guard::after, "out (second call)");
        Allocation lse2(std::max<size_t>(lse_bytes, 1), Guard::after, "lse (second call)");
        umfa_metal_tensor to2 = view(os, out2, code(out_dtype)), tl2 = view(ls, lse2, UMFA_METAL_F32);
        rc = umfa_metal_host_forward(g_host, &mo, &tq, &tk, &tv, &to2, &tl2, herr, sizeof herr);
        if (rc == 0 && umfa_metal_host_pipeline_count(g_host) != pipelines) {
          std::snprintf(herr, sizeof herr, "a repeated forward created a pipeline (no cache hit)");
          rc = -1;
        }
        if (rc == 0 && (std::memcmp(out2.data(), out.data(), out_bytes) != 0 ||
                        std::memcmp(lse2.data(), lse.data(), lse_bytes) != 0)) {
          std::snprintf(herr, sizeof herr, "a repeated forward gave different bytes");
          rc = -1;
        }
        if (rc == 0) {
          std::memset(out2.data(), 0xff, out2.length());
          rc = umfa_metal_host_forward(g_host, &mo, &tq, &tk, &tv, &to2, nullptr, herr, sizeof herr);
          if (rc == 0 && std::memcmp(out2.data(), out.data(), out_bytes) != 0) {
            std::snprintf(herr, sizeof herr, "forward without LSE gave a different out");
            rc = -1;
          }
        }
      }
      why = rc == 0 ? "" : herr;
#else
      why = run_attention(dtype, p, fc, buffers, batch, max_nq, max_nk, backward, schedules[si], ci + 1);
#endif
      ok = why.empty();
      if (!ok) break;
      const uint8_t* got[5] = {static_cast<const uint8_t*>(out.data()), static_cast<const uint8_t*>(lse.data()),
                               static_cast<const uint8_t*>(dq.data()), static_cast<const uint8_t*>(dk.data()),
                               static_cast<const uint8_t*>(dv.data())};
      const size_t sizes[5] = {out_bytes, lse_bytes, dq_bytes, dk_bytes, dv_bytes};
      const char* names[5] = {"out", "lse", "dq", "dk", "dv"};
      if (si == 0) {
        for (int t = 0; t < (backward ? 5 : 2) && ok; ++t)
          ok = compare(names[t], root, c["expected"][names[t]], c["tolerances"][names[t]], got[t],
                       t == 1 ? "f32" : out_dtype, &why) == 0;
        for (int t = 0; t < 5; ++t) first[t].assign(got[t], got[t] + sizes[t]);
      } else {
        for (int t = 0; t < 5 && ok; ++t)
          if (sizes[t] && std::memcmp(first[t].data(), got[t], sizes[t]) != 0) {
            why = std::string("the shuffled thread schedule gave a different ") + names[t] + " (a race)";
            ok = false;
          }
      }
    }
    if (ok) {
      ++passed;
      std::printf("ok   %s\n", id.c_str());
    } else {
      ++failed;
      std::printf("FAIL %s: %s\n", id.c_str(), why.c_str());
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
#ifdef UMFA_METAL_VIA_HOST
  // Pipelines are cached: far fewer than the dispatches made, and one call more adds none.
  const size_t pipelines = umfa_metal_host_pipeline_count(g_host), zero_copy = umfa_metal_host_zero_copy_count(g_host);
  std::printf("host: %zu pipeline(s) created, %zu buffer(s) wrapped without a copy\n", pipelines, zero_copy);
  if (passed && (pipelines == 0 || zero_copy == 0)) {
    std::printf("FAIL: pipeline caching or zero-copy wrapping did not happen\n");
    ++failed;
  }
  umfa_metal_host_destroy(g_host);
#endif
  std::printf("%d case(s) passed, %d failed, %.1f s (forward out and LSE; dq, dk, dv where the case has a backward)\n",
              passed, failed, secs);
  return failed || passed == 0 ? 1 : 0;
}
