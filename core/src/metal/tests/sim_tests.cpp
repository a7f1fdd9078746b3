// The simulator's own tests: barrier ordering, every simd reduction and shuffle, the
// simdgroup_matrix element layout and multiply-accumulate against scalar references, function
// constants, and the failures it must report (deadlock, divergent collectives, out-of-bounds
// device and threadgroup accesses).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "numeric.h"
#include "runtime.h"

using namespace metal_sim;

static int g_failures = 0;
#define CHECK(cond, ...)                                      \
  do {                                                        \
    if (!(cond)) {                                            \
      ++g_failures;                                           \
      std::printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      std::printf(__VA_ARGS__);                               \
      std::printf("\n");                                      \
    }                                                         \
  } while (0)

static KernelFn kernel(const char* name) {
  KernelFn k = find_kernel(name);
  if (!k) {
    std::printf("FAIL: kernel %s not registered\n", name);
    std::exit(1);
  }
  return k;
}

static DispatchDesc desc_for(const char* name, Dim3 groups, Dim3 threads) {
  DispatchDesc d;
  d.kernel = kernel(name);
  d.kernel_name = name;
  d.threadgroups = groups;
  d.threads_per_threadgroup = threads;
  return d;
}

static const Schedule kSchedules[] = {Schedule::in_order, Schedule::reverse, Schedule::shuffled};

static void test_barrier_order() {
  for (unsigned n : {1u, 31u, 64u, 96u, 1024u}) {
    for (Schedule s : kSchedules) {
      const unsigned groups = 3;
      Allocation out(groups * n * 2 * 4, Guard::after, "out");
      DispatchDesc d = desc_for("sim_barrier_order", {groups, 1, 1}, {n, 1, 1});
      d.buffers = {{out.data(), out.length()}};
      d.threadgroup_memory = {(n + 1) * 4};
      d.threadgroup_guard = Guard::after;
      d.schedule = s;
      d.seed = n;
      DispatchStats st;
      const std::string err = dispatch(d, &st);
      CHECK(err.empty(), "n=%u: %s", n, err.c_str());
      const uint32_t* o = static_cast<const uint32_t*>(out.data());
      for (unsigned g = 0; g < groups; ++g)
        for (unsigned t = 0; t < n; ++t) {
          const uint32_t* r = o + (g * n + t) * 2;
          CHECK(r[0] == n, "n=%u thread %u saw count %u", n, t, r[0]);
          CHECK(r[1] == ((t + 1) % n) * 3 + g, "n=%u thread %u read %u", n, t, r[1]);
        }
      CHECK(st.barriers == uint64_t(groups) * n * 4, "barrier count %llu",
            (unsigned long long)st.barriers);
    }
  }
  std::printf("ok barrier ordering (1..1024 threads, three schedules)\n");
}

