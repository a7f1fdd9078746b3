// Hopper (sm_90a) backward kernels, compiled for sm_90a only (see CMakeLists.txt); on other
// architectures the kernel bodies are empty and the host never launches them.
#include "bwd_sm90.cuh"

namespace umfa {
namespace cuda {

KernelInfo bwd_sm90_kernel_info(int dtype, int dt) {
#ifdef UMFA_CUDA_NO_SM90A
  (void)dtype, (void)dt;
  return KernelInfo{};
#endif
  const bool bf = dtype == UMFA_DTYPE_BF16;
  switch (dt) {
    case 64: return bf ? bwd_sm90_info<__nv_bfloat16, 64>() : bwd_sm90_info<__half, 64>();
    case 128: return bf ? bwd_sm90_info<__nv_bfloat16, 128>() : bwd_sm90_info<__half, 128>();
    default: return KernelInfo{};
  }
}

}  // namespace cuda
}  // namespace umfa
