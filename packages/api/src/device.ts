import { allocData, dtypeSize, isDType, type DType } from './dtype.js';
import { bytesOf, viewInfo } from './intrinsics.js';
import { UmfaError } from './errors.js';
import { bufferFinalizer, createBuffer, releaseBuffer, type BufferState, type ContextState } from './handles.js';
import type { ContextBase } from './context.js';
import { Status } from './status.js';
import type { Tensor } from './tensor.js';

// Access to the private state of device tensors for this package's modules (set in the class's
// static block, which runs when the class is defined).
let makeDeviceTensor: (
  state: BufferState,
  context: ContextBase,
  dtype: DType,
  shape: readonly number[],
  strides: readonly number[] | undefined,
  float16Array: boolean,
) => DeviceTensor;
let stateOf: (t: object) => BufferState | undefined;
let liveState: (t: DeviceTensor, role: string) => BufferState;
let prefersFloat16Array: (t: DeviceTensor) => boolean;

/** Passed by this module to the constructor; nothing outside it can name it. */
const constructToken = Symbol('umfa.DeviceTensor');
/** Buffer states made by {@link newDeviceTensor} (a device tensor must wrap one of these). */
const genuineBuffers = new WeakSet<BufferState>();

/** Where a tensor's memory lives: `'cpu'` (host memory) or `'cuda'` (GPU memory). */
export type DeviceName = 'cpu' | 'cuda';

/**
 * A tensor in memory of a context's device (a `umfa_buffer`): GPU memory on a CUDA context, host
 * memory owned by the library on a CPU context. Made by `ctx.upload(tensor)` (a copy of a host
 * {@link Tensor}) or `ctx.zeros(dtype, shape)`, and by calls whose inputs are device tensors
 * (their outputs). Pass it wherever a call takes a tensor; read it back with
 * {@link DeviceTensor.download}.
 *
 * It owns its memory: free it with {@link DeviceTensor.dispose} (or `using`); a device tensor that
 * is garbage collected without being disposed is freed by a finalizer, and disposing its context
 * frees it too. `D` is the typed array {@link DeviceTensor.download} returns.
 *
 * On CUDA, calls return once their work is queued on the stream (the legacy default stream unless
 * the `stream` option names another); {@link DeviceTensor.download} and `ctx.synchronize()` wait
 * for it.
 *
 * @example
 * ```ts
 * using ctx = new Context({ backend: 'cuda' });
 * using q = ctx.upload(bshd(values, [1, 1024, 8, 64]));
 * const { out } = ctx.attention(q, q, q, { causal: true });
 * const host = out.download(); // { data: Float32Array, dtype: 'f32', shape: [1, 1024, 8, 64] }
 * out.dispose();
 * ```
 */
export class DeviceTensor<D extends ArrayBufferView = ArrayBufferView> implements Disposable {
  /** The element type. */
  readonly dtype: DType;
  /** Extent of each dimension (rank 0..4). */
  readonly shape: readonly number[];
  /** Distance in elements between neighbours along each dimension; dense row-major if omitted. */
  readonly strides: readonly number[] | undefined;
  /** Where the memory is: `'cuda'` on a CUDA context, `'cpu'` on a CPU context. */
  readonly device: DeviceName;
  /** The device ordinal (the context's `deviceIndex`; 0 on the CPU). */
  readonly deviceIndex: number;
  /** The context whose device holds the memory (and whose `dispose()` frees it). */
  readonly context: ContextBase;
  readonly #state: BufferState;
  readonly #float16Array: boolean;
  #disposed = false;

  private constructor(
    token: symbol,
    state: BufferState,
    context: ContextBase,
    dtype: DType,
    shape: readonly number[],
    strides: readonly number[] | undefined,
    float16Array: boolean,
  ) {
    // Only this module makes device tensors: a subclass or a direct `new` with a made-up buffer
    // state (an arbitrary address and length) is refused.
    if (token !== constructToken || !genuineBuffers.has(state)) {
      throw new TypeError('DeviceTensor cannot be constructed directly; use ctx.upload(), ctx.zeros() or a call on device tensors');
    }
    this.#state = state;
    this.context = context;
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.strides = strides === undefined ? undefined : Object.freeze([...strides]);
    this.device = state.owner.device === 0 ? 'cpu' : 'cuda';
    this.deviceIndex = state.owner.deviceIndex;
    this.#float16Array = float16Array;
    bufferFinalizer.register(this, state, this);
  }

