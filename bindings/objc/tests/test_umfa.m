/*
 * test_umfa.m — tests of the Objective-C wrapper: every conformance vector (forward and
 * backward, compared with the float64 reference) and the bad-input cases. Prints one line per
 * check and a final "N passed, N failed, N skipped" line; exits non-zero on any failure.
 *
 *   test_umfa --manifest conformance/manifest.json [--skip conformance-skip.txt] [--filter TEXT]
 */
#import <Foundation/Foundation.h>

#import "UMFAContext.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int g_passed = 0;
static int g_failed = 0;
static int g_skipped = 0;

static void report(BOOL ok, NSString *name, NSString *detail) {
  if (ok) {
    g_passed++;
    printf("PASS %s%s%s\n", [name UTF8String], detail ? " " : "", detail ? [detail UTF8String] : "");
  } else {
    g_failed++;
    printf("FAIL %s: %s\n", [name UTF8String], detail ? [detail UTF8String] : "");
  }
  fflush(stdout);
}

/* dims(count, d0, d1, ...): an NSArray of `count` int extents. */
static NSArray *dims(int n, ...) {
  NSMutableArray *array = [NSMutableArray array];
  va_list ap;
  int i;
  va_start(ap, n);
  for (i = 0; i < n; i++) {
    [array addObject:[NSNumber numberWithInt:va_arg(ap, int)]];
  }
  va_end(ap);
  return array;
}

/* ------------------------------------------------------------------------------------------
 * Half-precision conversions (for comparing outputs)
 * ------------------------------------------------------------------------------------------ */

static float f16_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t bits;
  float f;
  if (exp == 0) {
    f = (float)man * (1.0f / 16777216.0f);
    return sign ? -f : f;
  }
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 112u) << 23) | (man << 13);
  }
  memcpy(&f, &bits, sizeof f);
  return f;
}

static float bf16_to_float(uint16_t b) {
  uint32_t bits = (uint32_t)b << 16;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

static uint16_t float_to_f16(float value) {
  uint32_t bits;
  uint32_t sign, man, result, rem, halfway, full, shift;
  int exp, half_exp;
  memcpy(&bits, &value, sizeof bits);
  sign = (bits >> 16) & 0x8000u;
  exp = (int)((bits >> 23) & 0xff);
  man = bits & 0x7fffffu;
  if (exp == 0xff) {
    return (uint16_t)(sign | 0x7c00u | (man ? (0x200u | (man >> 13)) : 0u));
  }
  half_exp = exp - 127 + 15;
  if (half_exp >= 0x1f) {
    return (uint16_t)(sign | 0x7c00u);
  }
  if (half_exp <= 0) {
    shift = (uint32_t)(14 - half_exp);
    if (shift > 24) {
      return (uint16_t)sign;
    }
    full = man | 0x800000u;
    result = full >> shift;
    rem = full & ((1u << shift) - 1u);
    halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (result & 1u))) {
      result++;
    }
    return (uint16_t)(sign | result);
  }
  result = ((uint32_t)half_exp << 10) | (man >> 13);
  rem = man & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (result & 1u))) {
    result++;
  }
  return (uint16_t)(sign | result);
}

/* ------------------------------------------------------------------------------------------
 * .npy files
 * ------------------------------------------------------------------------------------------ */

/* An .npy file: the whole file (kept, no copy of the payload) and where its data starts. */
typedef struct {
  NSData *file;
  NSUInteger offset;
  char descr[8];
  NSUInteger count;
} Npy;

static NSString *npy_value(NSString *header, NSString *key) {
  NSRange r = [header rangeOfString:[NSString stringWithFormat:@"'%@'", key]];
  NSString *rest;
  NSRange colon;
  NSUInteger end;
  unichar open;
  if (r.location == NSNotFound) {
    return nil;
  }
  rest = [header substringFromIndex:NSMaxRange(r)];
  colon = [rest rangeOfString:@":"];
  if (colon.location == NSNotFound) {
    return nil;
  }
  rest = [[rest substringFromIndex:NSMaxRange(colon)]
      stringByTrimmingCharactersInSet:[NSCharacterSet whitespaceCharacterSet]];
  if ([rest length] == 0) {
    return nil;
  }
  open = [rest characterAtIndex:0];
  if (open == '\'') {
    end = [rest rangeOfString:@"'" options:0 range:NSMakeRange(1, [rest length] - 1)].location;
    return end == NSNotFound ? nil : [rest substringWithRange:NSMakeRange(1, end - 1)];
  }
  if (open == '(') {
    end = [rest rangeOfString:@")"].location;
    return end == NSNotFound ? nil : [rest substringWithRange:NSMakeRange(1, end - 1)];
  }
  end = [rest rangeOfCharacterFromSet:[NSCharacterSet characterSetWithCharactersInString:@",}"]]
            .location;
  return end == NSNotFound ? rest : [rest substringToIndex:end];
}

static BOOL npy_read(NSString *path, Npy *out, NSString **why) {
  NSData *file = [NSData dataWithContentsOfFile:path];
  const unsigned char *bytes;
  NSUInteger headerLen, offset, count = 1, item;
  NSString *header, *descr, *shape;
  NSArray *parts;
  NSUInteger i;
  if (file == nil) {
    *why = [NSString stringWithFormat:@"cannot read %@", path];
    return NO;
  }
  bytes = (const unsigned char *)[file bytes];
  if ([file length] < 10 || memcmp(bytes, "\x93NUMPY", 6) != 0) {
    *why = [NSString stringWithFormat:@"%@: not an .npy file", path];
    return NO;
  }
  if (bytes[6] == 1) {
    headerLen = (NSUInteger)bytes[8] | ((NSUInteger)bytes[9] << 8);
    offset = 10;
  } else {
    headerLen = (NSUInteger)bytes[8] | ((NSUInteger)bytes[9] << 8) | ((NSUInteger)bytes[10] << 16) |
                ((NSUInteger)bytes[11] << 24);
    offset = 12;
  }
  if (offset + headerLen > [file length]) {
    *why = [NSString stringWithFormat:@"%@: truncated header", path];
    return NO;
  }
  header = [[[NSString alloc] initWithBytes:bytes + offset
                                     length:headerLen
                                   encoding:NSASCIIStringEncoding] autorelease];
  descr = npy_value(header, @"descr");
  shape = npy_value(header, @"shape");
  if (descr == nil || shape == nil || [descr length] >= sizeof out->descr ||
      ![npy_value(header, @"fortran_order") isEqualToString:@"False"]) {
    *why = [NSString stringWithFormat:@"%@: unsupported header %@", path, header];
    return NO;
  }
  parts = [shape componentsSeparatedByString:@","];
  for (i = 0; i < [parts count]; i++) {
    NSString *p = [[parts objectAtIndex:i]
        stringByTrimmingCharactersInSet:[NSCharacterSet whitespaceCharacterSet]];
    if ([p length] > 0) {
      count *= (NSUInteger)[p longLongValue];
    }
  }
  item = (NSUInteger)atoi([descr UTF8String] + 2);
  if (offset + headerLen + count * item > [file length]) {
    *why = [NSString stringWithFormat:@"%@: truncated data", path];
    return NO;
  }
  out->file = file;
  out->offset = offset + headerLen;
  strncpy(out->descr, [descr UTF8String], sizeof out->descr - 1);
  out->descr[sizeof out->descr - 1] = 0;
  out->count = count;
  return YES;
}

