// The CPU backend: per-context thread pool, host memory, and the drivers that cut forward and
// backward into tiles and run them on the pool with the kernel variant chosen at start-up.
//
// Forward:  one work item = up to kFwdGroup consecutive tiles of query rows of one head (BM
//           rows each; or one tile of several query heads of a GQA group stacked, for short
//           sequences), looping once over their visible key blocks with an online softmax (each
//           K/V block is converted once for all the tiles). Every output row is written once, by
//           its tile. When there are too few tiles to keep every thread busy and the keys are long (decode),
//           each tile's key blocks are split into parts (split-KV): the parts run as separate
//           items writing partial results, and a combine step merges them per row.
// Backward: (1) delta = rowsum(dO * O) per row; (2) one work item per (sequence, kv head, up to
//           kBwdGroup key blocks) accumulates dK/dV over the group's query heads and the visible
//           query blocks (each query block packed once for all the item's key blocks) and stores
//           them; dQ contributions go into a shared f32 accumulator (transposed:
//           [head][d][row]), one lock per query block; (3) the accumulator is scaled, transposed
//           and converted into dq.
//           With UMFA_FLAG_DETERMINISTIC, (2) computes dK/dV only and (3) is a second pass per
//           query block that recomputes the scores and writes dq (bit-identical run to run).
#include "cpu_backend.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <thread>
#include <vector>

#include "cpu_common.h"
#include "merge.h"
#include "platform/platform.h"
#include "thread_pool.h"

