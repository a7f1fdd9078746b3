import {
  bindHostMemory,
  copyBackStaged,
  encodeContextOptions,
  encodeOptionsSnapshot,
  encodeSnapshot,
  Frame,
  Slot,
  stageHostMemory,
} from './abi.js';
import { DeviceTensor, downloadsFloat16Array, isDeviceTensor, newDeviceTensor, viewBytes } from './device.js';
import { allocData, isFloat16Array, type DType, type DTypeData } from './dtype.js';
import { viewInfo } from './intrinsics.js';
import {
  dtypeOption,
  optionalTensor,
  optionsObject,
  snapshotAttentionOptions,
  snapshotTensor,
  type OptionsSnapshot,
  type TensorSnapshot,
} from './snapshot.js';
import type { AsyncOutcome, Driver } from './driver.js';
import { UmfaError } from './errors.js';
import {
  contextFinalizer,
  contextState,
  createBuffer,
  pin,
  releaseContext,
  unpin,
  type BufferState,
  type ContextState,
} from './handles.js';
import type {
  BackendInfo,
  BackendName,
  BackwardOptions,
  ContextLike,
  ContextOptions,
  DeviceBackwardOptions,
  DeviceForwardOptions,
  ForwardOptions,
} from './options.js';
import { Status } from './status.js';
import type { BackwardResult, DeviceBackwardResult, DeviceForwardResult, ForwardResult, KnownOptions } from './results.js';
import type { Tensor } from './tensor.js';
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
  /** Reused frame for synchronous calls (see {@link Runtime.acquireSyncFrame}). */
  readonly syncFrame: Frame = new Frame();
  #syncFrameBusy = false;

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

  /**
   * The frame a synchronous call encodes into: the shared one, or a new one if a call is using
   * it already (a call made from inside another's encoding cannot disturb the outer call).
   */
  acquireSyncFrame(): Frame {
    if (this.#syncFrameBusy) return new Frame();
    this.#syncFrameBusy = true;
    return this.syncFrame;
  }

  /** Returns a frame taken with {@link Runtime.acquireSyncFrame}. */
  releaseSyncFrame(frame: Frame): void {
    frame.clear();
    if (frame === this.syncFrame) this.#syncFrameBusy = false;
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
    return (['cpu', 'cuda', 'metal'] as const).map((name, i) => {
      const [status, available, deviceCount] = d.backendAvailable(i + 1);
      if (status !== Status.OK) throw new UmfaError(status, d.lastError(0n));
      return { name, available, deviceCount };
    });
  }
}

const backendNames: readonly BackendName[] = ['auto', 'cpu', 'cuda', 'metal'];

/** A tensor argument: host memory or a device tensor. */
type AnyTensor = Tensor | DeviceTensor;

/** An output the library made for a call: what the caller gets, and what is encoded. */
interface Made {
  tensor: AnyTensor;
  snapshot: TensorSnapshot;
}

/**
 * Makes an output like `like` (host memory for host calls, device memory on the call's context
 * for device calls); device outputs are also recorded in `made` (disposed if the call fails).
 */
type Allocate = (dtype: DType, shape: readonly number[], like: TensorSnapshot, role: string, made: DeviceTensor[]) => Made;

function lseShape(q: TensorSnapshot): number[] {
  const s = q.shape;
  if (s.length === 4) return [s[0] as number, s[2] as number, s[1] as number];
  if (s.length === 3) return [s[1] as number, s[0] as number];
  return [];
}

function outShape(q: TensorSnapshot, v: TensorSnapshot): number[] {
  const shape = [...q.shape];
  if (shape.length > 0 && v.shape.length > 0) shape[shape.length - 1] = v.shape[v.shape.length - 1] as number;
  return shape;
}

