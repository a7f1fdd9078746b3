// Metal: a thread reference cannot bind to an object in device memory.
// expect-error: binding reference of type 'float' to value of type 'device float'
#include "umfa_msl.h"
using namespace metal;
kernel void neg(device float* out UMFA_BUFFER(0), uint gid UMFA_THREAD_POSITION_IN_GRID) {
#ifdef UMFA_NEGATIVE
  thread float& r = out[gid];
#else
  device float& r = out[gid];
#endif
  r = 2.0f;
}
