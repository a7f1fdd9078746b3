/* The classic (Universal Metal Flash Attention) API: mfa_* calls on top of umfa. */
#include <stdio.h>
#include <string.h>
#include <umfa.h>

enum { BATCH = 1, SEQ = 32, HEADS = 2, DIM = 64 };

int main(void) {
  int major = 0, minor = 0, patch = 0;
  mfa_get_version(&major, &minor, &patch);
  printf("mfa version %d.%d.%d, device supported: %s\n", major, minor, patch,
         mfa_is_device_supported() ? "yes" : "no");

  mfa_context_t ctx = NULL;
  mfa_error_t err = mfa_create_context(&ctx);
  if (err != MFA_SUCCESS) {
    fprintf(stderr, "mfa_create_context: %s\n", mfa_error_string(err));
    return 1;
  }
  const size_t bytes = (size_t)BATCH * SEQ * HEADS * DIM * sizeof(float);
  mfa_buffer_t q, k, v, out;
  mfa_create_buffer(ctx, bytes, &q);
  mfa_create_buffer(ctx, bytes, &k);
  mfa_create_buffer(ctx, bytes, &v);
  mfa_create_buffer(ctx, bytes, &out);
  float* vp = mfa_buffer_contents(v);
  for (size_t i = 0; i < bytes / sizeof(float); i++) vp[i] = (float)(i % 3);

  err = mfa_attention_forward(ctx, q, k, v, out, BATCH, SEQ, SEQ, HEADS, DIM,
                              0.0f /* 1/sqrt(DIM) */, 1 /* causal */, MFA_PRECISION_FP32,
                              MFA_PRECISION_FP32, MFA_PRECISION_FP32, 0, 0, 0, 0);
  if (err != MFA_SUCCESS) {
    fprintf(stderr, "mfa_attention_forward: %s (%s)\n", mfa_error_string(err),
                    umfa_last_error((const umfa_context*)ctx));
  } else {
    const float* o = mfa_buffer_contents(out);
    /* q = k = 0: uniform weights; row 0 sees only key 0 (causal), so out row 0 == v row 0. */
    printf("out[0, 0, 0, :3] = %.1f %.1f %.1f\n", o[0], o[1], o[2]);
    if (memcmp(o, vp, DIM * sizeof(float)) != 0) err = MFA_ERROR_EXECUTION_FAILED;
  }
  mfa_destroy_buffer(q), mfa_destroy_buffer(k), mfa_destroy_buffer(v), mfa_destroy_buffer(out);
  mfa_destroy_context(ctx);
  return err == MFA_SUCCESS ? 0 : 1;
}
