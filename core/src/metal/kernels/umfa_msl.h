// umfa_msl.h — the one place where umfa's Metal Shading Language sources differ between the
// Metal compiler and the Linux simulator (core/src/metal/sim).
//
// MSL binds kernel arguments with attributes such as [[buffer(0)]] and
// [[thread_index_in_simdgroup]]. Those are not C++ attributes: clang would ignore them with a
// warning, and the simulator would lose the binding they express. Kernel signatures therefore use
// the macros below. Under Metal (__METAL_VERSION__ defined) each expands to exactly the MSL
// attribute, so the source a Mac compiles is plain MSL. In the simulator each expands to a default
// argument whose value the simulator supplies at dispatch (the buffer bound at that index, the
// calling fiber's position in the grid, ...), so a kernel is called with no arguments and every
// parameter receives what Metal would have bound to it.
//
// Function constants are declared with UMFA_FUNCTION_CONSTANT(type, name, index): under Metal
// `constant type name [[function_constant(index)]];`, in the simulator an object that reads the
// value bound when the pipeline was created.
//
// The host concatenates this header in front of each kernel source before newLibraryWithSource
// (Metal's runtime compiler resolves no local #include), so the kernels include it with a guard.
#ifndef UMFA_MSL_H
#define UMFA_MSL_H

#include <metal_stdlib>

#if defined(__METAL_VERSION__)
#define UMFA_BUFFER(n) [[buffer(n)]]
#define UMFA_THREADGROUP(n) [[threadgroup(n)]]
#define UMFA_THREAD_POSITION_IN_GRID [[thread_position_in_grid]]
#define UMFA_THREAD_POSITION_IN_THREADGROUP [[thread_position_in_threadgroup]]
#define UMFA_THREAD_INDEX_IN_THREADGROUP [[thread_index_in_threadgroup]]
#define UMFA_THREADGROUP_POSITION_IN_GRID [[threadgroup_position_in_grid]]
#define UMFA_THREADS_PER_THREADGROUP [[threads_per_threadgroup]]
#define UMFA_THREADGROUPS_PER_GRID [[threadgroups_per_grid]]
#define UMFA_THREAD_INDEX_IN_SIMDGROUP [[thread_index_in_simdgroup]]
#define UMFA_SIMDGROUP_INDEX_IN_THREADGROUP [[simdgroup_index_in_threadgroup]]
#define UMFA_SIMDGROUPS_PER_THREADGROUP [[simdgroups_per_threadgroup]]
#define UMFA_FUNCTION_CONSTANT(type, name, index) constant type name [[function_constant(index)]];
#else
#define UMFA_BUFFER(n) = ::metal_sim::arg::buffer(n)
#define UMFA_THREADGROUP(n) = ::metal_sim::arg::threadgroup_memory(n)
#define UMFA_THREAD_POSITION_IN_GRID = ::metal_sim::arg::thread_position_in_grid()
#define UMFA_THREAD_POSITION_IN_THREADGROUP = ::metal_sim::arg::thread_position_in_threadgroup()
#define UMFA_THREAD_INDEX_IN_THREADGROUP = ::metal_sim::arg::thread_index_in_threadgroup()
#define UMFA_THREADGROUP_POSITION_IN_GRID = ::metal_sim::arg::threadgroup_position_in_grid()
#define UMFA_THREADS_PER_THREADGROUP = ::metal_sim::arg::threads_per_threadgroup()
#define UMFA_THREADGROUPS_PER_GRID = ::metal_sim::arg::threadgroups_per_grid()
#define UMFA_THREAD_INDEX_IN_SIMDGROUP = ::metal_sim::arg::thread_index_in_simdgroup()
#define UMFA_SIMDGROUP_INDEX_IN_THREADGROUP = ::metal_sim::arg::simdgroup_index_in_threadgroup()
#define UMFA_SIMDGROUPS_PER_THREADGROUP = ::metal_sim::arg::simdgroups_per_threadgroup()
#define UMFA_FUNCTION_CONSTANT(type, name, index) \
  static const ::metal_sim::function_constant<type, index> name{};
#endif

// Element access for every input dtype, in float. Under Metal these are plain conversions; the
// simulator adds overloads for bfloat, whose objects it can only reach by their bits outside
// thread memory (see sim/metal_stdlib).
template <class T>
inline float umfa_load(const device T* p, ulong i) { return float(p[i]); }
template <class T>
inline float umfa_load(const threadgroup T* p, ulong i) { return float(p[i]); }
template <class T>
inline void umfa_store(device T* p, ulong i, float v) { p[i] = T(v); }
template <class T>
inline void umfa_store(threadgroup T* p, ulong i, float v) { p[i] = T(v); }
#if !defined(__METAL_VERSION__)
inline float umfa_load(const device bfloat* p, ulong i) { return metal_sim::bfloat_bits_to_float(p[i].bits); }
inline float umfa_load(const threadgroup bfloat* p, ulong i) { return metal_sim::bfloat_bits_to_float(p[i].bits); }
inline void umfa_store(device bfloat* p, ulong i, float v) { p[i].bits = metal_sim::float_to_bfloat_bits(v); }
inline void umfa_store(threadgroup bfloat* p, ulong i, float v) { p[i].bits = metal_sim::float_to_bfloat_bits(v); }
#endif

#endif  // UMFA_MSL_H
