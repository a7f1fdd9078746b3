/* Causal attention on NSData buffers with UMFAContext (manual retain/release, GNUstep or Apple). */
#import <Foundation/Foundation.h>

#import "UMFAContext.h"

#include <math.h>
#include <stdio.h>

int main(void) {
  NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
  const NSUInteger batch = 1, seq = 16, headsQ = 4, headsKV = 2, dim = 32;
  NSError *error = nil;
  int status = 0;

  UMFAContext *ctx = [[UMFAContext alloc] initWithBackend:UMFABackendCPU error:&error];
  if (ctx == nil) {
    fprintf(stderr, "%s\n", [[error localizedDescription] UTF8String]);
    [pool drain];
    return 1;
  }
  printf("umfa %s, %d threads\n", [[UMFAContext versionString] UTF8String], [ctx numThreads]);

  /* q: [batch, seq, headsQ, dim]; k, v: [batch, seq, headsKV, dim] (GQA), float32. */
  NSMutableData *q = [NSMutableData dataWithLength:batch * seq * headsQ * dim * sizeof(float)];
  NSMutableData *kv = [NSMutableData dataWithLength:batch * seq * headsKV * dim * sizeof(float)];
  float *qp = (float *)[q mutableBytes], *kvp = (float *)[kv mutableBytes];
  NSUInteger i;
  for (i = 0; i < [q length] / sizeof(float); i++) qp[i] = (float)sin(0.1 * i);
  for (i = 0; i < [kv length] / sizeof(float); i++) kvp[i] = (float)cos(0.05 * i);
  NSMutableData *out = [NSMutableData dataWithLength:[q length]];

  UMFAAttentionOptions *options = [UMFAAttentionOptions options];
  [options setMaskMode:UMFAMaskCausalBottomRight];
  if ([ctx forwardWithQueryData:q keyData:kv valueData:kv outputData:out logSumExpData:nil
                          batch:batch seqLenQ:seq seqLenK:seq headsQ:headsQ headsKV:headsKV
                        headDim:dim dtype:UMFADTypeF32 options:options error:&error]) {
    const float *o = (const float *)[out bytes];
    /* Causal: query 0 sees only key 0, so out[0, 0, 0, :] == v[0, 0, 0, :]. */
    printf("out[0, 0, 0, :3] = %.4f %.4f %.4f\n", o[0], o[1], o[2]);
    if (fabsf(o[1] - kvp[1]) > 1e-6f) status = 1;
  } else {
    fprintf(stderr, "%s (%s)\n", [[error localizedDescription] UTF8String],
            [[[error userInfo] objectForKey:UMFAStatusNameKey] UTF8String]);
    status = 1;
  }

  /* A wrong call: the NSError carries the umfa status and the library's message. */
  error = nil;
  if (![ctx forwardWithQueryData:q keyData:kv valueData:kv outputData:out logSumExpData:nil
                           batch:batch seqLenQ:seq seqLenK:seq headsQ:3 headsKV:headsKV
                         headDim:dim dtype:UMFADTypeF32 options:nil error:&error]) {
    printf("error %ld: %s\n", (long)[error code], [[error localizedDescription] UTF8String]);
  } else {
    status = 1;
  }

  [ctx release];
  [pool drain];
  return status;
}