/* ------------------------------------------------------------------------------------------
 * Conformance
 * ------------------------------------------------------------------------------------------ */

static UMFADType dtype_named(NSString *name) {
  if ([name isEqualToString:@"f16"]) return UMFADTypeF16;
  if ([name isEqualToString:@"bf16"]) return UMFADTypeBF16;
  if ([name isEqualToString:@"bool"]) return UMFADTypeBool;
  if ([name isEqualToString:@"i32"]) return UMFADTypeI32;
  return UMFADTypeF32;
}

/* An input tensor straight over the file's bytes (the payload is never copied). */
static UMFATensor *input_tensor(NSString *root, NSDictionary *spec, NSString **why) {
  Npy npy;
  NSError *error = nil;
  UMFATensor *t;
  if (!npy_read([root stringByAppendingPathComponent:[spec objectForKey:@"file"]], &npy, why)) {
    return nil;
  }
  t = [[[UMFATensor alloc] initWithData:npy.file
                               writable:NO
                             byteOffset:npy.offset
                                  dtype:dtype_named([spec objectForKey:@"dtype"])
                                  shape:[spec objectForKey:@"shape"]
                                strides:[spec objectForKey:@"strides"]
                                  error:&error] autorelease];
  if (t == nil) {
    *why = [error localizedDescription];
  }
  return t;
}

static NSUInteger product(NSArray *shape) {
  NSUInteger n = 1, i;
  for (i = 0; i < [shape count]; i++) {
    n *= [[shape objectAtIndex:i] unsignedIntegerValue];
  }
  return n;
}

/* A NaN-filled output laid out like the expected file, in the expected view dtype. */
static UMFATensor *output_tensor(NSDictionary *spec) {
  UMFADType dtype = dtype_named([spec objectForKey:@"dtype"]);
  NSArray *shape = [spec objectForKey:@"shape"];
  NSUInteger count = product(shape), i;
  NSMutableData *data = [NSMutableData dataWithLength:count * UMFADTypeSize(dtype)];
  if (dtype == UMFADTypeF32) {
    uint32_t nan = 0x7fc00000u;
    for (i = 0; i < count; i++) memcpy((char *)[data mutableBytes] + 4 * i, &nan, 4);
  } else {
    uint16_t nan = dtype == UMFADTypeF16 ? 0x7e00u : 0x7fc0u;
    for (i = 0; i < count; i++) memcpy((char *)[data mutableBytes] + 2 * i, &nan, 2);
  }
  return [UMFATensor tensorWithMutableData:data
                                     dtype:dtype
                                     shape:shape
                                   strides:[spec objectForKey:@"strides"]
                                     error:NULL];
}

static float element(UMFATensor *t, NSUInteger i) {
  const char *bytes = (const char *)[[t data] bytes];
  uint16_t h;
  float f;
  if ([t dtype] == UMFADTypeF32) {
    memcpy(&f, bytes + 4 * i, 4);
    return f;
  }
  memcpy(&h, bytes + 2 * i, 2);
  return [t dtype] == UMFADTypeF16 ? f16_to_float(h) : bf16_to_float(h);
}

/* Compares an output with its expected file; returns nil when within tolerance. */
static NSString *compare(NSString *name, UMFATensor *got, NSString *root, NSDictionary *spec,
                         NSDictionary *tol, double *worstRatio) {
  Npy npy;
  NSString *why = nil;
  const float *want;
  double atol = [[tol objectForKey:@"atol"] doubleValue];
  double rtol = [[tol objectForKey:@"rtol"] doubleValue];
  NSUInteger n = product([spec objectForKey:@"shape"]), i, bad = 0, worstAt = 0;
  double worst = -1.0;
  if (!npy_read([root stringByAppendingPathComponent:[spec objectForKey:@"file"]], &npy, &why)) {
    return why;
  }
  if (npy.count != n || strcmp(npy.descr, "<f4") != 0) {
    return [NSString stringWithFormat:@"%@: expected file has %lu elements (%s)", name,
                                      (unsigned long)npy.count, npy.descr];
  }
  want = (const float *)((const char *)[npy.file bytes] + npy.offset);
  for (i = 0; i < n; i++) {
    double g = element(got, i), w = want[i];
    BOOL ok;
    double err;
    if (isnan(g) || isnan(w)) {
      ok = NO; /* outputs start as NaN: a NaN was never written */
      err = INFINITY;
    } else if (isinf(w) || isinf(g)) {
      ok = g == w;
      err = ok ? 0.0 : INFINITY;
    } else {
      double bound = atol + rtol * fabs(w);
      err = fabs(g - w);
      ok = err <= bound;
      if (err / bound > *worstRatio) *worstRatio = err / bound;
    }
    if (!ok) {
      bad++;
      if (err > worst) {
        worst = err;
        worstAt = i;
      }
    }
  }
  if (bad == 0) {
    return nil;
  }
  return [NSString stringWithFormat:@"%@: %lu/%lu elements off (worst at %lu: got %g, expected "
                                    @"%g, atol %g rtol %g)",
                                    name, (unsigned long)bad, (unsigned long)n,
                                    (unsigned long)worstAt, element(got, worstAt), want[worstAt],
                                    atol, rtol];
}