static void test_failures_reported() {
  {
    Allocation out(64 * 4, Guard::none, "out");
    DispatchDesc d = desc_for("sim_divergent_barrier", {1, 1, 1}, {64, 1, 1});
    d.buffers = {{out.data(), out.length()}};
    const std::string err = dispatch(d);
    CHECK(err.find("deadlock") != std::string::npos, "got '%s'", err.c_str());
  }
  {
    Allocation out(32 * 4, Guard::none, "out");
    DispatchDesc d = desc_for("sim_divergent_collective", {1, 1, 1}, {32, 1, 1});
    d.buffers = {{out.data(), out.length()}};
    const std::string err = dispatch(d);
    CHECK(err.find("different simdgroup functions") != std::string::npos, "got '%s'", err.c_str());
  }
  {
    DispatchDesc d = desc_for("sim_function_constant", {1, 1, 1}, {4, 1, 1});
    const std::string err = dispatch(d);  // buffer 0 unbound
    CHECK(err.find("[[buffer(0)]], which is not bound") != std::string::npos, "got '%s'", err.c_str());
  }
  // A dispatch after failures still works (abandoned fibers are reset).
  {
    Allocation out(8 * 4, Guard::none, "out");
    DispatchDesc d = desc_for("sim_function_constant", {2, 1, 1}, {4, 1, 1});
    d.buffers = {{out.data(), out.length()}};
    CHECK(dispatch(d).empty(), "plain dispatch after failures");
    const uint32_t* o = static_cast<const uint32_t*>(out.data());
    for (unsigned i = 0; i < 8; ++i) CHECK(o[i] == 7u, "undefined constant: out[%u]=%u", i, o[i]);
    d.constants.set<uint32_t>(2, 5);
    CHECK(dispatch(d).empty(), "dispatch with constant");
    for (unsigned i = 0; i < 8; ++i) CHECK(o[i] == i * 5, "constant 5: out[%u]=%u", i, o[i]);
    d.constants.set<uint32_t>(2, 9);
    CHECK(dispatch(d).empty(), "dispatch with constant");
    for (unsigned i = 0; i < 8; ++i) CHECK(o[i] == i * 9, "constant 9: out[%u]=%u", i, o[i]);
  }
  std::printf("ok failures reported: deadlock, divergent collective, unbound buffer; function constants\n");
}

static void test_out_of_bounds() {
  const unsigned n = 40;
  // In bounds first: the same kernels pass with reach 0.
  for (int reach : {0, 1, -1, 5}) {
    Allocation buf(n * 4, reach < 0 ? Guard::before : Guard::after, "buffer 0");
    DispatchDesc d = desc_for("sim_oob_device_write", {1, 1, 1}, {n, 1, 1});
    d.buffers = {{buf.data(), buf.length()}};
    d.constants.set<int32_t>(1, reach);
    const std::string err = dispatch(d);
    if (reach == 0) {
      CHECK(err.empty(), "in-bounds write: %s", err.c_str());
    } else {
      const long long off = reach > 0 ? (long long)(n) * 4 : -4;
      char want[96];
      std::snprintf(want, sizeof want, "out-of-bounds write at byte offset %lld of buffer 0", off);
      CHECK(err.find(want) != std::string::npos, "reach %d: got '%s'", reach, err.c_str());
    }
  }
  {
    Allocation in(n * 4, Guard::after, "input");
    Allocation out(n * 4, Guard::after, "output");
    DispatchDesc d = desc_for("sim_oob_device_read", {1, 1, 1}, {n, 1, 1});
    d.buffers = {{in.data(), in.length()}, {out.data(), out.length()}};
    d.constants.set<int32_t>(1, 1);
    const std::string err = dispatch(d);
    CHECK(err.find("out-of-bounds access at byte offset 160 of input") != std::string::npos,
          "got '%s'", err.c_str());
  }
  for (int reach : {0, 1, -1}) {
    Allocation out(n * 4, Guard::after, "output");
    DispatchDesc d = desc_for("sim_oob_threadgroup", {2, 1, 1}, {n, 1, 1});
    d.buffers = {{out.data(), out.length()}};
    d.threadgroup_memory = {n * 4};
    d.threadgroup_guard = reach < 0 ? Guard::before : Guard::after;
    d.constants.set<int32_t>(1, reach);
    const std::string err = dispatch(d);
    if (reach == 0) CHECK(err.empty(), "in-bounds threadgroup: %s", err.c_str());
    else
      CHECK(err.find("of threadgroup memory [[threadgroup(0)]]") != std::string::npos &&
                err.find("out-of-bounds write") != std::string::npos,
            "reach %d: got '%s'", reach, err.c_str());
  }
  std::printf("ok out-of-bounds device/threadgroup reads and writes caught, in-bounds pass\n");
}

