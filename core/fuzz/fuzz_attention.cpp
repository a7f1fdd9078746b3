// libFuzzer target for the umfa C ABI (and, with replay_main.cpp, a corpus replayer built by any
// compiler).
//
// Each input is decoded into one call: umfa_attention_forward, umfa_attention_backward,
// umfa_context_create, the classic mfa_attention_forward over buffers, or one of the small
// helpers (tensor init, dtype sizes, status strings, buffers). The decoder starts from a valid
// problem (dimensions, dtypes, layouts, masks, ALiBi, varlen offsets, options) and then applies a
// few byte-driven mutations: option structs with odd struct_size, unknown enums, non-finite
// scalars, tensors (option tensors included) with another rank, dtype, device, extent or stride
// (negative, huge, overflowing, overlapping, broadcast), NULL pointers, aliasing outputs, broken
// cu_seqlens. Bytes after the ones the decoder reads select the extended mutations (older
// inputs, which end earlier, decode exactly as before): how each tensor's memory is sized,
// broadcast (stride 0) attn_mask, alibi_slopes and cu_seqlens, and any tensor moved into the
// memory of another at a byte offset (outputs overlapping option tensors, inputs and each other,
// or interleaving with them without sharing a byte).
//
// Memory: every tensor gets its own allocation covering exactly the elements its view can
// reach (computed here, in 128-bit arithmetic), by default with guard bytes on both sides; the
// extended mutations size it exactly (no guard: AddressSanitizer catches an access one byte
// outside), exactly at its end only, or larger than the view. Guard and slack bytes are checked
// after the call: nothing outside an output view's bytes may change. A view whose reach cannot be
// represented (it overflows) gets a small allocation: the library must refuse it before reading
// (SIZE_OVERFLOW or another status). A view whose reach is representable but too large to
// allocate is never handed over: the library cannot know how much memory a pointer has, so
// such an input is skipped.
//
// Oracle: from the header's rules alone, the harness works out which statuses the call may
// return (an issue may map to more than one when the header leaves room) and whether it may
// succeed. Then:
//   - a failing call must return an allowed status, leave every output byte untouched, leave
//     inputs untouched and set a non-empty last-error message;
//   - a successful call must be allowed, must not write a byte outside its output views, and
//     its results must match a float64 reference (reference.h) within tolerance.
// Any violation prints a description and aborts (a crash for libFuzzer).
#include <sys/types.h>

#include <algorithm>
#include <cinttypes>
#include <cstddef>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "../tests/test_os.h"
#include "reference.h"
#include "umfa.h"

namespace {

// ---------------------------------------------------------------------------------------------
// Input reading
// ---------------------------------------------------------------------------------------------

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), n_(size) {}
  uint8_t u8() { return i_ < n_ ? p_[i_++] : 0; }
  uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
  uint32_t u32() { return static_cast<uint32_t>(u16()) | (static_cast<uint32_t>(u16()) << 16); }
  uint64_t u64() { return static_cast<uint64_t>(u32()) | (static_cast<uint64_t>(u32()) << 32); }
  // True with probability 1/k for random bytes; false once the input is exhausted.
  bool chance(unsigned k) { return i_ < n_ && p_[i_++] % k == 1 % k; }
  bool exhausted() const { return i_ >= n_; }
  template <class T, size_t N>
  T pick(const T (&values)[N]) {
    return values[u8() % N];
  }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t i_ = 0;
};

// A small deterministic generator for tensor contents.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  double uniform(double lo, double hi) {
    return lo + (hi - lo) * static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0);
  }
};

// ---------------------------------------------------------------------------------------------
// Failure reporting
// ---------------------------------------------------------------------------------------------

std::string g_trace;  // a description of the current input, printed on failure
std::string g_label;  // the replayed file, if any
const uint8_t* g_input = nullptr;
size_t g_input_size = 0;

[[noreturn]] void die(const char* fmt, ...) __attribute__((format(TEST_PRINTF_FORMAT, 1, 2)));
void die(const char* fmt, ...) {
  std::fprintf(stderr, "\n==umfa-fuzz== CHECK FAILED: ");
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "\n==umfa-fuzz== input: %s%s%s\n", g_label.empty() ? "" : g_label.c_str(),
               g_label.empty() ? "" : ": ", g_trace.c_str());
  // Keep the input when asked (libFuzzer saves its own crash-* file anyway).
  if (const char* path = std::getenv("UMFA_FUZZ_FAILURE_FILE"); path && *path && g_input) {
    if (FILE* f = std::fopen(path, "wb")) {
      std::fwrite(g_input, 1, g_input_size, f);
      std::fclose(f);
      std::fprintf(stderr, "==umfa-fuzz== input written to %s\n", path);
    }
  }
  std::fflush(stderr);
  std::abort();
}

void trace(const char* fmt, ...) __attribute__((format(TEST_PRINTF_FORMAT, 1, 2)));
void trace(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  g_trace += buf;
  g_trace += "; ";
}

std::string status_list(uint32_t set) {
  std::string s;
  for (int i = 0; i < 32; ++i)
    if (set & (1u << i)) {
      if (!s.empty()) s += "|";
      s += umfa_status_string(i);
      s.resize(s.find(':') == std::string::npos ? s.size() : s.find(':'));
    }
  return s;
}

constexpr uint32_t S(umfa_status s) { return 1u << s; }

// ---------------------------------------------------------------------------------------------
// Contexts (created once: thread pools are expensive to start per input)
// ---------------------------------------------------------------------------------------------

umfa_context* make_context(int32_t threads, uint64_t limit) {
  umfa_context_options o;
  std::memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.backend = UMFA_BACKEND_CPU;
  o.num_threads = threads;
  o.workspace_limit_bytes = limit;
  umfa_context* c = nullptr;
  if (umfa_context_create(&o, &c) != UMFA_STATUS_OK || !c) die("cannot create a CPU context");
  return c;
}

struct Contexts {
  umfa_context* one = make_context(1, 0);
  umfa_context* two = make_context(2, 0);
  uint64_t limits[4] = {1, 4096, 65536, 1 << 20};
  umfa_context* limited[4] = {make_context(1, limits[0]), make_context(1, limits[1]),
                              make_context(2, limits[2]), make_context(1, limits[3])};
};

Contexts& contexts() {
  static Contexts* c = new Contexts();
  return *c;
}

// Memory that is not a context (for INVALID_HANDLE): readable, zero-filled.
alignas(64) unsigned char g_not_a_context[512];

// ---------------------------------------------------------------------------------------------
// Tensors and their memory
// ---------------------------------------------------------------------------------------------

enum Role { Q, K, V, OUT, LSE, DOUT, DQ, DK, DV, MASK, ALIBI, CUQ, CUK, NROLES };
const char* const kRoleNames[NROLES] = {"q",  "k",  "v",  "out",  "lse",   "dout",        "dq",
                                        "dk", "dv", "attn_mask", "alibi_slopes", "cu_seqlens_q",
                                        "cu_seqlens_k"};

constexpr size_t kGuard = 64;                // default guard bytes on each side of an allocation
constexpr int64_t kMaxBytes = 4 << 20;       // largest reach the harness allocates per tensor
constexpr uint8_t kSentinel = 0xA7;          // fill byte of output memory

struct Slot {
  bool present = false;     // a non-NULL umfa_tensor* is passed
  umfa_tensor t{};
  // Memory: [guard_before | misalign | reach | slack | guard_after];
  // t.data = base + guard_before + misalign + (-min_offset bytes) unless NULL.
  std::unique_ptr<unsigned char[]> mem;
  size_t mem_size = 0;
  size_t guard_before = kGuard, guard_after = kGuard;
  size_t slack = 0;         // bytes after the reach that belong to no view (a larger allocation)
  bool null_data = false;   // t.data = NULL
  int64_t misalign = 0;     // bytes added to t.data (0 = element-aligned)
  int alias_of = -1;        // t.data = data of this other role (mutation)
  std::vector<unsigned char> snapshot;
};

// The elements a view can reach, in elements relative to data, computed without overflow.
struct Reach {
  bool overflow = false;  // the offsets (or sizes) do not fit in 64 bits
  bool empty = false;     // some extent is 0
  bool negative_extent = false;
  __int128 lo = 0, hi = 0;  // lowest and highest element offset
};

int eff_rank(const umfa_tensor& t) { return t.rank < 0 ? 0 : t.rank > 4 ? 4 : t.rank; }

int64_t alloc_esize(int32_t dtype) {
  int64_t e = ref::dtype_size(dtype);
  return e ? e : 4;  // unknown dtype: assume 4 bytes for the memory the harness provides
}

Reach reach_of(const umfa_tensor& t) {
  Reach r;
  const int rank = eff_rank(t);
  for (int d = 0; d < rank; ++d) {
    if (t.shape[d] < 0) r.negative_extent = true;
    if (t.shape[d] == 0) r.empty = true;
  }
  if (r.negative_extent || r.empty) return r;
  const __int128 lim = static_cast<__int128>(INT64_MAX);
  for (int d = 0; d < rank; ++d) {
    const __int128 span = static_cast<__int128>(t.shape[d] - 1) * t.strides[d];
    if (span < 0)
      r.lo += span;
    else
      r.hi += span;
  }
  const __int128 esize = alloc_esize(t.dtype);
  if (r.hi > lim || r.lo < -lim || (r.hi + 1) * esize > lim || (r.hi - r.lo + 1) * esize > lim)
    r.overflow = true;
  return r;
}

// Fills the memory of a slot with data (inputs) or the sentinel (outputs).
void allocate(Slot& s, bool output, Rng& rng, int special) {
  if (!s.present) return;
  const Reach r = reach_of(s.t);
  const int64_t esize = alloc_esize(s.t.dtype);
  int64_t lo_bytes = 0, span_bytes = esize;
  if (!r.overflow && !r.negative_extent && !r.empty) {
    lo_bytes = static_cast<int64_t>(r.lo * esize);
    span_bytes = static_cast<int64_t>((r.hi - r.lo + 1) * esize);
  }
  s.mem_size = s.guard_before + static_cast<size_t>(s.misalign) + static_cast<size_t>(span_bytes) +
               s.slack + s.guard_after;
  s.mem.reset(new unsigned char[s.mem_size]);
  std::memset(s.mem.get(), kSentinel, s.mem_size);
  unsigned char* data = s.mem.get() + s.guard_before + s.misalign - lo_bytes;
  s.t.data = s.null_data ? nullptr : data;
  if (output) return;
  // Inputs: every byte of the reachable range gets a value of the tensor's dtype.
  unsigned char* begin = s.mem.get() + s.guard_before + s.misalign;
  const int32_t dt = s.t.dtype;
  const int64_t n = span_bytes / esize;
  for (int64_t i = 0; i < n; ++i) {
    double x = rng.uniform(-1.0, 1.0);
    if (special && rng.next() % 16 == 0) {
      const double specials[] = {std::numeric_limits<double>::quiet_NaN(),
                                 std::numeric_limits<double>::infinity(),
                                 -std::numeric_limits<double>::infinity(), 1e30, -65504.0, 0.0};
      x = specials[rng.next() % 6];
    }
    if (dt == UMFA_DTYPE_BOOL) x = rng.next() % 4 != 0;
    if (dt == UMFA_DTYPE_I32) x = static_cast<double>(rng.next() % 8);
    if (ref::dtype_size(dt) == 0) {
      begin[i * 4] = static_cast<unsigned char>(rng.next());
      continue;
    }
    ref::store(begin, dt, i, x);
  }
}

// ---------------------------------------------------------------------------------------------
// The decoded call
// ---------------------------------------------------------------------------------------------

struct Call {
  bool backward = false;
  umfa_context* ctx = nullptr;
  uint64_t workspace_limit = 0;
  bool ctx_null = false, ctx_fake = false;
  bool options_null = false;
  umfa_attention_options o{};  // what is passed (struct_size may be anything)
  Slot s[NROLES];
  bool specials = false;  // inputs may hold NaN/inf: results are not compared
  // Per-call message buffer (options.error_message): kGuard bytes, capacity, kGuard bytes.
  std::vector<char> message;
  uint64_t message_capacity = 0;
  // Base problem as generated (before mutations).
  int64_t B = 1, Nq = 1, Nk = 1, Hq = 1, Hkv = 1, D = 1;
  bool varlen = false;
  // Extended mutation: tensor `from` moved into the memory of tensor `into`, its lowest byte at
  // byte `at` (modulo the allocation, rounded down to the element size) of that allocation.
  struct Move {
    int from, into;
    uint32_t at;
  };
  std::vector<Move> moves;
  bool moved_out_or_lse = false;  // a move involved out or lse (backward reads them as written)
};