/* Runs one case; returns nil on success, else what failed. */
static NSString *run_case(UMFAContext *ctx, NSString *root, NSDictionary *c, double *ratio) {
  NSDictionary *inputs = [c objectForKey:@"inputs"];
  NSDictionary *expected = [c objectForKey:@"expected"];
  NSDictionary *tols = [c objectForKey:@"tolerances"];
  NSDictionary *o = [c objectForKey:@"options"];
  UMFAAttentionOptions *opts = [UMFAAttentionOptions options];
  NSString *why = nil;
  NSError *error = nil;
  NSMutableArray *failures = [NSMutableArray array];
  NSArray *names;
  NSUInteger i;
  UMFATensor *q, *k, *v, *out, *lse, *out2;
  NSString *optional[4] = {@"attn_mask", @"alibi_slopes", @"cu_seqlens_q", @"cu_seqlens_k"};
  UMFATensor *extra[4] = {nil, nil, nil, nil};

  q = input_tensor(root, [inputs objectForKey:@"q"], &why);
  k = q ? input_tensor(root, [inputs objectForKey:@"k"], &why) : nil;
  v = k ? input_tensor(root, [inputs objectForKey:@"v"], &why) : nil;
  if (v == nil) return why;
  for (i = 0; i < 4; i++) {
    id spec = [o objectForKey:optional[i]];
    if (spec != nil && spec != [NSNull null]) {
      extra[i] = input_tensor(root, spec, &why);
      if (extra[i] == nil) return why;
    }
  }
  [opts setMaskMode:(UMFAMaskMode)[[o objectForKey:@"mask_mode"] integerValue]];
  [opts setSoftmaxScale:[[o objectForKey:@"softmax_scale"] floatValue]];
  [opts setSoftcap:[[o objectForKey:@"softcap"] floatValue]];
  [opts setHasWindow:[[o objectForKey:@"has_window"] intValue] != 0];
  [opts setWindowLeft:[[o objectForKey:@"window_left"] longLongValue]];
  [opts setWindowRight:[[o objectForKey:@"window_right"] longLongValue]];
  [opts setDeterministic:([[o objectForKey:@"flags"] intValue] & UMFA_FLAG_DETERMINISTIC) != 0];
  [opts setMaxSeqlenQ:[[o objectForKey:@"max_seqlen_q"] longLongValue]];
  [opts setMaxSeqlenK:[[o objectForKey:@"max_seqlen_k"] longLongValue]];
  [opts setAttnMask:extra[0]];
  [opts setAlibiSlopes:extra[1]];
  [opts setCuSeqlensQ:extra[2]];
  [opts setCuSeqlensK:extra[3]];

  out = output_tensor([expected objectForKey:@"out"]);
  lse = output_tensor([expected objectForKey:@"lse"]);
  if (![ctx forwardWithQuery:q key:k value:v output:out logSumExp:lse options:opts error:&error]) {
    return [NSString stringWithFormat:@"forward failed: %@ (status %ld)",
                                      [error localizedDescription], (long)[error code]];
  }
  names = [NSArray arrayWithObjects:@"out", @"lse", nil];
  for (i = 0; i < [names count]; i++) {
    NSString *n = [names objectAtIndex:i];
    NSString *f = compare(n, i == 0 ? out : lse, root, [expected objectForKey:n],
                          [tols objectForKey:n], ratio);
    if (f) [failures addObject:f];
  }
  /* Forward without lse gives the same out. */
  out2 = output_tensor([expected objectForKey:@"out"]);
  if (![ctx forwardWithQuery:q key:k value:v output:out2 logSumExp:nil options:opts error:&error]) {
    [failures addObject:[NSString stringWithFormat:@"forward without lse failed: %@",
                                                   [error localizedDescription]]];
  } else if (![[out2 data] isEqualToData:[out data]]) {
    [failures addObject:@"out differs when lse is not requested"];
  }

  if ([[c objectForKey:@"backward"] boolValue]) {
    UMFATensor *dout = input_tensor(root, [inputs objectForKey:@"dout"], &why);
    UMFATensor *dq = output_tensor([expected objectForKey:@"dq"]);
    UMFATensor *dk = output_tensor([expected objectForKey:@"dk"]);
    UMFATensor *dv = output_tensor([expected objectForKey:@"dv"]);
    UMFATensor *grads[3];
    if (dout == nil) return why;
    grads[0] = dq;
    grads[1] = dk;
    grads[2] = dv;
    if (![ctx backwardWithQuery:q
                            key:k
                          value:v
                         output:out
                 outputGradient:dout
                      logSumExp:lse
                  queryGradient:dq
                    keyGradient:dk
                  valueGradient:dv
                        options:opts
                          error:&error]) {
      return [NSString stringWithFormat:@"backward failed: %@ (status %ld)",
                                        [error localizedDescription], (long)[error code]];
    }
    names = [NSArray arrayWithObjects:@"dq", @"dk", @"dv", nil];
    for (i = 0; i < 3; i++) {
      NSString *n = [names objectAtIndex:i];
      NSString *f = compare(n, grads[i], root, [expected objectForKey:n], [tols objectForKey:n],
                            ratio);
      if (f) [failures addObject:f];
    }
  }
  return [failures count] ? [failures componentsJoinedByString:@"; "] : nil;
}

/* The skip list: "<id or prefix*> <reason>" per line, '#' comments. */
static NSString *skip_reason(NSArray *lines, NSString *ident) {
  NSUInteger i;
  for (i = 0; i < [lines count]; i++) {
    NSString *line = [[lines objectAtIndex:i]
        stringByTrimmingCharactersInSet:[NSCharacterSet whitespaceCharacterSet]];
    NSRange space;
    NSString *pattern, *reason;
    BOOL hit;
    if ([line length] == 0 || [line hasPrefix:@"#"]) continue;
    space = [line rangeOfCharacterFromSet:[NSCharacterSet whitespaceCharacterSet]];
    pattern = space.location == NSNotFound ? line : [line substringToIndex:space.location];
    reason = space.location == NSNotFound
                 ? @""
                 : [[line substringFromIndex:space.location]
                       stringByTrimmingCharactersInSet:[NSCharacterSet whitespaceCharacterSet]];
    if ([pattern hasSuffix:@"*"]) {
      hit = [ident hasPrefix:[pattern substringToIndex:[pattern length] - 1]];
    } else {
      hit = [ident isEqualToString:pattern];
    }
    if (hit) return reason;
  }
  return nil;
}

