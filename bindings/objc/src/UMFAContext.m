/*
 * UMFAContext.m — implementation of the Objective-C wrapper. Manual retain/release: build with
 * gcc (GNUstep) as is, or with Apple clang and -fno-objc-arc.
 */
#import "UMFAContext.h"

#include <limits.h>
#include <string.h>

#if defined(__has_feature)
#if __has_feature(objc_arc)
#error "UMFAContext.m uses manual retain/release; compile it with -fno-objc-arc"
#endif
#endif

NSString *const UMFAErrorDomain = @"UMFAErrorDomain";
NSString *const UMFAStatusNameKey = @"UMFAStatusName";

static NSError *UMFAMakeError(umfa_status status, NSString *message) {
  const char *name = umfa_status_string(status);
  NSString *statusName = [NSString stringWithUTF8String:name ? name : ""];
  if (message == nil || [message length] == 0) {
    message = statusName;
  }
  NSDictionary *info = [NSDictionary dictionaryWithObjectsAndKeys:message, NSLocalizedDescriptionKey,
                                                                  statusName, UMFAStatusNameKey, nil];
  return [NSError errorWithDomain:UMFAErrorDomain code:(NSInteger)status userInfo:info];
}

/* Sets *error (when requested) from a failed status and the library's message. */
static BOOL UMFAFail(NSError **error, umfa_status status, const umfa_context *context) {
  if (error != NULL) {
    const char *msg = umfa_last_error(context);
    *error = UMFAMakeError(status, [NSString stringWithUTF8String:msg ? msg : ""]);
  }
  return NO;
}

/* Sets *error from a failed attention call: its own message (the per-call buffer the library
   filled, umfa_attention_options.error_message) when there is one, else the context's. The
   context's message is shared by every thread using the context, so another call failing at
   the same time could have replaced it already. */
static BOOL UMFAFailCall(NSError **error, umfa_status status, const umfa_context *context,
                         const char *callMessage) {
  if (error != NULL && callMessage != NULL && callMessage[0] != '\0') {
    *error = UMFAMakeError(status, [NSString stringWithUTF8String:callMessage]);
    return NO;
  }
  return UMFAFail(error, status, context);
}

/* Sets *error for a problem this wrapper detects itself. */
static BOOL UMFAFailWith(NSError **error, umfa_status status, NSString *message) {
  if (error != NULL) {
    *error = UMFAMakeError(status, message);
  }
  return NO;
}

NSUInteger UMFADTypeSize(UMFADType dtype) {
  return (NSUInteger)umfa_dtype_size((int32_t)dtype);
}

/* Reads an NSArray of NSNumber as non-negative int64 values. */
static BOOL UMFAReadDims(NSArray *array, int64_t *out, NSUInteger *count, NSString *what,
                         NSError **error) {
  NSUInteger n = [array count];
  NSUInteger i;
  if (n > UMFA_MAX_RANK) {
    return UMFAFailWith(error, UMFA_STATUS_INVALID_RANK,
                        [NSString stringWithFormat:@"%@ has %lu entries; the maximum rank is %d",
                                                   what, (unsigned long)n, UMFA_MAX_RANK]);
  }
  for (i = 0; i < n; i++) {
    id item = [array objectAtIndex:i];
    long long value;
    if (![item isKindOfClass:[NSNumber class]]) {
      return UMFAFailWith(error, UMFA_STATUS_INVALID_ARGUMENT,
                          [NSString stringWithFormat:@"%@[%lu] is not an NSNumber", what,
                                                     (unsigned long)i]);
    }
    value = [(NSNumber *)item longLongValue];
    if (value < 0) {
      return UMFAFailWith(error, UMFA_STATUS_INVALID_ARGUMENT,
                          [NSString stringWithFormat:@"%@[%lu] is negative (%lld)", what,
                                                     (unsigned long)i, value]);
    }
    out[i] = (int64_t)value;
  }
  *count = n;
  return YES;
}

