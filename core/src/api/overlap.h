// Whether two strided views share memory (validation of outputs against the other tensors of a
// call).
#pragma once

#include "umfa.h"

namespace umfa {
namespace api {

enum class Overlap {
  kDisjoint,   // no byte of one view is a byte of the other
  kShared,     // at least one byte is in both
  kUndecided,  // the bounded search gave up (strides interleaving in unusual ways)
};

// Both views must have passed the per-tensor checks (non-negative strides, byte offsets that fit
// the address space). An empty view shares nothing.
//
// Views whose byte ranges intersect are not necessarily overlapping: dq, dk and dv interleaved in
// one packed [batch, seqlen, 3, heads, head_dim] buffer never share a byte. The answer is exact:
// a bounded search for element indices that put a byte of each view at the same address.
Overlap views_overlap(const umfa_tensor& a, const umfa_tensor& b);

}  // namespace api
}  // namespace umfa