// Strides for `rank` dims of `shape`, stored in the axis order `perm` (outermost first), with
// optional padding elements after each axis.
void layout(umfa_tensor& t, const int* perm, const int64_t* pad) {
  int64_t running = 1;
  for (int a = t.rank - 1; a >= 0; --a) {
    const int axis = perm[a];
    t.strides[axis] = running;
    running *= (t.shape[axis] > 0 ? t.shape[axis] : 1) + pad[axis];
  }
}

void set_shape(umfa_tensor& t, int32_t dtype, int rank, const int64_t* shape) {
  std::memset(&t, 0, sizeof t);
  t.dtype = dtype;
  t.device = UMFA_DEVICE_CPU;
  t.rank = rank;
  for (int d = 0; d < rank; ++d) t.shape[d] = shape[d];
}

// A random permutation of 0..n-1 and padding, driven by the input.
void random_layout(Reader& in, umfa_tensor& t, bool allow_broadcast) {
  int perm[4] = {0, 1, 2, 3};
  int64_t pad[4] = {0, 0, 0, 0};
  const uint8_t mode = in.u8();
  if (mode & 1) {  // shuffle
    for (int i = t.rank - 1; i > 0; --i) {
      const int j = in.u8() % (i + 1);
      std::swap(perm[i], perm[j]);
    }
  }
  if (mode & 2)
    for (int d = 0; d < t.rank; ++d) pad[d] = in.u8() % 3;
  layout(t, perm, pad);
  if (allow_broadcast && (mode & 12) == 12 && t.rank > 0) t.strides[in.u8() % t.rank] = 0;
}

const int32_t kFloatDtypes[3] = {UMFA_DTYPE_F32, UMFA_DTYPE_F16, UMFA_DTYPE_BF16};

// cu_seqlens contents (written into their tensors after allocation; mutations may change them).
struct Offsets {
  std::vector<int32_t> q, k;
};

void build_problem(Reader& in, Call& c, Offsets& off) {
  const uint8_t f = in.u8();
  c.varlen = (f & 1) != 0;
  const bool with_mask = (f & 2) != 0 && !c.varlen;
  const bool with_alibi = (f & 4) != 0;
  const bool long_seq = (f & 0x18) == 0x18;
  const uint8_t dims = in.u8();
  c.B = dims % 4;
  if (c.B == 0 && (dims & 0x80) == 0) c.B = 1;  // batch 0 is rare
  c.Hkv = 1 + in.u8() % 3;
  c.Hq = c.Hkv * (1 + in.u8() % 3);
  static const int64_t kDims[] = {1, 2, 3, 4, 5, 7, 8, 8, 16, 16, 17, 31, 32, 32, 33, 48,
                                  63, 64, 64, 65, 80, 96, 127, 128, 129, 160, 192, 255, 256};
  c.D = in.pick(kDims);
  const int64_t max_n = long_seq ? (c.D <= 32 ? 150 : 70) : (c.D > 64 ? 6 : 10);
  c.Nq = in.u8() % max_n;
  c.Nk = in.u8() % max_n;
  if (long_seq && c.B > 2) c.B = 1;

  const int32_t dtype = kFloatDtypes[in.u8() % 3];
  const uint8_t od = in.u8();
  const int32_t out_dtype = od & 0x80 ? kFloatDtypes[od % 3] : dtype;
  const int32_t grad_dtype = od & 0x40 ? kFloatDtypes[(od >> 2) % 3] : dtype;

  // Varlen: per-sequence lengths (0..max), packed, with 0..2 padding rows at the end.
  std::vector<int32_t> cu_q(1, 0), cu_k(1, 0);
  int64_t tq = 0, tk = 0;
  if (c.varlen) {
    for (int64_t b = 0; b < c.B; ++b) {
      const int64_t lq = c.Nq == 0 ? 0 : in.u8() % (c.Nq + 1);
      const int64_t lk = c.Nk == 0 ? 0 : in.u8() % (c.Nk + 1);
      cu_q.push_back(static_cast<int32_t>(cu_q.back() + lq));
      cu_k.push_back(static_cast<int32_t>(cu_k.back() + lk));
    }
    const uint8_t padding = in.u8();
    tq = cu_q.back() + (padding & 3) % 3;
    tk = cu_k.back() + ((padding >> 2) & 3) % 3;
  }

  auto seq = [&](Role r, int32_t dt, bool kv) {
    Slot& s = c.s[r];
    s.present = true;
    const int64_t n = kv ? c.Nk : c.Nq;
    const int64_t h = kv ? c.Hkv : c.Hq;
    if (c.varlen) {
      const int64_t shape[3] = {kv ? tk : tq, h, c.D};
      set_shape(s.t, dt, 3, shape);
    } else {
      const int64_t shape[4] = {c.B, n, h, c.D};
      set_shape(s.t, dt, 4, shape);
    }
  };
  seq(Q, dtype, false);
  seq(K, dtype, true);
  seq(V, dtype, true);
  seq(OUT, out_dtype, false);
  const bool want_lse = c.backward || (f & 0x20) == 0;
  if (want_lse) {
    Slot& s = c.s[LSE];
    s.present = true;
    if (c.varlen) {
      const int64_t shape[2] = {c.Hq, tq};
      set_shape(s.t, UMFA_DTYPE_F32, 2, shape);
    } else {
      const int64_t shape[3] = {c.B, c.Hq, c.Nq};
      set_shape(s.t, UMFA_DTYPE_F32, 3, shape);
    }
  }
  if (c.backward) {
    seq(DOUT, dtype, false);
    seq(DQ, grad_dtype, false);
    seq(DK, grad_dtype, true);
    seq(DV, grad_dtype, true);
  }
  for (int r = Q; r <= DV; ++r)
    if (c.s[r].present) {
      const bool output = c.backward ? (r == DQ || r == DK || r == DV) : (r == OUT || r == LSE);
      random_layout(in, c.s[r].t, !output);
    }

  if (with_mask) {
    Slot& s = c.s[MASK];
    s.present = true;
    const uint8_t m = in.u8();
    const int rank = 1 + m % 4;
    const int64_t full[4] = {c.B, c.Hq, c.Nq, c.Nk};
    int64_t shape[4];
    for (int i = 0; i < rank; ++i) {
      const int64_t target = full[4 - rank + i];
      shape[i] = (m >> (2 + i)) & 1 ? 1 : target;
    }
    static const int32_t kMaskDtypes[4] = {UMFA_DTYPE_BOOL, UMFA_DTYPE_F32, UMFA_DTYPE_F16,
                                           UMFA_DTYPE_BF16};
    set_shape(s.t, kMaskDtypes[in.u8() % 4], rank, shape);
    random_layout(in, s.t, true);
  }
  if (with_alibi) {
    Slot& s = c.s[ALIBI];
    s.present = true;
    if (in.u8() & 1) {
      const int64_t shape[1] = {c.Hq};
      set_shape(s.t, UMFA_DTYPE_F32, 1, shape);
    } else {
      const int64_t shape[2] = {c.B, c.Hq};
      set_shape(s.t, UMFA_DTYPE_F32, 2, shape);
    }
    random_layout(in, s.t, true);
  }
  if (c.varlen) {
    for (int r : {CUQ, CUK}) {
      Slot& s = c.s[r];
      s.present = true;
      const int64_t shape[1] = {c.B + 1};
      set_shape(s.t, UMFA_DTYPE_I32, 1, shape);
      s.t.strides[0] = 1 + (in.u8() % 4 == 1 ? 1 : 0);
    }
  }

  // Options.
  std::memset(&c.o, 0, sizeof c.o);
  c.o.struct_size = sizeof c.o;
  const uint8_t of = in.u8();
  c.o.mask_mode = of % 3;
  static const float kScales[] = {0.f, 0.f, 0.f, 0.125f, 0.3f, 1.f, -0.7f, 2.f};
  c.o.softmax_scale = in.pick(kScales);
  static const float kCaps[] = {0.f, 0.f, 0.f, 0.f, 0.5f, 2.f, 30.f, 0.f};
  c.o.softcap = in.pick(kCaps);
  if (of & 4) {
    c.o.has_window = 1;
    static const int64_t kWin[] = {-1, 0, 1, 2, 3, 7, 100, -5};
    c.o.window_left = in.pick(kWin);
    c.o.window_right = in.pick(kWin);
  }
  if (of & 8) c.o.flags = UMFA_FLAG_DETERMINISTIC;
  if (c.varlen && (of & 16)) {
    c.o.max_seqlen_q = c.Nq + in.u8() % 3;
    c.o.max_seqlen_k = c.Nk + in.u8() % 3;
  }
  off.q = cu_q;
  off.k = cu_k;
}

// ---------------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------------

const int64_t kInteresting[] = {-1,
                                0,
                                1,
                                2,
                                3,
                                7,
                                255,
                                256,
                                257,
                                INT32_MAX,
                                static_cast<int64_t>(1) << 31,
                                static_cast<int64_t>(1) << 32,
                                static_cast<int64_t>(1) << 40,
                                static_cast<int64_t>(1) << 62,
                                INT64_MAX,
                                INT64_MIN,
                                -(static_cast<int64_t>(1) << 62),
                                -2};

// Two's-complement wrapping arithmetic (mutations must not be undefined behavior themselves).
int64_t wrap_add(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}
int32_t wrap_add32(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}

int64_t interesting(Reader& in) {
  if (in.chance(4)) return static_cast<int64_t>(in.u64());
  return in.pick(kInteresting);
}

void mutate_tensor(Reader& in, Call& c, int role) {
  Slot& s = c.s[role];
  umfa_tensor& t = s.t;
  const uint8_t what = in.u8() % 14;
  const int d = t.rank > 0 ? in.u8() % (t.rank > 4 ? 4 : t.rank) : 0;
  switch (what) {
    case 0: s.present = false; trace("%s=NULL", kRoleNames[role]); break;
    case 1: t.rank = static_cast<int32_t>(in.pick(kInteresting)) % 7 - (in.u8() & 1); trace("%s.rank=%d", kRoleNames[role], t.rank); break;
    case 2: t.rank += in.u8() & 1 ? 1 : -1; trace("%s.rank=%d", kRoleNames[role], t.rank); break;
    case 3: t.dtype = static_cast<int32_t>(in.u8() % 7) - 1; trace("%s.dtype=%d", kRoleNames[role], t.dtype); break;
    case 4: t.dtype = static_cast<int32_t>(in.u32()); trace("%s.dtype=%d", kRoleNames[role], t.dtype); break;
    case 5: t.device = in.u8() & 1 ? UMFA_DEVICE_CUDA : static_cast<int32_t>(in.u32()); t.device_index = static_cast<int32_t>(in.u8()); trace("%s.device=%d", kRoleNames[role], t.device); break;
    case 6: t.shape[d] = wrap_add(t.shape[d], in.u8() & 1 ? 1 : -1); trace("%s.shape[%d]=%" PRId64, kRoleNames[role], d, t.shape[d]); break;
    case 7: t.shape[d] = interesting(in); trace("%s.shape[%d]=%" PRId64, kRoleNames[role], d, t.shape[d]); break;
    case 8: t.strides[d] = interesting(in); trace("%s.strides[%d]=%" PRId64, kRoleNames[role], d, t.strides[d]); break;
    case 9: t.strides[d] = wrap_add(static_cast<int64_t>(0 - static_cast<uint64_t>(t.strides[d])), -(in.u8() & 1)); trace("%s.strides[%d]=%" PRId64, kRoleNames[role], d, t.strides[d]); break;
    case 10: t.strides[d] = in.u8() % 3; trace("%s.strides[%d]=%" PRId64, kRoleNames[role], d, t.strides[d]); break;  // overlap / broadcast
    case 11: s.null_data = true; trace("%s.data=NULL", kRoleNames[role]); break;
    case 12: s.misalign = 1 + in.u8() % 3; trace("%s.data misaligned by %" PRId64, kRoleNames[role], s.misalign); break;
    case 13: {  // an output aliasing an input (same start address)
      const int outputs[] = {OUT, LSE, DQ, DK, DV};
      const int inputs[] = {Q, K, V, DOUT, OUT};
      const int a = outputs[in.u8() % 5], b = inputs[in.u8() % 5];
      if (a != b && c.s[a].present && c.s[b].present) {
        c.s[a].alias_of = b;
        trace("%s.data=%s.data", kRoleNames[a], kRoleNames[b]);
      }
      break;
    }
  }
}

