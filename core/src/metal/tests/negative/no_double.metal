// Metal: no double-precision type.
// expect-error: attempt to use a poisoned identifier
#include "umfa_msl.h"
using namespace metal;
kernel void neg(device float* out UMFA_BUFFER(0), uint gid UMFA_THREAD_POSITION_IN_GRID) {
#ifdef UMFA_NEGATIVE
  double x = 1.0;
#else
  float x = 1.0f;
#endif
  out[gid] = float(x);
}