static NSArray *UMFANumbers(const int64_t *values, int32_t count) {
  NSMutableArray *array = [NSMutableArray arrayWithCapacity:(NSUInteger)count];
  int32_t i;
  for (i = 0; i < count; i++) {
    [array addObject:[NSNumber numberWithLongLong:(long long)values[i]]];
  }
  return array;
}

@interface UMFATensor ()
- (char *)currentBase;
- (void)refreshPointer;
- (BOOL)copyRawTo:(umfa_tensor *)raw name:(NSString *)name error:(NSError **)error;
@end

@implementation UMFATensor

+ (instancetype)tensorWithData:(NSData *)data
                         dtype:(UMFADType)dtype
                         shape:(NSArray *)shape
                         error:(NSError **)error {
  return [self tensorWithData:data dtype:dtype shape:shape strides:nil error:error];
}

+ (instancetype)tensorWithData:(NSData *)data
                         dtype:(UMFADType)dtype
                         shape:(NSArray *)shape
                       strides:(NSArray *)strides
                         error:(NSError **)error {
  return [[[self alloc] initWithData:data
                            writable:NO
                          byteOffset:0
                               dtype:dtype
                               shape:shape
                             strides:strides
                               error:error] autorelease];
}

+ (instancetype)tensorWithMutableData:(NSMutableData *)data
                                dtype:(UMFADType)dtype
                                shape:(NSArray *)shape
                                error:(NSError **)error {
  return [self tensorWithMutableData:data dtype:dtype shape:shape strides:nil error:error];
}

+ (instancetype)tensorWithMutableData:(NSMutableData *)data
                                dtype:(UMFADType)dtype
                                shape:(NSArray *)shape
                              strides:(NSArray *)strides
                                error:(NSError **)error {
  return [[[self alloc] initWithData:data
                            writable:YES
                          byteOffset:0
                               dtype:dtype
                               shape:shape
                             strides:strides
                               error:error] autorelease];
}

- (instancetype)initWithData:(NSData *)data
                    writable:(BOOL)writable
                  byteOffset:(NSUInteger)byteOffset
                       dtype:(UMFADType)dtype
                       shape:(NSArray *)shape
                     strides:(NSArray *)strides
                       error:(NSError **)error {
  int64_t dims[UMFA_MAX_RANK] = {0, 0, 0, 0};
  int64_t steps[UMFA_MAX_RANK] = {0, 0, 0, 0};
  NSUInteger rank = 0, strideCount = 0, i;
  NSUInteger elementSize = UMFADTypeSize(dtype);
  NSUInteger length;
  BOOL empty = NO;
  uint64_t last = 0; /* index of the last element addressed */

  self = [super init];
  if (self == nil) {
    return nil;
  }
  if (data == nil) {
    UMFAFailWith(error, UMFA_STATUS_NULL_POINTER, @"tensor data is nil");
    [self release];
    return nil;
  }
  if (elementSize == 0) {
    UMFAFailWith(error, UMFA_STATUS_UNSUPPORTED_DTYPE,
                 [NSString stringWithFormat:@"unknown dtype %ld", (long)dtype]);
    [self release];
    return nil;
  }
  if (writable && ![data isKindOfClass:[NSMutableData class]]) {
    UMFAFailWith(error, UMFA_STATUS_INVALID_ARGUMENT, @"a writable tensor needs NSMutableData");
    [self release];
    return nil;
  }
  if (!UMFAReadDims(shape, dims, &rank, @"shape", error)) {
    [self release];
    return nil;
  }
  if (strides != nil) {
    if (!UMFAReadDims(strides, steps, &strideCount, @"strides", error)) {
      [self release];
      return nil;
    }
    if (strideCount != rank) {
      UMFAFailWith(error, UMFA_STATUS_INVALID_ARGUMENT,
                   [NSString stringWithFormat:@"%lu strides for a rank-%lu shape",
                                              (unsigned long)strideCount, (unsigned long)rank]);
      [self release];
      return nil;
    }
  } else {
    int64_t running = 1;
    for (i = rank; i > 0; i--) {
      steps[i - 1] = running;
      if (dims[i - 1] > 1) {
        if (running > INT64_MAX / dims[i - 1]) {
          UMFAFailWith(error, UMFA_STATUS_SIZE_OVERFLOW, @"tensor size overflows");
          [self release];
          return nil;
        }
        running *= dims[i - 1];
      }
    }
  }
  /* Bounds: the furthest element must lie inside the data. */
  for (i = 0; i < rank; i++) {
    if (dims[i] == 0) {
      empty = YES;
    } else if (steps[i] != 0) {
      uint64_t extent = (uint64_t)(dims[i] - 1);
      uint64_t stride = (uint64_t)steps[i];
      if (extent > UINT64_MAX / stride || last > UINT64_MAX - extent * stride) {
        UMFAFailWith(error, UMFA_STATUS_SIZE_OVERFLOW, @"tensor extent overflows");
        [self release];
        return nil;
      }
      last += extent * stride;
    }
  }
  length = [data length];
  if (byteOffset > length) {
    UMFAFailWith(error, UMFA_STATUS_INVALID_ARGUMENT, @"byteOffset is past the end of the data");
    [self release];
    return nil;
  }
  if (!empty) {
    uint64_t available = (uint64_t)(length - byteOffset) / elementSize;
    if (last >= available) {
      UMFAFailWith(error, UMFA_STATUS_INVALID_ARGUMENT,
                   [NSString stringWithFormat:@"the view reaches element %llu but the data holds "
                                              @"%llu elements",
                                              (unsigned long long)last,
                                              (unsigned long long)available]);
      [self release];
      return nil;
    }
  }

  _data = [data retain];
  _mutable = writable;
  _byteOffset = byteOffset;
  _bytesNeeded = empty ? byteOffset : byteOffset + (NSUInteger)((last + 1) * elementSize);
  memset(&_raw, 0, sizeof _raw);
  _raw.dtype = (int32_t)dtype;
  _raw.device = UMFA_DEVICE_CPU;
  _raw.device_index = 0;
  _raw.rank = (int32_t)rank;
  for (i = 0; i < rank; i++) {
    _raw.shape[i] = dims[i];
    _raw.strides[i] = steps[i];
  }
  [self refreshPointer];
  return self;
}