void mutate_options(Reader& in, Call& c, Offsets& off) {
  umfa_attention_options& o = c.o;
  switch (in.u8() % 15) {
    case 0: {
      static const uint32_t kSizes[] = {0,  1,  3,  4,  8,  12, 16, 20, 24, 32, 40, 48, 56,
                                        64, 72, 80, 88, 95, 96, 97, 100, 104, 108, 112, 113, 120, 128, 4096, 0xffffffffu, 2};
      o.struct_size = in.pick(kSizes);
      if (in.chance(4)) o.struct_size = in.u8();
      trace("options.struct_size=%u", o.struct_size);
      break;
    }
    case 1: o.mask_mode = in.u8() & 1 ? 3 + in.u8() : in.u32(); trace("options.mask_mode=%u", o.mask_mode); break;
    case 2: {
      const float v[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                         -std::numeric_limits<float>::infinity(), 1e-40f, 1e30f, -1e30f,
                         std::numeric_limits<float>::max(), -0.f, 1e-8f};
      o.softmax_scale = in.pick(v);
      trace("options.softmax_scale=%g", static_cast<double>(o.softmax_scale));
      break;
    }
    case 3: {
      const float v[] = {-1.f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                         1e-38f, 1e38f, -0.f, 1e-3f};
      o.softcap = in.pick(v);
      trace("options.softcap=%g", static_cast<double>(o.softcap));
      break;
    }
    case 4: o.has_window = in.u8() | 1; o.window_left = interesting(in); o.window_right = interesting(in);
      trace("options.window=(%" PRId64 ",%" PRId64 ")", o.window_left, o.window_right); break;
    case 5: o.flags = in.u32(); trace("options.flags=0x%x", o.flags); break;
    case 6: o.max_seqlen_q = interesting(in); trace("options.max_seqlen_q=%" PRId64, o.max_seqlen_q); break;
    case 7: o.max_seqlen_k = interesting(in) % 300; trace("options.max_seqlen_k=%" PRId64, o.max_seqlen_k); break;
    case 8:  // half of a varlen pair, or varlen with dense tensors
      if (in.u8() & 1) {
        c.s[CUQ].present = !c.s[CUQ].present;
        if (c.s[CUQ].present && c.s[CUQ].t.rank == 0) {
          const int64_t shape[1] = {2};
          set_shape(c.s[CUQ].t, UMFA_DTYPE_I32, 1, shape);
          c.s[CUQ].t.strides[0] = 1;
          off.q = {0, 1};
        }
        trace("cu_seqlens_q toggled");
      } else {
        c.s[CUK].present = !c.s[CUK].present;
        trace("cu_seqlens_k toggled");
      }
      break;
    case 9:
    case 10:
    case 11: {  // offsets contents
      std::vector<int32_t>& v = in.u8() & 1 ? off.q : off.k;
      if (v.empty()) break;
      const size_t i = in.u8() % v.size();
      const int32_t vals[] = {-1, 0, 1, 2, 100, INT32_MAX, INT32_MIN, 5};
      v[i] = in.u8() & 1 ? in.pick(vals) : wrap_add32(v[i], in.u8() & 1 ? 1 : -1);
      trace("offsets[%zu]=%d", i, v[i]);
      break;
    }
    case 12: c.options_null = true; trace("options=NULL"); break;
    case 13: c.ctx_null = in.u8() & 1; c.ctx_fake = !c.ctx_null; trace("context=%s", c.ctx_null ? "NULL" : "not a context"); break;
    case 14: {  // a mask with varlen, or an alibi of the wrong dtype
      if (!c.s[MASK].present) {
        Slot& s = c.s[MASK];
        s.present = true;
        const int64_t shape[1] = {c.Nk};
        set_shape(s.t, UMFA_DTYPE_F32, 1, shape);
        s.t.strides[0] = 1;
        trace("attn_mask added");
      } else {
        c.s[MASK].t.dtype = UMFA_DTYPE_I32;
        trace("attn_mask.dtype=I32");
      }
      break;
    }
  }
}

// Extended mutations, read from the bytes after the ones the base decoder uses (an input that
// ends earlier reads zeros: none of them).
void decode_extensions(Reader& in, Call& c, Offsets& off) {
  const uint8_t ext = in.u8();
  if (ext & 1) {  // memory sizing per tensor: 2 bits per role
    const uint32_t modes = in.u32();
    for (int r = 0; r < NROLES; ++r) {
      Slot& s = c.s[r];
      switch ((modes >> (2 * r)) & 3) {
        case 0: break;  // guard bytes on both sides
        case 1: s.guard_before = s.guard_after = 0; trace("%s: exact allocation", kRoleNames[r]); break;
        case 2:
          s.slack = static_cast<size_t>(alloc_esize(s.t.dtype)) * (1 + in.u8() % 64);
          trace("%s: allocation %zu bytes larger", kRoleNames[r], s.slack);
          break;
        case 3: s.guard_after = 0; trace("%s: allocation ends with the view", kRoleNames[r]); break;
      }
    }
  }
  if (ext & 2) {  // broadcast (stride 0) option tensors
    const uint8_t b = in.u8();
    if ((b & 1) && c.s[MASK].present) {
      for (int64_t& st : c.s[MASK].t.strides) st = 0;
      trace("attn_mask broadcast");
    }
    if ((b & 2) && c.s[ALIBI].present) {
      for (int64_t& st : c.s[ALIBI].t.strides) st = 0;
      trace("alibi_slopes broadcast");
    }
    // Every entry of a broadcast offset list is the first one: zeros keep the list valid.
    if ((b & 4) && c.s[CUQ].present) {
      c.s[CUQ].t.strides[0] = 0;
      std::fill(off.q.begin(), off.q.end(), 0);
      trace("cu_seqlens_q broadcast");
    }
    if ((b & 8) && c.s[CUK].present) {
      c.s[CUK].t.strides[0] = 0;
      std::fill(off.k.begin(), off.k.end(), 0);
      trace("cu_seqlens_k broadcast");
    }
  }
  if (ext & 4) {  // tensors moved into the memory of others
    const int n = 1 + in.u8() % 3;
    for (int i = 0; i < n; ++i) {
      Call::Move m{in.u8() % NROLES, in.u8() % NROLES, in.u16()};
      if (m.from == m.into) continue;
      c.moves.push_back(m);
      trace("%s moved into %s at byte %u", kRoleNames[m.from], kRoleNames[m.into], m.at);
    }
  }
}

// Byte range [lo, hi] a view reaches relative to its data pointer (valid, non-empty views).
bool byte_range(const umfa_tensor& t, int64_t* lo, int64_t* hi) {
  const Reach r = reach_of(t);
  if (r.overflow || r.empty || r.negative_extent) return false;
  const int64_t e = alloc_esize(t.dtype);
  *lo = static_cast<int64_t>(r.lo * e);
  *hi = static_cast<int64_t>((r.hi + 1) * e - 1);
  return true;
}

// Applies the recorded moves: the bytes the view reaches are copied to the new place (so inputs
// keep their values), and the view points there. A move that does not fit is dropped.
void apply_moves(Call& c) {
  for (const Call::Move& m : c.moves) {
    Slot& from = c.s[m.from];
    const Slot& into = c.s[m.into];
    int64_t lo, hi;
    if (!from.present || !into.present || !from.t.data || !into.mem || !byte_range(from.t, &lo, &hi))
      continue;
    const int64_t span = hi - lo + 1, room = static_cast<int64_t>(into.mem_size);
    if (span > room) continue;
    const int64_t esize = alloc_esize(from.t.dtype);
    int64_t at = static_cast<int64_t>(m.at) % (room - span + 1);
    at -= at % esize;
    unsigned char* dst = into.mem.get() + at;
    std::memmove(dst, static_cast<unsigned char*>(from.t.data) + lo, static_cast<size_t>(span));
    from.t.data = dst - lo;
    if (m.from == OUT || m.from == LSE || m.into == OUT || m.into == LSE) c.moved_out_or_lse = true;
  }
}

// Whether two views share at least one byte. *exact is false when the views are too large to
// enumerate (then the answer is "their byte ranges intersect").
bool views_share(const umfa_tensor& a, const umfa_tensor& b, bool* exact) {
  *exact = true;
  if (a.rank < 0 || a.rank > 4 || b.rank < 0 || b.rank > 4) return false;
  int64_t alo, ahi, blo, bhi;
  if (!a.data || !b.data || !byte_range(a, &alo, &ahi) || !byte_range(b, &blo, &bhi)) return false;
  const intptr_t pa = reinterpret_cast<intptr_t>(a.data), pb = reinterpret_cast<intptr_t>(b.data);
  if (pa + ahi < pb + blo || pb + bhi < pa + alo) return false;
  auto small = [](const umfa_tensor& t) {  // few enough elements to enumerate
    int64_t n = 1;
    for (int d = 0; d < t.rank; ++d)
      if (__builtin_mul_overflow(n, t.shape[d], &n) || n > (1 << 16)) return false;
    return true;
  };
  if (!small(a) || !small(b)) {
    *exact = false;
    return true;
  }
  std::vector<intptr_t> bytes;
  const int64_t ea = alloc_esize(a.dtype), eb = alloc_esize(b.dtype);
  ref::for_each_element(a, [&](int64_t, int64_t off) {
    for (int64_t k = 0; k < ea; ++k) bytes.push_back(pa + off * ea + k);
  });
  std::sort(bytes.begin(), bytes.end());
  bool shared = false;
  ref::for_each_element(b, [&](int64_t, int64_t off) {
    for (int64_t k = 0; k < eb && !shared; ++k)
      shared = std::binary_search(bytes.begin(), bytes.end(), pb + off * eb + k);
  });
  return shared;
}

// ---------------------------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------------------------

struct Expect {
  uint32_t allowed = 0;   // statuses the call may return (OK included when it may succeed)
  bool must_fail = false;
  void issue(uint32_t statuses) {
    allowed |= statuses;
    must_fail = true;
  }
  void maybe(uint32_t statuses) { allowed |= statuses; }  // the library may or may not refuse
};

bool mul_overflows(int64_t a, int64_t b, int64_t* out) { return __builtin_mul_overflow(a, b, out); }

// Exact self-overlap of an output view (small views only): true if two indices share a byte.
// Returns -1 when the view is too large to enumerate.
int exact_overlap(const umfa_tensor& t) {
  const int64_t n = ref::numel(t);
  if (n <= 1) return 0;
  if (n > 1 << 16) return -1;
  std::vector<int64_t> offs;
  offs.reserve(static_cast<size_t>(n));
  ref::for_each_element(t, [&](int64_t, int64_t off) { offs.push_back(off); });
  std::sort(offs.begin(), offs.end());
  for (size_t i = 1; i < offs.size(); ++i)
    if (offs[i] == offs[i - 1]) return 1;
  return 0;
}

// The sufficient no-overlap condition (sorted strides exceed the inner reach): a library may
// refuse views that fail it even though they do not overlap.
bool simple_no_overlap(const umfa_tensor& t) {
  int64_t st[4], ex[4];
  int n = 0;
  for (int d = 0; d < t.rank; ++d)
    if (t.shape[d] > 1) {
      st[n] = t.strides[d];
      ex[n] = t.shape[d];
      ++n;
    }
  for (int i = 1; i < n; ++i)
    for (int j = i; j > 0 && (st[j] < st[j - 1] || (st[j] == st[j - 1] && ex[j] < ex[j - 1])); --j) {
      std::swap(st[j], st[j - 1]);
      std::swap(ex[j], ex[j - 1]);
    }
  __int128 reach = 0;
  for (int i = 0; i < n; ++i) {
    if (st[i] <= reach) return false;
    reach += static_cast<__int128>(ex[i] - 1) * st[i];
  }
  return true;
}

