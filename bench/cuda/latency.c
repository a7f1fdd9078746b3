/*
 * Latency of one small forward call through the C API: single head, N = 512, D = 64, f16,
 * causal, on the CUDA backend's default stream. Calls are issued back to back and the average is
 * taken over the whole loop (ended by a synchronous download), so the figure is
 * max(host time per call, device time per call).
 *
 *   cc -O2 -std=c99 bench/cuda/latency.c -Idist/native/linux-x64/include \
 *      -Ldist/native/linux-x64/lib -lumfa -Wl,-rpath,$PWD/dist/native/linux-x64/lib -o latency
 */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "umfa.h"

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? atoll(argv[1]) : 512, d = 64;
  const int iters = 2000;
  umfa_context_options co;
  memset(&co, 0, sizeof co);
  co.struct_size = sizeof co;
  co.backend = UMFA_BACKEND_CUDA;
  umfa_context* ctx;
  if (umfa_context_create(&co, &ctx) != UMFA_STATUS_OK) {
    fprintf(stderr, "no CUDA context: %s\n", umfa_last_error(NULL));
    return 2;
  }
  int64_t shape[4] = {1, n, 1, d}, lshape[3] = {1, 1, n};
  umfa_buffer* bufs[5];
  umfa_tensor t[5];
  uint16_t* host = malloc((size_t)(n * d) * 2);
  for (int64_t i = 0; i < n * d; ++i) host[i] = (uint16_t)(0x3800 + (i * 7919 % 1024)); /* [0.5, 1) */
  for (int i = 0; i < 5; ++i) {
    const int lse = i == 4;
    size_t bytes = lse ? (size_t)n * 4 : (size_t)(n * d) * 2;
    void* p;
    umfa_buffer_create(ctx, bytes, &bufs[i]);
    umfa_buffer_data(bufs[i], &p);
    umfa_tensor_init_contiguous(&t[i], p, lse ? UMFA_DTYPE_F32 : UMFA_DTYPE_F16, lse ? 3 : 4,
                                lse ? lshape : shape);
    t[i].device = UMFA_DEVICE_CUDA;
    if (i < 3) umfa_buffer_upload(bufs[i], 0, host, bytes);
  }
  umfa_attention_options o;
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.mask_mode = UMFA_MASK_CAUSAL_BOTTOM_RIGHT;
  float sink;
  for (int i = 0; i < 50; ++i)
    if (umfa_attention_forward(ctx, &o, &t[0], &t[1], &t[2], &t[3], &t[4]) != UMFA_STATUS_OK) {
      fprintf(stderr, "forward: %s\n", umfa_last_error(ctx));
      return 1;
    }
  umfa_buffer_download(bufs[4], 0, &sink, 4);
  double t0 = now_us();
  for (int i = 0; i < iters; ++i) umfa_attention_forward(ctx, &o, &t[0], &t[1], &t[2], &t[3], &t[4]);
  umfa_buffer_download(bufs[4], 0, &sink, 4);
  double t1 = now_us();
  printf("C API forward, 1x%lldx1x%lld f16 causal: %.2f us per call (back to back, %d calls)\n",
         (long long)n, (long long)d, (t1 - t0) / iters, iters);
  for (int i = 0; i < 5; ++i) umfa_buffer_destroy(bufs[i]);
  umfa_context_destroy(ctx);
  free(host);
  return 0;
}