namespace umfa {
namespace cpu {
namespace {

struct Impl {
  std::unique_ptr<ThreadPool> pool;
  const KernelSet* ks = nullptr;
};

void report(ErrorSink* err, const char* fmt, ...) {
  if (!err || !err->message || err->capacity == 0) return;
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(err->message, err->capacity, fmt, ap);
  va_end(ap);
}

int32_t default_threads() {
  if (const char* env = std::getenv("UMFA_NUM_THREADS"); env && *env) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (end && *end == '\0' && n >= 1 && n <= 4096) return static_cast<int32_t>(n);
  }
  if (const int n = platform::available_cpus(); n >= 1) return n;
  const unsigned hc = std::thread::hardware_concurrency();
  return hc >= 1 ? static_cast<int32_t>(hc) : 1;
}

// 64-byte aligned scratch owned by one call.
struct Scratch {
  unsigned char* p = nullptr;
  explicit Scratch(size_t bytes) {
    if (bytes == 0) return;
    p = static_cast<unsigned char*>(::operator new(bytes, std::align_val_t(64)));
  }
  ~Scratch() {
    if (p) ::operator delete(p, std::align_val_t(64));
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

size_t round64(size_t n) { return (n + 63) & ~static_cast<size_t>(63); }

// ---------------------------------------------------------------------------------------------
// Plan construction.
// ---------------------------------------------------------------------------------------------

// Sequence b of a problem: batch entry b (dense) or the rows the offsets give it (varlen).
Seq seq_of(const Problem& p, int64_t b) {
  Seq s;
  if (p.cu_seqlens_q) {
    s.vb = 0;
    s.q0 = p.cu_seqlens_q[b];
    s.nq = p.cu_seqlens_q[b + 1] - p.cu_seqlens_q[b];
    s.k0 = p.cu_seqlens_k[b];
    s.nk = p.cu_seqlens_k[b + 1] - p.cu_seqlens_k[b];
  } else {
    s.vb = b;
    s.q0 = 0;
    s.nq = p.q.shape[1];
    s.k0 = 0;
    s.nk = p.k.shape[1];
  }
  s.off = p.bottom_right ? s.nk - s.nq : 0;
  return s;
}

// Everything of the plan but the per-sequence table (workspace sizes are computed from this
// alone, without allocating anything).
void plan_scalars(const Problem& p, Plan& pl) {
  pl.p = &p;
  pl.batch = p.batch;
  pl.hq = p.heads_q;
  pl.hkv = p.heads_kv;
  pl.group = p.heads_kv > 0 ? p.heads_q / p.heads_kv : 1;
  pl.d = p.head_dim;
  pl.q_rows = p.q.shape[1];
  pl.k_rows = p.k.shape[1];

  // A window wider than every possible |j - i - off| is no window at all; this also keeps the
  // range arithmetic far from int64 overflow.
  const int64_t bound = pl.q_rows + pl.k_rows + 1;
  pl.has_left = p.window_left >= 0 && p.window_left <= bound;
  pl.left = pl.has_left ? p.window_left : 0;
  pl.has_right = p.window_right >= 0 && p.window_right <= bound;
  pl.right = pl.has_right ? p.window_right : 0;

  pl.softcap = p.softcap > 0.f;
  pl.cap = p.softcap;
  pl.inv_cap = pl.softcap ? 1.f / p.softcap : 0.f;
  pl.alibi = p.alibi.present();
  pl.mask = p.mask.present() && !p.cu_seqlens_q;
  pl.mask_bool = p.mask.dtype == UMFA_DTYPE_BOOL;
}

void build_plan(const Problem& p, std::vector<Seq>& seqs, Plan& pl) {
  plan_scalars(p, pl);
  seqs.resize(static_cast<size_t>(p.batch));
  for (int64_t b = 0; b < p.batch; ++b) seqs[static_cast<size_t>(b)] = seq_of(p, b);
  pl.seqs = seqs.data();
}

// Bytes of the per-call tables besides the scratch: one Seq per sequence and `item_lists`
// prefix-sum lists of batch + 1 entries (Items).
size_t table_bytes(const Problem& p, int item_lists) {
  const size_t batch = static_cast<size_t>(p.batch);
  return batch * sizeof(Seq) + static_cast<size_t>(item_lists) * (batch + 1) * sizeof(int64_t);
}

// Forward items of one sequence: query-block groups x head sub-groups x kv heads.
struct FwdShape {
  int64_t qr = 0;   // query rows per tile and head
  int64_t hpt = 1;  // query heads per tile
  int64_t nhs = 0;  // head sub-groups per kv head
  int64_t nqb = 0;  // query blocks
  int64_t ng = 1;   // query blocks per item (FwdTile::ntile)
  int64_t nqg = 0;  // items per (kv head, head sub-group)
  int64_t count = 0;
};

FwdShape fwd_shape(const Plan& pl, const Seq& s, int64_t group) {
  FwdShape f;
  if (s.nq <= 0) return f;
  f.qr = imin(kBM, s.nq);
  f.hpt = f.qr < kBM ? imax(1, imin(pl.group, kBM / f.qr)) : 1;
  f.nhs = ceil_div(pl.group, f.hpt);
  f.nqb = ceil_div(s.nq, kBM);
  f.ng = f.hpt == 1 ? imax(1, imin(group, f.nqb)) : 1;
  f.nqg = ceil_div(f.nqb, f.ng);
  f.count = pl.hkv * f.nhs * f.nqg;
  return f;
}

// Prefix sums of per-sequence item counts; item -> (sequence, index within it).
struct Items {
  std::vector<int64_t> prefix;  // batch + 1 entries
  int64_t total() const { return prefix.back(); }
  int64_t locate(int64_t item, int64_t* rem) const {
    const auto it = std::upper_bound(prefix.begin(), prefix.end(), item);
    const int64_t b = static_cast<int64_t>(it - prefix.begin()) - 1;
    *rem = item - prefix[static_cast<size_t>(b)];
    return b;
  }
};

template <class CountFn>
void build_items(const Plan& pl, Items& items, CountFn count) {
  items.prefix.assign(static_cast<size_t>(pl.batch) + 1, 0);
  for (int64_t b = 0; b < pl.batch; ++b)
    items.prefix[static_cast<size_t>(b) + 1] = items.prefix[static_cast<size_t>(b)] + count(pl.seqs[b]);
}

int slots_for(const Impl& impl, int64_t items) {
  return static_cast<int>(imax(1, imin(impl.pool->threads(), items)));
}

// ---------------------------------------------------------------------------------------------
// Forward.
// ---------------------------------------------------------------------------------------------

struct FwdJob {
  const Plan* pl;
  const KernelSet* ks;
  const Items* items;
  unsigned char* scratch;
  size_t slot_bytes;
};

void fwd_item(void* ctx, int64_t item, int slot) {
  const FwdJob& job = *static_cast<const FwdJob*>(ctx);
  const Plan& pl = *job.pl;
  // With split-KV, item = tile * nsplit + part (parts of one tile are neighbours).
  const int64_t split = pl.nsplit > 1 ? item % pl.nsplit : -1;
  if (pl.nsplit > 1) item /= pl.nsplit;
  int64_t rem;
  const int64_t b = job.items->locate(item, &rem);
  const Seq& s = pl.seqs[b];
  const FwdShape f = fwd_shape(pl, s, pl.fwd_group);
  FwdTile t;
  t.b = b;
  // Last query blocks first: with a causal mask they are the longest, so they start early.
  const int64_t qg = f.nqg - 1 - rem % f.nqg;
  rem /= f.nqg;
  const int64_t hs = rem % f.nhs;
  t.kvh = rem / f.nhs;
  t.i0 = qg * f.ng * kBM;
  t.qr = imin(kBM, s.nq - t.i0);
  t.ntile = imin(f.ng, f.nqb - qg * f.ng);
  t.hbase = t.kvh * pl.group + hs * f.hpt;
  t.hcnt = imin(f.hpt, pl.group - hs * f.hpt);
  t.split = split;
  job.ks->fwd_tile(pl, t, job.scratch + static_cast<size_t>(slot) * job.slot_bytes);
}

// How forward cuts a problem into items, computed from the sequences one at a time.
struct FwdCounts {
  int64_t group = 1;   // query blocks per item (Plan::fwd_group)
  int64_t items = 0;   // items before splitting
  int64_t nsplit = 1;  // key parts per item (Plan::nsplit)
};

// Query blocks per item: enough items to balance the threads (about 8 per thread), as many
// blocks per item as that allows (up to kFwdGroup), so K/V blocks are converted once for several
// query tiles. Split-KV: each tile's keys are cut into parts only when the tiles alone leave
// threads idle or unevenly loaded (fewer than 8 per thread) and every part still gets at least
// two key blocks.
FwdCounts fwd_counts(const Plan& pl, int threads) {
  const Problem& p = *pl.p;
  int64_t tiles = 0, max_nk = 0;
  for (int64_t b = 0; b < pl.batch; ++b) {
    const Seq s = seq_of(p, b);
    tiles += fwd_shape(pl, s, 1).count;
    max_nk = imax(max_nk, s.nk);
  }
  FwdCounts f;
  f.group = imax(1, imin(kFwdGroup, tiles / (8 * static_cast<int64_t>(threads))));
  for (int64_t b = 0; b < pl.batch; ++b) f.items += fwd_shape(pl, seq_of(p, b), f.group).count;
  const int64_t kblocks = ceil_div(max_nk, kBN);
  const int64_t want = 8 * static_cast<int64_t>(threads);
  if (threads > 1 && f.items > 0 && f.items < want && kblocks >= 4)
    f.nsplit = imax(1, imin(ceil_div(want, f.items), kblocks / 2));
  return f;
}

// Sizes of the split-KV buffers (0 when nsplit == 1).
size_t part_bytes(const Plan& pl, int64_t vbs, int64_t nsplit) {
  if (nsplit <= 1) return 0;
  const size_t rows = static_cast<size_t>(vbs) * static_cast<size_t>(pl.hq) *
                      static_cast<size_t>(pl.q_rows) * static_cast<size_t>(nsplit);
  return round64(rows * static_cast<size_t>(pl.d) * sizeof(float)) + 2 * round64(rows * sizeof(float));
}

struct CombineJob {
  const Plan* pl;
  int64_t vbs;
};

// Merges the parts of every row of query row `item` (all heads): out, lse.
void combine_item(void* ctx, int64_t item, int) {
  const CombineJob& job = *static_cast<const CombineJob*>(ctx);
  const Plan& pl = *job.pl;
  const Problem& p = *pl.p;
  const int64_t vb = item / pl.q_rows, row = item % pl.q_rows;
  const int64_t d = pl.d, ns = pl.nsplit;
  float acc[UMFA_MAX_HEAD_DIM];
  for (int64_t h = 0; h < pl.hq; ++h) {
    const int64_t pi = part_index(pl, vb, h, row, 0);
    float mx = -kInf;
    for (int64_t k = 0; k < ns; ++k)
      if (pl.part_l[pi + k] != 0.f && pl.part_m[pi + k] > mx) mx = pl.part_m[pi + k];
    float l = 0.f;
    for (int64_t c = 0; c < d; ++c) acc[c] = 0.f;
    for (int64_t k = 0; k < ns; ++k) {
      const float lk = pl.part_l[pi + k];
      if (lk == 0.f) continue;
      // A NaN part (NaN inputs) makes w NaN, and the row NaN, as without splitting.
      const float w = lk * std::exp(pl.part_m[pi + k] - mx);
      l += w;
      const float* o = pl.part_o + (pi + k) * d;
      for (int64_t c = 0; c < d; ++c) acc[c] += w * o[c];
    }
    const int64_t ooff = voff(p.out, vb, row, h);
    float lse;
    if (l == 0.f) {
      fill_row(p.out.data, p.out.dtype, ooff, p.out.strides[3], d, 0.f);
      lse = -kInf;
    } else {
      store_row(p.out.data, p.out.dtype, ooff, p.out.strides[3], d, 1.f / l, acc);
      lse = mx + std::log(l);
    }
    if (p.lse.present()) static_cast<float*>(p.lse.data)[voff(p.lse, vb, h, row)] = lse;
  }
}

// Rows of the q-side views that belong to no sequence (varlen only): [0, first) and [last, rows).
template <class Fn>
void for_uncovered_rows(const Problem& p, int64_t rows, const int32_t* cu, Fn fn) {
  if (!cu) return;
  for (int64_t r = 0; r < rows; ++r) {
    if (r < cu[0] || r >= cu[p.batch]) fn(r);
  }
}

umfa_status forward_impl(Impl& impl, const Problem& p) {
  std::vector<Seq> seqs;
  Plan pl;
  build_plan(p, seqs, pl);
  const FwdCounts fc = fwd_counts(pl, impl.pool->threads());
  pl.fwd_group = fc.group;
  Items items;
  build_items(pl, items, [&](const Seq& s) { return fwd_shape(pl, s, pl.fwd_group).count; });

  if (items.total() > 0) {
    const int64_t vbs = p.q.shape[0];
    pl.nsplit = fc.nsplit;
    const int64_t n = items.total() * pl.nsplit;
    const int slots = slots_for(impl, n);
    const size_t slot_bytes = round64(impl.ks->fwd_scratch_bytes(pl.d));
    Scratch scratch(slot_bytes * static_cast<size_t>(slots));
    Scratch parts(part_bytes(pl, vbs, pl.nsplit));
    if (pl.nsplit > 1) {
      const size_t rows = static_cast<size_t>(vbs * pl.hq * pl.q_rows * pl.nsplit);
      pl.part_o = reinterpret_cast<float*>(parts.p);
      pl.part_m = reinterpret_cast<float*>(parts.p + round64(rows * pl.d * sizeof(float)));
      pl.part_l = reinterpret_cast<float*>(parts.p + round64(rows * pl.d * sizeof(float)) +
                                           round64(rows * sizeof(float)));
    }
    FwdJob job{&pl, impl.ks, &items, scratch.p, slot_bytes};
    impl.pool->run(n, fwd_item, &job, slots);
    if (pl.nsplit > 1) {
      // Rows outside every sequence (varlen) are never parts: the combine covers sequences only.
      CombineJob cj{&pl, vbs};
      const int64_t rows = vbs * pl.q_rows;
      impl.pool->run(rows, [](void* ctx, int64_t item, int slot) {
        const CombineJob& j = *static_cast<const CombineJob*>(ctx);
        const Plan& q = *j.pl;
        if (q.p->cu_seqlens_q) {
          const int64_t r = item % q.q_rows;
          if (r < q.p->cu_seqlens_q[0] || r >= q.p->cu_seqlens_q[q.batch]) return;
        }
        combine_item(ctx, item, slot);
      }, &cj, slots_for(impl, rows));
    }
  }

  // Varlen rows outside every sequence: out = 0, lse = -inf.
  for_uncovered_rows(p, pl.q_rows, p.cu_seqlens_q, [&](int64_t r) {
    for (int64_t h = 0; h < pl.hq; ++h) {
      fill_row(p.out.data, p.out.dtype, voff(p.out, 0, r, h), p.out.strides[3], pl.d, 0.f);
      if (p.lse.present()) static_cast<float*>(p.lse.data)[voff(p.lse, 0, h, r)] = -kInf;
    }
  });
  return UMFA_STATUS_OK;
}

// ---------------------------------------------------------------------------------------------
// Backward.
// ---------------------------------------------------------------------------------------------

constexpr int64_t kRowChunk = 64;

struct RowJob {
  const Plan* pl;
  unsigned char* scratch;
  size_t slot_bytes;
  int64_t chunks_per_vb;
};

// delta[vb][h][row] = sum_d dO * O, for every row of the q-side views.
void delta_item(void* ctx, int64_t item, int slot) {
  const RowJob& job = *static_cast<const RowJob*>(ctx);
  const Plan& pl = *job.pl;
  const Problem& p = *pl.p;
  float* a = reinterpret_cast<float*>(job.scratch + static_cast<size_t>(slot) * job.slot_bytes);
  float* o = a + round_up(pl.d, 16);
  const int64_t vb = item / job.chunks_per_vb;
  const int64_t r0 = (item % job.chunks_per_vb) * kRowChunk;
  const int64_t r1 = imin(pl.q_rows, r0 + kRowChunk);
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t h = 0; h < pl.hq; ++h) {
      load_row(p.dout.data, p.dout.dtype, voff(p.dout, vb, r, h), p.dout.strides[3], pl.d, 1.f, a);
      load_row(p.out.data, p.out.dtype, voff(p.out, vb, r, h), p.out.strides[3], pl.d, 1.f, o);
      float acc = 0.f;
      for (int64_t c = 0; c < pl.d; ++c) acc += a[c] * o[c];
      pl.delta[(vb * pl.hq + h) * pl.q_rows + r] = acc;
    }
  }
}

// dq = scale * dq_acc (stored transposed, [vb][h][d][row]), for every row of the q-side views.
void dq_store_item(void* ctx, int64_t item, int slot) {
  const RowJob& job = *static_cast<const RowJob*>(ctx);
  const Plan& pl = *job.pl;
  const Problem& p = *pl.p;
  float* a = reinterpret_cast<float*>(job.scratch + static_cast<size_t>(slot) * job.slot_bytes);
  const int64_t vb = item / job.chunks_per_vb;
  const int64_t r0 = (item % job.chunks_per_vb) * kRowChunk;
  const int64_t r1 = imin(pl.q_rows, r0 + kRowChunk);
  for (int64_t h = 0; h < pl.hq; ++h) {
    const float* acc = pl.dq_acc + (vb * pl.hq + h) * pl.d * pl.q_rows;
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t c = 0; c < pl.d; ++c) a[c] = acc[c * pl.q_rows + r];
      store_row(p.dq.data, p.dq.dtype, voff(p.dq, vb, r, h), p.dq.strides[3], pl.d, p.scale, a);
    }
  }
}