/** Host outputs: a typed array of the dtype (a Float16Array for f16 next to one). */
const allocHost: Allocate = (dtype, shape, like, role) => {
  const f16 = dtype === 'f16' && like.dtype === 'f16' && isFloat16Array(like.host);
  // An output shaped like a view with a negative extent or stride (which the shared code counts as
  // spanning 0 bytes, whatever its other extents) belongs to a call the core refuses: nothing is
  // allocated, and the output is encoded as an empty view (negative strides) that the core never
  // reaches, as it checks `like` first and reports it.
  if ([...shape, ...like.shape, ...(like.strides ?? [])].some((x) => x < 0)) {
    const tensor: Tensor = { data: allocData(dtype, 0, f16), dtype, shape: [...shape] };
    const strides = shape.map(() => -1);
    return { tensor, snapshot: { role, original: tensor, host: tensor.data, device: undefined, dtype, shape: tensor.shape, strides } };
  }
  // A shape whose elements no typed array can hold (a broadcast input, stride 0, with a huge
  // extent) is OUT_OF_MEMORY, not the engine's RangeError.
  const n = numel(shape);
  let data: ArrayBufferView;
  try {
    data = allocData(dtype, n, f16);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    throw new UmfaError(Status.OUT_OF_MEMORY, `${role}: cannot allocate ${n} ${dtype} elements for shape [${shape.join(', ')}]`);
  }
  const tensor: Tensor = { data, dtype, shape: [...shape] };
  return { tensor, snapshot: { role, original: tensor, host: tensor.data, device: undefined, dtype, shape: tensor.shape, strides: undefined } };
};

/** Disposes device outputs a failed call allocated. */
function discard(made: DeviceTensor[]): void {
  for (const t of made) t.dispose();
  made.length = 0;
}

/** A forward call's arguments, each read once from the caller (see `snapshot.ts`). */
interface ForwardCall {
  q: TensorSnapshot;
  k: TensorSnapshot;
  v: TensorSnapshot;
  options: OptionsSnapshot;
  out: TensorSnapshot | undefined;
  lse: TensorSnapshot | undefined;
  returnLse: boolean;
  outDtype: DType | undefined;
}

/** A backward call's arguments, each read once from the caller. */
interface BackwardCall {
  q: TensorSnapshot;
  k: TensorSnapshot;
  v: TensorSnapshot;
  out: TensorSnapshot;
  dout: TensorSnapshot;
  lse: TensorSnapshot | undefined;
  options: OptionsSnapshot;
  dq: TensorSnapshot | undefined;
  dk: TensorSnapshot | undefined;
  dv: TensorSnapshot | undefined;
  gradDtype: DType | undefined;
}

function readForward(q: unknown, k: unknown, v: unknown, options: unknown): ForwardCall {
  const qs = snapshotTensor(q, 'q');
  const ks = snapshotTensor(k, 'k');
  const vs = snapshotTensor(v, 'v');
  const o = optionsObject(options);
  const out = o['out'];
  const lse = o['lse'];
  const returnLse = o['returnLse'];
  const outDtype = o['outDtype'];
  return {
    q: qs,
    k: ks,
    v: vs,
    out: optionalTensor(out, 'out'),
    lse: optionalTensor(lse, 'lse'),
    returnLse: !!returnLse,
    outDtype: dtypeOption(outDtype, 'outDtype'),
    options: snapshotAttentionOptions(o),
  };
}

function readBackward(q: unknown, k: unknown, v: unknown, out: unknown, dout: unknown, lse: unknown, options: unknown): BackwardCall {
  const qs = snapshotTensor(q, 'q');
  const ks = snapshotTensor(k, 'k');
  const vs = snapshotTensor(v, 'v');
  const outs = snapshotTensor(out, 'out');
  const douts = snapshotTensor(dout, 'dout');
  const lses = optionalTensor(lse, 'lse');
  const o = optionsObject(options);
  const dq = o['dq'];
  const dk = o['dk'];
  const dv = o['dv'];
  const gradDtype = o['gradDtype'];
  return {
    q: qs,
    k: ks,
    v: vs,
    out: outs,
    dout: douts,
    lse: lses,
    dq: optionalTensor(dq, 'dq'),
    dk: optionalTensor(dk, 'dk'),
    dv: optionalTensor(dv, 'dv'),
    gradDtype: dtypeOption(gradDtype, 'gradDtype'),
    options: snapshotAttentionOptions(o),
  };
}

/** Encodes an output: the caller's (returned as given) or one allocated here. */
function encodeOutput(
  frame: Frame,
  slot: number,
  given: TensorSnapshot | undefined,
  make: () => Made,
): AnyTensor {
  if (given !== undefined) {
    encodeSnapshot(frame, slot, given);
    return given.original as AnyTensor;
  }
  const m = make();
  encodeSnapshot(frame, slot, m.snapshot, m.snapshot.host !== undefined);
  return m.tensor;
}

