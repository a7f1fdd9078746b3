// metal_sim_core.h — the interface between the simulated Metal standard library (metal_stdlib in
// this folder) and the simulator's runtime (runtime.cpp). Kernels never include this directly.
#ifndef METAL_SIM_CORE_H
#define METAL_SIM_CORE_H

#include <cstddef>
#include <cstdint>

namespace metal_sim {

// Bytes each lane may contribute to, and receive from, one simdgroup-collective operation.
constexpr std::size_t kLaneSlotBytes = 128;
constexpr unsigned kSimdWidth = 32;

struct Dim3 {
  uint32_t x, y, z;
};

// What the executing fiber (one Metal thread) knows about its place in the dispatch.
struct ThreadPosition {
  Dim3 thread_in_threadgroup;
  Dim3 threadgroup_in_grid;
  Dim3 threads_per_threadgroup;
  Dim3 threadgroups_per_grid;
  uint32_t index_in_threadgroup;
  uint32_t lane;           // thread_index_in_simdgroup
  uint32_t simdgroup;      // simdgroup_index_in_threadgroup
  uint32_t simdgroups;     // simdgroups_per_threadgroup
  uint32_t lanes_in_simdgroup;
};

// Calls below are valid only from inside a kernel running under metal_sim::dispatch.
const ThreadPosition& current_position();
void* bound_buffer(unsigned index);             // fails the dispatch if nothing is bound there
void* bound_threadgroup_memory(unsigned index); // fails the dispatch if no length was set
bool function_constant_defined(unsigned index);
uint64_t function_constant_bits(unsigned index);  // fails the dispatch if the constant is unbound

void threadgroup_barrier_wait();
void simdgroup_barrier_wait();

// One simdgroup-collective operation. Every lane of the simdgroup must call it with the same
// combine function, in the same order relative to its other collectives (Metal's rule for
// simd_* functions called in uniform control flow); the simulator fails the dispatch otherwise.
// `in` (in_size bytes) is this lane's contribution; when all lanes have arrived, the last one calls
// combine once with all contributions (in_all[lane * kLaneSlotBytes]) and it writes each lane's
// result to out_all[lane * kLaneSlotBytes]; every lane then copies out_size bytes of its own.
using CombineFn = void (*)(const unsigned char* in_all, unsigned char* out_all, unsigned lanes);
void simd_collective(CombineFn combine, const void* in, std::size_t in_size, void* out,
                     std::size_t out_size);

[[noreturn]] void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace metal_sim

#endif
