// The CPU backend's umfa_attention_merge: one partial attention result accumulated into a
// running one, row by row, on the context's thread pool.
#pragma once

#include "backend.h"
#include "thread_pool.h"

namespace umfa {
namespace cpu {

// Writes every element of p.out and p.lse (host memory); reads p.part_out and p.part_lse.
void merge_rows(ThreadPool& pool, const MergeProblem& p);

}  // namespace cpu
}  // namespace umfa