static void test_simd_ops() {
  const unsigned groups = 2, threads = 96;  // three simdgroups per threadgroup
  const unsigned total = groups * threads;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  for (Schedule s : kSchedules) {
    Allocation fin(total * 4, Guard::after, "fin"), iin(total * 4, Guard::after, "iin");
    Allocation fout(total * 16 * 4, Guard::after, "fout"), iout(total * 16 * 4, Guard::after, "iout");
    float* f = static_cast<float*>(fin.data());
    int32_t* ii = static_cast<int32_t*>(iin.data());
    for (unsigned i = 0; i < total; ++i) {
      f[i] = dist(rng);
      ii[i] = int32_t(rng() % 2001) - 1000;
    }
    DispatchDesc d = desc_for("sim_simd_ops", {groups, 1, 1}, {threads, 1, 1});
    d.buffers = {{fin.data(), fin.length()}, {iin.data(), iin.length()},
                 {fout.data(), fout.length()}, {iout.data(), iout.length()}};
    d.schedule = s;
    const std::string err = dispatch(d);
    CHECK(err.empty(), "%s", err.c_str());
    const float* fo = static_cast<const float*>(fout.data());
    const int32_t* io = static_cast<const int32_t*>(iout.data());
    for (unsigned base = 0; base < total; base += 32) {
      float sum = 0, mx = -INFINITY, mn = INFINITY, prod = 1, hsum = 0;
      int32_t isum = 0, imx = INT32_MIN, imn = INT32_MAX;
      for (unsigned l = 0; l < 32; ++l) {
        const float v = f[base + l];
        sum += v; mx = std::fmax(mx, v); mn = std::fmin(mn, v); prod *= v;
        hsum += half_bits_to_float(float_to_half_bits(v));
        isum += ii[base + l]; imx = std::max(imx, ii[base + l]); imn = std::min(imn, ii[base + l]);
      }
      for (unsigned l = 0; l < 32; ++l) {
        const float* r = fo + (base + l) * 16;
        const int32_t* q = io + (base + l) * 16;
        auto at = [&](unsigned lane) { return f[base + lane]; };
        CHECK(std::fabs(r[0] - sum) <= 1e-5f * (1 + std::fabs(sum)), "sum %g vs %g", r[0], sum);
        CHECK(r[1] == mx && r[2] == mn, "max/min lane %u", l);
        CHECK(std::fabs(r[3] - prod) <= 1e-5f * std::fabs(prod) + 1e-30f, "product %g vs %g", r[3], prod);
        CHECK(r[4] == at((l * 7 + 3) % 32), "shuffle lane %u", l);
        CHECK(r[5] == at(l ^ 5), "shuffle_xor lane %u", l);
        CHECK(r[6] == (l + 3 < 32 ? at(l + 3) : at(l)), "shuffle_down lane %u", l);
        CHECK(r[7] == (l >= 3 ? at(l - 3) : at(l)), "shuffle_up lane %u", l);
        CHECK(r[8] == at((l + 3) % 32), "rotate_down lane %u", l);
        CHECK(r[9] == at((l + 29) % 32), "rotate_up lane %u", l);
        CHECK(r[10] == at(17) && r[11] == at(0), "broadcast lane %u", l);
        CHECK(std::fabs(r[12] - sum) <= 1e-5f * (1 + std::fabs(sum)) &&
                  std::fabs(r[13] - 2 * sum) <= 2e-5f * (1 + std::fabs(sum)),
              "vector sum lane %u", l);
        const float hs = half_bits_to_float(float_to_half_bits(hsum));
        CHECK(r[15] == hs, "half sum %g vs %g", r[15], hs);
        CHECK(q[0] == isum && q[1] == imx && q[2] == imn, "int reductions lane %u", l);
        CHECK(q[3] == ii[base + (l ^ 31)], "int xor lane %u", l);
        CHECK(q[4] == (l + 1 < 32 ? ii[base + l + 1] : ii[base + l]), "int down lane %u", l);
        CHECK(q[5] == ii[base], "int broadcast lane %u", l);
        int32_t a_and = -1, a_or = 0, a_xor = 0, incl = 0;
        bool all = true, any = false;
        float fprod = 1.0f, fexcl = 1.0f;
        for (unsigned m = 0; m < 32; ++m) {
          const int32_t x = ii[base + m];
          a_and &= x; a_or |= x; a_xor ^= x;
          all = all && x > -1000; any = any || x > 990;
          if (m <= l) { incl += x; fprod *= f[base + m]; }
          if (m < l) fexcl *= f[base + m];
        }
        CHECK(q[6] == a_and && q[7] == a_or && q[8] == a_xor, "and/or/xor lane %u", l);
        CHECK(q[9] == incl && q[10] == incl - ii[base + l], "prefix sums lane %u", l);
        CHECK(q[11] == int(all) && q[12] == int(any) && q[13] == 1, "all/any lane %u", l);
        CHECK(std::fabs(r[14] - fprod) <= 1e-5f * std::fabs(fprod) + 1e-30f, "inclusive product lane %u", l);
        CHECK(q[14] == int(fexcl * 1000.0f), "exclusive product lane %u: %d vs %d", l, q[14], int(fexcl * 1000.0f));
      }
    }
  }
  std::printf("ok simd_sum/max/min/product/and/or/xor, all/any, prefix sums and products, shuffle, xor, down, up, rotate, broadcast (float, int, float2, half)\n");
}

