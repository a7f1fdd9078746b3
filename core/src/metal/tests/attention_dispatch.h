// attention_dispatch.h — how the simulator's test harnesses launch umfa's attention kernels: the
// grids, threadgroup sizes and threadgroup-memory lengths each kernel documents, in the order the
// backend's host issues them (forward; then Delta, dQ, dK/dV for a backward).
#ifndef UMFA_METAL_TESTS_ATTENTION_DISPATCH_H
#define UMFA_METAL_TESTS_ATTENTION_DISPATCH_H

#include <string>
#include <vector>

#include "attention_params.h"
#include "runtime.h"

// Buffer indices of the kernels' argument table.
enum AttentionBuffer {
  kQ = 0, kK, kV, kOut, kLse, kParams, kMask, kAlibi, kCuQ, kCuK, kDout, kDelta, kDq, kDk, kDv, kBufferCount
};

// Runs the forward (and, when `backward`, the three backward kernels) for input dtype "f32",
// "f16" or "bf16"; returns "" or why a dispatch failed.
inline std::string run_attention(const std::string& dtype, const UmfaAttentionParams& p,
                                 const metal_sim::FunctionConstants& fc,
                                 const std::vector<metal_sim::BufferBinding>& buffers, int batch, int max_nq,
                                 int max_nk, bool backward, metal_sim::Schedule schedule, uint64_t seed) {
  using namespace metal_sim;
  DispatchDesc d;
  d.constants = fc;
  d.buffers = buffers;
  d.threadgroup_guard = Guard::after;
  d.threads_per_threadgroup = {32, 1, 1};
  d.schedule = schedule;
  d.seed = seed;
  const int dp = (p.head_dim + 7) / 8 * 8;
  std::string why;
  auto run = [&](const std::string& name, Dim3 grid, size_t tg_floats) {
    d.kernel = find_kernel(name);
    d.kernel_name = name.c_str();
    d.threadgroups = grid;
    d.threadgroup_memory.clear();
    if (tg_floats) d.threadgroup_memory.push_back(tg_floats * 4);
    if (!d.kernel) {
      why = "kernel " + name + " not registered";
      return false;
    }
    if (!grid.x || !grid.y || !grid.z) return true;
    why = dispatch(d);
    return why.empty();
  };
  const uint32_t q_blocks = uint32_t((max_nq + UMFA_METAL_BLOCK_Q - 1) / UMFA_METAL_BLOCK_Q);
  if (!run("umfa_attention_forward_" + dtype, {q_blocks, uint32_t(p.heads_q), uint32_t(batch)},
           size_t(UMFA_METAL_BLOCK_Q + 2 * UMFA_METAL_BLOCK_K) * size_t(dp)))
    return why;
  if (backward &&
      !(run("umfa_attention_backward_delta_" + dtype, {uint32_t((max_nq + 31) / 32), uint32_t(p.heads_q), uint32_t(batch)}, 0) &&
        run("umfa_attention_backward_dq_" + dtype, {q_blocks, uint32_t(p.heads_q), uint32_t(batch)}, size_t(32 * dp)) &&
        run("umfa_attention_backward_dkdv_" + dtype, {uint32_t((max_nk + 7) / 8), uint32_t(p.heads_kv), uint32_t(batch)},
            size_t(32 * dp))))
    return why;
  return "";
}

#endif