static void run_conformance(UMFAContext *ctx, NSString *manifestPath, NSString *skipPath,
                            NSString *filter) {
  NSData *json = [NSData dataWithContentsOfFile:manifestPath];
  NSError *error = nil;
  NSDictionary *manifest;
  NSArray *cases, *skipLines = [NSArray array];
  NSString *root = [manifestPath stringByDeletingLastPathComponent];
  NSUInteger i;
  int passed = 0, failed = 0, skipped = 0;
  if (json == nil) {
    report(NO, @"conformance", [NSString stringWithFormat:@"cannot read %@", manifestPath]);
    return;
  }
  manifest = [NSJSONSerialization JSONObjectWithData:json options:0 error:&error];
  if (manifest == nil || [[manifest objectForKey:@"format_version"] intValue] != 1) {
    report(NO, @"conformance", @"manifest.json does not parse or has an unknown format_version");
    return;
  }
  if (skipPath != nil) {
    NSString *text = [NSString stringWithContentsOfFile:skipPath
                                               encoding:NSUTF8StringEncoding
                                                  error:NULL];
    skipLines = text ? [text componentsSeparatedByString:@"\n"] : skipLines;
  }
  cases = [manifest objectForKey:@"cases"];
  for (i = 0; i < [cases count]; i++) {
    NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
    NSDictionary *c = [cases objectAtIndex:i];
    NSString *ident = [c objectForKey:@"id"];
    NSString *reason, *failure;
    double ratio = 0.0;
    if (filter != nil && [ident rangeOfString:filter].location == NSNotFound) {
      [pool drain];
      continue;
    }
    reason = skip_reason(skipLines, ident);
    if (reason != nil) {
      printf("SKIP %s: %s\n", [ident UTF8String], [reason UTF8String]);
      skipped++;
      g_skipped++;
      [pool drain];
      continue;
    }
    failure = run_case(ctx, root, c, &ratio);
    if (failure == nil) {
      passed++;
      report(YES, [NSString stringWithFormat:@"conformance %@", ident],
             [NSString stringWithFormat:@"(worst error/tolerance %.3f)", ratio]);
    } else {
      failed++;
      report(NO, [NSString stringWithFormat:@"conformance %@", ident], failure);
    }
    [pool drain];
  }
  printf("objc conformance: %d passed, %d failed, %d skipped\n", passed, failed, skipped);
}

/* ------------------------------------------------------------------------------------------
 * Bad inputs
 * ------------------------------------------------------------------------------------------ */

static NSMutableData *floats(NSUInteger count, float value) {
  NSMutableData *data = [NSMutableData dataWithLength:count * sizeof(float)];
  float *p = (float *)[data mutableBytes];
  NSUInteger i;
  for (i = 0; i < count; i++) p[i] = value == 0.0f ? (float)((i * 37) % 11) / 11.0f - 0.5f : value;
  return data;
}

static const float kSentinel = 12345.0f;

static BOOL untouched(NSData *data) {
  const float *p = (const float *)[data bytes];
  NSUInteger i;
  for (i = 0; i < [data length] / sizeof(float); i++) {
    if (p[i] != kSentinel) return NO;
  }
  return YES;
}

/* A forward call on contiguous f32 data that must fail with `status` and write nothing. */
static void expect_forward_error(UMFAContext *ctx, NSString *name, NSArray *qShape,
                                 NSArray *kShape, NSArray *vShape, NSArray *outShape,
                                 UMFAAttentionOptions *opts, umfa_status status) {
  NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
  NSMutableData *out = floats(product(outShape), kSentinel);
  NSError *error = nil;
  UMFATensor *q = [UMFATensor tensorWithData:floats(product(qShape), 0) dtype:UMFADTypeF32
                                       shape:qShape error:NULL];
  UMFATensor *k = [UMFATensor tensorWithData:floats(product(kShape), 0) dtype:UMFADTypeF32
                                       shape:kShape error:NULL];
  UMFATensor *v = [UMFATensor tensorWithData:floats(product(vShape), 0) dtype:UMFADTypeF32
                                       shape:vShape error:NULL];
  UMFATensor *o = [UMFATensor tensorWithMutableData:out dtype:UMFADTypeF32 shape:outShape
                                              error:NULL];
  BOOL ok = [ctx forwardWithQuery:q key:k value:v output:o logSumExp:nil options:opts
                            error:&error];
  if (ok) {
    report(NO, name, @"the call succeeded");
  } else if (![[error domain] isEqualToString:UMFAErrorDomain] || [error code] != status) {
    report(NO, name, [NSString stringWithFormat:@"got %@ code %ld, expected code %d (%@)",
                                                [error domain], (long)[error code], status,
                                                [error localizedDescription]]);
  } else if ([[error localizedDescription] length] == 0 ||
             [[error userInfo] objectForKey:UMFAStatusNameKey] == nil) {
    report(NO, name, @"the error has no message or status name");
  } else if (!untouched(out)) {
    report(NO, name, @"the output was written");
  } else {
    report(YES, name, [NSString stringWithFormat:@"(%@)", [error localizedDescription]]);
  }
  [pool drain];
}