struct BwdJob {
  const Plan* pl;
  const KernelSet* ks;
  const Items* items;
  unsigned char* scratch;
  size_t slot_bytes;
};

void bwd_kv_item(void* ctx, int64_t item, int slot) {
  const BwdJob& job = *static_cast<const BwdJob*>(ctx);
  const Plan& pl = *job.pl;
  int64_t rem;
  const int64_t b = job.items->locate(item, &rem);
  const Seq& s = pl.seqs[b];
  const int64_t span = pl.bwd_group * kBN;
  const int64_t nkg = ceil_div(s.nk, span);
  BwdKvTile t;
  t.b = b;
  t.kvh = rem / nkg;
  t.j0 = (rem % nkg) * span;
  t.nc = imin(span, s.nk - t.j0);
  job.ks->bwd_kv_tile(pl, t, job.scratch + static_cast<size_t>(slot) * job.slot_bytes);
}

void bwd_q_item(void* ctx, int64_t item, int slot) {
  const BwdJob& job = *static_cast<const BwdJob*>(ctx);
  const Plan& pl = *job.pl;
  int64_t rem;
  const int64_t b = job.items->locate(item, &rem);
  const Seq& s = pl.seqs[b];
  const int64_t nqb = ceil_div(s.nq, kBM);
  BwdQTile t;
  t.b = b;
  t.h = rem / nqb;
  t.i0 = (nqb - 1 - rem % nqb) * kBM;
  t.rows = imin(kBM, s.nq - t.i0);
  job.ks->bwd_q_tile(pl, t, job.scratch + static_cast<size_t>(slot) * job.slot_bytes);
}