- (instancetype)permutedWithAxes:(NSArray *)axes error:(NSError **)error {
  int32_t rank = _raw.rank;
  BOOL seen[UMFA_MAX_RANK] = {NO, NO, NO, NO};
  UMFATensor *result;
  NSUInteger i;
  if ((int32_t)[axes count] != rank) {
    UMFAFailWith(error, UMFA_STATUS_INVALID_ARGUMENT, @"axes must list every dimension once");
    return nil;
  }
  for (i = 0; i < [axes count]; i++) {
    int a = [[axes objectAtIndex:i] intValue];
    if (a < 0 || a >= rank || seen[a]) {
      UMFAFailWith(error, UMFA_STATUS_INVALID_ARGUMENT, @"axes must list every dimension once");
      return nil;
    }
    seen[a] = YES;
  }
  result = [[[UMFATensor alloc] init] autorelease];
  result->_data = [_data retain];
  result->_mutable = _mutable;
  result->_byteOffset = _byteOffset;
  result->_bytesNeeded = _bytesNeeded;
  result->_raw = _raw;
  for (i = 0; i < [axes count]; i++) {
    int a = [[axes objectAtIndex:i] intValue];
    result->_raw.shape[i] = _raw.shape[a];
    result->_raw.strides[i] = _raw.strides[a];
  }
  return result;
}

- (void)dealloc {
  [_data release];
  [super dealloc];
}

- (NSData *)data {
  return _data;
}

- (BOOL)isWritable {
  return _mutable;
}

- (UMFADType)dtype {
  return (UMFADType)_raw.dtype;
}

- (NSArray *)shape {
  return UMFANumbers(_raw.shape, _raw.rank);
}

- (NSArray *)strides {
  return UMFANumbers(_raw.strides, _raw.rank);
}

/* The address of the view's first byte in the data's current bytes (no copy). A non-NULL
   pointer is given even for empty data. */
- (char *)currentBase {
  static char empty_storage[8];
  char *base = _mutable ? (char *)[(NSMutableData *)_data mutableBytes] : (char *)[_data bytes];
  return base != NULL ? base + _byteOffset : empty_storage;
}

