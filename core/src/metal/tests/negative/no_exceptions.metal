// Metal: no exceptions.
// expect-error: cannot use 'throw' with exceptions disabled
#include "umfa_msl.h"
using namespace metal;
kernel void neg(device float* out UMFA_BUFFER(0), uint gid UMFA_THREAD_POSITION_IN_GRID) {
#ifdef UMFA_NEGATIVE
  if (gid > 1000u) throw 1;
#endif
  out[gid] = 1.0f;
}
