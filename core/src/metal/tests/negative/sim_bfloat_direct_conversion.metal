// The simulator's own restriction (valid MSL, rejected here rather than run wrongly): a bfloat in
// device memory is read through umfa_load, since clang cannot call bfloat's conversion on an
// object in another address space.
// expect-error: no matching conversion for functional-style cast
#include "umfa_msl.h"
using namespace metal;
kernel void neg(device const bfloat* in UMFA_BUFFER(0), device float* out UMFA_BUFFER(1),
                uint gid UMFA_THREAD_POSITION_IN_GRID) {
#ifdef UMFA_NEGATIVE
  out[gid] = float(in[gid]);
#else
  out[gid] = umfa_load(in, gid);
#endif
}