static void run_bad_inputs(UMFAContext *ctx) {
  UMFAAttentionOptions *opts;
  NSError *error = nil;
  NSMutableData *buffer = floats(64, 0);
  UMFATensor *t;

  expect_forward_error(ctx, @"bad input: k/v sequence lengths differ", dims(4, 1, 4, 2, 8),
                       dims(4, 1, 6, 2, 8), dims(4, 1, 7, 2, 8), dims(4, 1, 4, 2, 8), nil,
                       UMFA_STATUS_SHAPE_MISMATCH);
  expect_forward_error(ctx, @"bad input: heads not divisible", dims(4, 1, 4, 3, 8),
                       dims(4, 1, 4, 2, 8), dims(4, 1, 4, 2, 8), dims(4, 1, 4, 3, 8), nil,
                       UMFA_STATUS_HEADS_NOT_DIVISIBLE);
  expect_forward_error(ctx, @"bad input: head_dim 257", dims(4, 1, 2, 1, 257),
                       dims(4, 1, 2, 1, 257), dims(4, 1, 2, 1, 257), dims(4, 1, 2, 1, 257), nil,
                       UMFA_STATUS_HEAD_DIM_OUT_OF_RANGE);
  expect_forward_error(ctx, @"bad input: rank-3 q without varlen", dims(3, 4, 2, 8),
                       dims(4, 1, 4, 2, 8), dims(4, 1, 4, 2, 8), dims(4, 1, 4, 2, 8), nil,
                       UMFA_STATUS_INVALID_RANK);
  expect_forward_error(ctx, @"bad input: out shape differs from q", dims(4, 1, 4, 2, 8),
                       dims(4, 1, 4, 2, 8), dims(4, 1, 4, 2, 8), dims(4, 1, 5, 2, 8), nil,
                       UMFA_STATUS_SHAPE_MISMATCH);
  opts = [UMFAAttentionOptions options];
  [opts setSoftcap:-1.0f];
  expect_forward_error(ctx, @"bad input: negative softcap", dims(4, 1, 4, 2, 8),
                       dims(4, 1, 4, 2, 8), dims(4, 1, 4, 2, 8), dims(4, 1, 4, 2, 8), opts,
                       UMFA_STATUS_INVALID_ARGUMENT);
  opts = [UMFAAttentionOptions options];
  [opts setSoftmaxScale:NAN];
  expect_forward_error(ctx, @"bad input: NaN softmax scale", dims(4, 1, 4, 2, 8),
                       dims(4, 1, 4, 2, 8), dims(4, 1, 4, 2, 8), dims(4, 1, 4, 2, 8), opts,
                       UMFA_STATUS_INVALID_ARGUMENT);
  opts = [UMFAAttentionOptions options];
  [opts setAttnMask:[UMFATensor tensorWithData:[NSMutableData dataWithLength:5 * 4]
                                         dtype:UMFADTypeBool
                                         shape:dims(2, 5, 4)
                                         error:NULL]];
  expect_forward_error(ctx, @"bad input: mask not broadcastable", dims(4, 1, 4, 2, 8),
                       dims(4, 1, 4, 2, 8), dims(4, 1, 4, 2, 8), dims(4, 1, 4, 2, 8), opts,
                       UMFA_STATUS_SHAPE_MISMATCH);
  {
    int32_t offsets[3] = {0, 5, 3};
    NSData *cu = [NSData dataWithBytes:offsets length:sizeof offsets];
    opts = [UMFAAttentionOptions options];
    [opts setCuSeqlensQ:[UMFATensor tensorWithData:cu dtype:UMFADTypeI32 shape:dims(1, 3)
                                             error:NULL]];
    [opts setCuSeqlensK:[UMFATensor tensorWithData:cu dtype:UMFADTypeI32 shape:dims(1, 3)
                                             error:NULL]];
    expect_forward_error(ctx, @"bad input: decreasing cu_seqlens", dims(3, 6, 2, 8),
                         dims(3, 6, 2, 8), dims(3, 6, 2, 8), dims(3, 6, 2, 8), opts,
                         UMFA_STATUS_INVALID_SEQLENS);
  }

  /* Mixed input dtypes. */
  {
    NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
    NSMutableData *half = [NSMutableData dataWithLength:64 * 2];
    NSMutableData *out = floats(64, kSentinel);
    UMFATensor *q = [UMFATensor tensorWithData:floats(64, 0) dtype:UMFADTypeF32
                                         shape:dims(4, 1, 4, 2, 8) error:NULL];
    UMFATensor *k = [UMFATensor tensorWithData:half dtype:UMFADTypeF16 shape:dims(4, 1, 4, 2, 8)
                                         error:NULL];
    UMFATensor *o = [UMFATensor tensorWithMutableData:out dtype:UMFADTypeF32
                                                shape:dims(4, 1, 4, 2, 8) error:NULL];
    BOOL ok = [ctx forwardWithQuery:q key:k value:q output:o logSumExp:nil options:nil
                              error:&error];
    report(!ok && [error code] == UMFA_STATUS_UNSUPPORTED_DTYPE && untouched(out),
           @"bad input: mixed q/k dtypes",
           ok ? @"succeeded" : [error localizedDescription]);
    [pool drain];
  }

  /* Checks the wrapper makes before the library sees anything. */
  t = [UMFATensor tensorWithData:buffer dtype:UMFADTypeF32 shape:dims(4, 1, 4, 2, 9) error:&error];
  report(t == nil && [error code] == UMFA_STATUS_INVALID_ARGUMENT &&
             [[error domain] isEqualToString:UMFAErrorDomain],
         @"bad input: view larger than its NSData", [error localizedDescription]);
  t = [UMFATensor tensorWithData:buffer dtype:UMFADTypeF32 shape:dims(2, 2, 2)
                         strides:dims(2, 64, 1) error:&error];
  report(t == nil && [error code] == UMFA_STATUS_INVALID_ARGUMENT,
         @"bad input: strides reaching past the data", [error localizedDescription]);
  t = [UMFATensor tensorWithData:buffer dtype:UMFADTypeF32 shape:dims(5, 1, 1, 1, 1, 64)
                           error:&error];
  report(t == nil && [error code] == UMFA_STATUS_INVALID_RANK, @"bad input: rank 5",
         [error localizedDescription]);
  t = [UMFATensor tensorWithData:buffer dtype:(UMFADType)42 shape:dims(1, 4) error:&error];
  report(t == nil && [error code] == UMFA_STATUS_UNSUPPORTED_DTYPE, @"bad input: unknown dtype",
         [error localizedDescription]);
  t = [UMFATensor tensorWithData:buffer dtype:UMFADTypeF32 shape:dims(2, 2, 2)
                         strides:dims(1, 1) error:&error];
  report(t == nil && [error code] == UMFA_STATUS_INVALID_ARGUMENT,
         @"bad input: strides and shape lengths differ", [error localizedDescription]);
  t = [UMFATensor tensorWithData:nil dtype:UMFADTypeF32 shape:dims(1, 4) error:NULL];
  report(t == nil, @"bad input: nil data with a NULL error pointer", nil);
  {
    NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
    UMFATensor *q = [UMFATensor tensorWithData:floats(64, 0) dtype:UMFADTypeF32
                                         shape:dims(4, 1, 4, 2, 8) error:NULL];
    BOOL ok = [ctx forwardWithQuery:q key:q value:q output:q logSumExp:nil options:nil
                              error:&error];
    report(!ok && [error code] == UMFA_STATUS_INVALID_ARGUMENT,
           @"bad input: read-only NSData as the output", [error localizedDescription]);
    ok = [ctx forwardWithQuery:q key:q value:nil output:q logSumExp:nil options:nil error:NULL];
    report(!ok, @"bad input: nil tensor with a NULL error pointer", nil);
    [pool drain];
  }
  {
    NSMutableData *out = floats(64, kSentinel);
    BOOL ok = [ctx forwardWithQueryData:floats(64, 0)
                                keyData:floats(64, 0)
                              valueData:floats(63, 0)
                             outputData:out
                          logSumExpData:nil
                                  batch:1
                                seqLenQ:4
                                seqLenK:4
                                 headsQ:2
                                headsKV:2
                                headDim:8
                                  dtype:UMFADTypeF32
                                options:nil
                                  error:&error];
    report(!ok && [error code] == UMFA_STATUS_INVALID_ARGUMENT && untouched(out),
           @"bad input: convenience forward with a short value buffer",
           [error localizedDescription]);
  }

  /* An output whose NSMutableData shrank after the view was made. */
  {
    NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
    NSMutableData *out = floats(64, kSentinel);
    UMFATensor *q = [UMFATensor tensorWithData:floats(64, 0) dtype:UMFADTypeF32
                                         shape:dims(4, 1, 4, 2, 8) error:NULL];
    UMFATensor *o = [UMFATensor tensorWithMutableData:out dtype:UMFADTypeF32
                                                shape:dims(4, 1, 4, 2, 8) error:NULL];
    BOOL ok;
    [out setLength:32 * sizeof(float)];
    ok = [ctx forwardWithQuery:q key:q value:q output:o logSumExp:nil options:nil error:&error];
    report(!ok && [error code] == UMFA_STATUS_INVALID_ARGUMENT && untouched(out),
           @"bad input: output data shrank after the view was made",
           ok ? @"succeeded" : [error localizedDescription]);
    [out setLength:64 * sizeof(float)];
    ok = [ctx forwardWithQuery:q key:q value:q output:o logSumExp:nil options:nil error:&error];
    report(ok && ((const float *)[out bytes])[63] != kSentinel,
           @"resized output data grown back: the view follows its bytes",
           ok ? nil : [error localizedDescription]);
    [pool drain];
  }

  /* Backends. */
  if (![UMFAContext isBackendAvailable:UMFABackendCUDA]) {
    UMFAContext *cuda = [[UMFAContext alloc] initWithBackend:UMFABackendCUDA error:&error];
    report(cuda == nil && [error code] == UMFA_STATUS_BACKEND_UNAVAILABLE,
           @"bad input: CUDA context without CUDA", [error localizedDescription]);
    [cuda release];
  }
  {
    UMFAContext *bad = [[UMFAContext alloc] initWithBackend:(UMFABackend)77 error:&error];
    report(bad == nil && [[error domain] isEqualToString:UMFAErrorDomain] && [error code] != 0,
           @"bad input: unknown backend value", [error localizedDescription]);
    [bad release];
  }
}

