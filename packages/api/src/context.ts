import { encodeContextOptions, encodeOptions, encodeTensor, Frame, Slot } from './abi.js';
import { allocData, isFloat16Array, type DType } from './dtype.js';
import type { AsyncOutcome, Driver } from './driver.js';
import { UmfaError } from './errors.js';
import type { BackendInfo, BackendName, BackwardOptions, ContextLike, ContextOptions, ForwardOptions } from './options.js';
import { Status } from './status.js';
import type { BackwardResult, ForwardResult, KnownOptions } from './results.js';
import type { AttentionGradients, AttentionResult, Tensor } from './tensor.js';
import { numel } from './tensor.js';

/**
 * The shared runtime of one binding: loads its {@link Driver} on first use and keeps the default
 * context. `@umfa/koffi` and `@umfa/napi` each make one; application code uses their exports.
 */
export class Runtime {
  readonly #load: () => Driver;
  #driver: Driver | undefined;
  #error: unknown;
  #defaultContext: ContextBase | undefined;
  /** Reused frame for synchronous calls (single-threaded JS: one call encodes at a time). */
  readonly syncFrame: Frame = new Frame();

  /** @param load - loads the native library and returns the driver; called once, lazily */
  constructor(load: () => Driver) {
    this.#load = load;
  }