static void test_half_bfloat_conversions() {
  // Exhaustive half -> float -> half round trip, and rounding ties of float -> half / bfloat.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = half_bits_to_float(uint16_t(h));
    if (std::isnan(f)) continue;
    CHECK(float_to_half_bits(f) == h, "half %04x", h);
  }
  CHECK(float_to_half_bits(1.0f + 0x1p-11f) == 0x3c00, "tie to even down");
  CHECK(float_to_half_bits(1.0f + 3 * 0x1p-11f) == 0x3c02, "tie to even up");
  CHECK(float_to_half_bits(65520.0f) == 0x7c00, "overflow to inf");
  CHECK(float_to_half_bits(0x1p-25f) == 0x0000 && float_to_half_bits(0x1.8p-25f) == 0x0001,
        "smallest subnormal rounding");
  CHECK(float_to_bfloat_bits(1.0f + 0x1p-8f) == 0x3f80 && float_to_bfloat_bits(1.0f + 3 * 0x1p-8f) == 0x3f82,
        "bfloat ties");
  std::printf("ok half/bfloat conversions (exhaustive half round trip, ties to even)\n");
}

static void test_thread_elements() {
  Allocation m(64 * 4, Guard::after, "m"), out(128 * 4, Guard::after, "out");
  float* mm = static_cast<float*>(m.data());
  for (int i = 0; i < 64; ++i) mm[i] = float(i);
  DispatchDesc d = desc_for("sim_thread_elements", {1, 1, 1}, {32, 1, 1});
  d.buffers = {{m.data(), m.length()}, {out.data(), out.length()}};
  CHECK(dispatch(d).empty(), "thread_elements dispatch");
  const float* o = static_cast<const float*>(out.data());
  // The layout Metal FlashAttention documents, spelled as a table of (row, first column) per lane.
  static const int kRow[32] = {0, 0, 1, 1, 2, 2, 3, 3, 0, 0, 1, 1, 2, 2, 3, 3,
                               4, 4, 5, 5, 6, 6, 7, 7, 4, 4, 5, 5, 6, 6, 7, 7};
  static const int kCol[32] = {0, 2, 0, 2, 0, 2, 0, 2, 4, 6, 4, 6, 4, 6, 4, 6,
                               0, 2, 0, 2, 0, 2, 0, 2, 4, 6, 4, 6, 4, 6, 4, 6};
  bool seen[64] = {};
  for (int l = 0; l < 32; ++l) {
    for (int j = 0; j < 2; ++j) {
      const int want = kRow[l] * 8 + kCol[l] + j;
      CHECK(o[l * 2 + j] == float(want), "lane %d element %d holds %g, want %d", l, j, o[l * 2 + j], want);
      seen[want] = true;
      const float diag = (kRow[l] == kCol[l] + j) ? 2.0f : 0.0f;
      CHECK(o[64 + l * 2 + j] == diag, "diagonal matrix lane %d element %d", l, j);
    }
  }
  for (int i = 0; i < 64; ++i) CHECK(seen[i], "element %d held by no lane", i);
  std::printf("ok simdgroup_matrix thread_elements layout (all 64 elements, one lane each)\n");
}

