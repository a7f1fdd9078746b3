// Metal: no dynamic memory allocation.
// expect-error: attempt to use a poisoned identifier
#include "umfa_msl.h"
using namespace metal;
kernel void neg(device float* out UMFA_BUFFER(0), uint gid UMFA_THREAD_POSITION_IN_GRID) {
#ifdef UMFA_NEGATIVE
  void* p = malloc(4);
  (void)p;
#endif
  out[gid] = 1.0f;
}