/* Backward calls that must fail before writing any gradient. */
static void run_backward_bad_inputs(UMFAContext *ctx) {
  NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
  NSError *error = nil;
  NSArray *shape = dims(4, 1, 4, 2, 8);
  UMFATensor *q = [UMFATensor tensorWithData:floats(64, 0) dtype:UMFADTypeF32 shape:shape
                                       error:NULL];
  NSMutableData *outData = floats(64, kSentinel);
  NSMutableData *lseData = floats(8, kSentinel);
  UMFATensor *out = [UMFATensor tensorWithMutableData:outData dtype:UMFADTypeF32 shape:shape
                                                error:NULL];
  UMFATensor *lse = [UMFATensor tensorWithMutableData:lseData dtype:UMFADTypeF32
                                                shape:dims(3, 1, 2, 4) error:NULL];
  NSMutableData *dqData = floats(64, kSentinel), *dkData = floats(64, kSentinel);
  NSMutableData *dvData = floats(72, kSentinel);
  UMFATensor *dq = [UMFATensor tensorWithMutableData:dqData dtype:UMFADTypeF32 shape:shape
                                               error:NULL];
  UMFATensor *dk = [UMFATensor tensorWithMutableData:dkData dtype:UMFADTypeF32 shape:shape
                                               error:NULL];
  UMFATensor *dvBad = [UMFATensor tensorWithMutableData:dvData dtype:UMFADTypeF32
                                                  shape:dims(4, 1, 4, 2, 9) error:NULL];
  BOOL ok = [ctx forwardWithQuery:q key:q value:q output:out logSumExp:lse options:nil
                            error:&error];
  report(ok, @"backward setup: forward with lse", ok ? nil : [error localizedDescription]);
  ok = [ctx backwardWithQuery:q key:q value:q output:out outputGradient:q logSumExp:lse
                queryGradient:dq keyGradient:dk valueGradient:dvBad options:nil error:&error];
  report(!ok && [[error domain] isEqualToString:UMFAErrorDomain] &&
             [error code] == UMFA_STATUS_SHAPE_MISMATCH && untouched(dqData) &&
             untouched(dkData) && untouched(dvData),
         @"bad input: backward with a dv of the wrong head_dim",
         ok ? @"succeeded" : [error localizedDescription]);
  ok = [ctx backwardWithQuery:q key:q value:q output:out outputGradient:q logSumExp:nil
                queryGradient:dq keyGradient:dk valueGradient:dk options:nil error:&error];
  report(!ok && [error code] == UMFA_STATUS_NULL_POINTER && untouched(dqData) &&
             untouched(dkData),
         @"bad input: backward without lse", ok ? @"succeeded" : [error localizedDescription]);
  ok = [ctx backwardWithQuery:q key:q value:q output:out outputGradient:q logSumExp:lse
                queryGradient:dq keyGradient:dk valueGradient:q options:nil error:&error];
  report(!ok && [error code] == UMFA_STATUS_INVALID_ARGUMENT && untouched(dqData) &&
             untouched(dkData),
         @"bad input: backward into a read-only NSData gradient",
         ok ? @"succeeded" : [error localizedDescription]);
  [pool drain];
}

