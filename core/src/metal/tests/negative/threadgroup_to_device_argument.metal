// Metal: a threadgroup pointer cannot be passed where a device pointer is expected.
// expect-error: no matching function for call to 'store_one'
#include "umfa_msl.h"
using namespace metal;
inline void store_one(device float* p, uint i) { p[i] = 1.0f; }
inline void store_one_tg(threadgroup float* p, uint i) { p[i] = 1.0f; }
kernel void neg(device float* out UMFA_BUFFER(0), threadgroup float* tg UMFA_THREADGROUP(0),
                uint tid UMFA_THREAD_INDEX_IN_THREADGROUP) {
#ifdef UMFA_NEGATIVE
  store_one(tg, tid);
#else
  store_one_tg(tg, tid);
#endif
  store_one(out, tid);
}
