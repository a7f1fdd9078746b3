// Metal: memory in the constant address space is read-only.
// expect-error: read-only variable is not assignable
#include "umfa_msl.h"
using namespace metal;
kernel void neg(constant float* in UMFA_BUFFER(0), device float* out UMFA_BUFFER(1),
                uint gid UMFA_THREAD_POSITION_IN_GRID) {
#ifdef UMFA_NEGATIVE
  in[gid] = 0.0f;
#endif
  out[gid] = in[gid];
}