// Sizes of everything backward allocates, and how it cuts the work, computed from the
// sequences one at a time.
struct BwdSizes {
  int64_t vbs = 0;           // view batches
  size_t tables = 0;         // the Seq table and the item lists
  size_t delta_bytes = 0;
  size_t acc_bytes = 0;      // 0 in deterministic mode
  int64_t nlocks = 0;
  size_t slot_bytes = 0;
  int slots = 1;
  int64_t bwd_group = 1;     // Plan::bwd_group
  int64_t q_blocks = 1;      // Plan::q_blocks
  size_t total() const {
    return tables + delta_bytes + acc_bytes + slot_bytes * static_cast<size_t>(slots) +
           static_cast<size_t>(nlocks) * sizeof(std::mutex);
  }
};

BwdSizes bwd_sizes(const Impl& impl, const Plan& pl) {
  const Problem& p = *pl.p;
  BwdSizes z;
  z.vbs = p.q.shape[0];
  const bool det = (p.flags & UMFA_FLAG_DETERMINISTIC) != 0;
  z.tables = table_bytes(p, det ? 2 : 1);
  const size_t rows = static_cast<size_t>(z.vbs) * static_cast<size_t>(pl.hq) *
                      static_cast<size_t>(pl.q_rows);
  z.delta_bytes = round64(rows * sizeof(float));
  z.slots = impl.pool->threads();
  int64_t qblocks = 0, kblocks = 0, max_nq = 0;
  for (int64_t b = 0; b < pl.batch; ++b) {
    const Seq s = seq_of(p, b);
    qblocks += ceil_div(s.nq, kBM);
    kblocks += pl.hkv * ceil_div(s.nk, kBN);
    max_nq = imax(max_nq, s.nq);
  }
  if (!det) {
    z.acc_bytes = round64(rows * static_cast<size_t>(pl.d) * sizeof(float));
    z.nlocks = imax(1, imin(4096, qblocks * pl.hq));
  }
  // Key blocks per item: enough items to balance the threads (about 8 per thread), as many
  // blocks per item as that allows, so each query block is packed once for several of them.
  z.bwd_group = imax(1, imin(kBwdGroup, kblocks / (8 * static_cast<int64_t>(z.slots))));
  z.q_blocks = imax(1, ceil_div(max_nq, kBM));
  const size_t row_tmp = static_cast<size_t>(2 * round_up(pl.d, 16)) * sizeof(float);
  z.slot_bytes = round64(std::max(impl.ks->bwd_scratch_bytes(pl.d), row_tmp));
  return z;
}

