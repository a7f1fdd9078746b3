/* Per-call cost of umfa_attention_forward called directly from C on a tiny problem
 * (B = H = 1, N = 1, D = 64, f32): the baseline for the TypeScript bindings' overhead.
 * Prints one JSON line: the median, p10 and p90 per-call time over batches of calls. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "umfa.h"

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  int batches = argc > 1 ? atoi(argv[1]) : 2000;
  int per_batch = argc > 2 ? atoi(argv[2]) : 100;
  umfa_context_options co = {0};
  co.struct_size = sizeof co;
  co.backend = UMFA_BACKEND_CPU;
  co.num_threads = 1;
  umfa_context* ctx = NULL;
  if (umfa_context_create(&co, &ctx) != UMFA_STATUS_OK) {
    fprintf(stderr, "context: %s\n", umfa_last_error(NULL));
    return 1;
  }
  static float q[64], k[64], v[64], out[64];
  for (int i = 0; i < 64; i++) {
    q[i] = (float)i / 64.0f;
    k[i] = 1.0f - q[i];
    v[i] = q[i] * 0.5f;
  }
  const int64_t shape[4] = {1, 1, 1, 64};
  umfa_tensor tq, tk, tv, to;
  umfa_tensor_init_contiguous(&tq, q, UMFA_DTYPE_F32, 4, shape);
  umfa_tensor_init_contiguous(&tk, k, UMFA_DTYPE_F32, 4, shape);
  umfa_tensor_init_contiguous(&tv, v, UMFA_DTYPE_F32, 4, shape);
  umfa_tensor_init_contiguous(&to, out, UMFA_DTYPE_F32, 4, shape);
  umfa_attention_options o = {0};
  o.struct_size = sizeof o;
  for (int i = 0; i < 20000; i++) {
    if (umfa_attention_forward(ctx, &o, &tq, &tk, &tv, &to, NULL) != UMFA_STATUS_OK) {
      fprintf(stderr, "forward: %s\n", umfa_last_error(ctx));
      return 1;
    }
  }
  double* per_call = malloc(sizeof(double) * (size_t)batches);
  for (int b = 0; b < batches; b++) {
    double t0 = now_ns();
    for (int i = 0; i < per_batch; i++) umfa_attention_forward(ctx, &o, &tq, &tk, &tv, &to, NULL);
    per_call[b] = (now_ns() - t0) / per_batch;
  }
  qsort(per_call, (size_t)batches, sizeof(double), cmp);
  printf("{\"median_ns\":%.1f,\"p10_ns\":%.1f,\"p90_ns\":%.1f,\"calls\":%d}\n", per_call[batches / 2],
         per_call[batches / 10], per_call[batches * 9 / 10], batches * per_batch);
  free(per_call);
  umfa_context_destroy(ctx);
  return 0;
}