// Per-tensor checks; returns true when the tensor is individually valid for `rank_want` (0 =
// 3 or 4, unknown varlen) and dtype set `allowed_dtypes`.
bool check_tensor(Expect& e, const Slot& s, int rank_want, uint32_t allowed_dtypes, bool output,
                  bool rank_any_34 = false) {
  const umfa_tensor& t = s.t;
  bool ok = true;
  if (t.rank < 0 || t.rank > 4) {
    e.issue(S(UMFA_STATUS_INVALID_RANK));
    return false;
  }
  if (rank_any_34 ? (t.rank != 3 && t.rank != 4) : t.rank != rank_want) {
    e.issue(S(UMFA_STATUS_INVALID_RANK));
    ok = false;
  }
  if (t.dtype < 0 || t.dtype > UMFA_DTYPE_I32 || !(allowed_dtypes & (1u << t.dtype))) {
    e.issue(S(UMFA_STATUS_UNSUPPORTED_DTYPE));
    ok = false;
  }
  if (t.device != UMFA_DEVICE_CPU) {
    e.issue(t.device == UMFA_DEVICE_CUDA ? S(UMFA_STATUS_DEVICE_MISMATCH)
                                         : S(UMFA_STATUS_DEVICE_MISMATCH) | S(UMFA_STATUS_INVALID_ARGUMENT));
    ok = false;
  }
  bool neg_shape = false, zero = false;
  for (int d = 0; d < t.rank; ++d) {
    if (t.shape[d] < 0) neg_shape = true;
    if (t.shape[d] == 0) zero = true;
  }
  if (neg_shape) {
    e.issue(S(UMFA_STATUS_INVALID_ARGUMENT) | S(UMFA_STATUS_SHAPE_MISMATCH));
    ok = false;
  }
  for (int d = 0; d < t.rank; ++d)
    if (t.strides[d] < 0) {
      e.issue(S(UMFA_STATUS_INVALID_STRIDE));
      ok = false;
    }
  if (neg_shape) return false;
  // Element count: overflow of the product of the non-zero extents.
  int64_t count = 1;
  bool count_overflow = false;
  for (int d = 0; d < t.rank; ++d)
    if (t.shape[d] != 0 && mul_overflows(count, t.shape[d], &count)) count_overflow = true;
  const int64_t esize = ref::dtype_size(t.dtype) ? ref::dtype_size(t.dtype) : 1;
  if (!count_overflow && mul_overflows(count, esize, &count)) count_overflow = true;
  if (count_overflow) {
    if (zero)
      e.maybe(S(UMFA_STATUS_SIZE_OVERFLOW));
    else {
      e.issue(S(UMFA_STATUS_SIZE_OVERFLOW));
      ok = false;
    }
  }
  if (zero) return ok;
  const Reach r = reach_of(t);
  if (r.overflow) {
    e.issue(S(UMFA_STATUS_SIZE_OVERFLOW));
    ok = false;
  }
  if (!t.data) {
    e.issue(S(UMFA_STATUS_NULL_POINTER));
    ok = false;
  } else if (ref::dtype_size(t.dtype) && reinterpret_cast<uintptr_t>(t.data) % ref::dtype_size(t.dtype)) {
    e.issue(S(UMFA_STATUS_INVALID_ARGUMENT));  // data must be aligned to the element size
    ok = false;
  }
  if (output && ok) {
    const int exact = exact_overlap(t);
    if (exact == 1) {
      e.issue(S(UMFA_STATUS_INVALID_STRIDE));
      ok = false;
    } else if (!simple_no_overlap(t)) {
      e.maybe(S(UMFA_STATUS_INVALID_STRIDE));
      if (exact == -1) e.maybe(S(UMFA_STATUS_INVALID_STRIDE));
    }
  }
  return ok;
}

constexpr uint32_t kFloatSet = (1u << UMFA_DTYPE_F32) | (1u << UMFA_DTYPE_F16) | (1u << UMFA_DTYPE_BF16);
constexpr uint32_t kF32Set = 1u << UMFA_DTYPE_F32;
constexpr uint32_t kMaskSet = kFloatSet | (1u << UMFA_DTYPE_BOOL);
constexpr uint32_t kI32Set = 1u << UMFA_DTYPE_I32;

struct Resolved {
  bool valid_shapes = false;  // q/k/v relations evaluated and consistent
  ref::Problem p;
  umfa_attention_options o{};  // effective options
};

Expect oracle(Call& c, Resolved& res) {
  Expect e;
  if (c.ctx_null) {
    e.issue(S(UMFA_STATUS_NULL_CONTEXT));
    return e;
  }
  if (c.ctx_fake) {
    e.issue(S(UMFA_STATUS_INVALID_HANDLE));
    return e;
  }
  // Effective options: the first struct_size bytes over zeros.
  umfa_attention_options& o = res.o;
  std::memset(&o, 0, sizeof o);
  bool options_known = true;
  if (!c.options_null) {
    const uint32_t size = c.o.struct_size;
    if (size < sizeof(uint32_t) || size > sizeof o) {
      e.issue(S(UMFA_STATUS_STRUCT_VERSION));
      options_known = false;
    } else {
      std::memcpy(&o, &c.o, size);
    }
  }
  const bool bwd = c.backward;
  const Role required_f[] = {Q, K, V, OUT};
  const Role required_b[] = {Q, K, V, OUT, DOUT, LSE, DQ, DK, DV};
  const Role* req = bwd ? required_b : required_f;
  const int n_req = bwd ? 9 : 4;
  bool all_present = true;
  for (int i = 0; i < n_req; ++i)
    if (!c.s[req[i]].present) {
      e.issue(S(UMFA_STATUS_NULL_POINTER));
      all_present = false;
    }
  bool varlen_known = options_known;
  bool varlen = false;
  if (options_known) {
    const bool hq = o.cu_seqlens_q != nullptr, hk = o.cu_seqlens_k != nullptr;
    if (hq != hk) {
      e.issue(S(UMFA_STATUS_NULL_POINTER) | S(UMFA_STATUS_INVALID_ARGUMENT));
      varlen_known = false;
    }
    varlen = hq && hk;
  }
  const int rs = varlen ? 3 : 4, rl = varlen ? 2 : 3;

  // Individual tensors.
  bool ok[NROLES] = {};
  auto one = [&](Role r, int rank, uint32_t dts, bool output) {
    if (!c.s[r].present) return;
    ok[r] = check_tensor(e, c.s[r], rank, dts, output, !varlen_known && rank >= 3);
    if (!varlen_known) ok[r] = false;
  };
  one(Q, rs, kFloatSet, false);
  one(K, rs, kFloatSet, false);
  one(V, rs, kFloatSet, false);
  one(OUT, rs, kFloatSet, !bwd);
  if (c.s[LSE].present) {
    if (!varlen_known) {
      check_tensor(e, c.s[LSE], 2, kF32Set, !bwd);  // rank 2 or 3: allow the rank issue either way
      e.maybe(S(UMFA_STATUS_INVALID_RANK));
    } else {
      ok[LSE] = check_tensor(e, c.s[LSE], rl, kF32Set, !bwd);
    }
  }
  if (bwd) {
    one(DOUT, rs, kFloatSet, false);
    one(DQ, rs, kFloatSet, true);
    one(DK, rs, kFloatSet, true);
    one(DV, rs, kFloatSet, true);
  }
  if (!all_present || !varlen_known) return e;

  // Relations between q, k, v and the outputs.
  const umfa_tensor &q = c.s[Q].t, &k = c.s[K].t, &v = c.s[V].t;
  auto shapes_usable = [&](Role r) {
    const umfa_tensor& t = c.s[r].t;
    if (t.rank != (r == LSE ? rl : rs)) return false;
    for (int d = 0; d < t.rank; ++d)
      if (t.shape[d] < 0) return false;
    return true;
  };
  bool rel_ok = shapes_usable(Q) && shapes_usable(K) && shapes_usable(V);
  int64_t batch = 0, nq = 0, nk = 0, hq = 0, hkv = 0, dd = 0;
  if (rel_ok) {
    const int hd = rs - 1, hh = rs - 2;
    if (ok[Q] && ok[K] && ok[V] && (k.dtype != q.dtype || v.dtype != q.dtype))
      e.issue(S(UMFA_STATUS_UNSUPPORTED_DTYPE));
    dd = q.shape[hd];
    if (dd < 1 || dd > UMFA_MAX_HEAD_DIM) e.issue(S(UMFA_STATUS_HEAD_DIM_OUT_OF_RANGE));
    for (int d = 0; d < rs; ++d) {
      if (v.shape[d] != k.shape[d])
        e.issue(S(UMFA_STATUS_SHAPE_MISMATCH) | (d == hd ? S(UMFA_STATUS_HEAD_DIM_OUT_OF_RANGE) : 0));
    }
    if (k.shape[hd] != dd) e.issue(S(UMFA_STATUS_SHAPE_MISMATCH) | S(UMFA_STATUS_HEAD_DIM_OUT_OF_RANGE));
    if (!varlen && k.shape[0] != q.shape[0]) e.issue(S(UMFA_STATUS_SHAPE_MISMATCH));
    hq = q.shape[hh];
    hkv = k.shape[hh];
    if ((hkv == 0 && hq != 0) || (hkv != 0 && hq % hkv != 0)) e.issue(S(UMFA_STATUS_HEADS_NOT_DIVISIBLE));
    auto same = [&](Role r, const umfa_tensor& like) {
      if (!shapes_usable(r)) return;
      for (int d = 0; d < rs; ++d)
        if (c.s[r].t.shape[d] != like.shape[d]) e.issue(S(UMFA_STATUS_SHAPE_MISMATCH));
    };
    same(OUT, q);
    if (bwd) {
      same(DOUT, q);
      same(DQ, q);
      same(DK, k);
      same(DV, k);
    }
    if (varlen) {
      nq = 0;
      nk = 0;
    } else {
      batch = q.shape[0];
      nq = q.shape[1];
      nk = k.shape[1];
    }
    if (c.s[LSE].present && shapes_usable(LSE)) {
      const umfa_tensor& l = c.s[LSE].t;
      const int64_t want[3] = {varlen ? hq : batch, varlen ? q.shape[0] : hq, nq};
      for (int d = 0; d < rl; ++d)
        if (l.shape[d] != want[d]) e.issue(S(UMFA_STATUS_SHAPE_MISMATCH));
    }
  }
  // Outputs must not share a byte with another tensor of the call (the option tensors the
  // library reads included); views interleaving without sharing one are fine.
  if (options_known) {
    const Role outs_f[] = {OUT, LSE};
    const Role outs_b[] = {DQ, DK, DV};
    const Role* outs = bwd ? outs_b : outs_f;
    const int n_out = bwd ? 3 : 2;
    std::vector<Role> others = {Q, K, V};
    if (bwd) others.insert(others.end(), {OUT, DOUT, LSE});
    if (o.attn_mask) others.push_back(MASK);
    if (o.alibi_slopes) others.push_back(ALIBI);
    if (o.cu_seqlens_q) others.push_back(CUQ);
    if (o.cu_seqlens_k) others.push_back(CUK);
    auto clash = [&](Role a, Role b) {
      if (!c.s[a].present || !c.s[b].present) return;
      bool exact;
      if (!views_share(c.s[a].t, c.s[b].t, &exact)) return;
      if (exact)
        e.issue(S(UMFA_STATUS_INVALID_ARGUMENT));
      else
        e.maybe(S(UMFA_STATUS_INVALID_ARGUMENT));
    };
    for (int i = 0; i < n_out; ++i) {
      for (Role b : others) clash(outs[i], b);
      for (int j = i + 1; j < n_out; ++j) clash(outs[j], outs[i]);
    }
  }
  if (!options_known) return e;

  // Options.
  if (o.mask_mode > UMFA_MASK_CAUSAL_BOTTOM_RIGHT) e.issue(S(UMFA_STATUS_INVALID_ARGUMENT));
  if (!std::isfinite(o.softmax_scale)) e.issue(S(UMFA_STATUS_INVALID_ARGUMENT));
  if (!std::isfinite(o.softcap) || o.softcap < 0.f) e.issue(S(UMFA_STATUS_INVALID_ARGUMENT));
  if (o.flags & ~static_cast<uint32_t>(UMFA_FLAG_DETERMINISTIC)) e.issue(S(UMFA_STATUS_INVALID_ARGUMENT));

  std::vector<int64_t> cuq, cuk;
  // The library checks the ALiBi shape before it reads the offsets: against heads_q and, for
  // varlen, the batch the offsets' length gives.
  bool alibi_dims_known = rel_ok;
  int64_t alibi_batch = batch;
  if (varlen) {
    const Slot& cq = c.s[CUQ];
    const Slot& ck = c.s[CUK];
    const bool okq = check_tensor(e, cq, 1, kI32Set, false);
    const bool okk = check_tensor(e, ck, 1, kI32Set, false);
    bool counts_ok = okq && okk;
    if (okq && cq.t.shape[0] < 1) {
      e.issue(S(UMFA_STATUS_SHAPE_MISMATCH) | S(UMFA_STATUS_INVALID_SEQLENS));
      counts_ok = false;
    }
    if (okq && okk && ck.t.shape[0] != cq.t.shape[0]) {
      e.issue(S(UMFA_STATUS_SHAPE_MISMATCH) | S(UMFA_STATUS_INVALID_SEQLENS));
      counts_ok = false;
    }
    if (o.max_seqlen_q < 0 || o.max_seqlen_k < 0) e.issue(S(UMFA_STATUS_INVALID_ARGUMENT));
    alibi_dims_known = alibi_dims_known && counts_ok;
    if (counts_ok) alibi_batch = cq.t.shape[0] - 1;
    // The host copies of the offsets count against the workspace limit and are refused before
    // their contents are read.
    if (counts_ok && c.workspace_limit) {
      const uint64_t entries = static_cast<uint64_t>(cq.t.shape[0]) + static_cast<uint64_t>(ck.t.shape[0]);
      if (entries > c.workspace_limit / 4) {
        e.issue(S(UMFA_STATUS_WORKSPACE_LIMIT));
        counts_ok = false;
      }
    }
    auto read = [&](const Slot& s, int64_t rows, bool usable, std::vector<int64_t>& cu,
                    int64_t max_given) {
      if (!usable) return false;
      const int64_t n = s.t.shape[0];
      for (int64_t i = 0; i < n; ++i) cu.push_back(static_cast<int64_t>(ref::at(s.t, i)));
      bool good = cu[0] == 0;
      int64_t longest = 0;
      for (int64_t i = 1; i < n; ++i) {
        if (cu[i] < cu[i - 1]) good = false;
        longest = std::max(longest, cu[i] - cu[i - 1]);
      }
      if (rows >= 0 && cu[n - 1] > rows) good = false;
      if (max_given > 0 && max_given < longest) good = false;
      if (!good) e.issue(S(UMFA_STATUS_INVALID_SEQLENS));
      return good;
    };
    const bool rows_known = rel_ok;
    const bool gq = read(cq, rows_known ? q.shape[0] : -1, counts_ok, cuq, o.max_seqlen_q);
    const bool gk = read(ck, rows_known ? k.shape[0] : -1, counts_ok, cuk, o.max_seqlen_k);
    if (!(gq && gk) || !rows_known) rel_ok = false;
    if (rel_ok) {
      batch = cq.t.shape[0] - 1;
      for (int64_t b = 0; b < batch; ++b) {
        nq = std::max(nq, cuq[b + 1] - cuq[b]);
        nk = std::max(nk, cuk[b + 1] - cuk[b]);
      }
    }
  }
  if (rel_ok) {
    int64_t prod = 1;
    bool over = false, zero = false;
    for (int64_t f : {batch, hq, nq, nk}) {
      if (f == 0)
        zero = true;
      else if (mul_overflows(prod, f, &prod))
        over = true;
    }
    if (over) {
      if (zero)
        e.maybe(S(UMFA_STATUS_SIZE_OVERFLOW));
      else
        e.issue(S(UMFA_STATUS_SIZE_OVERFLOW));
    }
  }

  if (o.attn_mask) {
    const Slot& m = c.s[MASK];
    if (varlen) e.issue(S(UMFA_STATUS_INVALID_ARGUMENT));
    if (m.t.rank < 1 || m.t.rank > 4) {
      e.issue(S(UMFA_STATUS_INVALID_RANK));
    } else {
      const bool mok = check_tensor(e, m, m.t.rank, kMaskSet, false);
      if (mok && rel_ok && !varlen) {
        const int64_t target[4] = {batch, hq, nq, nk};
        for (int i = 0; i < m.t.rank; ++i) {
          const int64_t tv = target[4 - m.t.rank + i];
          if (m.t.shape[i] != 1 && m.t.shape[i] != tv) e.issue(S(UMFA_STATUS_SHAPE_MISMATCH));
        }
      }
    }
  }
  if (o.alibi_slopes) {
    const Slot& a = c.s[ALIBI];
    if (a.t.rank < 1 || a.t.rank > 2) {
      e.issue(S(UMFA_STATUS_INVALID_RANK));
    } else {
      const bool aok = check_tensor(e, a, a.t.rank, kF32Set, false);
      if (aok && alibi_dims_known) {
        if (a.t.rank == 1 && a.t.shape[0] != hq) e.issue(S(UMFA_STATUS_SHAPE_MISMATCH));
        if (a.t.rank == 2 && (a.t.shape[0] != alibi_batch || a.t.shape[1] != hq))
          e.issue(S(UMFA_STATUS_SHAPE_MISMATCH));
      }
    }
  }

  if (!e.must_fail && rel_ok) {
    ref::Problem& p = res.p;
    p.batch = batch;
    p.nq = nq;
    p.nk = nk;
    p.hq = hq;
    p.hkv = hkv;
    p.d = dd;
    p.varlen = varlen;
    p.cu_q = cuq;
    p.cu_k = cuk;
    if (varlen) {
      p.total_q = q.shape[0];
      p.total_k = k.shape[0];
    }
    p.mask_mode = o.mask_mode;
    p.scale = o.softmax_scale != 0.f ? static_cast<double>(o.softmax_scale)
                                     : static_cast<double>(static_cast<float>(1.0 / std::sqrt(static_cast<double>(dd))));
    p.softcap = o.softcap;
    p.has_window = o.has_window != 0;
    p.window_left = o.window_left;
    p.window_right = o.window_right;
    p.mask = o.attn_mask ? &c.s[MASK].t : nullptr;
    p.alibi = o.alibi_slopes ? &c.s[ALIBI].t : nullptr;
    p.q = q;
    p.k = k;
    p.v = v;
    res.valid_shapes = true;
  }
  if (!e.must_fail) e.allowed |= S(UMFA_STATUS_OK);
  return e;
}