  /** The driver, loading the library on first use (a load failure is rethrown on every call). */
  driver(): Driver {
    if (this.#driver) return this.#driver;
    if (this.#error !== undefined) throw this.#error;
    try {
      this.#driver = this.#load();
      return this.#driver;
    } catch (e) {
      this.#error = e;
      throw e;
    }
  }

  /** The default context (created on first use with default options, never disposed). */
  defaultContext(make: () => ContextBase): ContextBase {
    if (this.#defaultContext === undefined || this.#defaultContext.disposed) this.#defaultContext = make();
    return this.#defaultContext;
  }

  /** The library's version string, e.g. `"0.1.0"`. */
  version(): string {
    return this.driver().versionString();
  }

  /** The ABI version the loaded library implements. */
  abiVersion(): number {
    return this.driver().abiVersion();
  }

  /** `umfa_build_info()`: what the library was built with and detected at run time. */
  buildInfo(): string {
    return this.driver().buildInfo();
  }

  /** Availability of each backend. */
  backends(): BackendInfo[] {
    const d = this.driver();
    return (['cpu', 'cuda'] as const).map((name, i) => {
      const [status, available, deviceCount] = d.backendAvailable(i + 1);
      if (status !== Status.OK) throw new UmfaError(status, d.lastError(0n));
      return { name, available, deviceCount };
    });
  }
}

interface HandleState {
  driver: Driver;
  handle: bigint;
  destroyed: boolean;
}

const contextRegistry = new FinalizationRegistry<HandleState>((state) => {
  if (!state.destroyed) {
    state.destroyed = true;
    state.driver.contextDestroy(state.handle);
  }
});

const backendNames: readonly BackendName[] = ['auto', 'cpu', 'cuda'];

function preferF16Array(t: Tensor, dtype: DType): boolean {
  return dtype === 'f16' && t.dtype === 'f16' && isFloat16Array(t.data);
}

function allocLike(dtype: DType, shape: readonly number[], like: Tensor): Tensor {
  return { data: allocData(dtype, numel(shape), preferF16Array(like, dtype)), dtype, shape: [...shape] };
}

function lseShape(q: Tensor): number[] {
  const s = q.shape;
  if (s.length === 4) return [s[0] as number, s[2] as number, s[1] as number];
  if (s.length === 3) return [s[1] as number, s[0] as number];
  return [];
}

function outShape(q: Tensor, v: Tensor): number[] {
  const shape = [...q.shape];
  if (shape.length > 0 && v.shape.length > 0) shape[shape.length - 1] = v.shape[v.shape.length - 1] as number;
  return shape;
}

function checkTensorArg(t: unknown, role: string): asserts t is Tensor {
  if (t === null || typeof t !== 'object') {
    throw new UmfaError(Status.NULL_POINTER, `${role} must be a tensor ({ data, dtype, shape })`);
  }
}

/** Encodes a forward call; returns the outputs it will write. */
function encodeForward(frame: Frame, q: Tensor, k: Tensor, v: Tensor, options: ForwardOptions | undefined): AttentionResult {
  checkTensorArg(q, 'q');
  checkTensorArg(k, 'k');
  checkTensorArg(v, 'v');
  frame.clear();
  const o = options ?? {};
  const out = o.out ?? allocLike(o.outDtype ?? q.dtype, outShape(q, v), q);
  const lse = o.lse ?? (o.returnLse ? allocLike('f32', lseShape(q), q) : undefined);
  encodeTensor(frame, Slot.Q, q, 'q');
  encodeTensor(frame, Slot.K, k, 'k');
  encodeTensor(frame, Slot.V, v, 'v');
  encodeTensor(frame, Slot.OUT, out, 'out');
  if (lse !== undefined) encodeTensor(frame, Slot.LSE, lse, 'lse');
  encodeOptions(frame, o);
  return lse === undefined ? { out } : { out, lse };
}

/** Encodes a backward call; returns the gradients it will write. */
function encodeBackward(
  frame: Frame,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  dout: Tensor,
  lse: Tensor,
  options: BackwardOptions | undefined,
): AttentionGradients {
  checkTensorArg(q, 'q');
  checkTensorArg(k, 'k');
  checkTensorArg(v, 'v');
  checkTensorArg(out, 'out');
  checkTensorArg(dout, 'dout');
  frame.clear();
  const o = options ?? {};
  const dq = o.dq ?? allocLike(o.gradDtype ?? q.dtype, q.shape, q);
  const dk = o.dk ?? allocLike(o.gradDtype ?? k.dtype, k.shape, k);
  const dv = o.dv ?? allocLike(o.gradDtype ?? v.dtype, v.shape, v);
  encodeTensor(frame, Slot.Q, q, 'q');
  encodeTensor(frame, Slot.K, k, 'k');
  encodeTensor(frame, Slot.V, v, 'v');
  encodeTensor(frame, Slot.OUT, out, 'out');
  encodeTensor(frame, Slot.DOUT, dout, 'dout');
  if (lse !== undefined && lse !== null) encodeTensor(frame, Slot.LSE, lse, 'lse');
  encodeTensor(frame, Slot.DQ, dq, 'dq');
  encodeTensor(frame, Slot.DK, dk, 'dk');
  encodeTensor(frame, Slot.DV, dv, 'dv');
  encodeOptions(frame, o);
  return { dq, dk, dv };
}

/**
 * An execution context (`umfa_context`): one backend, one device, a thread pool and scratch
 * memory. Free it with {@link ContextBase.dispose} (or `using`); a context that is garbage
 * collected without being disposed is freed by a finalizer. Any number of calls, synchronous or
 * asynchronous, may use one context at once; disposing while asynchronous calls are in flight
 * frees it when the last one settles.
 *
 * Each binding exports a `Context` subclass whose constructor takes only {@link ContextOptions}.
 */
export class ContextBase implements ContextLike, Disposable {
  readonly #runtime: Runtime;
  readonly #driver: Driver;
  readonly #state: HandleState;
  #inflight = 0;
  #disposed = false;

  /**
   * Creates a context (`umfa_context_create`).
   *
   * @param runtime - the binding's runtime
   * @param options - backend, device, threads, workspace limit
   * @throws UmfaError when the core refuses the options (e.g. `BACKEND_UNAVAILABLE`)
   */
  constructor(runtime: Runtime, options?: ContextOptions) {
    this.#runtime = runtime;
    const driver = runtime.driver();
    this.#driver = driver;
    const [status, handle] = driver.contextCreate(encodeContextOptions(options));
    if (status !== Status.OK) throw new UmfaError(status, driver.lastError(0n));
    this.#state = { driver, handle, destroyed: false };
    contextRegistry.register(this, this.#state, this);
  }

  /** True once {@link ContextBase.dispose} has been called. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** The backend this context runs on (`'cpu'` or `'cuda'`; never `'auto'`). */
  get backend(): BackendName {
    const [status, code] = this.#driver.contextBackend(this.#live());
    this.#check(status);
    return backendNames[code] ?? 'auto';
  }

  /** Number of worker threads the CPU backend uses. */
  get numThreads(): number {
    const [status, n] = this.#driver.contextNumThreads(this.#live());
    this.#check(status);
    return n;
  }

  /** The native `umfa_context*` as an address (for interop with other native code). */
  get nativeHandle(): bigint {
    return this.#live();
  }

  /**
   * Forward attention on this context. See the binding's `attention` for details.
   *
   * @throws UmfaError with the core's status and message; nothing is written then
   */
  attention<Q extends ArrayBufferView, O extends ForwardOptions = {}>(
    q: Tensor<Q>,
    k: Tensor,
    v: Tensor,
    options?: KnownOptions<O, ForwardOptions>,
  ): ForwardResult<Q, O> {
    const handle = this.#live();
    const frame = this.#runtime.syncFrame;
    const result = encodeForward(frame, q, k, v, options);
    const status = this.#driver.forward(handle, frame);
    frame.clear();
    this.#checkCall(handle, status, frame);
    return result as ForwardResult<Q, O>;
  }

  /**
   * Forward attention on a worker thread; the typed arrays must not be modified until the
   * Promise settles. Rejects with UmfaError on failure.
   */
  async attentionAsync<Q extends ArrayBufferView, O extends ForwardOptions = {}>(
    q: Tensor<Q>,
    k: Tensor,
    v: Tensor,
    options?: KnownOptions<O, ForwardOptions>,
  ): Promise<ForwardResult<Q, O>> {
    const handle = this.#live();
    const frame = new Frame();
    const result = encodeForward(frame, q, k, v, options);
    const outcome = await this.#runAsync(() => this.#driver.forwardAsync(handle, frame));
    this.#checkCall(handle, outcome.status, frame, outcome.message);
    return result as ForwardResult<Q, O>;
  }

  /**
   * Backward attention on this context. See the binding's `attentionBackward` for details.
   *
   * @throws UmfaError with the core's status and message; nothing is written then
   */
  attentionBackward<
    Q extends ArrayBufferView,
    K extends ArrayBufferView,
    V extends ArrayBufferView,
    O extends BackwardOptions = {},
  >(
    q: Tensor<Q>,
    k: Tensor<K>,
    v: Tensor<V>,
    out: Tensor,
    dout: Tensor,
    lse: Tensor,
    options?: KnownOptions<O, BackwardOptions>,
  ): BackwardResult<Q, K, V, O> {
    const handle = this.#live();
    const frame = this.#runtime.syncFrame;
    const grads = encodeBackward(frame, q, k, v, out, dout, lse, options);
    const status = this.#driver.backward(handle, frame);
    frame.clear();
    this.#checkCall(handle, status, frame);
    return grads as BackwardResult<Q, K, V, O>;
  }

  /** Backward attention on a worker thread. Rejects with UmfaError on failure. */
  async attentionBackwardAsync<
    Q extends ArrayBufferView,
    K extends ArrayBufferView,
    V extends ArrayBufferView,
    O extends BackwardOptions = {},
  >(
    q: Tensor<Q>,
    k: Tensor<K>,
    v: Tensor<V>,
    out: Tensor,
    dout: Tensor,
    lse: Tensor,
    options?: KnownOptions<O, BackwardOptions>,
  ): Promise<BackwardResult<Q, K, V, O>> {
    const handle = this.#live();
    const frame = new Frame();
    const grads = encodeBackward(frame, q, k, v, out, dout, lse, options);
    const outcome = await this.#runAsync(() => this.#driver.backwardAsync(handle, frame));
    this.#checkCall(handle, outcome.status, frame, outcome.message);
    return grads as BackwardResult<Q, K, V, O>;
  }

  /**
   * Frees the native context. Safe to call more than once. Calls after this throw
   * `UmfaError` (`INVALID_HANDLE`); asynchronous calls already in flight finish first.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    contextRegistry.unregister(this);
    if (this.#inflight === 0) this.#destroy();
  }

  /** Same as {@link ContextBase.dispose}, for `using ctx = new Context()`. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  #destroy(): void {
    if (!this.#state.destroyed) {
      this.#state.destroyed = true;
      this.#driver.contextDestroy(this.#state.handle);
    }
  }

  #live(): bigint {
    if (this.#disposed) throw new UmfaError(Status.INVALID_HANDLE, 'this context has been disposed');
    return this.#state.handle;
  }

  #check(status: number): void {
    if (status !== Status.OK) {
      throw new UmfaError(status, this.#driver.lastError(this.#state.handle));
    }
  }

  /**
   * Throws for a failed attention call with the call's own message: the one the driver read on
   * the worker thread, else the one the core wrote into the frame's message buffer. The context's
   * last error is only a fallback (another call failing at the same time could have replaced it).
   */
  #checkCall(handle: bigint, status: number, frame: Frame, driverMessage?: string): void {
    if (status === Status.OK) return;
    let message = driverMessage || frame.message();
    if (!message && !this.#state.destroyed) message = this.#driver.lastError(handle);
    throw new UmfaError(status, message);
  }

  async #runAsync(start: () => Promise<AsyncOutcome>): Promise<AsyncOutcome> {
    this.#inflight++;
    try {
      return await start();
    } finally {
      this.#inflight--;
      if (this.#inflight === 0 && this.#disposed) this.#destroy();
    }
  }
}

