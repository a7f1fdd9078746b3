/**
 * Lifetimes of native handles (internal; not exported from the package). A context
 * (`umfa_context*`) and the buffers made on it (`umfa_buffer*`, behind device tensors) are freed
 * when the program disposes them or when their JavaScript objects are garbage collected,
 * whichever comes first, under two rules of the C ABI: a buffer is destroyed before its context,
 * and nothing is freed while an asynchronous call may still be using it (a *pin*).
 *
 * @module
 */
import type { Driver } from './driver.js';

/** The native side of one context. */
export interface ContextState {
  readonly driver: Driver;
  readonly handle: bigint;
  /** `UMFA_DEVICE_*` of the memory this context's backend reads. */
  readonly device: number;
  /** The device ordinal its tensors carry (0 on the CPU). */
  readonly deviceIndex: number;
  /** Buffers made on this context and not destroyed yet. */
  readonly buffers: Set<BufferState>;
  /** The program let go of it (dispose or finalizer); destroyed once `pins` is 0. */
  released: boolean;
  /** `umfa_context_destroy` has run. */
  destroyed: boolean;
  /** Asynchronous calls in flight that use this context or one of its buffers. */
  pins: number;
}

/** The native side of one buffer (a device tensor's memory). */
export interface BufferState {
  readonly owner: ContextState;
  readonly handle: bigint;
  /** `umfa_buffer_data`: what goes into `umfa_tensor.data`. */
  readonly pointer: bigint;
  /** Bytes the tensor covers (the buffer itself may be larger). */
  readonly byteLength: number;
  released: boolean;
  destroyed: boolean;
  pins: number;
}

/** Makes the state of a context just created. */
export function contextState(driver: Driver, handle: bigint, device: number, deviceIndex: number): ContextState {
  return { driver, handle, device, deviceIndex, buffers: new Set(), released: false, destroyed: false, pins: 0 };
}

/**
 * Allocates a buffer on a context (`umfa_buffer_create`, zero-filled) of `byteLength` bytes (at
 * least `minimum`: the C ABI refuses empty buffers) and records it on the context, or returns the
 * status and message of the failure.
 */
export function createBuffer(owner: ContextState, byteLength: number, minimum = 64): BufferState | { status: number; message: string } {
  const d = owner.driver;
  const [status, handle] = d.bufferCreate(owner.handle, Math.max(byteLength, minimum));
  if (status !== 0) return { status, message: d.lastError(owner.handle) };
  const [st, pointer] = d.bufferData(handle);
  if (st !== 0) {
    const message = d.lastError(owner.handle);
    d.bufferDestroy(handle);
    return { status: st, message };
  }
  const b: BufferState = { owner, handle, pointer, byteLength, released: false, destroyed: false, pins: 0 };
  owner.buffers.add(b);
  return b;
}

/** Destroys a buffer now (never twice). */
function destroyBuffer(b: BufferState): void {
  if (b.destroyed) return;
  b.destroyed = true;
  b.owner.buffers.delete(b);
  b.owner.driver.bufferDestroy(b.handle);
}

/** Destroys a released context with nothing in flight: its buffers first, then the context. */
function settleContext(c: ContextState): void {
  if (!c.released || c.pins > 0 || c.destroyed) return;
  c.destroyed = true;
  for (const b of c.buffers) {
    b.destroyed = true;
    c.driver.bufferDestroy(b.handle);
  }
  c.buffers.clear();
  c.driver.contextDestroy(c.handle);
}

/** The program is done with this context: destroy it as soon as nothing uses it. */
export function releaseContext(c: ContextState): void {
  c.released = true;
  settleContext(c);
}

/** The program is done with this buffer: destroy it as soon as no call uses it. */
export function releaseBuffer(b: BufferState): void {
  b.released = true;
  if (b.pins === 0 && !b.owner.destroyed) destroyBuffer(b);
}

/** Keeps a context (and, through `buffers`, some of its or other contexts' buffers) alive. */
export function pin(c: ContextState, buffers: readonly BufferState[]): void {
  c.pins++;
  for (const b of buffers) {
    b.pins++;
    b.owner.pins++;
  }
}

/** Undoes {@link pin}, destroying what was released meanwhile. */
export function unpin(c: ContextState, buffers: readonly BufferState[]): void {
  for (const b of buffers) {
    b.pins--;
    b.owner.pins--;
    if (b.pins === 0 && b.released && !b.owner.destroyed) destroyBuffer(b);
    settleContext(b.owner);
  }
  c.pins--;
  settleContext(c);
}

/** Frees contexts whose objects were garbage collected without `dispose()`. */
export const contextFinalizer = new FinalizationRegistry<ContextState>(releaseContext);

/** Frees buffers whose device tensors were garbage collected without `dispose()`. */
export const bufferFinalizer = new FinalizationRegistry<BufferState>(releaseBuffer);
