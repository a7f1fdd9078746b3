// umfa_attention_merge on the CPU (merge.h). Per row and head, in f32:
//   LSE' = m + log1p(e),  e = exp(LSE_other - m),  m = max(LSE, LSE_part)
//   O'   = w_out * O + w_part * O_part  with the weights exp(LSE - LSE'), exp(LSE_part - LSE').
// The row loops are the plain strided load/scale/store loops of cpu_common.h, which the
// compiler vectorizes for contiguous rows; merging is O(rows * head_dim), far below the
// forward that produced the parts.
#include "merge.h"

#include <cmath>

#include "cpu_common.h"

namespace umfa {
namespace cpu {
namespace {

// Rows per work item are chosen for about this many output elements each, so that a small
// call stays on the calling thread and a large one is split evenly.
constexpr int64_t kElementsPerItem = int64_t(1) << 14;

// The weights of one row: O' = w_out * O + w_part * O_part, and the merged LSE.
struct RowWeights {
  float w_out, w_part, lse;
};

RowWeights row_weights(float lse, float part_lse) {
  // A NaN on either side reaches m or e, and from there every result.
  const bool out_is_max = lse > part_lse;
  const float m = out_is_max ? lse : part_lse;
  if (m == -kInf) return {0.f, 0.f, -kInf};  // neither side sees a key: O' = 0
  const float e = std::exp((out_is_max ? part_lse : lse) - m);  // 0 when the other is -inf
  const float w_max = 1.f / (1.f + e), w_other = e * w_max;
  return {out_is_max ? w_max : w_other, out_is_max ? w_other : w_max, m + std::log1p(e)};
}

struct MergeJob {
  const MergeProblem* p;
  int64_t rows;           // batch * seqlen
  int64_t rows_per_item;
};

void merge_item(void* ctx, int64_t item, int /*slot*/) {
  const MergeJob& job = *static_cast<const MergeJob*>(ctx);
  const MergeProblem& p = *job.p;
  const int64_t d = p.head_dim;
  float acc[UMFA_MAX_HEAD_DIM], part[UMFA_MAX_HEAD_DIM];
  const int64_t first = item * job.rows_per_item;
  const int64_t last = imin(first + job.rows_per_item, job.rows);
  for (int64_t row = first; row < last; ++row) {
    const int64_t b = row / p.seqlen, n = row % p.seqlen;
    for (int64_t h = 0; h < p.heads; ++h) {
      float& lse = static_cast<float*>(p.lse.data)[voff(p.lse, b, h, n)];
      const float part_lse = static_cast<const float*>(p.part_lse.data)[voff(p.part_lse, b, h, n)];
      const RowWeights w = row_weights(lse, part_lse);
      const int64_t out_off = voff(p.out, b, n, h);
      // A side of weight 0 is never read: its out may hold anything (even NaN).
      if (w.w_out != 0.f) {
        load_row(p.out.data, p.out.dtype, out_off, p.out.strides[3], d, w.w_out, acc);
      } else {
        for (int64_t c = 0; c < d; ++c) acc[c] = 0.f;
      }
      if (w.w_part != 0.f) {
        load_row(p.part_out.data, p.part_out.dtype, voff(p.part_out, b, n, h),
                 p.part_out.strides[3], d, w.w_part, part);
        for (int64_t c = 0; c < d; ++c) acc[c] += part[c];
      }
      store_row(p.out.data, p.out.dtype, out_off, p.out.strides[3], d, 1.f, acc);
      lse = w.lse;
    }
  }
}

}  // namespace

void merge_rows(ThreadPool& pool, const MergeProblem& p) {
  MergeJob job;
  job.p = &p;
  job.rows = p.batch * p.seqlen;
  job.rows_per_item = imax(1, kElementsPerItem / imax(1, p.heads * p.head_dim));
  const int64_t items = ceil_div(job.rows, job.rows_per_item);
  if (items == 0) return;
  const int slots = static_cast<int>(imax(1, imin(pool.threads(), items)));
  pool.run(items, merge_item, &job, slots);
}

}  // namespace cpu
}  // namespace umfa