umfa_status backward_impl(Impl& impl, const Problem& p) {
  std::vector<Seq> seqs;
  Plan pl;
  build_plan(p, seqs, pl);
  const BwdSizes z = bwd_sizes(impl, pl);
  const bool det = z.acc_bytes == 0;

  // Every allocation happens before the first output is written.
  Scratch delta(z.delta_bytes);
  Scratch acc(z.acc_bytes);
  Scratch scratch(z.slot_bytes * static_cast<size_t>(z.slots));
  std::unique_ptr<std::mutex[]> locks;
  if (z.nlocks > 0) locks.reset(new std::mutex[static_cast<size_t>(z.nlocks)]);
  Items kv_items, q_items;
  pl.bwd_group = z.bwd_group;
  build_items(pl, kv_items, [&](const Seq& s) { return pl.hkv * ceil_div(s.nk, pl.bwd_group * kBN); });
  if (det) build_items(pl, q_items, [&](const Seq& s) { return pl.hq * ceil_div(s.nq, kBM); });

  pl.delta = reinterpret_cast<float*>(delta.p);
  pl.dq_acc = det ? nullptr : reinterpret_cast<float*>(acc.p);
  pl.locks = locks.get();
  pl.nlocks = z.nlocks;
  pl.q_blocks = z.q_blocks;

  // (1) delta, and the zeroed dQ accumulator.
  const int64_t chunks = ceil_div(pl.q_rows, kRowChunk);
  RowJob rj{&pl, scratch.p, z.slot_bytes, chunks};
  const int64_t row_items = z.vbs * chunks;
  if (row_items > 0) {
    impl.pool->run(row_items, delta_item, &rj, slots_for(impl, row_items));
  }
  if (!det && z.acc_bytes > 0) std::memset(acc.p, 0, z.acc_bytes);

  // (2) dK, dV (and dQ contributions).
  BwdJob kj{&pl, impl.ks, &kv_items, scratch.p, z.slot_bytes};
  if (kv_items.total() > 0)
    impl.pool->run(kv_items.total(), bwd_kv_item, &kj, slots_for(impl, kv_items.total()));

  // (3) dQ.
  if (det) {
    BwdJob qj{&pl, impl.ks, &q_items, scratch.p, z.slot_bytes};
    if (q_items.total() > 0)
      impl.pool->run(q_items.total(), bwd_q_item, &qj, slots_for(impl, q_items.total()));
    for_uncovered_rows(p, pl.q_rows, p.cu_seqlens_q, [&](int64_t r) {
      for (int64_t h = 0; h < pl.hq; ++h)
        fill_row(p.dq.data, p.dq.dtype, voff(p.dq, 0, r, h), p.dq.strides[3], pl.d, 0.f);
    });
  } else if (row_items > 0) {
    impl.pool->run(row_items, dq_store_item, &rj, slots_for(impl, row_items));
  }

  // Varlen key rows outside every sequence: dk = dv = 0.
  for_uncovered_rows(p, pl.k_rows, p.cu_seqlens_k, [&](int64_t r) {
    for (int64_t h = 0; h < pl.hkv; ++h) {
      fill_row(p.dk.data, p.dk.dtype, voff(p.dk, 0, r, h), p.dk.strides[3], pl.d, 0.f);
      fill_row(p.dv.data, p.dv.dtype, voff(p.dv, 0, r, h), p.dv.strides[3], pl.d, 0.f);
    }
  });
  return UMFA_STATUS_OK;
}