// ---------------------------------------------------------------------------------------------
// Running and checking one attention call
// ---------------------------------------------------------------------------------------------

// Work the reference would do (B * Hq * Nq * Nk * D, saturating).
double work_of(const Call& c) {
  double w = 1.0;
  const umfa_tensor& q = c.s[Q].t;
  const umfa_tensor& k = c.s[K].t;
  for (int d = 0; d < eff_rank(q); ++d) w *= static_cast<double>(std::max<int64_t>(q.shape[d], 0));
  if (eff_rank(k) >= 3) w *= static_cast<double>(std::max<int64_t>(k.shape[eff_rank(k) - 3], 0));
  return w;
}

bool is_output(const Call& c, int r) {
  return c.backward ? (r == DQ || r == DK || r == DV) : (r == OUT || r == LSE);
}

// Marks the bytes an output view covers.
// Marks the bytes of `view` that lie in the allocation of `alloc` (a view moved into another
// tensor's memory lies in that one's).
void mark_view(const umfa_tensor& view, const Slot& alloc, std::vector<char>& mark) {
  if (!view.data) return;
  const int64_t esize = ref::dtype_size(view.dtype);
  const intptr_t base = reinterpret_cast<intptr_t>(alloc.mem.get());
  const intptr_t data = reinterpret_cast<intptr_t>(view.data);
  ref::for_each_element(view, [&](int64_t, int64_t off) {
    const int64_t pos = static_cast<int64_t>(data - base) + off * esize;
    for (int64_t b = 0; b < esize; ++b)
      if (pos + b >= 0 && pos + b < static_cast<int64_t>(alloc.mem_size)) mark[static_cast<size_t>(pos + b)] = 1;
  });
}

struct Stats {
  uint64_t calls = 0, ok = 0, rejected = 0, compared = 0, skipped = 0;
  uint64_t by_status[32] = {};
} g_stats;

// `extra`: per (row, head) error bounds of a float32 computation (reference.h), added to the
// tolerance of every element of that row.
void compare(const char* name, const umfa_tensor& t, const std::vector<double>& want, bool lse,
             const ref::Problem& p, ref::Tol tol, const std::vector<double>& extra) {
  // Element (index in the view) -> index in the reference arrays.
  double m = 0.0;
  for (double w : want)
    if (std::isfinite(w)) m = std::max(m, std::fabs(w));
  const int64_t rows = p.rows_q();
  ref::for_each_element(t, [&](int64_t flat, int64_t off) {
    size_t wi;
    if (!lse) {
      wi = static_cast<size_t>(flat);  // [rows, H, D] logical order equals the view's order
    } else if (p.varlen) {
      wi = static_cast<size_t>(flat);  // [Hq, T] == h * rows + t
    } else {
      const int64_t b = flat / (p.hq * p.nq), rem = flat % (p.hq * p.nq);
      const int64_t h = rem / p.nq, i = rem % p.nq;
      wi = static_cast<size_t>(h * rows + b * p.nq + i);
    }
    const double w = want[wi];
    const double g = ref::load(t.data, t.dtype, off);
    const double bound = lse ? extra[wi] : extra[wi / static_cast<size_t>(p.d)];
    const double slack = tol.atol + tol.rtol * std::fabs(w) + tol.ctol * m + 1.5 * bound;
    bool good;
    if (std::isnan(g))
      good = false;
    else if (!std::isfinite(w))
      good = g == w;
    else if (std::isinf(g))  // a value near the output dtype's overflow threshold may round to inf
      good = std::isinf(ref::round_to(t.dtype, w + std::copysign(slack, w))) && (g > 0) == (w > 0);
    else
      good = std::fabs(g - w) <= slack;
    if (!good)
      die("%s[%" PRId64 "] = %.9g but the float64 reference gives %.9g (atol %g rtol %g ctol %g, max %g)",
          name, flat, g, w, tol.atol, tol.rtol, tol.ctol, m);
  });
}


// Bytes of a pointer field of umfa_attention_options that a struct_size cuts in two: the
// library would read half a pointer, which no real caller can produce (an older header's size
// ends at a field boundary), so the harness passes NULL there.
void untear_pointers(umfa_attention_options& o) {
  const size_t size = o.struct_size;
  auto fix = [&](size_t offset, const umfa_tensor** field) {
    if (size > offset && size < offset + sizeof(void*)) *field = nullptr;
  };
  fix(offsetof(umfa_attention_options, attn_mask), &o.attn_mask);
  fix(offsetof(umfa_attention_options, alibi_slopes), &o.alibi_slopes);
  fix(offsetof(umfa_attention_options, cu_seqlens_q), &o.cu_seqlens_q);
  fix(offsetof(umfa_attention_options, cu_seqlens_k), &o.cu_seqlens_k);
  if (size > offsetof(umfa_attention_options, error_message) &&
      size < offsetof(umfa_attention_options, error_message) + sizeof(char*))
    o.error_message = nullptr;
}

// Writes the varlen offsets into their tensors (where the view is an I32 vector we allocated).
void write_offsets(Slot& s, const std::vector<int32_t>& values) {
  if (!s.present || !s.t.data || s.t.rank != 1 || s.t.dtype != UMFA_DTYPE_I32) return;
  const Reach r = reach_of(s.t);
  if (r.overflow || r.empty || r.negative_extent) return;
  const int64_t n = std::min<int64_t>(s.t.shape[0], static_cast<int64_t>(values.size()));
  for (int64_t i = 0; i < n; ++i) ref::put(s.t, values[static_cast<size_t>(i)], i);
}

