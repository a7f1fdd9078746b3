// Metal: a kernel's [[buffer(n)]] parameter must be in the device or constant address space.
// expect-error: a [[buffer(n)]] parameter must point into device or constant memory
#include "umfa_msl.h"
using namespace metal;
#ifdef UMFA_NEGATIVE
kernel void neg(float* out UMFA_BUFFER(0), uint gid UMFA_THREAD_POSITION_IN_GRID) {
#else
kernel void neg(device float* out UMFA_BUFFER(0), uint gid UMFA_THREAD_POSITION_IN_GRID) {
#endif
  out[gid] = 1.0f;
}
namespace { [[maybe_unused]] void call() { neg(); } }
