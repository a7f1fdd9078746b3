// runtime.h — the simulator's host-side interface: memory, kernels, pipelines and dispatch.
// Used by the simulator's tests, the kernel harness and (later) the stand-in Metal API.
// Include before any .metal source (which defines MSL keywords as macros).
#ifndef METAL_SIM_RUNTIME_H
#define METAL_SIM_RUNTIME_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "metal_sim_core.h"

namespace metal_sim {

// Where out-of-bounds accesses are caught. `none`: plain memory. `after`: the allocation ends
// exactly where an inaccessible page begins, so an access to its first byte past the end faults;
// `before`: it starts where an inaccessible page ends, so an access before its start faults.
// A fault in a guard page of a live allocation fails the dispatch with the allocation's name and
// the offset; any other fault is a real crash.
enum class Guard { none, after, before };

class Allocation {
 public:
  Allocation() = default;
  Allocation(std::size_t length, Guard guard, std::string name);
  ~Allocation();
  Allocation(Allocation&& o) noexcept;
  Allocation& operator=(Allocation&& o) noexcept;
  Allocation(const Allocation&) = delete;
  Allocation& operator=(const Allocation&) = delete;
  void* data() const { return data_; }
  std::size_t length() const { return length_; }

 private:
  void release();
  void* data_ = nullptr;
  std::size_t length_ = 0;
  void* map_ = nullptr;
  std::size_t map_length_ = 0;
  int registry_slot_ = -1;
};

using KernelFn = void (*)();

// Kernels compiled from .metal sources register themselves by their MSL function name.
void register_kernel(const char* name, KernelFn fn);
KernelFn find_kernel(const std::string& name);  // nullptr when unknown
std::vector<std::string> kernel_names();

// The order in which the scheduler resumes the runnable threads of a threadgroup: a correct
// kernel gives the same result under every order (a race shows up as a difference).
enum class Schedule { in_order, reverse, shuffled };

struct FunctionConstants {
  uint64_t bits[64] = {};
  uint64_t defined = 0;
  template <class T>
  void set(unsigned index, T value) {
    static_assert(sizeof(T) <= 8, "scalar function constants only");
    uint64_t b = 0;
    __builtin_memcpy(&b, &value, sizeof(T));
    bits[index] = b;
    defined |= uint64_t(1) << index;
  }
};

struct BufferBinding {
  void* data = nullptr;
  std::size_t length = 0;
};

struct DispatchDesc {
  KernelFn kernel = nullptr;
  const char* kernel_name = "";
  FunctionConstants constants;
  std::vector<BufferBinding> buffers;          // index = [[buffer(n)]]
  std::vector<std::size_t> threadgroup_memory;  // index = [[threadgroup(n)]], lengths in bytes
  Dim3 threadgroups{1, 1, 1};                   // dispatchThreadgroups:
  Dim3 threads_per_threadgroup{1, 1, 1};        //   threadsPerThreadgroup:
  Schedule schedule = Schedule::in_order;
  uint64_t seed = 1;
  Guard threadgroup_guard = Guard::none;  // checked mode for threadgroup memory
};

struct DispatchStats {
  uint64_t threads = 0, context_switches = 0, barriers = 0, collectives = 0;
};

// Runs the grid; returns "" on success, else why the dispatch failed (a deadlock, a divergent
// collective, an out-of-bounds access caught by a guard, an unbound argument, ...).
std::string dispatch(const DispatchDesc& desc, DispatchStats* stats = nullptr);

}  // namespace metal_sim

#endif