void run_attention(Reader& in, bool backward) {
  Call c;
  c.backward = backward;
  Offsets off;
  build_problem(in, c, off);
  Contexts& cs = contexts();
  const uint8_t cx = in.u8();
  if (cx % 8 == 1) {
    const int i = (cx >> 3) % 4;
    c.ctx = cs.limited[i];
    c.workspace_limit = cs.limits[i];
  } else {
    c.ctx = (cx & 0x10) ? cs.two : cs.one;
  }
  trace("%s B=%" PRId64 " Nq=%" PRId64 " Nk=%" PRId64 " Hq=%" PRId64 " Hkv=%" PRId64 " D=%" PRId64 "%s q=%d out=%d threads=%d limit=%" PRIu64,
        backward ? "backward" : "forward", c.B, c.Nq, c.Nk, c.Hq, c.Hkv, c.D, c.varlen ? " varlen" : "",
        c.s[Q].t.dtype, c.s[OUT].t.dtype, c.ctx == cs.two ? 2 : 1, c.workspace_limit);
  const uint8_t nm = in.u8();
  const int mutations = nm < 140 ? 0 : nm < 215 ? 1 : nm < 240 ? 2 : 3 + nm % 3;
  for (int i = 0; i < mutations; ++i) {
    if (in.u8() & 1)
      mutate_tensor(in, c, in.u8() % NROLES);
    else
      mutate_options(in, c, off);
  }
  {
    const umfa_attention_options& o = c.o;
    trace("options: size=%u mask_mode=%u scale=%g softcap=%g window=%u(%" PRId64 ",%" PRId64 ") flags=%u max=(%" PRId64 ",%" PRId64 ") mask=%d alibi=%d",
          o.struct_size, o.mask_mode, static_cast<double>(o.softmax_scale), static_cast<double>(o.softcap), o.has_window,
          o.window_left, o.window_right, o.flags, o.max_seqlen_q, o.max_seqlen_k, c.s[MASK].present ? c.s[MASK].t.dtype : -1,
          c.s[ALIBI].present ? c.s[ALIBI].t.rank : -1);
  }
  c.specials = in.chance(24);
  const uint64_t seed = in.u32();
  if (c.specials) trace("non-finite inputs");
  decode_extensions(in, c, off);

  // Offset lists of over 2^20 entries (broadcast ones can be that long) take the library and the
  // oracle too long on an unlimited context; under a limit they are refused before being read.
  if (!c.workspace_limit)
    for (int r : {CUQ, CUK})
      if (c.s[r].present && eff_rank(c.s[r].t) >= 1 && c.s[r].t.shape[0] > (int64_t(1) << 20)) {
        ++g_stats.skipped;
        return;
      }

  // Skip what cannot be handed over safely: a representable reach too large to allocate.
  for (int r = 0; r < NROLES; ++r) {
    Slot& s = c.s[r];
    if (!s.present) continue;
    const Reach rc = reach_of(s.t);
    if (!rc.overflow && !rc.empty && !rc.negative_extent &&
        (rc.hi - rc.lo + 1) * alloc_esize(s.t.dtype) > kMaxBytes) {
      ++g_stats.skipped;
      return;
    }
  }

  // Memory and contents.
  Rng rng(seed);
  for (int r = 0; r < NROLES; ++r) allocate(c.s[r], is_output(c, r), rng, c.specials ? 1 : 0);
  if (c.s[MASK].present && c.s[MASK].t.dtype != UMFA_DTYPE_BOOL && ref::dtype_size(c.s[MASK].t.dtype) &&
      !c.s[MASK].null_data) {
    // Additive masks hold -inf now and then (a fully masked row must give 0 / -inf, not NaN).
    const Reach rc = reach_of(c.s[MASK].t);
    if (!rc.overflow && !rc.empty && !rc.negative_extent)
      for (__int128 i = rc.lo; i <= rc.hi; ++i)
        if (rng.next() % 6 == 0)
          ref::store(c.s[MASK].t.data, c.s[MASK].t.dtype, static_cast<int64_t>(i),
                     -std::numeric_limits<double>::infinity());
  }
  write_offsets(c.s[CUQ], off.q);
  write_offsets(c.s[CUK], off.k);
  for (int r = 0; r < NROLES; ++r) {
    Slot& s = c.s[r];
    if (!s.present || s.alias_of < 0) continue;
    const Slot& o = c.s[s.alias_of];
    int64_t lo, hi, olo, ohi;
    if (o.t.data && byte_range(s.t, &lo, &hi) && byte_range(o.t, &olo, &ohi)) {
      // Only when this view stays inside the other tensor's allocation.
      const unsigned char* od = static_cast<const unsigned char*>(o.t.data);
      const int64_t before = od - o.mem.get(), after = static_cast<int64_t>(o.mem_size) - before;
      if (lo >= -before && hi < after) s.t.data = o.t.data;
    }
  }
  apply_moves(c);
  if (!c.moves.empty()) {
    // Inputs moved onto each other hold bytes written for another dtype (NaN, say): their
    // results are not compared.
    for (int a = 0; a < NROLES && !c.specials; ++a)
      for (int b = a + 1; b < NROLES && !c.specials; ++b) {
        bool exact;
        if (c.s[a].present && c.s[b].present && !is_output(c, a) && !is_output(c, b) &&
            views_share(c.s[a].t, c.s[b].t, &exact)) {
          c.specials = true;
          trace("inputs %s and %s share memory: results not compared", kRoleNames[a], kRoleNames[b]);
        }
      }
  }
  c.o.attn_mask = c.s[MASK].present ? &c.s[MASK].t : nullptr;
  c.o.alibi_slopes = c.s[ALIBI].present ? &c.s[ALIBI].t : nullptr;
  c.o.cu_seqlens_q = c.s[CUQ].present ? &c.s[CUQ].t : nullptr;
  c.o.cu_seqlens_k = c.s[CUK].present ? &c.s[CUK].t : nullptr;
  {
    static const uint64_t kCaps[] = {0, 1, 2, 7, 64, 1024};
    c.message_capacity = in.pick(kCaps);
    c.message.assign(static_cast<size_t>(2 * kGuard + c.message_capacity), static_cast<char>(kSentinel));
    c.o.error_message = c.message_capacity ? c.message.data() + kGuard : nullptr;
    c.o.error_message_capacity = c.message_capacity;
  }
  untear_pointers(c.o);

  Resolved res;
  Expect e = oracle(c, res);
  if (!e.must_fail && c.workspace_limit) e.allowed |= S(UMFA_STATUS_WORKSPACE_LIMIT);
  if (!e.must_fail && work_of(c) > 1.0e6) {  // valid but too slow to check here
    ++g_stats.skipped;
    return;
  }

  // Backward reads out and lse as forward produced them: write the reference forward there
  // (unless their views overlap themselves: then they cannot hold a forward result, and only
  // the structural checks apply).
  double fwd_max_score = 0.0;
  if (backward && res.valid_shapes && (exact_overlap(c.s[OUT].t) != 0 || exact_overlap(c.s[LSE].t) != 0)) {
    c.specials = true;
    trace("out/lse views overlap: results not compared");
  }
  if (backward) {  // out or lse sharing memory with another tensor cannot hold a forward result
    for (int r = 0; r < NROLES; ++r)
      if (c.s[r].present && c.s[r].alias_of >= 0 &&
          (r == OUT || r == LSE || c.s[r].alias_of == OUT || c.s[r].alias_of == LSE))
        c.specials = true;
    if (c.moved_out_or_lse) c.specials = true;
  }
  if (backward && res.valid_shapes && !c.specials) {
    const ref::ForwardResult f = ref::forward(res.p);
    fwd_max_score = f.max_abs_score;
    const umfa_tensor& o = c.s[OUT].t;
    ref::for_each_element(o, [&](int64_t flat, int64_t offv) {
      ref::store(o.data, o.dtype, offv, f.out[static_cast<size_t>(flat)]);
    });
    const umfa_tensor& l = c.s[LSE].t;
    const int64_t rows = res.p.rows_q();
    ref::for_each_element(l, [&](int64_t flat, int64_t offv) {
      size_t wi = static_cast<size_t>(flat);
      if (!res.p.varlen) {
        const int64_t b = flat / (res.p.hq * res.p.nq), rem = flat % (res.p.hq * res.p.nq);
        wi = static_cast<size_t>((rem / res.p.nq) * rows + b * res.p.nq + rem % res.p.nq);
      }
      ref::store(l.data, l.dtype, offv, f.lse[wi]);
    });
  }

  for (int r = 0; r < NROLES; ++r) {
    Slot& s = c.s[r];
    if (s.present) s.snapshot.assign(s.mem.get(), s.mem.get() + s.mem_size);
  }
  const std::vector<char> message_before = c.message;

  umfa_context* ctx = c.ctx_null ? nullptr
                      : c.ctx_fake ? reinterpret_cast<umfa_context*>(g_not_a_context)
                                   : c.ctx;
  const umfa_attention_options* op = c.options_null ? nullptr : &c.o;
  auto T = [&](int r) { return c.s[r].present ? &c.s[r].t : nullptr; };
  umfa_status st;
  if (!backward)
    st = umfa_attention_forward(ctx, op, T(Q), T(K), T(V), T(OUT), T(LSE));
  else
    st = umfa_attention_backward(ctx, op, T(Q), T(K), T(V), T(OUT), T(DOUT), T(LSE), T(DQ), T(DK), T(DV));
  ++g_stats.calls;
  if (st >= 0 && st < 32) ++g_stats.by_status[st];

  if (st < 0 || st > 31 || !(e.allowed & S(st)))
    die("returned %s; allowed: %s", umfa_status_string(st), status_list(e.allowed).c_str());

  if (st != UMFA_STATUS_OK) {
    ++g_stats.rejected;
    for (int r = 0; r < NROLES; ++r) {
      const Slot& s = c.s[r];
      if (s.present && std::memcmp(s.snapshot.data(), s.mem.get(), s.mem_size) != 0)
        die("failed with %s but %s's memory changed", umfa_status_string(st), kRoleNames[r]);
    }
    const char* thread_msg = umfa_last_error(nullptr);
    if (!thread_msg || !*thread_msg) die("failed with %s but left no message", umfa_status_string(st));
    if (std::getenv("UMFA_FUZZ_VERBOSE")) std::fprintf(stderr, "rejected: %s\n", thread_msg);
    // The per-call message: the call's message, NUL-terminated, within the capacity, when the
    // options (as the library reads them) hold a buffer.
    {
      umfa_attention_options eff;
      std::memset(&eff, 0, sizeof eff);
      const bool known = !c.options_null && c.o.struct_size >= 4 && c.o.struct_size <= sizeof eff;
      if (known) std::memcpy(&eff, &c.o, c.o.struct_size);
      for (size_t b = 0; b < kGuard; ++b)
        if (c.message[b] != static_cast<char>(kSentinel) ||
            c.message[kGuard + c.message_capacity + b] != static_cast<char>(kSentinel))
          die("the per-call message was written outside its capacity");
      // (A struct_size that cuts error_message_capacity in two is no real caller's: either way.)
      const bool whole = c.o.struct_size >= offsetof(umfa_attention_options, error_message_capacity) + 8;
      if (known && whole && eff.error_message && eff.error_message_capacity && !c.ctx_null && !c.ctx_fake) {
        const char* m = c.message.data() + kGuard;
        const size_t len = strnlen(m, c.message_capacity);
        if (len >= c.message_capacity) die("the per-call message is not NUL-terminated within its capacity");
        if (std::strncmp(m, thread_msg, len) != 0 || (len < std::strlen(thread_msg) && len != c.message_capacity - 1))
          die("per-call message \"%s\" is not the call's message \"%s\" (capacity %llu)", m, thread_msg,
              static_cast<unsigned long long>(c.message_capacity));
      }
    }
    if (!c.ctx_null && !c.ctx_fake) {
      const std::string tm = thread_msg;
      const char* cm = umfa_last_error(ctx);
      if (!cm || tm != cm) die("context message \"%s\" differs from the thread's \"%s\"", cm ? cm : "(null)", tm.c_str());
    }
    return;
  }

  ++g_stats.ok;
  if (c.message != message_before) die("a successful call wrote the per-call message buffer");
  // Only the bytes of output views may have changed, wherever they lie.
  std::vector<char> mark;
  for (int r = 0; r < NROLES; ++r) {
    const Slot& s = c.s[r];
    if (!s.present) continue;
    mark.assign(s.mem_size, 0);
    for (int o = 0; o < NROLES; ++o)
      if (c.s[o].present && is_output(c, o)) mark_view(c.s[o].t, s, mark);
    for (size_t b = 0; b < s.mem_size; ++b)
      if (!mark[b] && s.mem[b] != s.snapshot[b])
        die(is_output(c, r) ? "%s: byte %zd of its allocation, outside every output view, was written"
                            : "input %s was modified (byte %zd of its allocation)",
            kRoleNames[r], static_cast<ssize_t>(b) - static_cast<ssize_t>(s.guard_before));
  }
  if (c.specials || !res.valid_shapes) return;
  const ref::Problem& p = res.p;
  if (std::getenv("UMFA_FUZZ_VERBOSE")) {
    std::fprintf(stderr, "problem: batch=%" PRId64 " nq=%" PRId64 " nk=%" PRId64 " hq=%" PRId64 " hkv=%" PRId64 " d=%" PRId64 " scale=%g softcap=%g\n",
                 p.batch, p.nq, p.nk, p.hq, p.hkv, p.d, p.scale, p.softcap);
    for (size_t i = 0; i < p.cu_q.size(); ++i) std::fprintf(stderr, "cu[%zu] = %" PRId64 " / %" PRId64 "\n", i, p.cu_q[i], p.cu_k[i]);
    for (int r = 0; r < NROLES; ++r)
      if (c.s[r].present) {
        const umfa_tensor& t = c.s[r].t;
        std::fprintf(stderr, "%s: dtype %d rank %d shape [%" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 "] strides [%" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 "]\n",
                     kRoleNames[r], t.dtype, t.rank, t.shape[0], t.shape[1], t.shape[2], t.shape[3], t.strides[0], t.strides[1], t.strides[2], t.strides[3]);
      }
    if (p.alibi) for (int64_t i = 0; i < ref::numel(*p.alibi); ++i) std::fprintf(stderr, "slope %g\n", ref::load(p.alibi->data, 0, i));
  }
  // With a scale this large q·k can overflow to infinity before an additive mask's -inf is
  // added: such rows are NaN by the header's rules for non-finite scores, which the reference
  // does not model.
  if (std::fabs(p.scale) * static_cast<double>(p.d) > 1e30) return;
  if (!backward) {
    const ref::ForwardResult f = ref::forward(p);
    if (f.max_abs_score > 1e4) return;
    const int32_t in_dt = c.s[Q].t.dtype;
    compare("out", c.s[OUT].t, f.out, false, p, ref::tolerance(in_dt, c.s[OUT].t.dtype, false, f.max_abs_score), f.out_err);
    if (c.s[LSE].present) {
      ref::Tol lt{2e-5 + 4e-7 * f.max_abs_score, 1e-5, 0.0};
      compare("lse", c.s[LSE].t, f.lse, true, p, lt, f.lse_err);
    }
  } else {
    if (fwd_max_score > 1e4) return;
    const umfa_tensor& l = c.s[LSE].t;
    const auto lse_at = [&](int64_t h, int64_t row) {
      if (p.varlen) return ref::at(l, h, row);
      return ref::at(l, row / p.nq, h, row % p.nq);
    };
    const ref::BackwardResult g = ref::backward(p, c.s[OUT].t, c.s[DOUT].t, lse_at);
    const int32_t in_dt = c.s[Q].t.dtype;
    compare("dq", c.s[DQ].t, g.dq, false, p, ref::tolerance(in_dt, c.s[DQ].t.dtype, true, fwd_max_score), g.dq_err);
    compare("dk", c.s[DK].t, g.dk, false, p, ref::tolerance(in_dt, c.s[DK].t.dtype, true, fwd_max_score), g.dk_err);
    compare("dv", c.s[DV].t, g.dv, false, p, ref::tolerance(in_dt, c.s[DV].t.dtype, true, fwd_max_score), g.dv_err);
  }
  ++g_stats.compared;
}

