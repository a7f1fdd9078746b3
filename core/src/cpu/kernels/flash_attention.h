// The CPU flash-attention kernels of one SIMD variant, composed from named pieces:
//
//   simd_<isa>.h          vector type, loads/stores, fma, exp, transposes, reductions, dtype
//                         conversions, bf16 pair dot products: the only per-ISA code
//   micro_gemm.h          register-blocked micro-GEMMs (f32, bf16 pairs) and the blocked GEMMs
//   packing.h             scratch carving, row loads/conversions, transposed and paired packs
//   score_transforms.h    scale, softcap, causal/window visibility, ALiBi, mask
//   online_softmax.h      running max/sum per query lane and the output rescale
//   forward_tile_state.h  query-tile state, setup and the normalized store
//   forward_decode.h      few-query-rows forward (lanes over the head dimension)
//   forward.h             the forward work item
//   backward.h            the backward work items
//
// A variant is a .cpp in core/src/cpu (kernels_<isa>.cpp) that sets its target, defines
// UMFA_KNS / UMFA_KNAME / UMFA_KGET, includes its simd_<isa>.h and then this file.
//
// Layout: a tile's query rows live in the vector lanes ("transposed" flash attention). Scores
// are kept as Sᵀ[key][query], the output as Oᵀ[d][query]:
//   Sᵀ = K · Qᵀ      A = K (one element broadcast at a time), B = Qᵀ packed once per tile
//   Oᵀ += Vᵀ · Pᵀ    A = V (broadcast),                     B = Pᵀ (the score tile itself)
// so K and V are read in place (f32) or converted row by row (f16/bf16) and never transposed,
// the softmax statistics are per-lane vectors (no horizontal reductions), and the online-softmax
// rescale is one multiply per Oᵀ vector. Keys are rows, so a partial key block needs no padding.
// The backward uses the same layout (dQ is produced as dQᵀ = Kᵀ · dSᵀ).
//
// Where the primitives have bf16 dot products (UMFA_SIMD_BF16_DOT: AVX512-BF16's vdpbf16ps,
// ARM's BFDOT), bf16 inputs take a second path with the same structure on bf16 pairs: each
// 32-bit lane holds two consecutive elements of the reduction dimension, and one instruction
// adds both products into an f32 accumulator. Inputs are used exactly; P (and dS in the backward) are
// rounded to bf16 before their products, as GPU flash-attention kernels do.
//
// Nothing here allocates, throws or writes outside the tile's own outputs. Everything lives in an
// anonymous namespace inside the variant's namespace (namespace.h).
#pragma once

#include "forward.h"
#include "backward.h"

#ifndef UMFA_KNAME
#error "define UMFA_KNAME and UMFA_KGET before including flash_attention.h"
#endif

UMFA_KERNELS_BEGIN

const KernelSet kSet = {UMFA_KNAME, fwd_scratch_bytes, bwd_scratch_bytes,
                        fwd_tile,   bwd_kv_tile,       bwd_q_tile};

UMFA_KERNELS_END

namespace umfa {
namespace cpu {
const KernelSet* UMFA_KGET() { return &UMFA_KNS::kSet; }
}  // namespace cpu
}  // namespace umfa
