// Metal: a device pointer does not convert to a thread (default address space) pointer.
// expect-error: cannot initialize a variable of type 'float *'
#include "umfa_msl.h"
using namespace metal;
kernel void neg(device float* out UMFA_BUFFER(0), uint gid UMFA_THREAD_POSITION_IN_GRID) {
#ifdef UMFA_NEGATIVE
  float* p = out;
#else
  device float* p = out;
#endif
  p[gid] = 1.0f;
}