// ---------------------------------------------------------------------------------------------
// The classic mfa_attention_forward over buffers sized exactly, one element short or larger
// ---------------------------------------------------------------------------------------------

// One operand: caller memory wrapped with mfa_buffer_from_ptr (guard bytes around it), or a
// buffer of the library's.
struct ClassicOperand {
  std::unique_ptr<unsigned char[]> mem;  // wrapped: [kGuard | size | kGuard]
  size_t mem_size = 0;
  unsigned char* data = nullptr;         // the buffer's bytes
  size_t size = 0;                       // the buffer's size
  mfa_buffer_t buf = nullptr;
  std::vector<unsigned char> snapshot;   // the whole memory (wrapped) or the buffer's bytes
  const unsigned char* bytes() const { return mem ? mem.get() : data; }
  size_t byte_count() const { return mem ? mem_size : size; }
  void take_snapshot() { snapshot.assign(bytes(), bytes() + byte_count()); }
};

mfa_context_t classic_context() {
  static mfa_context_t ctx = [] {
    mfa_context_t c = nullptr;
    if (mfa_create_context(&c) != MFA_SUCCESS) die("mfa_create_context failed");
    return c;
  }();
  return ctx;
}

void run_classic(Reader& in) {
  mfa_context_t ctx = classic_context();
  const uint32_t batch = in.u8() % 3, seq_q = in.u8() % 40, seq_kv = in.u8() % 40, heads = 1 + in.u8() % 3;
  static const uint16_t kHeadDims[] = {1, 3, 8, 16, 17, 32, 64, 65, 128, 0, 257};
  const uint16_t head_dim = in.pick(kHeadDims);
  static const int kPrecisions[] = {MFA_PRECISION_FP32, MFA_PRECISION_FP16, MFA_PRECISION_BF16,
                                    MFA_PRECISION_FP32, MFA_PRECISION_FP16, MFA_PRECISION_BF16, 3, -1};
  const int p_in = in.pick(kPrecisions), p_mid = in.pick(kPrecisions), p_out = in.pick(kPrecisions);
  const uint8_t flags = in.u8();
  const bool causal = flags & 1;
  const bool tq = flags & 2, tk = flags & 4, tv = flags & 8, to = flags & 16;
  static const float kScales[] = {0.f, 0.f, 0.25f, 1.f, std::numeric_limits<float>::quiet_NaN()};
  const float scale = in.pick(kScales);
  auto dtype_of = [](int p) {
    return p == MFA_PRECISION_FP32 ? UMFA_DTYPE_F32 : p == MFA_PRECISION_FP16 ? UMFA_DTYPE_F16
                                   : p == MFA_PRECISION_BF16 ? UMFA_DTYPE_BF16 : -1;
  };
  const int32_t in_dt = dtype_of(p_in), out_dt = dtype_of(p_out);
  const bool precisions_ok = in_dt >= 0 && out_dt >= 0 && dtype_of(p_mid) >= 0;
  trace("classic B=%u Nq=%u Nk=%u H=%u D=%u precisions=(%d,%d,%d) causal=%d transposed=%d%d%d%d scale=%g", batch,
        seq_q, seq_kv, heads, head_dim, p_in, p_mid, p_out, causal, tq, tk, tv, to, static_cast<double>(scale));

  // Buffer sizes: exactly what the shapes need, one element short, larger, or a library buffer.
  const char* const names[4] = {"q", "k", "v", "out"};
  const uint32_t seqs[4] = {seq_q, seq_kv, seq_kv, seq_q};
  ClassicOperand ops[4];
  size_t needed[4];
  bool short_buffer = false;
  for (int i = 0; i < 4; ++i) {
    const int32_t dt = i == 3 ? out_dt : in_dt;
    const size_t esize = dt >= 0 ? static_cast<size_t>(ref::dtype_size(dt)) : 4;
    needed[i] = size_t(batch) * seqs[i] * heads * head_dim * esize;
    ClassicOperand& op = ops[i];
    const uint8_t mode = in.u8() % 5;
    size_t size = needed[i];
    if (mode == 1 && needed[i] > 0) size = needed[i] - esize;
    if (mode == 2) size = needed[i] + esize * (1 + in.u8() % 32);
    size = std::max<size_t>(size, 1);  // a 0-byte buffer cannot be made
    short_buffer = short_buffer || size < needed[i];
    op.size = size;
    if (mode == 3) {
      if (mfa_create_buffer(ctx, size, &op.buf) != MFA_SUCCESS) die("mfa_create_buffer(%zu) failed", size);
      op.data = static_cast<unsigned char*>(mfa_buffer_contents(op.buf));
    } else {
      op.mem_size = kGuard + size + kGuard;
      op.mem.reset(new unsigned char[op.mem_size]);
      std::memset(op.mem.get(), kSentinel, op.mem_size);
      op.data = op.mem.get() + kGuard;
    }
    trace("%s: %zu-byte %s buffer for %zu bytes", names[i], size, mode == 3 ? "library" : "wrapped", needed[i]);
  }
  // Input values.
  Rng rng(in.u32());
  for (int i = 0; i < 3; ++i)
    if (in_dt >= 0)
      for (size_t e = 0; e < ops[i].size / static_cast<size_t>(ref::dtype_size(in_dt)); ++e)
        ref::store(ops[i].data, in_dt, static_cast<int64_t>(e), rng.uniform(-1.0, 1.0));
  // out is the very buffer of an input, or wraps memory overlapping one.
  const uint8_t alias = in.u8() % 8;
  int same_buffer = -1, overlapping = -1;
  if (alias == 1) same_buffer = in.u8() % 3;
  if (alias == 2) {
    const int i = in.u8() % 3;
    const size_t at = in.u16() % (ops[i].size + 1);
    if (ops[i].mem && !ops[3].buf && at + ops[3].size <= ops[i].size + kGuard) {
      ops[3].mem.reset();
      ops[3].data = ops[i].data + at - at % 4;
      overlapping = i;
      trace("out wraps %s's memory at byte %zu", names[i], at - at % 4);
    }
  }
  for (ClassicOperand& op : ops)
    if (!op.buf && mfa_buffer_from_ptr(ctx, op.data, op.size, &op.buf) != MFA_SUCCESS)
      die("mfa_buffer_from_ptr failed");
  if (same_buffer >= 0) {
    ClassicOperand& o = ops[3];
    mfa_destroy_buffer(o.buf);
    o.buf = ops[same_buffer].buf;
    o.mem.reset();
    o.data = ops[same_buffer].data;
    o.size = ops[same_buffer].size;
    trace("out is %s's buffer", names[same_buffer]);
  }

  // Views of the operands as the classic API lays them out (for overlap and the reference).
  auto view = [&](int i) {
    umfa_tensor t;
    std::memset(&t, 0, sizeof t);
    t.data = ops[i].data;
    t.dtype = i == 3 ? out_dt : in_dt;
    t.rank = 4;
    const int64_t s = seqs[i], h = heads, d = head_dim;
    const int64_t shape[4] = {batch, s, h, d};
    std::copy(shape, shape + 4, t.shape);
    const bool transposed = i == 0 ? tq : i == 1 ? tk : i == 2 ? tv : to;
    if (!transposed) {
      t.strides[3] = 1, t.strides[2] = d, t.strides[1] = h * d, t.strides[0] = s * h * d;
    } else {
      t.strides[1] = 1, t.strides[3] = s, t.strides[2] = d * s, t.strides[0] = h * d * s;
    }
    return t;
  };

  bool must_fail = !precisions_ok || head_dim < 1 || head_dim > UMFA_MAX_HEAD_DIM || short_buffer ||
                   same_buffer >= 0 || std::isnan(scale);
  if (overlapping >= 0 && precisions_ok) {
    bool exact;
    if (views_share(view(3), view(overlapping), &exact)) must_fail = true;
  }
  const double work = double(batch) * seq_q * seq_kv * heads * head_dim;
  if (!must_fail && work > 1.0e6) {
    ++g_stats.skipped;
    for (ClassicOperand& op : ops)
      if (op.buf && !(same_buffer >= 0 && &op == &ops[3])) mfa_destroy_buffer(op.buf);
    return;
  }
  for (ClassicOperand& op : ops) op.take_snapshot();
  const mfa_error_t err = mfa_attention_forward(ctx, ops[0].buf, ops[1].buf, ops[2].buf, ops[3].buf, batch, seq_q,
                                                seq_kv, heads, head_dim, scale, causal, p_in, p_mid, p_out, tq, tk,
                                                tv, to);
  ++g_stats.calls;
  if (must_fail != (err != MFA_SUCCESS))
    die("mfa_attention_forward returned %d (%s); %s", err, mfa_error_string(err), must_fail ? "expected an error" : "expected success");
  if (err != MFA_SUCCESS) {
    ++g_stats.rejected;
    if (err != MFA_ERROR_INVALID_ARGS) die("mfa_attention_forward returned %d, expected MFA_ERROR_INVALID_ARGS", err);
    for (int i = 0; i < 4; ++i)
      if (std::memcmp(ops[i].snapshot.data(), ops[i].bytes(), ops[i].byte_count()) != 0)
        die("mfa_attention_forward failed but the memory of %s changed", names[i]);
  } else {
    ++g_stats.ok;
    for (int i = 0; i < 3; ++i)
      if (std::memcmp(ops[i].snapshot.data(), ops[i].bytes(), ops[i].byte_count()) != 0)
        die("mfa_attention_forward changed %s", names[i]);
    // out: only the bytes its shape covers; nothing after them, nothing in the guards.
    const ClassicOperand& o = ops[3];
    const size_t first = static_cast<size_t>(o.data - o.bytes());
    for (size_t b = 0; b < o.byte_count(); ++b)
      if ((b < first || b >= first + needed[3]) && o.bytes()[b] != o.snapshot[b])
        die("mfa_attention_forward wrote byte %zd of out's buffer (it needs %zu)",
            static_cast<ssize_t>(b) - static_cast<ssize_t>(first), needed[3]);
    ref::Problem p;
    p.batch = batch;
    p.nq = seq_q;
    p.nk = seq_kv;
    p.hq = p.hkv = heads;
    p.d = head_dim;
    p.mask_mode = causal ? UMFA_MASK_CAUSAL_TOP_LEFT : UMFA_MASK_NONE;
    p.scale = scale != 0.f ? static_cast<double>(scale)
                           : static_cast<double>(static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim))));
    p.q = view(0);
    p.k = view(1);
    p.v = view(2);
    const ref::ForwardResult f = ref::forward(p);
    if (f.max_abs_score <= 1e4) {
      compare("out", view(3), f.out, false, p, ref::tolerance(in_dt, out_dt, false, f.max_abs_score), f.out_err);
      ++g_stats.compared;
    }
  }
  for (ClassicOperand& op : ops)
    if (op.buf && !(same_buffer >= 0 && &op == &ops[3])) mfa_destroy_buffer(op.buf);
}

// ---------------------------------------------------------------------------------------------
// umfa_context_create
// ---------------------------------------------------------------------------------------------