  static {
    makeDeviceTensor = (state, context, dtype, shape, strides, float16Array) =>
      new DeviceTensor(constructToken, state, context, dtype, shape, strides, float16Array);
    stateOf = (t) => (#state in t ? t.#state : undefined);
    liveState = (t, role) => {
      if (t.#disposed || t.#state.destroyed) {
        throw new UmfaError(
          Status.INVALID_HANDLE,
          `${role}: this device tensor has been disposed${t.#state.destroyed && !t.#disposed ? ' (with its context)' : ''}`,
        );
      }
      return t.#state;
    };
    prefersFloat16Array = (t) => t.#float16Array;
  }

  /** Size in bytes of the device memory behind the view. */
  get byteLength(): number {
    return this.#state.byteLength;
  }

  /**
   * The address of the memory (`umfa_buffer_data`): a CUDA device pointer on a CUDA context, for
   * interop with other native code. Valid until the tensor (or its context) is disposed.
   */
  get pointer(): bigint {
    return liveState(this, 'pointer').pointer;
  }

  /** True once disposed (by {@link DeviceTensor.dispose} or by disposing its context). */
  get disposed(): boolean {
    return this.#disposed || this.#state.destroyed;
  }

  /**
   * Copies the memory to the host (`umfa_buffer_download`, synchronous: on CUDA it waits for the
   * calls queued on the default stream before it). Returns a host tensor with the same dtype,
   * shape and strides, in a new typed array or in `into` (which must hold {@link byteLength}
   * bytes).
   *
   * @throws UmfaError (`INVALID_HANDLE` once disposed; the core's status when the copy fails)
   */
  download(): Tensor<D>;
  /** Copies the memory into `into` and returns it as a tensor with this one's dtype and layout. */
  download<X extends ArrayBufferView>(into: X): Tensor<X>;
  download(into?: ArrayBufferView): Tensor {
    const s = liveState(this, 'download');
    const n = s.byteLength / dtypeSize(this.dtype);
    let data: ArrayBufferView;
    if (into === undefined) {
      data = allocData(this.dtype, n, this.#float16Array);
    } else {
      const info = viewInfo(into);
      if (info === undefined) throw new UmfaError(Status.NULL_POINTER, 'download: into must be a typed array');
      if (info.byteLength < s.byteLength) {
        throw new UmfaError(Status.SHAPE_MISMATCH, `download: into holds ${info.byteLength} bytes, the tensor ${s.byteLength}`);
      }
      data = into;
    }
    const status = s.owner.driver.bufferDownload(s.handle, 0, bytesOf(data, s.byteLength));
    if (status !== Status.OK) throw new UmfaError(status, s.owner.driver.lastError(s.owner.handle));
    return this.strides === undefined
      ? { data, dtype: this.dtype, shape: this.shape }
      : { data, dtype: this.dtype, shape: this.shape, strides: this.strides };
  }

  /**
   * Overwrites the memory with new host values (`umfa_buffer_upload`, synchronous): the first
   * {@link byteLength} bytes of `source`, or of a tensor's data, laid out like this tensor.
   *
   * @throws UmfaError (`SHAPE_MISMATCH` when `source` is too small)
   */
  upload(source: Tensor | ArrayBufferView): void {
    const s = liveState(this, 'upload');
    const data = viewInfo(source) !== undefined ? source : (source as Tensor | null)?.data;
    const info = viewInfo(data);
    if (info === undefined) throw new UmfaError(Status.NULL_POINTER, 'upload: source must be a tensor or a typed array');
    if (info.byteLength < s.byteLength) {
      throw new UmfaError(Status.SHAPE_MISMATCH, `upload: source holds ${info.byteLength} bytes, the tensor ${s.byteLength}`);
    }
    const status = s.owner.driver.bufferUpload(s.handle, 0, bytesOf(data as ArrayBufferView, s.byteLength));
    if (status !== Status.OK) throw new UmfaError(status, s.owner.driver.lastError(s.owner.handle));
  }

  /**
   * Frees the memory (`umfa_buffer_destroy`). Safe to call more than once; using the tensor
   * afterwards throws `UmfaError` (`INVALID_HANDLE`). Asynchronous calls already using it finish
   * first.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    bufferFinalizer.unregister(this);
    releaseBuffer(this.#state);
  }

  /** Same as {@link DeviceTensor.dispose}, for `using t = ctx.upload(...)`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** True when `t` is a {@link DeviceTensor} (of either binding). */
export function isDeviceTensor(t: unknown): t is DeviceTensor {
  return t !== null && typeof t === 'object' && stateOf(t) !== undefined;
}

/**
 * The buffer behind a device tensor, for encoding a call (internal).
 *
 * @throws UmfaError (`INVALID_HANDLE`) when it has been disposed
 */
export function deviceBuffer(t: DeviceTensor, role: string): BufferState {
  return liveState(t, role);
}

/** Whether downloads of `t` come back as a `Float16Array` (it was uploaded from one). */
export function downloadsFloat16Array(t: DeviceTensor): boolean {
  return prefersFloat16Array(t);
}

function checkExtent(x: number, what: string): number {
  if (!Number.isSafeInteger(x)) throw new UmfaError(Status.INVALID_ARGUMENT, `${what} must be an integer, got ${String(x)}`);
  return x;
}

/**
 * Bytes from the first element to the end of the last one of a view (0 when an extent is 0).
 *
 * @throws UmfaError for what no buffer can hold: rank above 4, negative or fractional extents
 *   and strides
 */
export function viewBytes(dtype: DType, shape: readonly number[], strides: readonly number[] | undefined, role: string): number {
  if (!isDType(dtype)) throw new UmfaError(Status.UNSUPPORTED_DTYPE, `${role}: unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape)) throw new UmfaError(Status.INVALID_ARGUMENT, `${role}: shape must be an array`);
  const rank = shape.length;
  if (rank > 4) throw new UmfaError(Status.INVALID_RANK, `${role}: rank ${rank} is above the maximum of 4`);
  if (strides !== undefined && strides.length !== rank) {
    throw new UmfaError(Status.INVALID_ARGUMENT, `${role}: ${strides.length} strides given for a rank-${rank} shape`);
  }
  let last = 0;
  let dense = 1;
  let empty = false;
  for (let i = rank - 1; i >= 0; i--) {
    const n = checkExtent(shape[i] as number, `${role}: shape[${i}]`);
    const s = strides === undefined ? dense : checkExtent(strides[i] as number, `${role}: strides[${i}]`);
    if (n < 0) throw new UmfaError(Status.INVALID_ARGUMENT, `${role}: shape[${i}] is negative (${n})`);
    if (s < 0) throw new UmfaError(Status.INVALID_STRIDE, `${role}: strides[${i}] is negative (${s})`);
    if (n === 0) empty = true;
    else last += (n - 1) * s;
    dense *= n;
  }
  return empty ? 0 : (last + 1) * dtypeSize(dtype);
}

/**
 * Allocates a buffer of `bytes` on the context (zero-filled by the core) and wraps it in a device
 * tensor (internal: contexts use it for `upload`, `zeros` and the outputs of device calls).
 */
export function newDeviceTensor<D extends ArrayBufferView>(
  owner: ContextState,
  context: ContextBase,
  dtype: DType,
  shape: readonly number[],
  strides: readonly number[] | undefined,
  bytes: number,
  float16Array: boolean,
): DeviceTensor<D> {
  const made = createBuffer(owner, bytes);
  if (!('handle' in made)) throw new UmfaError(made.status, made.message);
  const state: BufferState = made;
  genuineBuffers.add(state);
  return makeDeviceTensor(state, context, dtype, shape, strides, float16Array) as DeviceTensor<D>;
}