// ---------------------------------------------------------------------------------------------
// Table entries.
// ---------------------------------------------------------------------------------------------

umfa_status create(int32_t /*device_index*/, int32_t num_threads, void** out_impl,
                   ErrorSink* err) {
  if (!out_impl) return UMFA_STATUS_NULL_POINTER;
  if (num_threads < 0) {
    report(err, "num_threads (%d) is negative", num_threads);
    return UMFA_STATUS_INVALID_ARGUMENT;
  }
  const int32_t threads = num_threads > 0 ? num_threads : default_threads();
  try {
    auto impl = std::make_unique<Impl>();
    impl->ks = select_kernels();
    impl->pool = std::make_unique<ThreadPool>(threads);
    *out_impl = impl.release();
    return UMFA_STATUS_OK;
  } catch (const std::bad_alloc&) {
    report(err, "out of memory starting %d CPU threads", threads);
    return UMFA_STATUS_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    report(err, "could not start %d CPU threads: %s", threads, e.what());
    return UMFA_STATUS_BACKEND_ERROR;
  }
}

void destroy(void* impl) { delete static_cast<Impl*>(impl); }

// Everything a call allocates: the tables, the per-thread scratch and the split-KV parts.
// Computed without allocating (a varlen batch can be long), so that a call over the context's
// workspace limit is refused before any allocation.
uint64_t forward_workspace(void* vimpl, const Problem* p) {
  if (!vimpl || !p) return 0;
  const Impl& impl = *static_cast<const Impl*>(vimpl);
  Plan pl;
  plan_scalars(*p, pl);
  const FwdCounts fc = fwd_counts(pl, impl.pool->threads());
  if (fc.items == 0) return table_bytes(*p, 1);
  pl.nsplit = fc.nsplit;
  return table_bytes(*p, 1) +
         round64(impl.ks->fwd_scratch_bytes(pl.d)) *
             static_cast<uint64_t>(slots_for(impl, fc.items * fc.nsplit)) +
         part_bytes(pl, p->q.shape[0], fc.nsplit);
}

