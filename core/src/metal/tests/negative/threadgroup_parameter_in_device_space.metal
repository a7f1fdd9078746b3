// Metal: a [[threadgroup(n)]] parameter must be in the threadgroup address space.
// expect-error: a [[threadgroup(n)]] parameter must point into threadgroup memory
#include "umfa_msl.h"
using namespace metal;
#ifdef UMFA_NEGATIVE
kernel void neg(device float* tg UMFA_THREADGROUP(0), uint tid UMFA_THREAD_INDEX_IN_THREADGROUP) {
#else
kernel void neg(threadgroup float* tg UMFA_THREADGROUP(0), uint tid UMFA_THREAD_INDEX_IN_THREADGROUP) {
#endif
  tg[tid] = 1.0f;
}
namespace { [[maybe_unused]] void call() { neg(); } }
