// Section 4 of umfa.h: tensor helpers; host-side fills used by the attention entry points.
#include <cstring>
#include <limits>

#include "api/internal.h"

namespace umfa {
namespace api {
namespace {

// Calls f(pointer to element) for every element of a 4-D view in host memory.
template <typename F>
void for_each_element(const View& v, F f) {
  for (int64_t d = 0; d < 4; ++d)
    if (v.shape[d] <= 0) return;
  const int64_t esize = umfa_dtype_size(v.dtype);
  char* base = static_cast<char*>(v.data);
  for (int64_t i0 = 0; i0 < v.shape[0]; ++i0)
    for (int64_t i1 = 0; i1 < v.shape[1]; ++i1)
      for (int64_t i2 = 0; i2 < v.shape[2]; ++i2)
        for (int64_t i3 = 0; i3 < v.shape[3]; ++i3)
          f(base + (i0 * v.strides[0] + i1 * v.strides[1] + i2 * v.strides[2] +
                    i3 * v.strides[3]) * esize,
            esize);
}

}  // namespace

void host_fill_zero(const View& v) {
  for_each_element(v, [](char* p, int64_t n) { std::memset(p, 0, static_cast<size_t>(n)); });
}

void host_fill_neg_inf_f32(const View& v) {
  const float value = -std::numeric_limits<float>::infinity();
  for_each_element(v, [value](char* p, int64_t) { std::memcpy(p, &value, sizeof value); });
}

}  // namespace api
}  // namespace umfa

using namespace umfa::api;

extern "C" {

UMFA_API uint32_t umfa_dtype_size(int32_t dtype) {
  switch (dtype) {
    case UMFA_DTYPE_F32: return 4;
    case UMFA_DTYPE_F16: return 2;
    case UMFA_DTYPE_BF16: return 2;
    case UMFA_DTYPE_BOOL: return 1;
    case UMFA_DTYPE_I32: return 4;
    default: return 0;
  }
}

UMFA_API umfa_status umfa_tensor_init_contiguous(umfa_tensor* out, void* data, int32_t dtype,
                                                 int32_t rank, const int64_t* shape) {
  static const char* fn = "umfa_tensor_init_contiguous";
  if (!out) return fail(nullptr, UMFA_STATUS_NULL_POINTER, "%s: out is NULL", fn);
  if (rank < 0 || rank > UMFA_MAX_RANK)
    return fail(nullptr, UMFA_STATUS_INVALID_RANK, "%s: rank (%d) is outside 0..%d", fn, rank,
                UMFA_MAX_RANK);
  if (rank > 0 && !shape) return fail(nullptr, UMFA_STATUS_NULL_POINTER, "%s: shape is NULL", fn);
  if (umfa_dtype_size(dtype) == 0)
    return fail(nullptr, UMFA_STATUS_UNSUPPORTED_DTYPE, "%s: dtype (%d) is not a known UMFA_DTYPE_*", fn, dtype);
  int64_t strides[UMFA_MAX_RANK] = {0, 0, 0, 0};
  int64_t running = 1;
  for (int d = rank - 1; d >= 0; --d) {
    if (shape[d] < 0)
      return fail(nullptr, UMFA_STATUS_INVALID_ARGUMENT, "%s: shape[%d] (%lld) is negative", fn, d,
                  static_cast<long long>(shape[d]));
    strides[d] = running;
    // An extent of 0 makes the tensor empty; keep later strides meaningful.
    if (shape[d] > 1 && __builtin_mul_overflow(running, shape[d], &running))
      return fail(nullptr, UMFA_STATUS_SIZE_OVERFLOW, "%s: the element count overflows 64 bits", fn);
  }
  umfa_tensor t;
  std::memset(&t, 0, sizeof t);
  t.data = data;
  t.dtype = dtype;
  t.device = UMFA_DEVICE_CPU;
  t.device_index = 0;
  t.rank = rank;
  for (int d = 0; d < rank; ++d) {
    t.shape[d] = shape[d];
    t.strides[d] = strides[d];
  }
  *out = t;
  return UMFA_STATUS_OK;
}

}  // extern "C"
