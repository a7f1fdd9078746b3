/* StandinMetal.m — the stand-in Metal API of Metal/Metal.h implemented over the simulator
 * (sim/metal_sim_c.h), so umfa's Objective-C host runs on Linux exactly as written for Apple:
 *  - buffers are host memory (shared storage, as on unified-memory Macs); buffers the stand-in
 *    allocates sit against a guard page, so kernels' out-of-bounds accesses fail the dispatch;
 *    newBufferWithBytesNoCopy enforces Metal's page-alignment rules and wraps the caller's memory;
 *  - a "library" built from source resolves function names to the kernels compiled as C++ into
 *    this program, and only names that the source defines (`kernel void <name>(`): the source is
 *    not compiled here, which is what the simulation cannot do;
 *  - pipelines hold their function constants; a command buffer records dispatches and runs them,
 *    in order, when committed; a failing dispatch sets status Error and an NSError.
 * Manual retain/release. */
#import "Metal/Metal.h"

#include <string.h>
#include <unistd.h>

#include "metal_sim_c.h"

static NSError* standin_error(NSString* message) {
  return [NSError errorWithDomain:@"MTLStandinErrorDomain"
                             code:1
                         userInfo:[NSDictionary dictionaryWithObject:message forKey:NSLocalizedDescriptionKey]];
}

@implementation MTLCompileOptions
@end

@implementation MTLFunctionConstantValues
- (void)setConstantValue:(const void*)value type:(MTLDataType)type atIndex:(NSUInteger)index {
  if (index >= 64) return;
  uint64_t b = 0;
  memcpy(&b, value, type == MTLDataTypeBool ? 1 : 4);
  bits[index] = b;
  defined |= (uint64_t)1 << index;
}
@end

/* ------------------------------------------------------------------------------------------ */
@interface StandinBuffer : NSObject <MTLBuffer> {
 @public
  void* data;
  NSUInteger length;
  void* handle; /* non-NULL when the stand-in owns the memory */
}
@end

@implementation StandinBuffer
- (void*)contents { return data; }
- (NSUInteger)length { return length; }
- (void)dealloc {
  if (handle) metal_sim_c_free(handle);
  [super dealloc];
}
@end

/* ------------------------------------------------------------------------------------------ */
@interface StandinFunction : NSObject <MTLFunction> {
 @public
  NSString* name;
  uint64_t bits[64];
  uint64_t defined;
}
@end

@implementation StandinFunction
- (NSString*)name { return name; }
- (void)dealloc {
  [name release];
  [super dealloc];
}
@end

@interface StandinLibrary : NSObject <MTLLibrary> {
 @public
  NSString* source;
}
@end

@implementation StandinLibrary
- (id<MTLFunction>)newFunctionWithName:(NSString*)name
                        constantValues:(MTLFunctionConstantValues*)values
                                 error:(NSError**)error {
  NSString* decl = [NSString stringWithFormat:@"kernel void %@(", name];
  if ([source rangeOfString:decl].location == NSNotFound || !metal_sim_c_has_kernel([name UTF8String])) {
    if (error) *error = standin_error([NSString stringWithFormat:@"no function named %@ in the library", name]);
    return nil;
  }
  StandinFunction* f = [StandinFunction new];
  f->name = [name copy];
  if (values) {
    memcpy(f->bits, values->bits, sizeof f->bits);
    f->defined = values->defined;
  }
  return f;
}
- (void)dealloc {
  [source release];
  [super dealloc];
}
@end

@interface StandinPipeline : NSObject <MTLComputePipelineState> {
 @public
  StandinFunction* function;
}
@end

@implementation StandinPipeline
- (NSUInteger)maxTotalThreadsPerThreadgroup { return 1024; }
- (NSUInteger)threadExecutionWidth { return 32; }
- (void)dealloc {
  [function release];
  [super dealloc];
}
@end

/* ------------------------------------------------------------------------------------------ */
#define STANDIN_MAX_BUFFERS 31
#define STANDIN_MAX_TG 8

