/*
 * UMFAContext.h — Objective-C (Foundation) wrapper of the umfa flash-attention C ABI (umfa.h).
 *
 *   UMFAContext           an execution context (backend, threads); forward and backward attention
 *   UMFATensor            a strided view of NSData (inputs) or NSMutableData (outputs), no copy
 *   UMFAAttentionOptions  every field of umfa_attention_options
 *
 * Errors: methods that can fail return NO/nil and, when `error` is not NULL, set *error to an
 * autoreleased NSError with domain UMFAErrorDomain, the umfa status (UMFA_STATUS_*) as its code,
 * the library's message as its localizedDescription (the failed call's own message, also when
 * other calls on the same context fail at the same time) and the status name under
 * UMFAStatusNameKey.
 *
 * Memory management: manual retain/release (the code builds with gcc/GNUstep, which has no ARC,
 * and with Apple clang -fno-objc-arc). Objects returned by +…With… class methods and by
 * properties are autoreleased; -init… results are owned by the caller. Callers compiled with ARC
 * can use this header unchanged; only the implementation file must be built -fno-objc-arc.
 *
 * Threads: one UMFAContext may be used by many threads at once (the C ABI allows concurrent
 * calls on one context), and so may the same UMFATensor and UMFAAttentionOptions objects: a call
 * only reads them (it works on its own copies of the C views). Do not change an options object,
 * or resize a tensor's data, while a call that uses it runs.
 */
#ifndef UMFA_OBJC_CONTEXT_H
#define UMFA_OBJC_CONTEXT_H

#import <Foundation/Foundation.h>

#include "umfa.h"

/** Version of this wrapper (moves in lockstep with the library; compare +versionString). */
#define UMFA_OBJC_VERSION @"0.1.0"

/** The NSError domain of every umfa error; the error code is the umfa_status value. */
extern NSString *const UMFAErrorDomain;
/** userInfo key: the status as text ("UMFA_STATUS_SHAPE_MISMATCH: ..."), an NSString. */
extern NSString *const UMFAStatusNameKey;

/** Backends (UMFA_BACKEND_*). */
typedef NS_ENUM(NSInteger, UMFABackend) {
  UMFABackendAuto = UMFA_BACKEND_AUTO,
  UMFABackendCPU = UMFA_BACKEND_CPU,
  UMFABackendCUDA = UMFA_BACKEND_CUDA,
  /** Apple GPUs (on Linux only the simulated backend named by UMFA_METAL_LIB, for tests). */
  UMFABackendMetal = UMFA_BACKEND_METAL
};

/** Element types (UMFA_DTYPE_*). */
typedef NS_ENUM(NSInteger, UMFADType) {
  UMFADTypeF32 = UMFA_DTYPE_F32,
  UMFADTypeF16 = UMFA_DTYPE_F16,
  UMFADTypeBF16 = UMFA_DTYPE_BF16,
  UMFADTypeBool = UMFA_DTYPE_BOOL,
  UMFADTypeI32 = UMFA_DTYPE_I32
};

/** Built-in masks (UMFA_MASK_*). */
typedef NS_ENUM(NSInteger, UMFAMaskMode) {
  UMFAMaskNone = UMFA_MASK_NONE,
  UMFAMaskCausalTopLeft = UMFA_MASK_CAUSAL_TOP_LEFT,
  UMFAMaskCausalBottomRight = UMFA_MASK_CAUSAL_BOTTOM_RIGHT
};

/** Size in bytes of one element of `dtype` (0 for an unknown value). */
NSUInteger UMFADTypeSize(UMFADType dtype);

/**
 * A strided view of the bytes of an NSData (read-only: inputs) or NSMutableData (writable:
 * outputs). The tensor retains the data object and never copies it. Shape and strides are
 * NSArrays of NSNumber (integers >= 0; strides in elements; nil strides = row-major). The
 * initializer checks that every element the view addresses lies inside the data (starting at
 * `byteOffset`), so the library can never read or write past it. The data pointer is fetched
 * again, and the length checked again, at every call, so an NSMutableData that was resized in
 * between is still safe (a call fails with UMFA_STATUS_INVALID_ARGUMENT if it became too short).
 */
@interface UMFATensor : NSObject {
 @private
  NSData *_data;
  BOOL _mutable;
  NSUInteger _byteOffset;
  NSUInteger _bytesNeeded; /* byteOffset + bytes up to the last addressed element */
  umfa_tensor _raw;
}

/** A row-major view of `data`. */
+ (instancetype)tensorWithData:(NSData *)data
                         dtype:(UMFADType)dtype
                         shape:(NSArray *)shape
                         error:(NSError **)error;
/** A strided view of `data` (strides nil = row-major). */
+ (instancetype)tensorWithData:(NSData *)data
                         dtype:(UMFADType)dtype
                         shape:(NSArray *)shape
                       strides:(NSArray *)strides
                         error:(NSError **)error;
/** A row-major writable view of `data`. */
+ (instancetype)tensorWithMutableData:(NSMutableData *)data
                                dtype:(UMFADType)dtype
                                shape:(NSArray *)shape
                                error:(NSError **)error;
/** A strided writable view of `data` (strides nil = row-major). */
+ (instancetype)tensorWithMutableData:(NSMutableData *)data
                                dtype:(UMFADType)dtype
                                shape:(NSArray *)shape
                              strides:(NSArray *)strides
                                error:(NSError **)error;

/** Designated initializer: `data` may be NSData or NSMutableData; `writable` requires the latter. */
- (instancetype)initWithData:(NSData *)data
                    writable:(BOOL)writable
                  byteOffset:(NSUInteger)byteOffset
                       dtype:(UMFADType)dtype
                       shape:(NSArray *)shape
                     strides:(NSArray *)strides
                       error:(NSError **)error;