static void test_mma() {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const char* names[3] = {"sim_mma_f32", "sim_mma_f16", "sim_mma_bf16"};
  for (int t = 0; t < 3; ++t)
    for (bool transpose : {false, true}) {
      const size_t esz = t == 0 ? 4 : 2;
      Allocation a(64 * esz, Guard::after, "a"), b(64 * esz, Guard::after, "b");
      Allocation c(64 * 4, Guard::after, "c"), dd(64 * 4, Guard::after, "d");
      float A[64], B[64], C[64];
      for (int i = 0; i < 64; ++i) {
        A[i] = dist(rng); B[i] = dist(rng); C[i] = dist(rng);
        if (t == 1) { A[i] = half_bits_to_float(float_to_half_bits(A[i])); B[i] = half_bits_to_float(float_to_half_bits(B[i])); }
        if (t == 2) { A[i] = bfloat_bits_to_float(float_to_bfloat_bits(A[i])); B[i] = bfloat_bits_to_float(float_to_bfloat_bits(B[i])); }
      }
      for (int i = 0; i < 64; ++i) {
        if (t == 0) { static_cast<float*>(a.data())[i] = A[i]; static_cast<float*>(b.data())[i] = B[i]; }
        if (t == 1) { static_cast<uint16_t*>(a.data())[i] = float_to_half_bits(A[i]); static_cast<uint16_t*>(b.data())[i] = float_to_half_bits(B[i]); }
        if (t == 2) { static_cast<uint16_t*>(a.data())[i] = float_to_bfloat_bits(A[i]); static_cast<uint16_t*>(b.data())[i] = float_to_bfloat_bits(B[i]); }
        static_cast<float*>(c.data())[i] = C[i];
      }
      DispatchDesc d = desc_for(names[t], {1, 1, 1}, {32, 1, 1});
      d.buffers = {{a.data(), a.length()}, {b.data(), b.length()}, {c.data(), c.length()}, {dd.data(), dd.length()}};
      d.threadgroup_memory = {64 * 4};
      d.constants.set<bool>(0, transpose);
      const std::string err = dispatch(d);
      CHECK(err.empty(), "%s: %s", names[t], err.c_str());
      const float* D = static_cast<const float*>(dd.data());
      for (int r = 0; r < 8; ++r)
        for (int col = 0; col < 8; ++col) {
          double acc = C[r * 8 + col];
          for (int k = 0; k < 8; ++k) acc += double(A[r * 8 + k]) * (transpose ? B[col * 8 + k] : B[k * 8 + col]);
          CHECK(std::fabs(D[r * 8 + col] - acc) <= 1e-5, "%s transpose=%d (%d,%d): %g vs %g", names[t],
                int(transpose), r, col, D[r * 8 + col], acc);
        }
    }
  std::printf("ok simdgroup_multiply_accumulate f32/f16/bf16, B plain and transposed\n");
}

int main() {
  test_half_bfloat_conversions();
  test_barrier_order();
  test_failures_reported();
  test_out_of_bounds();
  test_simd_ops();
  test_thread_elements();
  test_mma();
  if (g_failures) {
    std::printf("%d check(s) failed\n", g_failures);
    return 1;
  }
  std::printf("all simulator tests passed\n");
  return 0;
}
