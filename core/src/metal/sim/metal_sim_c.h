/* metal_sim_c.h — a C interface to the simulator's runtime, for the stand-in Metal API
 * (host/standin, Objective-C) that cannot include C++ headers. */
#ifndef METAL_SIM_C_H
#define METAL_SIM_C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct metal_sim_c_binding {
  void* data;
  size_t length;
} metal_sim_c_binding;

/* 1 when a kernel of that MSL name was compiled into this program. */
int metal_sim_c_has_kernel(const char* name);

/* Memory with a guard page right after its last byte (out-of-bounds accesses fail the dispatch).
 * Returns the data pointer; *handle is what metal_sim_c_free releases. */
void* metal_sim_c_alloc(size_t length, const char* name, void** handle);
void metal_sim_c_free(void* handle);

/* Runs one dispatchThreadgroups:threadsPerThreadgroup: of `kernel`. fc_bits[i] holds function
 * constant i when bit i of fc_defined is set. Returns 0, or -1 with the reason in err. */
int metal_sim_c_dispatch(const char* kernel, const uint64_t* fc_bits, uint64_t fc_defined,
                         const metal_sim_c_binding* buffers, unsigned buffer_count,
                         const size_t* threadgroup_lengths, unsigned threadgroup_count,
                         const unsigned threadgroups[3], const unsigned threads_per_threadgroup[3],
                         char* err, size_t err_size);

#ifdef __cplusplus
}
#endif

#endif
