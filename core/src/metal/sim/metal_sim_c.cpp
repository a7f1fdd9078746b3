// metal_sim_c.cpp — the C interface of metal_sim_c.h over runtime.h.
#include "metal_sim_c.h"

#include <cstdio>
#include <cstring>
#include <new>

#include "runtime.h"

using namespace metal_sim;

extern "C" int metal_sim_c_has_kernel(const char* name) { return name && find_kernel(name) ? 1 : 0; }

extern "C" void* metal_sim_c_alloc(size_t length, const char* name, void** handle) {
  Allocation* a = new (std::nothrow) Allocation(length, Guard::after, name ? name : "buffer");
  *handle = a;
  return a ? a->data() : nullptr;
}

extern "C" void metal_sim_c_free(void* handle) { delete static_cast<Allocation*>(handle); }

extern "C" int metal_sim_c_dispatch(const char* kernel, const uint64_t* fc_bits, uint64_t fc_defined,
                                    const metal_sim_c_binding* buffers, unsigned buffer_count,
                                    const size_t* threadgroup_lengths, unsigned threadgroup_count,
                                    const unsigned threadgroups[3], const unsigned threads_per_threadgroup[3],
                                    char* err, size_t err_size) {
  DispatchDesc d;
  d.kernel = find_kernel(kernel);
  d.kernel_name = kernel;
  if (!d.kernel) {
    std::snprintf(err, err_size, "no kernel named %s", kernel);
    return -1;
  }
  for (unsigned i = 0; i < 64; ++i) d.constants.bits[i] = fc_bits[i];
  d.constants.defined = fc_defined;
  for (unsigned i = 0; i < buffer_count; ++i) d.buffers.push_back({buffers[i].data, buffers[i].length});
  for (unsigned i = 0; i < threadgroup_count; ++i) d.threadgroup_memory.push_back(threadgroup_lengths[i]);
  d.threadgroup_guard = Guard::after;
  d.threadgroups = {threadgroups[0], threadgroups[1], threadgroups[2]};
  d.threads_per_threadgroup = {threads_per_threadgroup[0], threads_per_threadgroup[1], threads_per_threadgroup[2]};
  const std::string e = dispatch(d);
  if (e.empty()) return 0;
  std::snprintf(err, err_size, "%s", e.c_str());
  return -1;
}