- (void)refreshPointer {
  _raw.data = [self currentBase];
}

/* Checks the data is still long enough (it may have been resized) and writes a copy of the C
   view, pointing at the current bytes, to *raw. Nothing in the tensor object changes, so one
   tensor may take part in calls on several threads at once. */
- (BOOL)copyRawTo:(umfa_tensor *)raw name:(NSString *)name error:(NSError **)error {
  if ([_data length] < _bytesNeeded) {
    return UMFAFailWith(error, UMFA_STATUS_INVALID_ARGUMENT,
                        [NSString stringWithFormat:@"%@: its data shrank to %lu bytes; the view "
                                                   @"needs %lu",
                                                   name, (unsigned long)[_data length],
                                                   (unsigned long)_bytesNeeded]);
  }
  *raw = _raw;
  raw->data = [self currentBase];
  return YES;
}

- (const umfa_tensor *)rawTensor {
  [self refreshPointer];
  return &_raw;
}

- (NSString *)description {
  return [NSString stringWithFormat:@"<UMFATensor dtype %d shape %@ strides %@%@>", _raw.dtype,
                                    [[self shape] componentsJoinedByString:@"x"],
                                    [[self strides] componentsJoinedByString:@","],
                                    _mutable ? @" writable" : @""];
}

@end

@implementation UMFAAttentionOptions

@synthesize maskMode = _maskMode;
@synthesize softmaxScale = _softmaxScale;
@synthesize softcap = _softcap;
@synthesize hasWindow = _hasWindow;
@synthesize windowLeft = _windowLeft;
@synthesize windowRight = _windowRight;
@synthesize deterministic = _deterministic;
@synthesize attnMask = _attnMask;
@synthesize alibiSlopes = _alibiSlopes;
@synthesize cuSeqlensQ = _cuSeqlensQ;
@synthesize cuSeqlensK = _cuSeqlensK;
@synthesize maxSeqlenQ = _maxSeqlenQ;
@synthesize maxSeqlenK = _maxSeqlenK;
@synthesize stream = _stream;

+ (instancetype)options {
  return [[[self alloc] init] autorelease];
}

- (instancetype)init {
  self = [super init];
  if (self != nil) {
    _windowLeft = -1;
    _windowRight = -1;
  }
  return self;
}

- (void)dealloc {
  [_attnMask release];
  [_alibiSlopes release];
  [_cuSeqlensQ release];
  [_cuSeqlensK release];
  [super dealloc];
}

- (void)getRawOptions:(umfa_attention_options *)raw_out {
  memset(raw_out, 0, sizeof *raw_out);
  raw_out->struct_size = (uint32_t)sizeof *raw_out;
  raw_out->mask_mode = (uint32_t)_maskMode;
  raw_out->softmax_scale = _softmaxScale;
  raw_out->softcap = _softcap;
  raw_out->has_window = _hasWindow ? 1u : 0u;
  raw_out->flags = _deterministic ? (uint32_t)UMFA_FLAG_DETERMINISTIC : 0u;
  raw_out->window_left = _windowLeft;
  raw_out->window_right = _windowRight;
  raw_out->attn_mask = _attnMask ? [_attnMask rawTensor] : NULL;
  raw_out->alibi_slopes = _alibiSlopes ? [_alibiSlopes rawTensor] : NULL;
  raw_out->cu_seqlens_q = _cuSeqlensQ ? [_cuSeqlensQ rawTensor] : NULL;
  raw_out->cu_seqlens_k = _cuSeqlensK ? [_cuSeqlensK rawTensor] : NULL;
  raw_out->max_seqlen_q = _maxSeqlenQ;
  raw_out->max_seqlen_k = _maxSeqlenK;
  raw_out->stream = _stream;
}

@end

/* Checks that a required tensor is present (and writable for outputs) and writes its C view
   to *raw (a per-call copy). */
