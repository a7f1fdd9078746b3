// Hopper (sm_90a) kernels, compiled for sm_90a only (see CMakeLists.txt); on other
// architectures the kernel bodies are empty and the host never launches them.
#include "bwd_sm90.cuh"
#include "fwd_sm90.cuh"
#include "kernels.h"

namespace umfa {
namespace cuda {

#ifdef UMFA_CUDA_NO_SM90A
KernelInfo fwd_sm90_kernel_info(int, int, int) { return KernelInfo{}; }
KernelInfo bwd_sm90_kernel_info(int, int) { return KernelInfo{}; }
#else
template <class C>
KernelInfo fwd_info_dtype(int dtype) {
  return kernel_record<C>(nullptr, dtype == UMFA_DTYPE_BF16
                                       ? reinterpret_cast<const void*>(&fwd_sm90_kernel<__nv_bfloat16, C>)
                                       : reinterpret_cast<const void*>(&fwd_sm90_kernel<__half, C>));
}

// Production: 64-key tiles and two blocks per SM, so that one block's softmax overlaps the
// other's MMAs. Measured on an H100 (bench/cuda_vs_torch.py, bf16 and f16, N 512..8192):
// 1.12-1.33x PyTorch's FLASH forward at head_dim 64 and 1.18-1.44x at 128, where variant 1
// (128-key tiles, one block per SM; tuning builds) gave 0.90-1.06x and 1.08-1.32x.
KernelInfo fwd_sm90_kernel_info(int dtype, int dt, int variant) {
#ifdef UMFA_CUDA_TUNING
  if (variant == 1 && dt == 64) return fwd_info_dtype<FwdSm90Cfg<64, 128, 1>>(dtype);
  if (variant == 1 && dt == 128) return fwd_info_dtype<FwdSm90Cfg<128, 128, 1>>(dtype);
#endif
  (void)variant;
  switch (dt) {
    case 64: return fwd_info_dtype<FwdSm90Cfg<64, 64, 2>>(dtype);
    case 128: return fwd_info_dtype<FwdSm90Cfg<128, 64, 2>>(dtype);
    case 256: return fwd_info_dtype<FwdSm90Cfg<256, 64, 1>>(dtype);  // 193 KB: one block per SM
    default: return KernelInfo{};
  }
}

template <class C>
KernelInfo bwd_info_dtype(int dtype) {
  return kernel_record<C>(nullptr, dtype == UMFA_DTYPE_BF16
                                       ? reinterpret_cast<const void*>(&bwd_sm90_kernel<__nv_bfloat16, C>)
                                       : reinterpret_cast<const void*>(&bwd_sm90_kernel<__half, C>));
}

KernelInfo bwd_sm90_kernel_info(int dtype, int dt) {
  switch (dt) {
    case 64: return bwd_info_dtype<BwdSm90Cfg<64>>(dtype);
    case 128: return bwd_info_dtype<BwdSm90Cfg<128>>(dtype);
    default: return KernelInfo{};
  }
}
#endif

}  // namespace cuda
}  // namespace umfa
