// Kernels that exercise the simulator itself (tests/sim_tests.cpp checks their results).
#include "umfa_msl.h"
using namespace metal;

// Every thread increments a threadgroup counter, then waits at a barrier; after it, every thread
// must see the final count. A second phase reads a neighbour's slot written before a barrier.
kernel void sim_barrier_order(device uint* out UMFA_BUFFER(0),
                              threadgroup uint* scratch UMFA_THREADGROUP(0),
                              uint tid UMFA_THREAD_INDEX_IN_THREADGROUP,
                              uint n UMFA_THREADS_PER_THREADGROUP,
                              uint group UMFA_THREADGROUP_POSITION_IN_GRID) {
  if (tid == 0) scratch[0] = 0;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  scratch[0] = scratch[0] + 1;  // no races: one thread runs at a time in the simulator
  threadgroup_barrier(mem_flags::mem_threadgroup);
  const uint seen = scratch[0];
  threadgroup_barrier(mem_flags::mem_threadgroup);
  scratch[1 + tid] = tid * 3 + group;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[(group * n + tid) * 2 + 0] = seen;
  out[(group * n + tid) * 2 + 1] = scratch[1 + (tid + 1) % n];
}

// A barrier that only half of the threads reach: the simulator must report a deadlock.
kernel void sim_divergent_barrier(device uint* out UMFA_BUFFER(0),
                                  uint tid UMFA_THREAD_INDEX_IN_THREADGROUP) {
  if (tid % 2 == 0) threadgroup_barrier(mem_flags::mem_threadgroup);
  out[tid] = tid;
}

// Lanes of one simdgroup reaching different simd functions.
kernel void sim_divergent_collective(device float* out UMFA_BUFFER(0),
                                     uint lane UMFA_THREAD_INDEX_IN_SIMDGROUP) {
  float v = float(lane);
  out[lane] = lane < 16 ? simd_sum(v) : simd_max(v);
}

// Every reduction and shuffle, for float and int.
kernel void sim_simd_ops(device const float* fin UMFA_BUFFER(0),
                         device const int* iin UMFA_BUFFER(1),
                         device float* fout UMFA_BUFFER(2),
                         device int* iout UMFA_BUFFER(3),
                         uint gid UMFA_THREAD_POSITION_IN_GRID,
                         ushort lane UMFA_THREAD_INDEX_IN_SIMDGROUP) {
  const float f = fin[gid];
  const int i = iin[gid];
  device float* fo = fout + gid * 16;
  device int* io = iout + gid * 16;
  fo[0] = simd_sum(f);
  fo[1] = simd_max(f);
  fo[2] = simd_min(f);
  fo[3] = simd_product(f);
  fo[4] = simd_shuffle(f, ushort((lane * 7 + 3) % 32));
  fo[5] = simd_shuffle_xor(f, ushort(5));
  fo[6] = simd_shuffle_down(f, ushort(3));
  fo[7] = simd_shuffle_up(f, ushort(3));
  fo[8] = simd_shuffle_rotate_down(f, ushort(3));
  fo[9] = simd_shuffle_rotate_up(f, ushort(3));
  fo[10] = simd_broadcast(f, ushort(17));
  fo[11] = simd_broadcast_first(f);
  const float2 pair = simd_sum(float2(f, 2.0f * f));
  fo[12] = pair.x;
  fo[13] = pair.y;
  simdgroup_barrier(mem_flags::mem_none);
  fo[15] = simd_sum(half(f));
  io[0] = simd_sum(i);
  io[1] = simd_max(i);
  io[2] = simd_min(i);
  io[3] = simd_shuffle_xor(i, ushort(31));
  io[4] = simd_shuffle_down(i, ushort(1));
  io[5] = simd_broadcast(i, ushort(0));
  io[6] = simd_and(i);
  io[7] = simd_or(i);
  io[8] = simd_xor(i);
  io[9] = simd_prefix_inclusive_sum(i);
  io[10] = simd_prefix_exclusive_sum(i);
  io[11] = simd_all(i > -1000) ? 1 : 0;
  io[12] = simd_any(i > 990) ? 1 : 0;
  io[13] = simd_all(lane < 32) ? 1 : 0;
  fo[14] = simd_prefix_inclusive_product(f);  // (the half round trip moved below)
  io[14] = int(simd_prefix_exclusive_product(f) * 1000.0f);
}

