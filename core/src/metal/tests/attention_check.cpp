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

using conf::Json;
using namespace metal_sim;

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
  Allocation load(const Spec& s, const char* name) {
    conf::NpyArray a = conf::npy_read(root + "/" + s.file);
    Allocation m(std::max<size_t>(a.bytes.size(), 1), Guard::after, name);
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

    Allocation q = io.load(qs, "q"), k = io.load(ks, "k"), v = io.load(vs, "v");
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
      why = run_attention(dtype, p, fc, buffers, batch, max_nq, max_nk, backward, schedules[si], ci + 1);
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
  std::printf("%d case(s) passed, %d failed, %.1f s (forward out and LSE; dq, dk, dv where the case has a backward)\n",
              passed, failed, secs);
  return failed || passed == 0 ? 1 : 0;
}
