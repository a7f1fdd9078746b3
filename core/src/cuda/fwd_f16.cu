// fwd tensor-core kernels for f16 inputs (one translation unit per kind and dtype, so that
// a parallel build spreads nvcc's work).
#include "configs.cuh"

namespace umfa {
namespace cuda {

KernelInfo fwd_kernel_info_f16(int dt, int variant) { return fwd_info_for<__half>(dt, variant); }
KernelInfo small_kernel_info_f16(int dt, int variant) { return small_info_for<__half>(dt, variant); }

}  // namespace cuda
}  // namespace umfa