// D = A * B + C on one simdgroup; A and B of type T loaded from device memory (B optionally
// transposed), C from threadgroup memory.
template <typename T>
void sim_mma_impl(device const T* a, device const T* b, device const float* c, device float* d,
                  threadgroup float* c_tg, uint lane, bool transpose_b) {
  for (uint k = lane; k < 64; k += 32) c_tg[k] = c[k];
  simdgroup_barrier(mem_flags::mem_threadgroup);
  simdgroup_matrix<T, 8, 8> ma, mb;
  simdgroup_float8x8 mc, md;
  simdgroup_load(ma, a, 8);
  simdgroup_load(mb, b, 8, ulong2(0, 0), transpose_b);
  simdgroup_load(mc, c_tg, 8);
  simdgroup_multiply_accumulate(md, ma, mb, mc);
  simdgroup_store(md, d, 8);
}

UMFA_FUNCTION_CONSTANT(bool, SIM_TRANSPOSE_B, 0)

kernel void sim_mma_f32(device const float* a UMFA_BUFFER(0), device const float* b UMFA_BUFFER(1),
                        device const float* c UMFA_BUFFER(2), device float* d UMFA_BUFFER(3),
                        threadgroup float* c_tg UMFA_THREADGROUP(0),
                        uint lane UMFA_THREAD_INDEX_IN_SIMDGROUP) {
  sim_mma_impl(a, b, c, d, c_tg, lane, SIM_TRANSPOSE_B);
}
kernel void sim_mma_f16(device const half* a UMFA_BUFFER(0), device const half* b UMFA_BUFFER(1),
                        device const float* c UMFA_BUFFER(2), device float* d UMFA_BUFFER(3),
                        threadgroup float* c_tg UMFA_THREADGROUP(0),
                        uint lane UMFA_THREAD_INDEX_IN_SIMDGROUP) {
  sim_mma_impl(a, b, c, d, c_tg, lane, SIM_TRANSPOSE_B);
}
kernel void sim_mma_bf16(device const bfloat* a UMFA_BUFFER(0), device const bfloat* b UMFA_BUFFER(1),
                         device const float* c UMFA_BUFFER(2), device float* d UMFA_BUFFER(3),
                         threadgroup float* c_tg UMFA_THREADGROUP(0),
                         uint lane UMFA_THREAD_INDEX_IN_SIMDGROUP) {
  sim_mma_impl(a, b, c, d, c_tg, lane, SIM_TRANSPOSE_B);
}

// Which elements of a simdgroup_matrix each lane holds: element (r, c) has the value r * 8 + c.
kernel void sim_thread_elements(device const float* m UMFA_BUFFER(0), device float* out UMFA_BUFFER(1),
                                uint lane UMFA_THREAD_INDEX_IN_SIMDGROUP) {
  simdgroup_float8x8 x;
  simdgroup_load(x, m, 8);
  out[lane * 2 + 0] = x.thread_elements()[0];
  out[lane * 2 + 1] = x.thread_elements()[1];
  simdgroup_float8x8 diag(2.0f);
  out[64 + lane * 2 + 0] = diag.thread_elements()[0];
  out[64 + lane * 2 + 1] = diag.thread_elements()[1];
}

// Out-of-bounds accesses: `reach` elements past the end (or before the start) of a buffer.
UMFA_FUNCTION_CONSTANT(int, SIM_REACH, 1)
kernel void sim_oob_device_write(device float* out UMFA_BUFFER(0),
                                 uint gid UMFA_THREAD_POSITION_IN_GRID) {
  out[int(gid) + SIM_REACH] = 1.0f;
}
kernel void sim_oob_device_read(device const float* in UMFA_BUFFER(0), device float* out UMFA_BUFFER(1),
                                uint gid UMFA_THREAD_POSITION_IN_GRID) {
  out[gid] = in[int(gid) + SIM_REACH];
}
kernel void sim_oob_threadgroup(device float* out UMFA_BUFFER(0), threadgroup float* tg UMFA_THREADGROUP(0),
                                uint tid UMFA_THREAD_INDEX_IN_THREADGROUP) {
  tg[int(tid) + SIM_REACH] = 1.0f;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[tid] = tg[tid];
}

// Function constants: the value bound to the pipeline.
UMFA_FUNCTION_CONSTANT(uint, SIM_SCALE, 2)
kernel void sim_function_constant(device uint* out UMFA_BUFFER(0), uint gid UMFA_THREAD_POSITION_IN_GRID) {
  out[gid] = is_function_constant_defined(SIM_SCALE) ? gid * SIM_SCALE : 7u;
}