/** The view with its dimensions reordered: dimension i of the result is axes[i] of this one
 *  (zero-copy; e.g. [0, 2, 1, 3] turns a BHSD view into the BSHD view the calls expect). */
- (instancetype)permutedWithAxes:(NSArray *)axes error:(NSError **)error;

@property(readonly) NSData *data;
@property(readonly, getter=isWritable) BOOL writable;
@property(readonly) UMFADType dtype;
@property(readonly) NSArray *shape;
@property(readonly) NSArray *strides;
/** The C view, pointing at the data's current bytes (valid until the data is resized), for
 *  calling the C API directly. Reading it updates the object's stored pointer: do not read it
 *  from several threads at once (the wrapper's own calls never use it). */
@property(readonly) const umfa_tensor *rawTensor;
@end

/** Options of forward/backward: every field of umfa_attention_options. */
@interface UMFAAttentionOptions : NSObject {
 @private
  UMFAMaskMode _maskMode;
  float _softmaxScale;
  float _softcap;
  BOOL _hasWindow;
  int64_t _windowLeft;
  int64_t _windowRight;
  BOOL _deterministic;
  UMFATensor *_attnMask;
  UMFATensor *_alibiSlopes;
  UMFATensor *_cuSeqlensQ;
  UMFATensor *_cuSeqlensK;
  int64_t _maxSeqlenQ;
  int64_t _maxSeqlenK;
  void *_stream;
}
+ (instancetype)options;
/** Default UMFAMaskNone. */
@property(assign) UMFAMaskMode maskMode;
/** 0 (default) = 1/sqrt(head_dim). */
@property(assign) float softmaxScale;
/** Tanh soft-capping; 0 = off. */
@property(assign) float softcap;
/** Enables windowLeft/windowRight (negative = unbounded). */
@property(assign) BOOL hasWindow;
@property(assign) int64_t windowLeft;
@property(assign) int64_t windowRight;
/** UMFA_FLAG_DETERMINISTIC. */
@property(assign) BOOL deterministic;
/** Boolean mask (UMFADTypeBool) or additive float bias, broadcastable to [B, Hq, Nq, Nk]. */
@property(retain) UMFATensor *attnMask;
/** F32 slopes, [Hq] or [B, Hq]. */
@property(retain) UMFATensor *alibiSlopes;
/** I32 [B + 1] offsets (varlen; both or neither). */
@property(retain) UMFATensor *cuSeqlensQ;
@property(retain) UMFATensor *cuSeqlensK;
@property(assign) int64_t maxSeqlenQ;
@property(assign) int64_t maxSeqlenK;
/** cudaStream_t for CUDA contexts (NULL = default stream); ignored on the CPU. */
@property(assign) void *stream;
/** Fills `*raw_out` (the C struct points at this object's tensors' -rawTensor views: keep it
 *  alive for the call; not for concurrent use, see -rawTensor). */
- (void)getRawOptions:(umfa_attention_options *)raw_out;
@end

/** An execution context. Destroyed when released for the last time. */
@interface UMFAContext : NSObject {
 @private
  umfa_context *_context;
}

/** A context on `backend` with default options (caller owns the result). */
- (instancetype)initWithBackend:(UMFABackend)backend error:(NSError **)error;
/** `numThreads` 0 = one per core; `workspaceLimit` 0 = no limit (bytes). */
- (instancetype)initWithBackend:(UMFABackend)backend
                    deviceIndex:(int32_t)deviceIndex
                     numThreads:(int32_t)numThreads
                 workspaceLimit:(uint64_t)workspaceLimit
                          error:(NSError **)error;
/** Autoreleased convenience constructor. */
+ (instancetype)contextWithBackend:(UMFABackend)backend error:(NSError **)error;

/** The backend actually in use (CPU or CUDA). */
@property(readonly) UMFABackend backend;
/** CPU worker threads. */
@property(readonly) int32_t numThreads;
/** The message of the most recent failed call on this context, or "". */
@property(readonly) NSString *lastErrorMessage;
/** The C handle (owned by this object). */
@property(readonly) umfa_context *rawContext;

/**
 * Forward attention (umfa_attention_forward): q [B, Nq, Hq, D]; k, v [B, Nk, Hkv, D];
 * out like q (writable, any float dtype); lse (writable F32 [B, Hq, Nq]) or nil; options nil =
 * defaults. Nothing is written unless it returns YES.
 */
- (BOOL)forwardWithQuery:(UMFATensor *)q
                     key:(UMFATensor *)k
                   value:(UMFATensor *)v
                  output:(UMFATensor *)outTensor
               logSumExp:(UMFATensor *)lse
                 options:(UMFAAttentionOptions *)options
                   error:(NSError **)error;

/**
 * Backward attention (umfa_attention_backward): from dout writes dq, dk, dv (writable, shaped
 * like q, k, v). out and lse must be what forward produced; options the same as forward.
 */
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
                    error:(NSError **)error;

/**
 * Convenience forward on contiguous BSHD buffers: q/out hold [batch, seqLenQ, headsQ, headDim],
 * k/v [batch, seqLenK, headsKV, headDim], all of `dtype`; lse (may be nil) receives F32
 * [batch, headsQ, seqLenQ].
 */
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
                       error:(NSError **)error;

/** "MAJOR.MINOR.PATCH" of the loaded library. */
+ (NSString *)versionString;
/** umfa_abi_version() of the loaded library. */
+ (uint32_t)abiVersion;
/** umfa_build_info(). */
+ (NSString *)buildInfo;
/** Whether `backend` can run here. */
+ (BOOL)isBackendAvailable:(UMFABackend)backend;
@end

#endif /* UMFA_OBJC_CONTEXT_H */