/** Encodes a forward call; returns the outputs it will write. Runs no caller code. */
function encodeForward(frame: Frame, c: ForwardCall, allocate: Allocate, made: DeviceTensor[]): { out: AnyTensor; lse?: AnyTensor } {
  encodeSnapshot(frame, Slot.Q, c.q);
  encodeSnapshot(frame, Slot.K, c.k);
  encodeSnapshot(frame, Slot.V, c.v);
  const out = encodeOutput(frame, Slot.OUT, c.out, () => allocate(c.outDtype ?? c.q.dtype, outShape(c.q, c.v), c.q, 'out', made));
  const lse =
    c.lse !== undefined || c.returnLse
      ? encodeOutput(frame, Slot.LSE, c.lse, () => allocate('f32', lseShape(c.q), c.q, 'lse', made))
      : undefined;
  encodeOptionsSnapshot(frame, c.options);
  return lse === undefined ? { out } : { out, lse };
}

/** Encodes a backward call; returns the gradients it will write. Runs no caller code. */
function encodeBackward(frame: Frame, c: BackwardCall, allocate: Allocate, made: DeviceTensor[]): { dq: AnyTensor; dk: AnyTensor; dv: AnyTensor } {
  encodeSnapshot(frame, Slot.Q, c.q);
  encodeSnapshot(frame, Slot.K, c.k);
  encodeSnapshot(frame, Slot.V, c.v);
  encodeSnapshot(frame, Slot.OUT, c.out);
  encodeSnapshot(frame, Slot.DOUT, c.dout);
  if (c.lse !== undefined) encodeSnapshot(frame, Slot.LSE, c.lse);
  const grad = (like: TensorSnapshot, role: string) => () => allocate(c.gradDtype ?? like.dtype, like.shape, like, role, made);
  const dq = encodeOutput(frame, Slot.DQ, c.dq, grad(c.q, 'dq'));
  const dk = encodeOutput(frame, Slot.DK, c.dk, grad(c.k, 'dk'));
  const dv = encodeOutput(frame, Slot.DV, c.dv, grad(c.v, 'dv'));
  encodeOptionsSnapshot(frame, c.options);
  return { dq, dk, dv };
}

/**
 * An execution context (`umfa_context`): one backend, one device, a thread pool and scratch
 * memory. Free it with {@link ContextBase.dispose} (or `using`); a context that is garbage
 * collected without being disposed is freed by a finalizer. Any number of calls, synchronous or
 * asynchronous, may use one context at once; disposing while asynchronous calls are in flight
 * frees it when the last one settles.
 *
 * Calls take host {@link Tensor}s (typed arrays; the CPU backend reads them in place) or
 * {@link DeviceTensor}s (memory on the context's device, from {@link ContextBase.upload} and
 * {@link ContextBase.zeros}; what a CUDA context reads). The outputs of a call on device tensors
 * are device tensors.
 *
 * Each binding exports a `Context` subclass whose constructor takes only {@link ContextOptions}.
 */
export class ContextBase implements ContextLike, Disposable {
  readonly #runtime: Runtime;
  readonly #driver: Driver;
  readonly #state: ContextState;
  #disposed = false;
  #scratch: BufferState | undefined;
  readonly #allocDevice: Allocate = (dtype, shape, like, role, made) => {
    const f16 = dtype === 'f16' && like.dtype === 'f16' && like.device !== undefined && downloadsFloat16Array(like.device);
    const t = newDeviceTensor(this.#state, this, dtype, shape, undefined, viewBytes(dtype, shape, undefined, 'output'), f16);
    made.push(t);
    return { tensor: t, snapshot: { role, original: t, host: undefined, device: t, dtype, shape: t.shape, strides: undefined } };
  };