static BOOL UMFACheckTensor(UMFATensor *t, NSString *name, BOOL output, umfa_tensor *raw,
                            NSError **error) {
  if (t == nil) {
    return UMFAFailWith(error, UMFA_STATUS_NULL_POINTER,
                        [NSString stringWithFormat:@"%@ is nil", name]);
  }
  if (output && ![t isWritable]) {
    return UMFAFailWith(error, UMFA_STATUS_INVALID_ARGUMENT,
                        [NSString stringWithFormat:@"%@ is an output: make it with "
                                                   @"tensorWithMutableData:",
                                                   name]);
  }
  return [t copyRawTo:raw name:name error:error];
}

/* Per-call copies of the views an options object points to. */
typedef struct {
  umfa_tensor attn_mask, alibi_slopes, cu_seqlens_q, cu_seqlens_k;
} UMFAOptionViews;

/* Fills *raw from `options` (nil = defaults) with its tensor pointers aimed at the copies in
   *views, which must outlive the call. */
static BOOL UMFAPrepareOptions(UMFAAttentionOptions *options, umfa_attention_options *raw,
                               UMFAOptionViews *views, NSError **error) {
  UMFATensor *mask, *alibi, *cuQ, *cuK;
  if (options == nil) {
    memset(raw, 0, sizeof *raw);
    raw->struct_size = (uint32_t)sizeof *raw;
    raw->window_left = -1;
    raw->window_right = -1;
    return YES;
  }
  mask = [options attnMask];
  alibi = [options alibiSlopes];
  cuQ = [options cuSeqlensQ];
  cuK = [options cuSeqlensK];
  if ((mask && ![mask copyRawTo:&views->attn_mask name:@"attn_mask" error:error]) ||
      (alibi && ![alibi copyRawTo:&views->alibi_slopes name:@"alibi_slopes" error:error]) ||
      (cuQ && ![cuQ copyRawTo:&views->cu_seqlens_q name:@"cu_seqlens_q" error:error]) ||
      (cuK && ![cuK copyRawTo:&views->cu_seqlens_k name:@"cu_seqlens_k" error:error])) {
    return NO;
  }
  /* The scalar fields as -getRawOptions: writes them, without touching the tensor objects. */
  memset(raw, 0, sizeof *raw);
  raw->struct_size = (uint32_t)sizeof *raw;
  raw->mask_mode = (uint32_t)[options maskMode];
  raw->softmax_scale = [options softmaxScale];
  raw->softcap = [options softcap];
  raw->has_window = [options hasWindow] ? 1u : 0u;
  raw->flags = [options deterministic] ? (uint32_t)UMFA_FLAG_DETERMINISTIC : 0u;
  raw->window_left = [options windowLeft];
  raw->window_right = [options windowRight];
  raw->max_seqlen_q = [options maxSeqlenQ];
  raw->max_seqlen_k = [options maxSeqlenK];
  raw->stream = [options stream];
  raw->attn_mask = mask ? &views->attn_mask : NULL;
  raw->alibi_slopes = alibi ? &views->alibi_slopes : NULL;
  raw->cu_seqlens_q = cuQ ? &views->cu_seqlens_q : NULL;
  raw->cu_seqlens_k = cuK ? &views->cu_seqlens_k : NULL;
  return YES;
}

@implementation UMFAContext

- (instancetype)initWithBackend:(UMFABackend)backend error:(NSError **)error {
  return [self initWithBackend:backend deviceIndex:0 numThreads:0 workspaceLimit:0 error:error];
}

- (instancetype)initWithBackend:(UMFABackend)backend
                    deviceIndex:(int32_t)deviceIndex
                     numThreads:(int32_t)numThreads
                 workspaceLimit:(uint64_t)workspaceLimit
                          error:(NSError **)error {
  umfa_context_options options;
  umfa_status status;
  self = [super init];
  if (self == nil) {
    return nil;
  }
  if (umfa_abi_version() != UMFA_ABI_VERSION) {
    UMFAFailWith(error, UMFA_STATUS_UNSUPPORTED,
                 [NSString stringWithFormat:@"libumfa implements ABI %u, this wrapper needs %d",
                                            umfa_abi_version(), UMFA_ABI_VERSION]);
    [self release];
    return nil;
  }
  memset(&options, 0, sizeof options);
  options.struct_size = (uint32_t)sizeof options;
  options.backend = (uint32_t)backend;
  options.device_index = deviceIndex;
  options.num_threads = numThreads;
  options.workspace_limit_bytes = workspaceLimit;
  status = umfa_context_create(&options, &_context);
  if (status != UMFA_STATUS_OK) {
    UMFAFail(error, status, NULL);
    _context = NULL;
    [self release];
    return nil;
  }
  return self;
}

