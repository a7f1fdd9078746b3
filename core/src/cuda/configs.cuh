// Tile configurations of the tensor-core kernels, one per head-dim template (64, 96, 128, 256),
// and the KernelInfo records the dispatcher reads. Each dtype's translation unit instantiates
// these for its element type; kernels are otherwise shared by every option (masks, windows,
// softcap, ALiBi, GQA, varlen and split-KV are run-time parameters), which keeps nvcc's work to
// 3 kernels x 4 head dims x 2 dtypes.
#pragma once

#include "bwd.cuh"
#include "fwd.cuh"
#include "kernels.h"

namespace umfa {
namespace cuda {

// Production shapes, measured on an H100 with bench/cuda/explore.sh (tune.py, bf16, N 512..8192,
// causal and not): the plain-score softmax gave +6.6% (head_dim 64, which it also frees of
// spills) and +1.3% (head_dim 128) forward; the backward's plain-score instantiation with split
// dK/dV warps +9.2% (head_dim 64), the plain-score instantiation +1.3% (head_dim 128).
//                  D    BM   BN  warps stages epi16 blocks/SM plain
using Fwd64 = FwdCfg<64, 128, 128, 4, 1, true, 0, true>;
using Fwd96 = FwdCfg<96, 128, 64, 4>;
using Fwd128 = FwdCfg<128, 128, 64, 4, 1, false, 0, true>;
using Fwd256 = FwdCfg<256, 128, 64, 8>;

//                   D   BM   BN  S: WM WN  dKV: WN WD  dQ: WM WD  warps dbuf blocks/SM dQstage opt
using Bwd64 = BwdCfg<64, 32, 128, 1, 4, 2, 1, 1, 4, 4, true, 2, false, kBwdPlain | kBwdSplitKV>;
using Bwd96 = BwdCfg<96, 64, 128, 2, 4, 4, 2, 4, 2>;
using Bwd128 = BwdCfg<128, 64, 128, 2, 4, 4, 2, 2, 4, 8, true, 1, false, kBwdPlain>;
using Bwd256 = BwdCfg<256, 64, 64, 2, 4, 2, 4, 2, 4>;

template <typename T, class C>
KernelInfo fwd_info() {
  return kernel_record<C>(reinterpret_cast<const void*>(&fwd_kernel<T, C>));
}

template <typename T, class C>
KernelInfo small_info() {
  return kernel_record<C>(reinterpret_cast<const void*>(&fwd_small_kernel<T, C>));
}

template <typename T, class C>
KernelInfo bwd_info() {
  KernelInfo k;
  if constexpr (C::kOpt != 0) {
    k = kernel_record<C>(reinterpret_cast<const void*>(&bwd_opt_kernel<T, C, false>),
                         C::kPlain ? reinterpret_cast<const void*>(&bwd_opt_kernel<T, C, true>)
                                   : nullptr);
  } else {
    k = kernel_record<C>(reinterpret_cast<const void*>(&bwd_kernel<T, C>));
  }
  k.smem = C::kDbuf ? C::kSmem : 0;  // 0: the config always runs single-buffered
  k.smem_small = C::kSmemSingle;
  return k;
}

template <typename T, class C>
KernelInfo dq_info() {
  return kernel_record<C>(reinterpret_cast<const void*>(&dq_kernel<T, C>));
}

// Alternative tile shapes, compiled only with -DUMFA_CUDA_TUNING (for measuring on a GPU which
// shape is fastest; selected with UMFA_CUDA_FWD_VARIANT / UMFA_CUDA_BWD_VARIANT = 1 or 2).
#ifdef UMFA_CUDA_TUNING
template <typename T>
KernelInfo fwd_variant(int dt, int variant) {
  if (variant == 1) {
    switch (dt) {
      case 64: return fwd_info<T, FwdCfg<64, 128, 64, 4>>();
      case 128: return fwd_info<T, FwdCfg<128, 128, 128, 8>>();
      case 256: return fwd_info<T, FwdCfg<256, 64, 64, 4>>();
      default: break;
    }
  } else if (variant == 2) {
    switch (dt) {
      case 64: return fwd_info<T, FwdCfg<64, 64, 64, 4>>();
      case 128: return fwd_info<T, FwdCfg<128, 64, 64, 4>>();
      case 256: return fwd_info<T, FwdCfg<256, 64, 32, 4>>();
      default: break;
    }
  } else if (variant == 3) {
    switch (dt) {
      case 64: return fwd_info<T, FwdCfg<64, 128, 128, 8>>();
      case 128: return fwd_info<T, FwdCfg<128, 128, 64, 8>>();
      default: break;
    }
  } else if (variant == 4) {
    switch (dt) {
      case 64: return fwd_info<T, FwdCfg<64, 64, 128, 4>>();
      case 128: return fwd_info<T, FwdCfg<128, 64, 128, 4>>();
      default: break;
    }
  } else if (variant == 5) {  // production shapes, double-buffered K/V
    switch (dt) {
      case 64: return fwd_info<T, FwdCfg<64, 128, 128, 4, 2>>();
      case 96: return fwd_info<T, FwdCfg<96, 128, 64, 4, 2>>();
      case 128: return fwd_info<T, FwdCfg<128, 128, 64, 4, 2, false>>();
      case 256: return fwd_info<T, FwdCfg<256, 128, 64, 8, 2>>();
      default: break;
    }
  } else if (variant == 6) {
    switch (dt) {
      case 64: return fwd_info<T, FwdCfg<64, 64, 64, 4, 2>>();
      case 128: return fwd_info<T, FwdCfg<128, 64, 64, 4, 2>>();
      default: break;
    }
  } else if (variant == 8) {  // production shapes without the plain-score softmax
    switch (dt) {
      case 64: return fwd_info<T, FwdCfg<64, 128, 128, 4>>();
      case 128: return fwd_info<T, FwdCfg<128, 128, 64, 4, 1, false>>();
      default: break;
    }
  } else if (variant == 9) {  // 8 warps of 16 rows, 2 blocks per SM, plain-score softmax
    switch (dt) {
      case 64: return fwd_info<T, FwdCfg<64, 128, 128, 8, 1, true, 2, true>>();
      case 128: return fwd_info<T, FwdCfg<128, 128, 64, 8, 1, true, 2, true>>();
      default: break;
    }
  } else if (variant == 10) {  // 4 warps of 16 rows, 3 blocks per SM, plain-score softmax
    switch (dt) {
      case 64: return fwd_info<T, FwdCfg<64, 64, 128, 4, 1, true, 3, true>>();
      case 128: return fwd_info<T, FwdCfg<128, 64, 64, 4, 1, false, 3, true>>();
      default: break;
    }
  } else if (variant == 11) {  // short causal shapes with the plain-score softmax
    switch (dt) {
      case 64: return fwd_info<T, FwdCfg<64, 64, 64, 4, 1, true, 0, true>>();
      case 128: return fwd_info<T, FwdCfg<128, 64, 64, 4, 1, false, 0, true>>();
      default: break;
    }
  } else if (variant == 7) {  // head_dim 128 production shape with the 16-bit epilogue
    switch (dt) {
      case 128: return fwd_info<T, FwdCfg<128, 128, 64, 4, 1, true>>();
      case 256: return fwd_info<T, FwdCfg<256, 128, 64, 8, 1, false>>();
      default: break;
    }
  }
  return KernelInfo{};
}
template <typename T>
KernelInfo bwd_variant(int dt, int variant) {
  if (variant == 1) {
    switch (dt) {
      case 64: return bwd_info<T, BwdCfg<64, 64, 128, 2, 4, 4, 2, 2, 4>>();
      case 128: return bwd_info<T, BwdCfg<128, 64, 64, 2, 4, 2, 4, 2, 4>>();
      default: break;
    }
  } else if (variant == 2) {  // 4 warps, 2-3 blocks per SM
    switch (dt) {
      case 64: return bwd_info<T, BwdCfg<64, 64, 64, 2, 2, 2, 2, 2, 2, 4, true, 3>>();
      case 128: return bwd_info<T, BwdCfg<128, 64, 64, 2, 2, 2, 2, 2, 2, 4, false, 2>>();
      default: break;
    }
  } else if (variant == 3) {
    switch (dt) {
      case 64: return bwd_info<T, BwdCfg<64, 128, 128, 4, 2, 4, 2, 4, 2>>();
      case 128: return bwd_info<T, BwdCfg<128, 32, 64, 1, 4, 2, 2, 1, 4, 4, true, 2>>();
      default: break;
    }
  } else if (variant == 5) {  // production shapes without kOpt features (bwd_kernel)
    switch (dt) {
      case 64: return bwd_info<T, BwdCfg<64, 32, 128, 1, 4, 4, 1, 1, 4, 4, true, 2>>();
      case 128: return bwd_info<T, BwdCfg<128, 64, 128, 2, 4, 4, 2, 2, 4>>();
      default: break;
    }
  } else if (variant == 6) {  // production shapes, split dK/dV warps
    switch (dt) {
      case 64: return bwd_info<T, BwdCfg<64, 32, 128, 1, 4, 2, 1, 1, 4, 4, true, 2, false, kBwdSplitKV>>();
      case 128: return bwd_info<T, BwdCfg<128, 64, 128, 2, 4, 2, 2, 2, 4, 8, true, 1, false, kBwdSplitKV>>();
      default: break;
    }
  } else if (variant == 7) {  // production shapes, both
    switch (dt) {
      case 64: return bwd_info<T, BwdCfg<64, 32, 128, 1, 4, 2, 1, 1, 4, 4, true, 2, false, kBwdPlain | kBwdSplitKV>>();
      case 128: return bwd_info<T, BwdCfg<128, 64, 128, 2, 4, 2, 2, 2, 4, 8, true, 1, false, kBwdPlain | kBwdSplitKV>>();
      default: break;
    }
  } else if (variant == 8) {  // 8 warps; head_dim 128: 64-key tiles, 2 blocks per SM
    switch (dt) {
      case 64: return bwd_info<T, BwdCfg<64, 64, 128, 2, 4, 2, 2, 2, 4, 8, true, 1, false, kBwdPlain | kBwdSplitKV>>();
      case 128: return bwd_info<T, BwdCfg<128, 64, 64, 2, 4, 2, 4, 2, 4, 8, false, 2, false, kBwdPlain>>();
      default: break;
    }
  } else if (variant == 9) {  // production shapes, plain steps in two column halves
    switch (dt) {
      case 64: return bwd_info<T, BwdCfg<64, 32, 128, 1, 4, 2, 1, 1, 4, 4, true, 2, false, kBwdPlain | kBwdSplitKV | kBwdHalfS>>();
      case 128: return bwd_info<T, BwdCfg<128, 64, 128, 2, 4, 4, 2, 2, 4, 8, true, 1, false, kBwdPlain | kBwdHalfS>>();
      default: break;
    }
  } else if (variant == 4) {  // production shapes, dQ reductions staged through shared memory
    switch (dt) {
      case 64: return bwd_info<T, BwdCfg<64, 128, 128, 4, 2, 4, 2, 4, 2, 8, true, 1, true>>();
      case 128: return bwd_info<T, BwdCfg<128, 64, 128, 2, 4, 4, 2, 2, 4, 8, true, 1, true>>();
      case 256: return bwd_info<T, BwdCfg<256, 64, 64, 2, 4, 2, 4, 2, 4, 8, false, 1, true>>();
      default: break;
    }
  }
  return KernelInfo{};
}
#endif

template <typename T>
KernelInfo fwd_info_for(int dt, int variant) {
  if (variant == kFwdShortMasked) {  // 64-row tiles: less work on the diagonal of short sequences
    switch (dt) {
      case 64: return fwd_info<T, FwdCfg<64, 64, 64, 4>>();
      case 128: return fwd_info<T, FwdCfg<128, 64, 64, 4, 1, false>>();
      default: break;
    }
  }
#ifdef UMFA_CUDA_TUNING
  if (variant) {
    KernelInfo k = fwd_variant<T>(dt, variant);
    if (k.fn) return k;
  }
#endif
  (void)variant;
  switch (dt) {
    case 64: return fwd_info<T, Fwd64>();
    case 96: return fwd_info<T, Fwd96>();
    case 128: return fwd_info<T, Fwd128>();
    case 256: return fwd_info<T, Fwd256>();
    default: return KernelInfo{};
  }
}

template <typename T>
KernelInfo bwd_info_for(int dt, int variant) {
#ifdef UMFA_CUDA_TUNING
  if (variant) {
    KernelInfo k = bwd_variant<T>(dt, variant);
    if (k.fn) return k;
  }
#endif
  (void)variant;
  switch (dt) {
    case 64: return bwd_info<T, Bwd64>();
    case 96: return bwd_info<T, Bwd96>();
    case 128: return bwd_info<T, Bwd128>();
    case 256: return bwd_info<T, Bwd256>();
    default: return KernelInfo{};
  }
}

//                      D   BN stages
using Small64 = SmallCfg<64, 32, 2>;
using Small96 = SmallCfg<96, 32, 2>;
using Small128 = SmallCfg<128, 32, 1>;
using Small256 = SmallCfg<256, 32, 1>;

template <typename T>
KernelInfo small_info_for(int dt, int variant) {
#ifdef UMFA_CUDA_TUNING
  if (variant == 1) {  // 8 warps share the key range
    switch (dt) {
      case 64: return small_info<T, SmallCfg<64, 32, 2, 8>>();
      case 128: return small_info<T, SmallCfg<128, 32, 1, 8>>();
      default: break;
    }
  }
#endif
  (void)variant;
  switch (dt) {
    case 64: return small_info<T, Small64>();
    case 96: return small_info<T, Small96>();
    case 128: return small_info<T, Small128>();
    case 256: return small_info<T, Small256>();
    default: return KernelInfo{};
  }
}

template <typename T>
KernelInfo dq_info_for(int dt, int variant) {
  (void)variant;
  switch (dt) {
    case 64: return dq_info<T, DqCfg<64>>();
    case 96: return dq_info<T, DqCfg<96>>();
    case 128: return dq_info<T, DqCfg<128>>();
    case 256: return dq_info<T, DqCfg<256>>();
    default: return KernelInfo{};
  }
}

}  // namespace cuda
}  // namespace umfa