  /**
   * Creates a context (`umfa_context_create`).
   *
   * @param runtime - the binding's runtime
   * @param options - backend, device, threads, workspace limit
   * @throws UmfaError when the core refuses the options (e.g. `BACKEND_UNAVAILABLE`)
   * @internal Applications construct the binding's `Context`, whose constructor takes only the options.
   */
  constructor(runtime: Runtime, options?: ContextOptions) {
    this.#runtime = runtime;
    const driver = runtime.driver();
    this.#driver = driver;
    const [status, handle] = driver.contextCreate(encodeContextOptions(options));
    if (status !== Status.OK) throw new UmfaError(status, driver.lastError(0n));
    const [st, backend] = driver.contextBackend(handle);
    if (st !== Status.OK) {
      const message = driver.lastError(handle);
      driver.contextDestroy(handle);
      throw new UmfaError(st, message);
    }
    const cuda = backend === 2;
    this.#state = contextState(driver, handle, cuda ? 1 : 0, cuda ? (options?.deviceIndex ?? 0) : 0);
    contextFinalizer.register(this, this.#state, this);
  }

  /** True once {@link ContextBase.dispose} has been called. */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** The backend this context runs on (`'cpu'`, `'cuda'` or `'metal'`; never `'auto'`). */
  get backend(): BackendName {
    const [status, code] = this.#driver.contextBackend(this.#live());
    this.#check(status);
    return backendNames[code] ?? 'auto';
  }

  /** Number of worker threads the CPU backend uses (0 on CUDA). */
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
   * Forward attention on this context: `out = softmax(mask(q·kᵀ·scale))·v`. See the binding's
   * `attention` for the layouts and options. Outputs not given in the options are allocated.
   *
   * @throws UmfaError with the core's status and message; nothing is written then
   */
  attention<Q extends ArrayBufferView, O extends ForwardOptions = {}>(
    q: Tensor<Q>,
    k: Tensor,
    v: Tensor,
    options?: KnownOptions<O, ForwardOptions>,
  ): ForwardResult<Q, O>;
  /**
   * Forward attention on device tensors: the outputs are device tensors on this context (on
   * CUDA, queued on the stream when the call returns).
   *
   * @throws UmfaError with the core's status and message; nothing is written then
   */
  attention<Q extends ArrayBufferView, O extends DeviceForwardOptions = {}>(
    q: DeviceTensor<Q>,
    k: DeviceTensor,
    v: DeviceTensor,
    options?: KnownOptions<O, DeviceForwardOptions>,
  ): DeviceForwardResult<Q, O>;
  attention(q: AnyTensor, k: AnyTensor, v: AnyTensor, options?: ForwardOptions | DeviceForwardOptions): unknown {
    this.#live();
    // Every value of the caller's is read here, before anything else (see snapshot.ts).
    const call = readForward(q, k, v, options);
    const handle = this.#live();
    const frame = this.#runtime.acquireSyncFrame();
    const made: DeviceTensor[] = [];
    try {
      const result = encodeForward(frame, call, this.#allocator(call.q), made);
      bindHostMemory(frame);
      const status = this.#driver.forward(handle, frame);
      this.#checkCall(handle, status, frame);
      return result;
    } catch (e) {
      if (made.length > 0) discard(made);
      throw e;
    } finally {
      this.#runtime.releaseSyncFrame(frame);
    }
  }

  /**
   * Forward attention on a worker thread; the inputs and outputs must not be modified (or
   * disposed) until the Promise settles (device tensors disposed meanwhile are freed after it).
   * On CUDA the Promise settles when the work is queued. Rejects with UmfaError on failure.
   */
  attentionAsync<Q extends ArrayBufferView, O extends ForwardOptions = {}>(
    q: Tensor<Q>,
    k: Tensor,
    v: Tensor,
    options?: KnownOptions<O, ForwardOptions>,
  ): Promise<ForwardResult<Q, O>>;
  /** Forward attention on device tensors, on a worker thread. */
  attentionAsync<Q extends ArrayBufferView, O extends DeviceForwardOptions = {}>(
    q: DeviceTensor<Q>,
    k: DeviceTensor,
    v: DeviceTensor,
    options?: KnownOptions<O, DeviceForwardOptions>,
  ): Promise<DeviceForwardResult<Q, O>>;
  async attentionAsync(q: AnyTensor, k: AnyTensor, v: AnyTensor, options?: ForwardOptions | DeviceForwardOptions): Promise<unknown> {
    this.#live();
    const call = readForward(q, k, v, options);
    const handle = this.#live();
    const frame = new Frame();
    const made: DeviceTensor[] = [];
    try {
      const result = encodeForward(frame, call, this.#allocator(call.q), made);
      stageHostMemory(frame, this.#addressOf);
      const outcome = await this.#runAsync(frame, () => this.#driver.forwardAsync(handle, frame));
      this.#checkCall(handle, outcome.status, frame, outcome.message);
      copyBackStaged(frame);
      return result;
    } catch (e) {
      if (made.length > 0) discard(made);
      throw e;
    }
  }

  /**
   * Backward attention on this context: given `dout = ∂L/∂out`, returns dq, dk, dv shaped like
   * q, k, v. See the binding's `attentionBackward`.
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
  ): BackwardResult<Q, K, V, O>;
  /**
   * Backward attention on device tensors: the gradients are device tensors on this context.
   *
   * @throws UmfaError with the core's status and message; nothing is written then
   */
  attentionBackward<
    Q extends ArrayBufferView,
    K extends ArrayBufferView,
    V extends ArrayBufferView,
    O extends DeviceBackwardOptions = {},
  >(
    q: DeviceTensor<Q>,
    k: DeviceTensor<K>,
    v: DeviceTensor<V>,
    out: DeviceTensor,
    dout: DeviceTensor,
    lse: DeviceTensor,
    options?: KnownOptions<O, DeviceBackwardOptions>,
  ): DeviceBackwardResult<Q, K, V, O>;
  attentionBackward(
    q: AnyTensor,
    k: AnyTensor,
    v: AnyTensor,
    out: AnyTensor,
    dout: AnyTensor,
    lse: AnyTensor,
    options?: BackwardOptions | DeviceBackwardOptions,
  ): unknown {
    this.#live();
    const call = readBackward(q, k, v, out, dout, lse, options);
    const handle = this.#live();
    const frame = this.#runtime.acquireSyncFrame();
    const made: DeviceTensor[] = [];
    try {
      const grads = encodeBackward(frame, call, this.#allocator(call.q), made);
      bindHostMemory(frame);
      const status = this.#driver.backward(handle, frame);
      this.#checkCall(handle, status, frame);
      return grads;
    } catch (e) {
      if (made.length > 0) discard(made);
      throw e;
    } finally {
      this.#runtime.releaseSyncFrame(frame);
    }
  }

  /** Backward attention on a worker thread. Rejects with UmfaError on failure. */
  attentionBackwardAsync<
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
  ): Promise<BackwardResult<Q, K, V, O>>;
  /** Backward attention on device tensors, on a worker thread. */
  attentionBackwardAsync<
    Q extends ArrayBufferView,
    K extends ArrayBufferView,
    V extends ArrayBufferView,
    O extends DeviceBackwardOptions = {},
  >(
    q: DeviceTensor<Q>,
    k: DeviceTensor<K>,
    v: DeviceTensor<V>,
    out: DeviceTensor,
    dout: DeviceTensor,
    lse: DeviceTensor,
    options?: KnownOptions<O, DeviceBackwardOptions>,
  ): Promise<DeviceBackwardResult<Q, K, V, O>>;
  async attentionBackwardAsync(
    q: AnyTensor,
    k: AnyTensor,
    v: AnyTensor,
    out: AnyTensor,
    dout: AnyTensor,
    lse: AnyTensor,
    options?: BackwardOptions | DeviceBackwardOptions,
  ): Promise<unknown> {
    this.#live();
    const call = readBackward(q, k, v, out, dout, lse, options);
    const handle = this.#live();
    const frame = new Frame();
    const made: DeviceTensor[] = [];
    try {
      const grads = encodeBackward(frame, call, this.#allocator(call.q), made);
      stageHostMemory(frame, this.#addressOf);
      const outcome = await this.#runAsync(frame, () => this.#driver.backwardAsync(handle, frame));
      this.#checkCall(handle, outcome.status, frame, outcome.message);
      copyBackStaged(frame);
      return grads;
    } catch (e) {
      if (made.length > 0) discard(made);
      throw e;
    }
  }

  /**
   * Copies a host tensor to this context's device (`umfa_buffer_create` + `umfa_buffer_upload`):
   * GPU memory on CUDA, library-owned host memory on the CPU. The bytes the view spans are copied
   * as they are, so the device tensor keeps the dtype, shape and strides (a BHSD view stays one).
   *
   * @example
   * ```ts
   * using q = ctx.upload(bshd(values, [1, 128, 8, 64]));
   * ```
   * @throws UmfaError (`OUT_OF_MEMORY`, or what the view cannot describe)
   */
  upload<D extends ArrayBufferView>(tensor: Tensor<D>): DeviceTensor<D> {
    this.#live();
    const t0 = tensor as unknown;
    if (t0 === null || typeof t0 !== 'object' || isDeviceTensor(t0)) {
      throw new UmfaError(
        Status.NULL_POINTER,
        isDeviceTensor(t0) ? 'upload: already a device tensor' : 'upload: expected a tensor ({ data, dtype, shape })',
      );
    }
    const t = snapshotTensor(t0, 'upload');
    this.#live();
    const data = t.host as ArrayBufferView;
    const bytes = viewBytes(t.dtype, t.shape, t.strides, 'upload');
    const info = viewInfo(data);
    if (info === undefined || bytes > info.byteLength) {
      throw new UmfaError(Status.SHAPE_MISMATCH, `upload: the view needs ${bytes} bytes but its ${info?.kind ?? 'view'} holds ${info?.byteLength ?? 0}`);
    }
    const dt = newDeviceTensor<D>(this.#state, this, t.dtype, t.shape, t.strides, bytes, isFloat16Array(data));
    if (bytes > 0) {
      try {
        dt.upload(data);
      } catch (e) {
        dt.dispose();
        throw e;
      }
    }
    return dt;
  }

  /**
   * Allocates a dense, zero-filled device tensor on this context (for outputs you pass in, e.g.
   * `{ out: ctx.zeros('f16', q.shape) }`).
   *
   * @throws UmfaError (`OUT_OF_MEMORY`, or a shape no buffer can hold)
   */
  zeros<T extends DType>(dtype: T, shape: readonly number[]): DeviceTensor<DTypeData[T]> {
    this.#live();
    // The caller's shape is read once: the size of the buffer and the tensor's shape come from
    // the same values (a proxy could answer differently the second time).
    const dims: unknown = Array.isArray(shape) ? Array.from(shape) : shape;
    const bytes = viewBytes(dtype, dims as number[], undefined, 'zeros');
    return newDeviceTensor<DTypeData[T]>(this.#state, this, dtype, dims as number[], undefined, bytes, false);
  }

  /**
   * Waits until the work queued by this context's calls has finished. A no-op on the CPU (calls
   * finish before they return). On CUDA, calls return once their kernels are queued on the
   * stream; this waits for the legacy default stream (where calls without a `stream` option run)
   * by copying 4 bytes to the host, since the C ABI has no synchronize entry point. For calls on a
   * stream of your own, synchronize that stream instead. {@link DeviceTensor.download} waits the
   * same way.
   *
   * @throws UmfaError when the copy fails (a CUDA error of an earlier call surfaces here)
   */
  synchronize(): void {
    this.#live();
    if (this.#state.device === 0) return;
    if (this.#scratch === undefined || this.#scratch.destroyed) {
      const made = createBuffer(this.#state, 4);
      if (!('handle' in made)) throw new UmfaError(made.status, made.message);
      this.#scratch = made;
    }
    const status = this.#driver.bufferDownload(this.#scratch.handle, 0, new Uint8Array(4));
    this.#check(status);
  }

  /**
   * Frees the native context and every device tensor made on it. Safe to call more than once.
   * Calls after this throw `UmfaError` (`INVALID_HANDLE`); asynchronous calls already in flight
   * finish first.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    contextFinalizer.unregister(this);
    releaseContext(this.#state);
  }

  /** Same as {@link ContextBase.dispose}, for `using ctx = new Context()`. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Host outputs for host calls, device outputs on this context when q is a device tensor. */
  #allocator(q: TensorSnapshot): Allocate {
    return q.device !== undefined ? this.#allocDevice : allocHost;
  }

  readonly #addressOf = (data: ArrayBufferView): bigint => this.#driver.addressOf(data);

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
   * A host tensor refused by a CUDA context gets a hint about device tensors.
   */
  #checkCall(handle: bigint, status: number, frame: Frame, driverMessage?: string): void {
    if (status === Status.OK) return;
    let message = driverMessage || frame.message();
    if (!message && !this.#state.destroyed) message = this.#driver.lastError(handle);
    if (status === Status.DEVICE_MISMATCH && this.#state.device !== 0 && /\bdevice is CPU\b/.test(message)) {
      message += ' (a CUDA context reads device tensors: copy host tensors with ctx.upload(tensor))';
    }
    throw new UmfaError(status, message);
  }

  /** Runs an asynchronous call with the context and the frame's device buffers pinned. */
  async #runAsync(frame: Frame, start: () => Promise<AsyncOutcome>): Promise<AsyncOutcome> {
    const buffers = frame.buffers.slice();
    pin(this.#state, buffers);
    try {
      return await start();
    } finally {
      unpin(this.#state, buffers);
    }
  }
}
