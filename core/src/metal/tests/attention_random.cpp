// Random-shape checks of umfa's MSL attention kernels in the simulator, against a float64
// reference written here from the ABI's definitions: random batch, sequence lengths (dense and
// varlen), heads with GQA/MQA groups, head dims 1..256, f32/f16/bf16 inputs and outputs, BSHD and
// BHSD layouts, and random combinations of causal (both alignments), window, softcap, ALiBi and
// boolean/additive masks; forward (out, LSE) and backward (dq, dk, dv).
//
// Usage: metal_attention_random [cases (default 60)] [seed (default 1)]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "numeric.h"
#include "runtime.h"
#include "attention_params.h"
#include "attention_dispatch.h"

using namespace metal_sim;

namespace {

const char* kDtypes[3] = {"f32", "f16", "bf16"};

float round_to(int dtype, float x) {
  if (dtype == 1) return half_bits_to_float(float_to_half_bits(x));
  if (dtype == 2) return bfloat_bits_to_float(float_to_bfloat_bits(x));
  return x;
}
void store(uint8_t* base, int dtype, long i, float x) {
  if (dtype == 0) std::memcpy(base + i * 4, &x, 4);
  else {
    const uint16_t b = dtype == 1 ? float_to_half_bits(x) : float_to_bfloat_bits(x);
    std::memcpy(base + i * 2, &b, 2);
  }
}
float load(const uint8_t* base, int dtype, long i) {
  if (dtype == 0) { float f; std::memcpy(&f, base + i * 4, 4); return f; }
  uint16_t b;
  std::memcpy(&b, base + i * 2, 2);
  return dtype == 1 ? half_bits_to_float(b) : bfloat_bits_to_float(b);
}
size_t esize(int dtype) { return dtype == 0 ? 4 : 2; }

// A [batch, token, head, dim] tensor (varlen: batch 1 over the packed tokens, batch stride 0).
struct Tensor {
  int dtype = 0;
  long stride[4] = {};
  std::vector<float> values;  // logical, dense [b][t][h][d]
  int B = 0, T = 0, H = 0, D = 0;
  Allocation mem;
  void make(int dt, int b, int t, int h, int d, bool bhsd, const char* name) {
    dtype = dt; B = b; T = t; H = h; D = d;
    if (bhsd) { stride[3] = 1; stride[1] = d; stride[2] = long(t) * d; stride[0] = long(h) * t * d; }
    else { stride[3] = 1; stride[2] = d; stride[1] = long(h) * d; stride[0] = long(t) * h * d; }
    values.assign(size_t(b) * t * h * d, 0.0f);
    mem = Allocation(std::max<size_t>(values.size() * esize(dt), 1), Guard::after, name);
    std::memset(mem.data(), 0xff, mem.length());
  }
  long at(int b, int t, int h, int d) const { return b * stride[0] + t * stride[1] + h * stride[2] + d * stride[3]; }
  float& v(int b, int t, int h, int d) { return values[((size_t(b) * T + t) * H + h) * D + d]; }
  void fill(std::mt19937_64& rng, float lo, float hi) {
    std::uniform_real_distribution<float> u(lo, hi);
    for (int b = 0; b < B; ++b) for (int t = 0; t < T; ++t) for (int h = 0; h < H; ++h) for (int d = 0; d < D; ++d) {
      const float x = round_to(dtype, u(rng));
      v(b, t, h, d) = x;
      store(static_cast<uint8_t*>(mem.data()), dtype, at(b, t, h, d), x);
    }
  }
  float got(int b, int t, int h, int d) const { return load(static_cast<const uint8_t*>(mem.data()), dtype, at(b, t, h, d)); }
};

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? std::atoi(argv[1]) : 60;
  const uint64_t seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1;
  std::mt19937_64 rng(seed);
  auto pick = [&](int lo, int hi) { return int(std::uniform_int_distribution<int>(lo, hi)(rng)); };
  const int head_dims[] = {1, 3, 8, 16, 24, 40, 64, 72, 96, 128, 160, 256};
  int failed = 0;
  for (int ci = 0; ci < cases; ++ci) {
    const int dtype = pick(0, 2), out_dtype = pick(0, 3) == 0 ? 0 : dtype;
    const bool varlen = pick(0, 3) == 0, bhsd = !varlen && pick(0, 1);
    const int D = head_dims[pick(0, 11)];
    const int big = D >= 128 ? 12 : 40;  // keep the simulator's run time small
    const int batch = pick(1, 3), hkv = pick(1, 2), group = pick(1, 3), hq = hkv * group;
    std::vector<int> nq(static_cast<size_t>(batch)), nk(static_cast<size_t>(batch));
    std::vector<int> cq(static_cast<size_t>(batch) + 1, 0), ck(static_cast<size_t>(batch) + 1, 0);
    const int dense_nq = pick(0, big), dense_nk = pick(0, big);
    for (int b = 0; b < batch; ++b) {
      nq[size_t(b)] = varlen ? pick(0, big) : dense_nq;
      nk[size_t(b)] = varlen ? pick(0, big) : dense_nk;
      cq[size_t(b) + 1] = cq[size_t(b)] + nq[size_t(b)];
      ck[size_t(b) + 1] = ck[size_t(b)] + nk[size_t(b)];
    }
    const int mask_mode = pick(0, 2);
    const bool window = pick(0, 2) == 0;
    const int wl = pick(-1, 6), wr = pick(-1, 6);
    const float softcap = pick(0, 3) == 0 ? 2.0f + float(pick(0, 30)) / 10.0f : 0.0f;
    const bool alibi = pick(0, 3) == 0;
    const int mask_kind = varlen ? 0 : pick(0, 4) == 0 ? 1 : pick(0, 4) == 0 ? 2 : 0;
    const int mask_dtype = pick(0, 2);
    const float scale = pick(0, 1) ? 0.0f : 0.1f + float(pick(0, 10)) / 10.0f;

    const int TB = varlen ? 1 : batch, Tq = varlen ? cq[size_t(batch)] : dense_nq, Tk = varlen ? ck[size_t(batch)] : dense_nk;
    Tensor q, k, v, dout, out, dq, dk, dv;
    q.make(dtype, TB, Tq, hq, D, bhsd, "q");
    k.make(dtype, TB, Tk, hkv, D, bhsd, "k");
    v.make(dtype, TB, Tk, hkv, D, bhsd, "v");
    dout.make(dtype, TB, Tq, hq, D, bhsd, "dout");
    out.make(out_dtype, TB, Tq, hq, D, !bhsd, "out");  // outputs in the other layout
    dq.make(out_dtype, TB, Tq, hq, D, bhsd, "dq");
    dk.make(out_dtype, TB, Tk, hkv, D, !bhsd, "dk");
    dv.make(out_dtype, TB, Tk, hkv, D, bhsd, "dv");
    q.fill(rng, -1.5f, 1.5f);
    k.fill(rng, -1.5f, 1.5f);
    v.fill(rng, -1.0f, 1.0f);
    dout.fill(rng, -1.0f, 1.0f);

    UmfaAttentionParams p;
    std::memset(&p, 0, sizeof p);
    auto st = [&](const Tensor& t, long* s) { for (int a = 0; a < 4; ++a) s[a] = varlen && a == 0 ? 0 : t.stride[a]; };
    st(q, p.q_stride); st(k, p.k_stride); st(v, p.v_stride); st(out, p.o_stride);
    st(dout, p.do_stride); st(dq, p.dq_stride); st(dk, p.dk_stride); st(dv, p.dv_stride);
    const int lse_rows = varlen ? cq[size_t(batch)] : dense_nq;
    p.lse_stride[0] = varlen ? 0 : long(hq) * lse_rows;
    p.lse_stride[1] = lse_rows;
    p.lse_stride[2] = 1;
    p.batch = batch; p.seqlen_q = dense_nq; p.seqlen_k = dense_nk; p.heads_q = hq; p.heads_kv = hkv; p.head_dim = D;
    p.window_left = wl; p.window_right = wr; p.softcap = softcap;
    p.scale = scale != 0.0f ? scale : float(1.0 / std::sqrt(double(D)));

    // Masks [B, Hq, nq, nk] (dense only), ALiBi slopes [B, Hq].
    std::vector<float> maskv;
    Allocation mask(16, Guard::after, "mask"), slopes(16, Guard::after, "alibi"), cuq(16, Guard::after, "cu_q"), cuk(16, Guard::after, "cu_k");
    if (mask_kind) {
      const size_t n = size_t(batch) * hq * dense_nq * dense_nk;
      maskv.resize(n);
      const size_t es = mask_kind == 1 ? 1 : esize(mask_dtype);
      mask = Allocation(std::max<size_t>(n * es, 1), Guard::after, "mask");
      for (size_t i = 0; i < n; ++i) {
        if (mask_kind == 1) {
          const uint8_t vis = pick(0, 4) != 0;
          static_cast<uint8_t*>(mask.data())[i] = vis;
          maskv[i] = vis;
        } else {
          const float x = pick(0, 9) == 0 ? -INFINITY : round_to(mask_dtype, float(pick(-20, 20)) / 10.0f);
          maskv[i] = x;
          store(static_cast<uint8_t*>(mask.data()), mask_dtype, long(i), x);
        }
      }
      p.mask_stride[0] = long(hq) * dense_nq * dense_nk; p.mask_stride[1] = long(dense_nq) * dense_nk;
      p.mask_stride[2] = dense_nk; p.mask_stride[3] = 1;
    }
    std::vector<float> slope(static_cast<size_t>(batch) * hq);
    if (alibi) {
      slopes = Allocation(slope.size() * 4, Guard::after, "alibi");
      for (size_t i = 0; i < slope.size(); ++i) slope[i] = float(pick(0, 50)) / 100.0f;
      std::memcpy(slopes.data(), slope.data(), slope.size() * 4);
      p.alibi_stride[0] = hq; p.alibi_stride[1] = 1;
    }
    if (varlen) {
      cuq = Allocation(cq.size() * 4, Guard::after, "cu_q");
      cuk = Allocation(ck.size() * 4, Guard::after, "cu_k");
      std::memcpy(cuq.data(), cq.data(), cq.size() * 4);
      std::memcpy(cuk.data(), ck.data(), ck.size() * 4);
    }
    Allocation lse(std::max<size_t>(size_t(TB) * hq * lse_rows * 4, 1), Guard::after, "lse");
    Allocation delta(lse.length(), Guard::after, "delta");
    Allocation params(sizeof p, Guard::after, "params");
    std::memcpy(params.data(), &p, sizeof p);

    FunctionConstants fc;
    fc.set<int32_t>(UMFA_FC_MASK_MODE, mask_mode);
    fc.set<bool>(UMFA_FC_HAS_WINDOW, window);
    fc.set<bool>(UMFA_FC_HAS_SOFTCAP, softcap > 0);
    fc.set<bool>(UMFA_FC_HAS_ALIBI, alibi);
    fc.set<int32_t>(UMFA_FC_MASK_KIND, mask_kind);
    fc.set<int32_t>(UMFA_FC_MASK_DTYPE, mask_dtype);
    fc.set<int32_t>(UMFA_FC_OUT_DTYPE, out_dtype);
    fc.set<bool>(UMFA_FC_VARLEN, varlen);
    fc.set<bool>(UMFA_FC_HAS_LSE, true);
    const std::vector<BufferBinding> buffers = {
        {q.mem.data(), q.mem.length()},     {k.mem.data(), k.mem.length()},   {v.mem.data(), v.mem.length()},
        {out.mem.data(), out.mem.length()}, {lse.data(), lse.length()},       {params.data(), params.length()},
        {mask.data(), mask.length()},       {slopes.data(), slopes.length()}, {cuq.data(), cuq.length()},
        {cuk.data(), cuk.length()},         {dout.mem.data(), dout.mem.length()}, {delta.data(), delta.length()},
        {dq.mem.data(), dq.mem.length()},   {dk.mem.data(), dk.mem.length()}, {dv.mem.data(), dv.mem.length()}};
    const int max_nq = *std::max_element(nq.begin(), nq.end()), max_nk = *std::max_element(nk.begin(), nk.end());
    char desc[320];
    std::snprintf(desc, sizeof desc,
                  "case %d: %s->%s %s%s B=%d nq=%d nk=%d Hq=%d Hkv=%d D=%d causal=%d window=%d(%d,%d) softcap=%g "
                  "alibi=%d mask=%d/%d scale=%g",
                  ci, kDtypes[dtype], kDtypes[out_dtype], varlen ? "varlen" : "dense", bhsd ? " bhsd" : "", batch,
                  max_nq, max_nk, hq, hkv, D, mask_mode, int(window), wl, wr, double(softcap), int(alibi), mask_kind,
                  mask_dtype, double(scale));
    const std::string err = run_attention(kDtypes[dtype], p, fc, buffers, batch, max_nq, max_nk, true,
                                          Schedule::shuffled, seed * 1000 + uint64_t(ci));
    if (!err.empty()) {
      std::printf("FAIL %s: %s\n", desc, err.c_str());
      ++failed;
      continue;
    }

    // Float64 reference, per sequence and head.
    const double atol_o = out_dtype == 0 && dtype == 0 ? 2e-5 : dtype == 2 || out_dtype == 2 ? 2e-2 : 3e-3;
    const double atol_g = atol_o * 5;
    double worst = 0;
    std::string worst_what;
    auto check = [&](const char* what, double got, double want, double atol) {
      double r;
      if (std::isnan(got)) r = INFINITY;
      else if (std::isinf(want)) r = got == want ? 0 : INFINITY;
      else r = std::fabs(got - want) / (atol + 4 * atol * std::fabs(want));
      if (r > worst) { worst = r; worst_what = std::string(what) + " got " + std::to_string(got) + " want " + std::to_string(want); }
    };
    std::vector<double> gk(size_t(TB) * Tk * hkv * D, 0.0), gv(gk.size(), 0.0);
    for (int b = 0; b < batch; ++b) {
      const int tb = varlen ? 0 : b, q0 = varlen ? cq[size_t(b)] : 0, k0 = varlen ? ck[size_t(b)] : 0;
      const int n_q = nq[size_t(b)], n_k = nk[size_t(b)], off = mask_mode == 1 ? 0 : n_k - n_q;
      for (int h = 0; h < hq; ++h) {
        const int hk = h / group;
        for (int i = 0; i < n_q; ++i) {
          std::vector<double> s(static_cast<size_t>(n_k)), dc(static_cast<size_t>(n_k), 1.0);
          std::vector<bool> vis(static_cast<size_t>(n_k));
          double mx = -INFINITY;
          for (int j = 0; j < n_k; ++j) {
            bool ok = !(mask_mode == 1 && j > i) && !(mask_mode == 2 && j > i + n_k - n_q);
            if (window) {
              const int d = j - (i + off);
              if (wl >= 0 && d < -wl) ok = false;
              if (wr >= 0 && d > wr) ok = false;
            }
            double x = 0;
            for (int d = 0; d < D; ++d) x += double(q.v(tb, q0 + i, h, d)) * k.v(tb, k0 + j, hk, d);
            x *= p.scale;
            if (softcap > 0) { const double t = std::tanh(x / softcap); x = softcap * t; dc[size_t(j)] = 1 - t * t; }
            if (alibi) x -= slope[size_t(b) * hq + h] * std::abs(i + off - j);
            if (mask_kind) {
              const float m = maskv[((size_t(b) * hq + h) * dense_nq + i) * dense_nk + j];
              if (mask_kind == 1) ok = ok && m != 0;
              else x += m;
            }
            ok = ok && x > -INFINITY;
            vis[size_t(j)] = ok;
            s[size_t(j)] = x;
            if (ok) mx = std::max(mx, x);
          }
          double sum = 0;
          for (int j = 0; j < n_k; ++j) if (vis[size_t(j)]) sum += std::exp(s[size_t(j)] - mx);
          const double want_lse = sum > 0 ? mx + std::log(sum) : -INFINITY;
          std::vector<double> P(static_cast<size_t>(n_k), 0.0), o(static_cast<size_t>(D), 0.0);
          for (int j = 0; j < n_k; ++j) if (vis[size_t(j)]) P[size_t(j)] = std::exp(s[size_t(j)] - want_lse);
          for (int j = 0; j < n_k; ++j) for (int d = 0; d < D; ++d) o[size_t(d)] += P[size_t(j)] * v.v(tb, k0 + j, hk, d);
          const float got_lse = static_cast<const float*>(lse.data())[tb * p.lse_stride[0] + h * p.lse_stride[1] + (q0 + i)];
          check("lse", got_lse, want_lse, atol_o);
          double delta_i = 0;
          for (int d = 0; d < D; ++d) {
            check("out", out.got(tb, q0 + i, h, d), o[size_t(d)], atol_o);
            delta_i += double(dout.v(tb, q0 + i, h, d)) * o[size_t(d)];
          }
          std::vector<double> gq(static_cast<size_t>(D), 0.0);
          for (int j = 0; j < n_k; ++j) {
            if (!vis[size_t(j)]) continue;
            double dp = 0;
            for (int d = 0; d < D; ++d) dp += double(dout.v(tb, q0 + i, h, d)) * v.v(tb, k0 + j, hk, d);
            const double ds = P[size_t(j)] * (dp - delta_i) * dc[size_t(j)];
            for (int d = 0; d < D; ++d) {
              gq[size_t(d)] += ds * k.v(tb, k0 + j, hk, d) * p.scale;
              gk[((size_t(tb) * Tk + k0 + j) * hkv + hk) * D + d] += ds * q.v(tb, q0 + i, h, d) * p.scale;
              gv[((size_t(tb) * Tk + k0 + j) * hkv + hk) * D + d] += P[size_t(j)] * dout.v(tb, q0 + i, h, d);
            }
          }
          for (int d = 0; d < D; ++d) check("dq", dq.got(tb, q0 + i, h, d), gq[size_t(d)], atol_g);
        }
      }
      for (int j = 0; j < nk[size_t(b)]; ++j)
        for (int hk = 0; hk < hkv; ++hk)
          for (int d = 0; d < D; ++d) {
            const size_t gi = ((size_t(tb) * Tk + k0 + j) * hkv + hk) * D + d;
            check("dk", dk.got(tb, k0 + j, hk, d), gk[gi], atol_g);
            check("dv", dv.got(tb, k0 + j, hk, d), gv[gi], atol_g);
          }
    }
    if (worst > 1.0) {
      std::printf("FAIL %s: worst %s (ratio %.2f)\n", desc, worst_what.c_str(), worst);
      ++failed;
    } else {
      std::printf("ok   %s (worst ratio %.3f)\n", desc, worst);
    }
  }
  std::printf("%d random case(s), %d failed\n", cases, failed);
  return failed ? 1 : 0;
}