+ (instancetype)contextWithBackend:(UMFABackend)backend error:(NSError **)error {
  return [[[self alloc] initWithBackend:backend error:error] autorelease];
}

- (void)dealloc {
  umfa_context_destroy(_context);
  [super dealloc];
}

- (UMFABackend)backend {
  uint32_t backend = 0;
  umfa_context_backend(_context, &backend);
  return (UMFABackend)backend;
}

- (int32_t)numThreads {
  int32_t threads = 0;
  umfa_context_num_threads(_context, &threads);
  return threads;
}

- (NSString *)lastErrorMessage {
  const char *msg = umfa_last_error(_context);
  return [NSString stringWithUTF8String:msg ? msg : ""];
}

- (umfa_context *)rawContext {
  return _context;
}

- (BOOL)forwardWithQuery:(UMFATensor *)q
                     key:(UMFATensor *)k
                   value:(UMFATensor *)v
                  output:(UMFATensor *)outTensor
               logSumExp:(UMFATensor *)lse
                 options:(UMFAAttentionOptions *)options
                   error:(NSError **)error {
  umfa_attention_options raw;
  UMFAOptionViews optionViews;
  umfa_tensor tq, tk, tv, tout, tlse;
  char message[1024];
  umfa_status status;
  if (!UMFACheckTensor(q, @"q", NO, &tq, error) || !UMFACheckTensor(k, @"k", NO, &tk, error) ||
      !UMFACheckTensor(v, @"v", NO, &tv, error) ||
      !UMFACheckTensor(outTensor, @"out", YES, &tout, error)) {
    return NO;
  }
  if (lse != nil && !UMFACheckTensor(lse, @"lse", YES, &tlse, error)) {
    return NO;
  }
  if (!UMFAPrepareOptions(options, &raw, &optionViews, error)) {
    return NO;
  }
  message[0] = '\0';
  raw.error_message = message;
  raw.error_message_capacity = sizeof message;
  status = umfa_attention_forward(_context, &raw, &tq, &tk, &tv, &tout, lse ? &tlse : NULL);
  if (status != UMFA_STATUS_OK) {
    return UMFAFailCall(error, status, _context, message);
  }
  return YES;
}

- (BOOL)backwardWithQuery:(UMFATensor *)q
                      key:(UMFATensor *)k
                    value:(UMFATensor *)v
                   output:(UMFATensor *)outTensor
           outputGradient:(UMFATensor *)dout
                logSumExp:(UMFATensor *)lse
            queryGradient:(UMFATensor *)dq
              keyGradient:(UMFATensor *)dk
            valueGradient:(UMFATensor *)dv
                  options:(UMFAAttentionOptions *)options
                    error:(NSError **)error {
  umfa_attention_options raw;
  UMFAOptionViews optionViews;
  umfa_tensor tq, tk, tv, tout, tdout, tlse, tdq, tdk, tdv;
  char message[1024];
  umfa_status status;
  if (!UMFACheckTensor(q, @"q", NO, &tq, error) || !UMFACheckTensor(k, @"k", NO, &tk, error) ||
      !UMFACheckTensor(v, @"v", NO, &tv, error) ||
      !UMFACheckTensor(outTensor, @"out", NO, &tout, error) ||
      !UMFACheckTensor(dout, @"dout", NO, &tdout, error) ||
      !UMFACheckTensor(lse, @"lse", NO, &tlse, error) ||
      !UMFACheckTensor(dq, @"dq", YES, &tdq, error) ||
      !UMFACheckTensor(dk, @"dk", YES, &tdk, error) ||
      !UMFACheckTensor(dv, @"dv", YES, &tdv, error)) {
    return NO;
  }
  if (!UMFAPrepareOptions(options, &raw, &optionViews, error)) {
    return NO;
  }
  message[0] = '\0';
  raw.error_message = message;
  raw.error_message_capacity = sizeof message;
  status = umfa_attention_backward(_context, &raw, &tq, &tk, &tv, &tout, &tdout, &tlse, &tdq,
                                   &tdk, &tdv);
  if (status != UMFA_STATUS_OK) {
    return UMFAFailCall(error, status, _context, message);
  }
  return YES;
}