uint64_t backward_workspace(void* vimpl, const Problem* p) {
  if (!vimpl || !p) return 0;
  const Impl& impl = *static_cast<const Impl*>(vimpl);
  Plan pl;
  plan_scalars(*p, pl);
  return bwd_sizes(impl, pl).total();
}

template <class Fn>
umfa_status guarded(const char* what, ErrorSink* err, Fn fn) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    report(err, "%s: out of memory for the CPU backend's scratch", what);
    return UMFA_STATUS_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    report(err, "%s: CPU backend failure: %s", what, e.what());
    return UMFA_STATUS_BACKEND_ERROR;
  } catch (...) {
    report(err, "%s: CPU backend failure", what);
    return UMFA_STATUS_BACKEND_ERROR;
  }
}

// The API layer validates every view; these checks only keep a broken caller from making the
// backend dereference null (a view with zero elements may be null).
bool has_data(const View& v) {
  return v.data != nullptr || v.shape[0] * v.shape[1] * v.shape[2] * v.shape[3] == 0;
}

umfa_status missing(ErrorSink* err, const char* what, const char* name) {
  report(err, "%s: internal error: the %s view has no data", what, name);
  return UMFA_STATUS_INTERNAL;
}

umfa_status bad_heads(ErrorSink* err, const char* what, const Problem& p) {
  report(err, "%s: internal error: heads_q %lld, heads_kv %lld, head_dim %lld", what,
         static_cast<long long>(p.heads_q), static_cast<long long>(p.heads_kv),
         static_cast<long long>(p.head_dim));
  return UMFA_STATUS_INTERNAL;
}