@interface StandinDispatch : NSObject {
 @public
  StandinPipeline* pipeline;
  id buffers[STANDIN_MAX_BUFFERS]; /* StandinBuffer, retained */
  NSUInteger offsets[STANDIN_MAX_BUFFERS];
  size_t tg_lengths[STANDIN_MAX_TG];
  unsigned tg_count;
  unsigned groups[3], threads[3];
}
@end

@implementation StandinDispatch
- (void)dealloc {
  int i;
  [pipeline release];
  for (i = 0; i < STANDIN_MAX_BUFFERS; ++i) [buffers[i] release];
  [super dealloc];
}
@end

@interface StandinEncoder : NSObject <MTLComputeCommandEncoder> {
 @public
  NSMutableArray* commands; /* of StandinDispatch, owned by the command buffer */
  StandinPipeline* pipeline;
  id bound[STANDIN_MAX_BUFFERS];
  NSUInteger offsets[STANDIN_MAX_BUFFERS];
  size_t tg_lengths[STANDIN_MAX_TG];
  BOOL ended;
}
@end

@implementation StandinEncoder
- (void)setComputePipelineState:(id<MTLComputePipelineState>)state {
  [pipeline release];
  pipeline = [(StandinPipeline*)state retain];
}
- (void)setBuffer:(id<MTLBuffer>)buffer offset:(NSUInteger)offset atIndex:(NSUInteger)index {
  if (index >= STANDIN_MAX_BUFFERS) return;
  [bound[index] release];
  bound[index] = [(id)buffer retain];
  offsets[index] = offset;
}
- (void)setBytes:(const void*)bytes length:(NSUInteger)length atIndex:(NSUInteger)index {
  StandinBuffer* b = [StandinBuffer new];
  b->data = metal_sim_c_alloc(length, "setBytes", &b->handle);
  b->length = length;
  memcpy(b->data, bytes, length);
  [self setBuffer:b offset:0 atIndex:index];
  [b release];
}
- (void)setThreadgroupMemoryLength:(NSUInteger)length atIndex:(NSUInteger)index {
  if (index < STANDIN_MAX_TG) tg_lengths[index] = length;
}
- (void)dispatchThreadgroups:(MTLSize)g threadsPerThreadgroup:(MTLSize)t {
  StandinDispatch* d = [StandinDispatch new];
  int i;
  d->pipeline = [pipeline retain];
  for (i = 0; i < STANDIN_MAX_BUFFERS; ++i) {
    d->buffers[i] = [bound[i] retain];
    d->offsets[i] = offsets[i];
  }
  d->tg_count = 0;
  for (i = 0; i < STANDIN_MAX_TG; ++i) {
    d->tg_lengths[i] = tg_lengths[i];
    if (tg_lengths[i]) d->tg_count = (unsigned)i + 1;
  }
  d->groups[0] = (unsigned)g.width; d->groups[1] = (unsigned)g.height; d->groups[2] = (unsigned)g.depth;
  d->threads[0] = (unsigned)t.width; d->threads[1] = (unsigned)t.height; d->threads[2] = (unsigned)t.depth;
  [commands addObject:d];
  [d release];
}
- (void)endEncoding { ended = YES; }
- (void)dealloc {
  int i;
  [pipeline release];
  for (i = 0; i < STANDIN_MAX_BUFFERS; ++i) [bound[i] release];
  [super dealloc];
}
@end

@interface StandinCommandBuffer : NSObject <MTLCommandBuffer> {
 @public
  NSMutableArray* commands;
  MTLCommandBufferStatus status;
  NSError* error;
}
@end

