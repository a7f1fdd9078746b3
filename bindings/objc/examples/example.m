/*
 * example.m — causal grouped-query attention with UMFAContext on NSData buffers (no copies),
 * then a deliberately wrong call to show the NSError.
 */
#import <Foundation/Foundation.h>

#import "UMFAContext.h"

#include <stdio.h>

static NSMutableData *random_floats(NSUInteger count, unsigned seed) {
  NSMutableData *data = [NSMutableData dataWithLength:count * sizeof(float)];
  float *p = (float *)[data mutableBytes];
  NSUInteger i;
  for (i = 0; i < count; i++) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = (float)(seed >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
  }
  return data;
}

int main(void) {
  NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
  const NSUInteger batch = 1, seqQ = 6, seqK = 6, headsQ = 4, headsKV = 2, headDim = 32;
  NSError *error = nil;
  UMFAContext *ctx;
  UMFAAttentionOptions *options;
  NSData *q, *k, *v;
  NSMutableData *out, *lse;
  const float *o, *l;
  NSUInteger h;
  int status = 0;

  printf("umfa %s (ABI %u)\n%s\n", [[UMFAContext versionString] UTF8String],
         [UMFAContext abiVersion], [[UMFAContext buildInfo] UTF8String]);

  ctx = [[UMFAContext alloc] initWithBackend:UMFABackendAuto error:&error];
  if (ctx == nil) {
    fprintf(stderr, "no context: %s\n", [[error localizedDescription] UTF8String]);
    [pool drain];
    return 1;
  }
  printf("backend %s, %d threads\n", [ctx backend] == UMFABackendCUDA ? "CUDA" : "CPU",
         [ctx numThreads]);

  q = random_floats(batch * seqQ * headsQ * headDim, 1);
  k = random_floats(batch * seqK * headsKV * headDim, 2);
  v = random_floats(batch * seqK * headsKV * headDim, 3);
  out = [NSMutableData dataWithLength:[q length]];
  lse = [NSMutableData dataWithLength:batch * headsQ * seqQ * sizeof(float)];

  options = [UMFAAttentionOptions options];
  [options setMaskMode:UMFAMaskCausalBottomRight];
  if (![ctx forwardWithQueryData:q
                         keyData:k
                       valueData:v
                      outputData:out
                   logSumExpData:lse
                           batch:batch
                         seqLenQ:seqQ
                         seqLenK:seqK
                          headsQ:headsQ
                         headsKV:headsKV
                         headDim:headDim
                           dtype:UMFADTypeF32
                         options:options
                           error:&error]) {
    fprintf(stderr, "forward failed: %s\n", [[error localizedDescription] UTF8String]);
    status = 1;
  } else {
    o = (const float *)[out bytes];
    l = (const float *)[lse bytes];
    printf("causal GQA forward: out[0][0][0][0..3] = %.5f %.5f %.5f %.5f\n", o[0], o[1], o[2],
           o[3]);
    for (h = 0; h < headsQ; h++) {
      printf("  head %lu: lse of the first query %.5f (it sees only the first key)\n",
             (unsigned long)h, l[h * seqQ]);
    }
  }

  /* 3 query heads cannot share 2 key/value heads: the library refuses and writes nothing. */
  if ([ctx forwardWithQueryData:q
                        keyData:k
                      valueData:v
                     outputData:out
                  logSumExpData:nil
                          batch:batch
                        seqLenQ:seqQ
                        seqLenK:seqK
                         headsQ:3
                        headsKV:headsKV
                        headDim:headDim
                          dtype:UMFADTypeF32
                        options:nil
                          error:&error]) {
    fprintf(stderr, "expected an error\n");
    status = 1;
  } else {
    printf("expected error: domain %s, code %ld: %s\n", [[error domain] UTF8String],
           (long)[error code], [[error localizedDescription] UTF8String]);
  }

  [ctx release];
  [pool drain];
  return status;
}
