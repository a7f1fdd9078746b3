/* PyTorch's BHSD layout without a copy: describe the same memory with permuted strides. */
#include <stdio.h>
#include <umfa.h>

enum { B = 2, H = 4, S = 16, D = 32 };

/* A [B, S, H, D] view of memory laid out as [B, H, S, D]. */
static void bhsd_view(umfa_tensor* t, float* data) {
  *t = (umfa_tensor){0};
  t->data = data;
  t->dtype = UMFA_DTYPE_F32;
  t->device = UMFA_DEVICE_CPU;
  t->rank = 4;
  t->shape[0] = B, t->shape[1] = S, t->shape[2] = H, t->shape[3] = D;
  t->strides[0] = (int64_t)H * S * D; /* batch */
  t->strides[1] = D;                  /* sequence */
  t->strides[2] = (int64_t)S * D;     /* head */
  t->strides[3] = 1;                  /* head_dim */
}

static float q[B * H * S * D], k[B * H * S * D], v[B * H * S * D], out[B * H * S * D];

int main(void) {
  for (int i = 0; i < B * H * S * D; i++) {
    q[i] = (float)(i % 7) * 0.1f;
    k[i] = (float)(i % 5) * 0.1f;
    v[i] = (float)(i % 11);
  }
  umfa_context* ctx = NULL;
  if (umfa_context_create(NULL, &ctx) != UMFA_STATUS_OK) return 1;
  umfa_tensor tq, tk, tv, tout;
  bhsd_view(&tq, q), bhsd_view(&tk, k), bhsd_view(&tv, v), bhsd_view(&tout, out);

  umfa_attention_options opts = {0};
  opts.struct_size = sizeof opts;
  opts.mask_mode = UMFA_MASK_CAUSAL_TOP_LEFT; /* PyTorch's is_causal */
  umfa_status status = umfa_attention_forward(ctx, &opts, &tq, &tk, &tv, &tout, NULL);
  if (status != UMFA_STATUS_OK) {
    fprintf(stderr, "%s\n", umfa_last_error(ctx));
    umfa_context_destroy(ctx);
    return 1;
  }
  /* Row 0 of each head attends only to key 0, so out[b, h, 0, :] == v[b, h, 0, :]. */
  int ok = 1;
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int d = 0; d < D; d++) {
        int at = ((b * H + h) * S + 0) * D + d;
        if (out[at] != v[at]) ok = 0;
      }
  printf("BHSD forward: %s\n", ok ? "ok" : "mismatch");
  umfa_context_destroy(ctx);
  return ok ? 0 : 1;
}
