/* Forward attention on the CPU with the umfa C ABI.
 * Build: cc -std=c99 forward.c -I<prefix>/include -L<prefix>/lib -lumfa -lm */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <umfa.h>

enum { B = 1, N = 8, H = 2, D = 16 }; /* batch, sequence length, heads, head dim */

static int check(umfa_status status, const umfa_context* ctx, const char* what) {
  if (status == UMFA_STATUS_OK) return 0;
  fprintf(stderr, "%s failed: %s (%s)\n", what, umfa_status_string(status), umfa_last_error(ctx));
  return 1;
}

int main(void) {
  if (umfa_abi_version() != UMFA_ABI_VERSION) {
    fprintf(stderr, "libumfa ABI %u, expected %d\n", umfa_abi_version(), UMFA_ABI_VERSION);
    return 1;
  }
  printf("umfa %s\n", umfa_version_string());

  /* A CPU context with default options (all threads). */
  umfa_context_options opts = {0};
  opts.struct_size = sizeof opts;
  opts.backend = UMFA_BACKEND_CPU;
  umfa_context* ctx = NULL;
  if (check(umfa_context_create(&opts, &ctx), NULL, "umfa_context_create")) return 1;

  /* q, k, v, out: dense [B, N, H, D] float32 (BSHD); lse: [B, H, N]. */
  const size_t count = (size_t)B * N * H * D;
  float* q = malloc(count * sizeof(float));
  float* k = malloc(count * sizeof(float));
  float* v = malloc(count * sizeof(float));
  float* out = malloc(count * sizeof(float));
  float* lse = malloc((size_t)B * H * N * sizeof(float));
  for (size_t i = 0; i < count; i++) {
    q[i] = (float)sin(0.1 * (double)i);
    k[i] = (float)cos(0.07 * (double)i);
    v[i] = (float)((i % 13) / 13.0);
  }

  const int64_t bshd[4] = {B, N, H, D};
  const int64_t bhn[3] = {B, H, N};
  umfa_tensor tq, tk, tv, tout, tlse;
  umfa_tensor_init_contiguous(&tq, q, UMFA_DTYPE_F32, 4, bshd);
  umfa_tensor_init_contiguous(&tk, k, UMFA_DTYPE_F32, 4, bshd);
  umfa_tensor_init_contiguous(&tv, v, UMFA_DTYPE_F32, 4, bshd);
  umfa_tensor_init_contiguous(&tout, out, UMFA_DTYPE_F32, 4, bshd);
  umfa_tensor_init_contiguous(&tlse, lse, UMFA_DTYPE_F32, 3, bhn);

  /* Causal attention (FlashAttention's bottom-right diagonal), default scale 1/sqrt(D). */
  umfa_attention_options attn = {0};
  attn.struct_size = sizeof attn;
  attn.mask_mode = UMFA_MASK_CAUSAL_BOTTOM_RIGHT;
  int failed = check(umfa_attention_forward(ctx, &attn, &tq, &tk, &tv, &tout, &tlse), ctx,
                     "umfa_attention_forward");
  if (!failed) {
    /* With causal masking the first query sees only the first key: out[0] == v[0]. */
    printf("out[0, 0, 0, :4] = %.4f %.4f %.4f %.4f\n", out[0], out[1], out[2], out[3]);
    printf("lse[0, 0, :4]    = %.4f %.4f %.4f %.4f\n", lse[0], lse[1], lse[2], lse[3]);
    for (int d = 0; d < D; d++) {
      if (fabsf(out[d] - v[d]) > 1e-6f) failed = 1;
    }
    printf(failed ? "unexpected result\n" : "ok\n");
  }

  free(q), free(k), free(v), free(out), free(lse);
  umfa_context_destroy(ctx);
  return failed;
}