@implementation StandinCommandBuffer
- (id<MTLComputeCommandEncoder>)computeCommandEncoder {
  StandinEncoder* e = [[StandinEncoder new] autorelease];
  e->commands = commands;
  return e;
}
- (void)commit {
  NSUInteger c;
  status = MTLCommandBufferStatusCommitted;
  for (c = 0; c < [commands count]; ++c) {
    StandinDispatch* d = [commands objectAtIndex:c];
    metal_sim_c_binding bindings[STANDIN_MAX_BUFFERS];
    unsigned n = 0, i;
    char err[512];
    if (!d->pipeline) {
      error = [standin_error(@"dispatch without a pipeline state") retain];
      status = MTLCommandBufferStatusError;
      return;
    }
    for (i = 0; i < STANDIN_MAX_BUFFERS; ++i) {
      StandinBuffer* b = d->buffers[i];
      bindings[i].data = b ? (char*)b->data + d->offsets[i] : NULL;
      bindings[i].length = b ? b->length - d->offsets[i] : 0;
      if (b) n = i + 1;
    }
    if (!d->groups[0] || !d->groups[1] || !d->groups[2]) continue;
    if (metal_sim_c_dispatch([d->pipeline->function->name UTF8String], d->pipeline->function->bits,
                             d->pipeline->function->defined, bindings, n, d->tg_lengths, d->tg_count, d->groups,
                             d->threads, err, sizeof err) != 0) {
      error = [standin_error([NSString stringWithUTF8String:err]) retain];
      status = MTLCommandBufferStatusError;
      return;
    }
  }
  status = MTLCommandBufferStatusCompleted;
}
- (void)waitUntilCompleted {}
- (MTLCommandBufferStatus)status { return status; }
- (NSError*)error { return error; }
- (void)dealloc {
  [commands release];
  [error release];
  [super dealloc];
}
@end

@interface StandinQueue : NSObject <MTLCommandQueue>
@end

@implementation StandinQueue
- (id<MTLCommandBuffer>)commandBuffer {
  StandinCommandBuffer* b = [[StandinCommandBuffer new] autorelease];
  b->commands = [NSMutableArray new];
  b->status = MTLCommandBufferStatusNotEnqueued;
  return b;
}
@end

/* ------------------------------------------------------------------------------------------ */
@interface StandinDevice : NSObject <MTLDevice>
@end

@implementation StandinDevice
- (NSString*)name { return @"umfa Metal simulator (Linux)"; }
- (NSUInteger)maxThreadgroupMemoryLength { return 32768; }
- (id<MTLBuffer>)newBufferWithLength:(NSUInteger)length options:(MTLResourceOptions)options {
  StandinBuffer* b = [StandinBuffer new];
  (void)options;
  b->data = metal_sim_c_alloc(length, "MTLBuffer", &b->handle);
  b->length = length;
  memset(b->data, 0, length);
  return b;
}
- (id<MTLBuffer>)newBufferWithBytes:(const void*)pointer length:(NSUInteger)length options:(MTLResourceOptions)options {
  StandinBuffer* b = (StandinBuffer*)[self newBufferWithLength:length options:options];
  if (length) memcpy(b->data, pointer, length);
  return b;
}
- (id<MTLBuffer>)newBufferWithBytesNoCopy:(void*)pointer
                                   length:(NSUInteger)length
                                  options:(MTLResourceOptions)options
                              deallocator:(id)deallocator {
  /* Metal's rules: a page-aligned pointer and a length that is a multiple of the page size. */
  const NSUInteger page = (NSUInteger)sysconf(_SC_PAGESIZE);
  StandinBuffer* b;
  (void)options;
  (void)deallocator;
  if (!pointer || ((uintptr_t)pointer % page) != 0 || length == 0 || length % page != 0) return nil;
  b = [StandinBuffer new];
  b->data = pointer;
  b->length = length;
  b->handle = NULL;
  return b;
}
- (id<MTLLibrary>)newLibraryWithSource:(NSString*)source options:(MTLCompileOptions*)options error:(NSError**)error {
  StandinLibrary* l;
  (void)options;
  if ([source rangeOfString:@"#include <metal_stdlib>"].location == NSNotFound) {
    if (error) *error = standin_error(@"program_source: the source does not include <metal_stdlib>");
    return nil;
  }
  l = [StandinLibrary new];
  l->source = [source copy];
  return l;
}
- (id<MTLComputePipelineState>)newComputePipelineStateWithFunction:(id<MTLFunction>)function error:(NSError**)error {
  StandinPipeline* p;
  if (!function) {
    if (error) *error = standin_error(@"no function");
    return nil;
  }
  p = [StandinPipeline new];
  p->function = [(StandinFunction*)function retain];
  return p;
}
- (id<MTLCommandQueue>)newCommandQueue { return [StandinQueue new]; }
@end

id<MTLDevice> MTLCreateSystemDefaultDevice(void) { return [StandinDevice new]; }