umfa_status forward(void* vimpl, const Problem* p, ErrorSink* err) {
  if (!vimpl || !p) return UMFA_STATUS_INTERNAL;
  if (!has_data(p->q)) return missing(err, "forward", "q");
  if (!has_data(p->k)) return missing(err, "forward", "k");
  if (!has_data(p->v)) return missing(err, "forward", "v");
  if (!has_data(p->out)) return missing(err, "forward", "out");
  if (p->heads_kv <= 0 || p->heads_q % p->heads_kv != 0 || p->head_dim <= 0)
    return bad_heads(err, "forward", *p);
  return guarded("forward", err, [&] { return forward_impl(*static_cast<Impl*>(vimpl), *p); });
}

umfa_status backward(void* vimpl, const Problem* p, ErrorSink* err) {
  if (!vimpl || !p) return UMFA_STATUS_INTERNAL;
  const View* views[] = {&p->q, &p->k, &p->v, &p->out, &p->dout, &p->lse, &p->dq, &p->dk, &p->dv};
  const char* names[] = {"q", "k", "v", "out", "dout", "lse", "dq", "dk", "dv"};
  for (int i = 0; i < 9; ++i)
    if (!has_data(*views[i])) return missing(err, "backward", names[i]);
  if (p->heads_kv <= 0 || p->heads_q % p->heads_kv != 0 || p->head_dim <= 0)
    return bad_heads(err, "backward", *p);
  return guarded("backward", err, [&] { return backward_impl(*static_cast<Impl*>(vimpl), *p); });
}

umfa_status merge(void* vimpl, const MergeProblem* p, ErrorSink* err) {
  if (!vimpl || !p) return UMFA_STATUS_INTERNAL;
  const View* views[] = {&p->out, &p->lse, &p->part_out, &p->part_lse};
  const char* names[] = {"out", "lse", "part_out", "part_lse"};
  for (int i = 0; i < 4; ++i)
    if (!has_data(*views[i])) return missing(err, "merge", names[i]);
  return guarded("merge", err, [&] {
    merge_rows(*static_cast<Impl*>(vimpl)->pool, *p);
    return UMFA_STATUS_OK;
  });
}

umfa_status alloc(void*, uint64_t bytes, void** out_ptr, ErrorSink* err) {
  if (!out_ptr) return UMFA_STATUS_NULL_POINTER;
  if (bytes > static_cast<uint64_t>(SIZE_MAX) - 128) {
    report(err, "cannot allocate %llu bytes", static_cast<unsigned long long>(bytes));
    return UMFA_STATUS_OUT_OF_MEMORY;
  }
  const size_t n = round64(bytes == 0 ? 1 : static_cast<size_t>(bytes));
  void* q = platform::aligned_alloc(64, n);
  if (!q) {
    report(err, "cannot allocate %llu bytes", static_cast<unsigned long long>(bytes));
    return UMFA_STATUS_OUT_OF_MEMORY;
  }
  std::memset(q, 0, n);
  *out_ptr = q;
  return UMFA_STATUS_OK;
}

void release(void*, void* ptr) { platform::aligned_free(ptr); }

umfa_status copy(void*, void* dst, const void* src, uint64_t bytes, ErrorSink*) {
  if (bytes == 0) return UMFA_STATUS_OK;
  if (!dst || !src) return UMFA_STATUS_NULL_POINTER;
  std::memmove(dst, src, static_cast<size_t>(bytes));
  return UMFA_STATUS_OK;
}

int32_t device_count() { return 1; }

const BackendTable kTable = {sizeof(BackendTable),
                             "cpu",
                             create,
                             destroy,
                             forward_workspace,
                             backward_workspace,
                             forward,
                             backward,
                             alloc,
                             release,
                             copy,
                             copy,
                             device_count,
                             merge};

}  // namespace

const BackendTable* backend_table() { return &kTable; }

const char* kernel_isa() {
  static const char* name = select_kernels()->name;
  return name;
}

const char* context_isa(const void* impl) {
  return impl ? static_cast<const Impl*>(impl)->ks->name : "";
}

int32_t context_threads(const void* impl) {
  return impl ? static_cast<const Impl*>(impl)->pool->threads() : 0;
}

}  // namespace cpu
}  // namespace umfa