- (BOOL)forwardWithQueryData:(NSData *)q
                     keyData:(NSData *)k
                   valueData:(NSData *)v
                  outputData:(NSMutableData *)outData
               logSumExpData:(NSMutableData *)lse
                       batch:(NSUInteger)batch
                     seqLenQ:(NSUInteger)seqLenQ
                     seqLenK:(NSUInteger)seqLenK
                      headsQ:(NSUInteger)headsQ
                     headsKV:(NSUInteger)headsKV
                     headDim:(NSUInteger)headDim
                       dtype:(UMFADType)dtype
                     options:(UMFAAttentionOptions *)options
                       error:(NSError **)error {
  NSAutoreleasePool *pool = [[NSAutoreleasePool alloc] init];
  NSArray *qShape = [NSArray arrayWithObjects:[NSNumber numberWithUnsignedInteger:batch],
                                              [NSNumber numberWithUnsignedInteger:seqLenQ],
                                              [NSNumber numberWithUnsignedInteger:headsQ],
                                              [NSNumber numberWithUnsignedInteger:headDim], nil];
  NSArray *kvShape = [NSArray arrayWithObjects:[NSNumber numberWithUnsignedInteger:batch],
                                               [NSNumber numberWithUnsignedInteger:seqLenK],
                                               [NSNumber numberWithUnsignedInteger:headsKV],
                                               [NSNumber numberWithUnsignedInteger:headDim], nil];
  NSArray *lseShape = [NSArray arrayWithObjects:[NSNumber numberWithUnsignedInteger:batch],
                                                [NSNumber numberWithUnsignedInteger:headsQ],
                                                [NSNumber numberWithUnsignedInteger:seqLenQ], nil];
  NSError *failure = nil;
  BOOL ok = NO;
  UMFATensor *tq = [UMFATensor tensorWithData:q dtype:dtype shape:qShape error:&failure];
  UMFATensor *tk = tq ? [UMFATensor tensorWithData:k dtype:dtype shape:kvShape error:&failure] : nil;
  UMFATensor *tv = tk ? [UMFATensor tensorWithData:v dtype:dtype shape:kvShape error:&failure] : nil;
  UMFATensor *tout =
      tv ? [UMFATensor tensorWithMutableData:outData dtype:dtype shape:qShape error:&failure] : nil;
  UMFATensor *tlse = nil;
  if (tout != nil && lse != nil) {
    tlse = [UMFATensor tensorWithMutableData:lse dtype:UMFADTypeF32 shape:lseShape error:&failure];
  }
  if (tout != nil && (lse == nil || tlse != nil)) {
    ok = [self forwardWithQuery:tq
                            key:tk
                          value:tv
                         output:tout
                      logSumExp:tlse
                        options:options
                          error:&failure];
  }
  /* Keep the error alive past the pool. */
  [failure retain];
  [pool drain];
  if (!ok && error != NULL) {
    *error = [failure autorelease];
  } else {
    [failure release];
  }
  return ok;
}

+ (NSString *)versionString {
  return [NSString stringWithUTF8String:umfa_version_string()];
}

+ (uint32_t)abiVersion {
  return umfa_abi_version();
}

+ (NSString *)buildInfo {
  return [NSString stringWithUTF8String:umfa_build_info()];
}

+ (BOOL)isBackendAvailable:(UMFABackend)backend {
  int32_t available = 0;
  if (umfa_backend_available((uint32_t)backend, &available, NULL) != UMFA_STATUS_OK) {
    return NO;
  }
  return available != 0;
}

@end