/* Views are the NSData's own bytes: inputs are read and outputs written in place. */
static void run_zero_copy(UMFAContext *ctx) {
  NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
  NSError *error = nil;
  NSMutableData *storage = floats(16 + 64, 0);
  NSData *input = [NSData dataWithData:storage];
  NSMutableData *outData = floats(64, kSentinel);
  const void *outBytes = [outData bytes];
  UMFATensor *q = [[[UMFATensor alloc] initWithData:input
                                           writable:NO
                                         byteOffset:16 * sizeof(float)
                                              dtype:UMFADTypeF32
                                              shape:dims(4, 1, 4, 2, 8)
                                            strides:nil
                                              error:&error] autorelease];
  UMFATensor *bhsd = [UMFATensor tensorWithData:input dtype:UMFADTypeF32
                                          shape:dims(4, 1, 2, 4, 8) error:NULL];
  UMFATensor *bshd = [bhsd permutedWithAxes:dims(4, 0, 2, 1, 3) error:NULL];
  UMFATensor *out = [UMFATensor tensorWithMutableData:outData dtype:UMFADTypeF32
                                                shape:dims(4, 1, 4, 2, 8) error:NULL];
  BOOL ok;
  report(q != nil && [q rawTensor]->data == (const char *)[input bytes] + 16 * sizeof(float) &&
             [bhsd rawTensor]->data == [input bytes] && [bshd rawTensor]->data == [input bytes] &&
             [bshd rawTensor]->strides[1] == 8 && [bshd rawTensor]->strides[2] == 32,
         @"zero copy: input views point into the NSData's bytes", nil);
  ok = [ctx forwardWithQuery:q key:bshd value:bshd output:out logSumExp:nil options:nil
                       error:&error];
  report(ok && [outData bytes] == outBytes && !untouched(outData) &&
             [out rawTensor]->data == outBytes,
         @"zero copy: the output is written in place into the NSMutableData",
         ok ? nil : [error localizedDescription]);
  [pool drain];
}

/* One context and the same input tensors and options used by several threads at once: every
   thread's result equals the single-threaded one (the calls never modify shared objects). */
@interface UMFAThreadWorker : NSObject {
 @public
  UMFAContext *ctx;
  UMFATensor *q, *k, *v;
  UMFAAttentionOptions *options;
  NSData *expected;
  NSConditionLock *done;
  int *failures; /* shared, updated under `done` */
}
- (void)run:(id)unused;
@end

@implementation UMFAThreadWorker
- (void)run:(id)unused {
  int i, failed = 0;
  for (i = 0; i < 25; i++) {
    NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
    NSMutableData *outData = [NSMutableData dataWithLength:[expected length]];
    UMFATensor *out = [UMFATensor tensorWithMutableData:outData dtype:UMFADTypeF32
                                                  shape:[q shape] error:NULL];
    NSError *error = nil;
    if (![ctx forwardWithQuery:q key:k value:v output:out logSumExp:nil options:options
                         error:&error] ||
        ![outData isEqualToData:expected]) {
      failed++;
    }
    [pool drain];
  }
  /* The worker object is not touched by the main thread after this point (the thread that
     runs it may free it last). */
  [done lock];
  *failures += failed;
  [done unlockWithCondition:[done condition] + 1];
}
@end

static void run_threads(UMFAContext *ctx) {
  NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
  enum { kThreads = 4 };
  UMFAThreadWorker *workers[kThreads];
  NSConditionLock *done = [[[NSConditionLock alloc] initWithCondition:0] autorelease];
  NSArray *qShape = dims(4, 2, 33, 4, 16), *kvShape = dims(4, 2, 40, 2, 16);
  UMFATensor *q = [UMFATensor tensorWithData:floats(2 * 33 * 4 * 16, 0) dtype:UMFADTypeF32
                                       shape:qShape error:NULL];
  UMFATensor *k = [UMFATensor tensorWithData:floats(2 * 40 * 2 * 16, 0) dtype:UMFADTypeF32
                                       shape:kvShape error:NULL];
  NSMutableData *maskData = [NSMutableData dataWithLength:33 * 40];
  UMFAAttentionOptions *options = [UMFAAttentionOptions options];
  NSMutableData *expected = [NSMutableData dataWithLength:2 * 33 * 4 * 16 * sizeof(float)];
  NSError *error = nil;
  int i, failures = 0;
  for (i = 0; i < 33 * 40; i++) ((unsigned char *)[maskData mutableBytes])[i] = (i % 7) != 3;
  [options setAttnMask:[UMFATensor tensorWithData:maskData dtype:UMFADTypeBool
                                            shape:dims(2, 33, 40) error:NULL]];
  [options setMaskMode:UMFAMaskCausalBottomRight];
  if (![ctx forwardWithQuery:q key:k value:k
                      output:[UMFATensor tensorWithMutableData:expected dtype:UMFADTypeF32
                                                         shape:qShape error:NULL]
                   logSumExp:nil options:options error:&error]) {
    report(NO, @"threads: reference call", [error localizedDescription]);
    [pool drain];
    return;
  }
  for (i = 0; i < kThreads; i++) {
    workers[i] = [[UMFAThreadWorker alloc] init];
    workers[i]->ctx = ctx;
    workers[i]->q = q;
    workers[i]->k = k;
    workers[i]->v = k;
    workers[i]->options = options;
    workers[i]->expected = expected;
    workers[i]->done = done;
    workers[i]->failures = &failures;
    [NSThread detachNewThreadSelector:@selector(run:) toTarget:workers[i] withObject:nil];
  }
  [done lockWhenCondition:kThreads];
  [done unlock];
  for (i = 0; i < kThreads; i++) {
    [workers[i] release];
  }
  report(failures == 0, @"threads: 4 threads x 25 calls share one context, tensors and options",
         failures ? [NSString stringWithFormat:@"%d calls failed or differed", failures] : nil);
  [pool drain];
}

/* Two threads failing differently on one context at the same time: every NSError carries its
   own call's message (the context's shared message could belong to the other thread's call). */
@interface UMFAFailingWorker : NSObject {
 @public
  UMFAContext *ctx;
  NSArray *qShape, *kvShape;
  umfa_status status;
  NSString *word;
  NSConditionLock *start; /* condition 1 = go (never changed by the workers) */
  NSConditionLock *done;  /* counts finished workers */
  int *mismatches;        /* shared, updated under `done` */
}
- (void)run:(id)unused;
@end

