/* Errors: every call returns a status; the context keeps the message of its last failure. */
#include <stdio.h>
#include <umfa.h>

int main(void) {
  umfa_context* ctx = NULL;
  if (umfa_context_create(NULL, &ctx) != UMFA_STATUS_OK) return 1; /* NULL options = defaults */

  float q[4 * 8] = {0}, k[4 * 8] = {0}, v[4 * 8] = {0}, out[4 * 8] = {0};
  const int64_t q_shape[4] = {1, 4, 1, 8};
  const int64_t kv_shape[4] = {1, 4, 1, 4}; /* head_dim 4 != 8: a shape mismatch */
  umfa_tensor tq, tk, tv, tout;
  umfa_tensor_init_contiguous(&tq, q, UMFA_DTYPE_F32, 4, q_shape);
  umfa_tensor_init_contiguous(&tk, k, UMFA_DTYPE_F32, 4, kv_shape);
  umfa_tensor_init_contiguous(&tv, v, UMFA_DTYPE_F32, 4, kv_shape);
  umfa_tensor_init_contiguous(&tout, out, UMFA_DTYPE_F32, 4, q_shape);

  umfa_status status = umfa_attention_forward(ctx, NULL, &tq, &tk, &tv, &tout, NULL);
  printf("status %d: %s\n", (int)status, umfa_status_string(status));
  printf("message: %s\n", umfa_last_error(ctx));

  umfa_context_destroy(ctx);
  return status == UMFA_STATUS_SHAPE_MISMATCH ? 0 : 1;
}