void run_context(Reader& in) {
  umfa_context_options o;
  std::memset(&o, 0, sizeof o);
  static const uint32_t kSizes[] = {sizeof o, sizeof o, sizeof o, 0, 1, 3, 4, 8, 12, 16, 20, 25, 32, 1000, 0xffffffffu};
  static const uint32_t kBackends[] = {0, 1, 1, 1, 2, 3, 0xffffffffu};
  static const int32_t kDevices[] = {0, 0, 0, 1, -1, INT32_MIN};
  static const int32_t kThreads[] = {0, 1, 1, 2, 3, -1, INT32_MIN, 4096};
  o.struct_size = in.pick(kSizes);
  o.backend = in.pick(kBackends);
  o.device_index = in.pick(kDevices);
  o.num_threads = in.pick(kThreads);
  o.workspace_limit_bytes = in.u8() & 1 ? in.u64() : 0;
  const bool null_opts = in.chance(8), null_out = in.chance(8);
  trace("context_create size=%u backend=%u device=%d threads=%d%s%s", o.struct_size, o.backend,
        o.device_index, o.num_threads, null_opts ? " options=NULL" : "", null_out ? " out=NULL" : "");
  umfa_context_options eff;
  std::memset(&eff, 0, sizeof eff);
  uint32_t allowed = 0;
  if (null_out) {
    allowed = S(UMFA_STATUS_NULL_POINTER);
  } else if (!null_opts && (o.struct_size < 4 || o.struct_size > sizeof o)) {
    allowed = S(UMFA_STATUS_STRUCT_VERSION);
  } else {
    if (!null_opts) std::memcpy(&eff, &o, o.struct_size);
    if (eff.backend > UMFA_BACKEND_METAL) allowed |= S(UMFA_STATUS_INVALID_ARGUMENT);
    if (eff.device_index < 0) allowed |= S(UMFA_STATUS_INVALID_ARGUMENT);
    if (eff.num_threads < 0) allowed |= S(UMFA_STATUS_INVALID_ARGUMENT);
    if (!allowed) {
      if (eff.num_threads > 8) return;  // valid, but thousands of threads per input is too slow
      allowed = eff.backend == UMFA_BACKEND_CUDA || eff.backend == UMFA_BACKEND_METAL
                    ? S(UMFA_STATUS_BACKEND_UNAVAILABLE)
                    : S(UMFA_STATUS_OK);
    }
  }
  umfa_context* const sentinel = reinterpret_cast<umfa_context*>(g_not_a_context + 8);
  umfa_context* out = sentinel;
  const umfa_status st = umfa_context_create(null_opts ? nullptr : &o, null_out ? nullptr : &out);
  ++g_stats.calls;
  if (st < 0 || st > 31 || !(allowed & S(st)))
    die("umfa_context_create returned %s; allowed: %s", umfa_status_string(st), status_list(allowed).c_str());
  if (st != UMFA_STATUS_OK) {
    ++g_stats.rejected;
    if (out != sentinel) die("umfa_context_create failed but wrote *out_context");
    const char* m = umfa_last_error(nullptr);
    if (!m || !*m) die("umfa_context_create failed without a message");
    return;
  }
  ++g_stats.ok;
  uint32_t backend = 99;
  int32_t threads = -1;
  if (umfa_context_backend(out, &backend) != UMFA_STATUS_OK || backend != UMFA_BACKEND_CPU)
    die("context backend %u (CPU expected)", backend);
  if (umfa_context_num_threads(out, &threads) != UMFA_STATUS_OK ||
      (eff.num_threads > 0 && threads != eff.num_threads) || threads < 1)
    die("context threads %d (asked for %d)", threads, eff.num_threads);
  umfa_context_destroy(out);
}

// ---------------------------------------------------------------------------------------------
// Helpers: dtype sizes, status strings, tensor init, buffers
// ---------------------------------------------------------------------------------------------

void run_misc(Reader& in) {
  const uint8_t which = in.u8() % 4;
  ++g_stats.calls;
  if (which == 0) {
    const int32_t x = static_cast<int32_t>(in.u32()) % 40 - 4;
    const uint32_t size = umfa_dtype_size(x);
    if (size != static_cast<uint32_t>(ref::dtype_size(x))) die("umfa_dtype_size(%d) = %u", x, size);
    const char* s = umfa_status_string(x);
    if (!s || std::strncmp(s, "UMFA_STATUS_", 12) != 0) die("umfa_status_string(%d)", x);
    return;
  }
  if (which == 1) {
    static const int32_t kRanks[] = {-1, 0, 1, 2, 3, 4, 4, 5, INT32_MAX, INT32_MIN};
    const int32_t rank = in.pick(kRanks);
    int64_t shape[4];
    for (int64_t& v : shape) v = in.u8() & 1 ? static_cast<int64_t>(in.u8() % 6) : interesting(in);
    const int32_t dtype = static_cast<int32_t>(in.u8() % 7) - 1;
    const bool null_out = in.chance(8), null_shape = in.chance(8);
    trace("tensor_init rank=%d dtype=%d", rank, dtype);
    uint32_t allowed = 0;
    if (null_out) allowed |= S(UMFA_STATUS_NULL_POINTER);
    if (rank < 0 || rank > 4) allowed |= S(UMFA_STATUS_INVALID_RANK);
    const int r = rank < 0 ? 0 : rank > 4 ? 4 : rank;
    if (r > 0 && null_shape) allowed |= S(UMFA_STATUS_NULL_POINTER);
    if (ref::dtype_size(dtype) == 0) allowed |= S(UMFA_STATUS_UNSUPPORTED_DTYPE);
    bool neg = false, over = false;
    int64_t count = 1;
    if (!(r > 0 && null_shape) && rank >= 0 && rank <= 4) {
      for (int d = 0; d < r; ++d) {
        if (shape[d] < 0) neg = true;
        else if (shape[d] > 0 && mul_overflows(count, shape[d], &count)) over = true;
      }
      if (neg) allowed |= S(UMFA_STATUS_INVALID_ARGUMENT);
      if (over) allowed |= S(UMFA_STATUS_SIZE_OVERFLOW);
    }
    const bool must_fail = allowed != 0;
    if (!must_fail) allowed = S(UMFA_STATUS_OK);
    umfa_tensor t;
    std::memset(&t, 0xCD, sizeof t);
    umfa_tensor before = t;
    const umfa_status st = umfa_tensor_init_contiguous(null_out ? nullptr : &t, g_not_a_context, dtype, rank,
                                                       null_shape ? nullptr : shape);
    if (!(allowed & S(st)))
      die("umfa_tensor_init_contiguous returned %s; allowed: %s", umfa_status_string(st), status_list(allowed).c_str());
    if (st != UMFA_STATUS_OK) {
      if (std::memcmp(&t, &before, sizeof t) != 0) die("umfa_tensor_init_contiguous failed but wrote *out");
      return;
    }
    if (t.rank != rank || t.dtype != dtype || t.device != UMFA_DEVICE_CPU || t.data != g_not_a_context)
      die("umfa_tensor_init_contiguous: wrong fields");
    if (ref::numel(t) > 0) {
      int64_t want = 1;
      for (int d = rank - 1; d >= 0; --d) {
        if (t.shape[d] != shape[d]) die("umfa_tensor_init_contiguous: shape[%d]", d);
        if (shape[d] > 1 && t.strides[d] != want) die("umfa_tensor_init_contiguous: strides[%d]", d);
        want *= shape[d];
      }
    }
    return;
  }
  if (which == 2) {
    // Buffers on a CPU context.
    umfa_context* ctx = contexts().one;
    static const uint64_t kSizes[] = {0, 1, 7, 64, 4096, 100000, uint64_t(1) << 62, UINT64_MAX};
    const uint64_t size = in.pick(kSizes);
    const bool null_out = in.chance(8);
    trace("buffer_create size=%" PRIu64, size);
    umfa_buffer* b = reinterpret_cast<umfa_buffer*>(g_not_a_context + 16);
    umfa_buffer* const sentinel = b;
    umfa_status st = umfa_buffer_create(in.chance(16) ? nullptr : ctx, size, null_out ? nullptr : &b);
    if (st == UMFA_STATUS_OK && (null_out || size == 0 || size > (uint64_t(1) << 40)))
      die("umfa_buffer_create succeeded for size %" PRIu64, size);
    if (st != UMFA_STATUS_OK) {
      if (b != sentinel) die("umfa_buffer_create failed but wrote *out_buffer");
      if (st != UMFA_STATUS_NULL_POINTER && st != UMFA_STATUS_NULL_CONTEXT && st != UMFA_STATUS_INVALID_ARGUMENT &&
          st != UMFA_STATUS_OUT_OF_MEMORY)
        die("umfa_buffer_create returned %s", umfa_status_string(st));
      if (size > 0 && size <= 100000 && !null_out && st == UMFA_STATUS_OUT_OF_MEMORY) die("small buffer OOM");
      return;
    }
    // Queries.
    uint64_t got_size = 0;
    void* data = nullptr;
    int32_t dev = -1;
    if (umfa_buffer_size(b, &got_size) != UMFA_STATUS_OK || got_size != size) die("umfa_buffer_size");
    if (umfa_buffer_data(b, &data) != UMFA_STATUS_OK || !data || reinterpret_cast<uintptr_t>(data) % 64)
      die("umfa_buffer_data");
    if (umfa_buffer_device(b, &dev) != UMFA_STATUS_OK || dev != UMFA_DEVICE_CPU) die("umfa_buffer_device");
    for (uint64_t i = 0; i < size; ++i)
      if (static_cast<unsigned char*>(data)[i] != 0) die("buffer not zero-filled");
    if (umfa_buffer_size(nullptr, &got_size) != UMFA_STATUS_NULL_POINTER) die("umfa_buffer_size(NULL)");
    if (umfa_buffer_size(reinterpret_cast<umfa_buffer*>(g_not_a_context), &got_size) != UMFA_STATUS_INVALID_HANDLE)
      die("umfa_buffer_size(not a buffer)");
    // Ranges.
    for (int i = 0; i < 3; ++i) {
      static const uint64_t kOffsets[] = {0, 1, 63, 64, 4095, 4096, 99999, 100000, uint64_t(1) << 63, UINT64_MAX};
      const uint64_t offset = in.pick(kOffsets);
      const uint64_t n = in.pick(kOffsets);
      const bool fits = offset <= size && n <= size - offset;
      std::vector<unsigned char> host(fits ? static_cast<size_t>(n) : 16);
      for (size_t j = 0; j < host.size(); ++j) host[j] = static_cast<unsigned char>(j * 7 + 1);
      const bool up = in.u8() & 1;
      st = up ? umfa_buffer_upload(b, offset, host.data(), n) : umfa_buffer_download(b, offset, host.data(), n);
      if (fits != (st == UMFA_STATUS_OK))
        die("buffer %s offset=%" PRIu64 " size=%" PRIu64 " of %" PRIu64 ": %s", up ? "upload" : "download", offset, n,
            size, umfa_status_string(st));
      if (!fits && st != UMFA_STATUS_INVALID_ARGUMENT) die("out-of-range buffer copy: %s", umfa_status_string(st));
      if (fits && up && n && std::memcmp(static_cast<unsigned char*>(data) + offset, host.data(), static_cast<size_t>(n)))
        die("upload did not copy");
      if (fits && up && n) std::memset(static_cast<unsigned char*>(data) + offset, 0, static_cast<size_t>(n));
    }
    umfa_buffer_destroy(b);
    return;
  }
  // Wrapping caller memory.
  std::vector<unsigned char> host(256);
  static const uint64_t kSizes[] = {0, 1, 256, UINT64_MAX, UINT64_MAX - 8};
  const uint64_t size = in.pick(kSizes);
  const bool null_ptr = in.chance(6);
  trace("buffer_wrap size=%" PRIu64 "%s", size, null_ptr ? " ptr=NULL" : "");
  umfa_buffer* b = nullptr;
  const umfa_status st = umfa_buffer_wrap(contexts().one, null_ptr ? nullptr : host.data(), size, &b);
  const bool wraps = !null_ptr && size > UINTPTR_MAX - reinterpret_cast<uintptr_t>(host.data());
  const umfa_status want = null_ptr ? UMFA_STATUS_NULL_POINTER
                           : size == 0 || wraps ? UMFA_STATUS_INVALID_ARGUMENT
                                                 : UMFA_STATUS_OK;
  if (st != want) die("umfa_buffer_wrap returned %s, expected %s", umfa_status_string(st), umfa_status_string(want));
  if (st == UMFA_STATUS_OK) {
    void* p = nullptr;
    if (umfa_buffer_contents(b, &p) != UMFA_STATUS_OK || p != host.data()) die("umfa_buffer_contents");
    umfa_buffer_destroy(b);
  }
}

}  // namespace

// Under AddressSanitizer, an impossible allocation returns NULL (the library must report
// OUT_OF_MEMORY) instead of aborting the process.
extern "C" __attribute__((visibility("default"))) const char* __asan_default_options() { return "allocator_may_return_null=1"; }

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("UMFA_CUDA_LIB", "/nonexistent/libumfa_cuda.so", 1);  // results independent of the machine
  setenv("UMFA_NUM_THREADS", "2", 1);
  contexts();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  g_trace.clear();
  g_input = data;
  g_input_size = size;
  Reader in(data, size);
  const uint8_t first = in.u8();
  const uint8_t kind = first % 16;
  if (first >= 240)  // (seed corpus inputs start with 0..15)
    run_classic(in);
  else if (kind < 7)
    run_attention(in, false);
  else if (kind < 14)
    run_attention(in, true);
  else if (kind == 14)
    run_context(in);
  else
    run_misc(in);
  return 0;
}

// The name of the input being replayed (printed with a failure).
extern "C" void umfa_fuzz_set_label(const char* label) { g_label = label ? label : ""; }

// Counters for the replay driver.
extern "C" void umfa_fuzz_stats(uint64_t* calls, uint64_t* ok, uint64_t* rejected, uint64_t* compared,
                                uint64_t* skipped) {
  *calls = g_stats.calls;
  *ok = g_stats.ok;
  *rejected = g_stats.rejected;
  *compared = g_stats.compared;
  *skipped = g_stats.skipped;
}

// Attention calls by returned status (index = status code, 32 entries).
extern "C" const uint64_t* umfa_fuzz_status_counts() { return g_stats.by_status; }