@implementation UMFAFailingWorker
- (void)run:(id)unused {
  NSAutoreleasePool *outer = [[NSAutoreleasePool alloc] init];
  UMFATensor *q = [UMFATensor tensorWithData:floats(product(qShape), 0) dtype:UMFADTypeF32
                                       shape:qShape error:NULL];
  UMFATensor *kv = [UMFATensor tensorWithData:floats(product(kvShape), 0) dtype:UMFADTypeF32
                                        shape:kvShape error:NULL];
  UMFATensor *out = [UMFATensor tensorWithMutableData:floats(product(qShape), 0)
                                                dtype:UMFADTypeF32 shape:qShape error:NULL];
  int i, wrong = 0;
  [start lockWhenCondition:1];
  [start unlock];
  for (i = 0; i < 20000; i++) {
    NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
    NSError *error = nil;
    if ([ctx forwardWithQuery:q key:kv value:kv output:out logSumExp:nil options:nil
                        error:&error] ||
        [error code] != status ||
        [[error localizedDescription] rangeOfString:word].location == NSNotFound) {
      wrong++;
    }
    [pool drain];
  }
  [done lock];
  *mismatches += wrong;
  [done unlockWithCondition:[done condition] + 1];
  [outer drain];
}
@end

static void run_concurrent_failures(void) {
  NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
  UMFAContext *ctx = [[[UMFAContext alloc] initWithBackend:UMFABackendCPU deviceIndex:0
                                                numThreads:1 workspaceLimit:0
                                                     error:NULL] autorelease];
  NSConditionLock *start = [[[NSConditionLock alloc] initWithCondition:0] autorelease];
  NSConditionLock *done = [[[NSConditionLock alloc] initWithCondition:0] autorelease];
  UMFAFailingWorker *workers[2];
  int i, mismatches = 0;
  for (i = 0; i < 2; i++) {
    workers[i] = [[UMFAFailingWorker alloc] init];
    workers[i]->ctx = ctx;
    workers[i]->qShape = i == 0 ? dims(4, 1, 4, 3, 8) : dims(4, 1, 4, 2, 300);
    workers[i]->kvShape = i == 0 ? dims(4, 1, 4, 2, 8) : dims(4, 1, 4, 2, 300);
    workers[i]->status = i == 0 ? UMFA_STATUS_HEADS_NOT_DIVISIBLE
                                : UMFA_STATUS_HEAD_DIM_OUT_OF_RANGE;
    workers[i]->word = i == 0 ? @"multiple" : @"head_dim";
    workers[i]->start = start;
    workers[i]->done = done;
    workers[i]->mismatches = &mismatches;
    [NSThread detachNewThreadSelector:@selector(run:) toTarget:workers[i] withObject:nil];
  }
  [start lock];
  [start unlockWithCondition:1];
  [done lockWhenCondition:2];
  [done unlock];
  for (i = 0; i < 2; i++) [workers[i] release];
  report(mismatches == 0,
         @"threads: errors of calls failing at once on one context keep their own messages",
         mismatches ? [NSString stringWithFormat:@"%d errors carried another call's message",
                                                 mismatches]
                    : nil);
  [pool drain];
}

/* A valid call through the convenience method, then library information. */
static void run_basics(UMFAContext *ctx) {
  NSMutableData *out = floats(2 * 5 * 4 * 16, kSentinel);
  NSMutableData *lse = floats(2 * 4 * 5, kSentinel);
  NSError *error = nil;
  BOOL ok = [ctx forwardWithQueryData:floats(2 * 5 * 4 * 16, 0)
                              keyData:floats(2 * 7 * 2 * 16, 0)
                            valueData:floats(2 * 7 * 2 * 16, 0)
                           outputData:out
                        logSumExpData:lse
                                batch:2
                              seqLenQ:5
                              seqLenK:7
                               headsQ:4
                              headsKV:2
                              headDim:16
                                dtype:UMFADTypeF32
                              options:nil
                                error:&error];
  const float *o = (const float *)[out bytes];
  NSUInteger i;
  BOOL finite = ok;
  for (i = 0; ok && i < [out length] / 4; i++) {
    if (!isfinite(o[i]) || o[i] == kSentinel) finite = NO;
  }
  report(ok && finite, @"basics: GQA forward on NSData", ok ? nil : [error localizedDescription]);
  report([ctx backend] == UMFABackendCPU && [ctx numThreads] >= 1, @"basics: backend and threads",
         nil);
  report([UMFAContext abiVersion] == UMFA_ABI_VERSION &&
             [[UMFAContext versionString] isEqualToString:UMFA_OBJC_VERSION] &&
             [[UMFAContext buildInfo] length] > 0,
         @"basics: version and build info", [UMFAContext versionString]);
  {
    /* An f16 round trip through the helpers used to compare outputs. */
    uint16_t h = float_to_f16(1.5f);
    report(h == 0x3e00 && f16_to_float(h) == 1.5f, @"basics: f16 conversion", nil);
  }
}

int main(int argc, char **argv) {
  NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
  NSString *manifest = nil, *skip = nil, *filter = nil;
  NSError *error = nil;
  UMFAContext *ctx;
  int i;
  for (i = 1; i + 1 < argc; i += 2) {
    NSString *value = [NSString stringWithUTF8String:argv[i + 1]];
    if (strcmp(argv[i], "--manifest") == 0) manifest = value;
    else if (strcmp(argv[i], "--skip") == 0) skip = value;
    else if (strcmp(argv[i], "--filter") == 0) filter = value;
    else {
      fprintf(stderr, "usage: %s --manifest PATH [--skip PATH] [--filter TEXT]\n", argv[0]);
      return 2;
    }
  }
  ctx = [[UMFAContext alloc] initWithBackend:UMFABackendCPU error:&error];
  if (ctx == nil) {
    fprintf(stderr, "cannot create a CPU context: %s\n", [[error localizedDescription] UTF8String]);
    return 1;
  }
  run_basics(ctx);
  run_bad_inputs(ctx);
  run_backward_bad_inputs(ctx);
  run_zero_copy(ctx);
  run_threads(ctx);
  run_concurrent_failures();
  if (manifest != nil) {
    run_conformance(ctx, manifest, skip, filter);
  } else {
    printf("conformance: no --manifest given, not run\n");
  }
  [ctx release];
  printf("%d passed, %d failed, %d skipped\n", g_passed, g_failed, g_skipped);
  [pool drain];
  return g_failed == 0 ? 0 : 1;
}
