/**
 * The first step of every call: read each value the caller supplied exactly once, into plain
 * records of numbers, strings and object references. This is the only place where a call runs
 * code of the caller's (option getters, proxies over shapes, `valueOf`...): whatever that code
 * does — detach or shrink a buffer, dispose a context, make another call — happens before any
 * pointer or length is taken. Encoding ({@link encodeTensor} in `abi.ts`) then works from these
 * records alone, and the lengths of host memory are read last, through the engine's own getters
 * (`intrinsics.ts`), immediately before the native call.
 *
 * @internal
 * @module
 */
import { dtypeSize, isDType, type DType } from './dtype.js';
import { UmfaError } from './errors.js';
import { isArrayBufferView, viewInfo } from './intrinsics.js';
import { isDeviceTensor, type DeviceTensor } from './device.js';
import { Status } from './status.js';

/** A tensor argument as read once from the caller. */
export interface TensorSnapshot {
  /** The tensor's name in messages ("q", "attn_mask", ...). */
  readonly role: string;
  /** The object the caller passed (returned to them as the output it is). */
  readonly original: unknown;
  /** Host memory: the typed array or DataView (its lengths are read again before the call). */
  readonly host: ArrayBufferView | undefined;
  /** Device memory: the device tensor (its liveness is checked again before the call). */
  readonly device: DeviceTensor | undefined;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly strides: readonly number[] | undefined;
}

/** Largest finite float32. */
const FLOAT32_MAX = 3.4028234663852886e38;

function invalid(message: string): UmfaError {
  return new UmfaError(Status.INVALID_ARGUMENT, message);
}

function describe(x: unknown): string {
  return typeof x === 'number' || typeof x === 'bigint' || typeof x === 'boolean' ? String(x) : typeof x;
}

/** A safe integer (|x| < 2^53), else INVALID_ARGUMENT naming `what`. */
export function intOption(x: unknown, what: string): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x)) {
    throw invalid(`${what} must be an integer, got ${describe(x)}`);
  }
  return x;
}

/** An integer in [min, max], else INVALID_ARGUMENT naming `what` and the range. */
export function rangedInt(x: unknown, what: string, min: number, max: number): number {
  const n = intOption(x, what);
  if (n < min || n > max) throw invalid(`${what} (${n}) is outside [${min}, ${max}]`);
  return n;
}

/** A bigint or safe non-negative integer in [0, 2^64), else INVALID_ARGUMENT naming `what`. */
export function uint64Option(x: unknown, what: string): bigint {
  let b: bigint;
  if (typeof x === 'bigint') b = x;
  else if (typeof x === 'number' && Number.isSafeInteger(x)) b = BigInt(x);
  else throw invalid(`${what} must be an integer or a bigint, got ${describe(x)}`);
  if (b < 0n || b >= 1n << 64n) throw invalid(`${what} (${b}) is outside [0, 2^64)`);
  return b;
}

/**
 * A number the C struct stores as float32: NaN and ±Infinity pass through unchanged (the core
 * refuses or documents them); a finite value outside float32's range, or a nonzero one that
 * would round to 0 (the "use the default" value), is refused.
 */
export function float32Option(x: unknown, what: string): number {
  if (typeof x !== 'number') throw invalid(`${what} must be a number, got ${describe(x)}`);
  if (Number.isFinite(x)) {
    if (Math.abs(x) > FLOAT32_MAX) throw invalid(`${what} (${x}) does not fit a float32`);
    if (x !== 0 && Math.fround(x) === 0) throw invalid(`${what} (${x}) rounds to 0 in float32`);
  }
  return x;
}

/** The typed arrays that may hold each dtype besides raw bytes (Uint8Array, Int8Array, DataView). */
const holders: { readonly [K in DType]: readonly string[] } = {
  f32: ['Float32Array'],
  f16: ['Uint16Array', 'Float16Array'],
  bf16: ['Uint16Array'],
  bool: [],
  i32: ['Int32Array'],
};
const rawBytes = new Set(['Uint8Array', 'Int8Array', 'Uint8ClampedArray', 'DataView']);

/** Refuses a typed array whose elements are not `dtype`'s (raw byte views hold any dtype). */
function checkHolder(view: ArrayBufferView, dtype: DType, role: string): void {
  const kind = viewInfo(view)?.kind ?? 'object';
  if (rawBytes.has(kind) || holders[dtype].includes(kind)) return;
  const use = [...holders[dtype], 'Uint8Array or DataView of raw bytes'].join(', or a ');
  const article = /^[AEIOU]/.test(kind) ? 'an' : 'a';
  throw new UmfaError(Status.UNSUPPORTED_DTYPE, `${role}: ${article} ${kind} cannot hold ${dtype} elements (use a ${use})`);
}

/** Reads an array of integers once (a proxy's traps run here, and only here). */
function readInts(x: unknown, role: string, field: string): number[] {
  const what = `${role}: ${field}`;
  if (x === null || typeof x !== 'object') throw invalid(`${what} must be an array of integers, got ${describe(x)}`);
  const arr = x as { readonly length: unknown; readonly [i: number]: unknown };
  const length = arr.length;
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0) {
    throw invalid(`${what} must be an array of integers`);
  }
  if (length > 4) throw new UmfaError(Status.INVALID_RANK, `${role}: rank ${length} is above the maximum of 4`);
  const out = new Array<number>(length);
  for (let i = 0; i < length; i++) out[i] = intOption(arr[i], `${what}[${i}]`);
  return out;
}

/**
 * Reads a tensor argument once: a host {@link Tensor} (`{ data, dtype, shape, strides? }`), a
 * {@link DeviceTensor}, or — for the vector options (`alibiSlopes`, `cuSeqlens*`) when
 * `vectorDtype` is given — a bare typed array of that dtype.
 */
export function snapshotTensor(t: unknown, role: string, vectorDtype?: DType): TensorSnapshot {
  if (t === null || typeof t !== 'object') {
    throw new UmfaError(Status.NULL_POINTER, `${role} must be a tensor ({ data, dtype, shape }) or a DeviceTensor`);
  }
  if (vectorDtype !== undefined && isArrayBufferView(t)) {
    checkHolder(t, vectorDtype, role);
    const bytes = viewInfo(t)?.byteLength ?? 0;
    const n = Math.floor(bytes / dtypeSize(vectorDtype));
    return { role, original: t, host: t, device: undefined, dtype: vectorDtype, shape: [n], strides: undefined };
  }
  if (isDeviceTensor(t)) {
    // A device tensor's fields are frozen at construction; read them once all the same.
    const dt = t as DeviceTensor;
    return {
      role,
      original: t,
      host: undefined,
      device: dt,
      dtype: dt.dtype,
      shape: [...dt.shape],
      strides: dt.strides === undefined ? undefined : [...dt.strides],
    };
  }
  const obj = t as { readonly data?: unknown; readonly dtype?: unknown; readonly shape?: unknown; readonly strides?: unknown };
  const data = obj.data;
  const dtype = obj.dtype;
  const shape = obj.shape;
  const strides = obj.strides;
  if (!isArrayBufferView(data)) {
    throw new UmfaError(Status.NULL_POINTER, `${role}: data must be a typed array (or pass a DeviceTensor)`);
  }
  if (!isDType(dtype)) {
    throw new UmfaError(Status.UNSUPPORTED_DTYPE, `${role}: unknown dtype ${typeof dtype === 'string' ? JSON.stringify(dtype) : describe(dtype)}`);
  }
  checkHolder(data, dtype, role);
  const s = readInts(shape, role, 'shape');
  const st = strides === undefined || strides === null ? undefined : readInts(strides, role, 'strides');
  if (st !== undefined && st.length !== s.length) {
    throw invalid(`${role}: ${st.length} strides given for a rank-${s.length} shape`);
  }
  return { role, original: t, host: data, device: undefined, dtype, shape: s, strides: st };
}

/** Reads an optional tensor option (`undefined`/`null` = absent). */
export function optionalTensor(t: unknown, role: string, vectorDtype?: DType): TensorSnapshot | undefined {
  return t === undefined || t === null ? undefined : snapshotTensor(t, role, vectorDtype);
}

/** The fields of `umfa_attention_options`, read once and range-checked. */
export interface OptionsSnapshot {
  readonly maskMode: number;
  readonly scale: number;
  readonly softcap: number;
  readonly window: readonly [number, number] | undefined;
  readonly deterministic: boolean;
  readonly stream: bigint;
  readonly attnMask: TensorSnapshot | undefined;
  readonly alibiSlopes: TensorSnapshot | undefined;
  readonly cuSeqlensQ: TensorSnapshot | undefined;
  readonly cuSeqlensK: TensorSnapshot | undefined;
  readonly maxSeqlenQ: number;
  readonly maxSeqlenK: number;
}

const UINT32_MAX = 4294967295;

function maskModeCode(m: unknown): number {
  switch (m) {
    case 'none':
      return 0;
    case 'causal-top-left':
      return 1;
    case 'causal-bottom-right':
      return 2;
    default:
      if (typeof m === 'number') return rangedInt(m, 'maskMode', 0, UINT32_MAX);
      throw invalid(`unknown maskMode ${typeof m === 'string' ? JSON.stringify(m) : describe(m)}`);
  }
}

function resolveMaskMode(causal: unknown, maskMode: unknown): number {
  let fromCausal: number | undefined;
  if (causal !== undefined) {
    if (causal === false) fromCausal = 0;
    else if (causal === true || causal === 'bottom-right') fromCausal = 2;
    else if (causal === 'top-left') fromCausal = 1;
    else throw invalid(`unknown causal value ${typeof causal === 'string' ? JSON.stringify(causal) : describe(causal)}`);
  }
  const fromMode = maskMode === undefined ? undefined : maskModeCode(maskMode);
  if (fromCausal !== undefined && fromMode !== undefined && fromCausal !== fromMode) {
    throw invalid(`causal (${describe(causal)}) and maskMode (${describe(maskMode)}) disagree`);
  }
  return fromMode ?? fromCausal ?? 0;
}

function readWindow(w: unknown): [number, number] | undefined {
  if (w === undefined) return undefined;
  if (w === null || typeof w !== 'object') throw invalid(`window must be [left, right] or { left, right }, got ${describe(w)}`);
  let left: unknown;
  let right: unknown;
  if (Array.isArray(w)) {
    left = (w as readonly unknown[])[0];
    right = (w as readonly unknown[])[1];
  } else {
    const ww = w as { readonly left?: unknown; readonly right?: unknown };
    left = ww.left;
    right = ww.right;
  }
  return [intOption(left ?? -1, 'window left'), intOption(right ?? -1, 'window right')];
}

/** Reads the option fields every attention call shares. */
export function snapshotAttentionOptions(o: Record<string, unknown>): OptionsSnapshot {
  const scale = o['scale'];
  const maskMode = o['maskMode'];
  const causal = o['causal'];
  const window = o['window'];
  const softcap = o['softcap'];
  const alibiSlopes = o['alibiSlopes'];
  const attnMask = o['attnMask'];
  const cuSeqlensQ = o['cuSeqlensQ'];
  const cuSeqlensK = o['cuSeqlensK'];
  const maxSeqlenQ = o['maxSeqlenQ'];
  const maxSeqlenK = o['maxSeqlenK'];
  const deterministic = o['deterministic'];
  const stream = o['stream'];
  return {
    maskMode: resolveMaskMode(causal, maskMode),
    scale: scale === undefined ? 0 : float32Option(scale, 'scale'),
    softcap: softcap === undefined ? 0 : float32Option(softcap, 'softcap'),
    window: readWindow(window),
    deterministic: !!deterministic,
    stream: stream === undefined ? 0n : uint64Option(stream, 'stream'),
    attnMask: optionalTensor(attnMask, 'attn_mask'),
    alibiSlopes: optionalTensor(alibiSlopes, 'alibi_slopes', 'f32'),
    cuSeqlensQ: optionalTensor(cuSeqlensQ, 'cu_seqlens_q', 'i32'),
    cuSeqlensK: optionalTensor(cuSeqlensK, 'cu_seqlens_k', 'i32'),
    maxSeqlenQ: maxSeqlenQ === undefined ? 0 : intOption(maxSeqlenQ, 'maxSeqlenQ'),
    maxSeqlenK: maxSeqlenK === undefined ? 0 : intOption(maxSeqlenK, 'maxSeqlenK'),
  };
}

/** An options argument as an object to read fields from (`undefined`/`null` = no options). */
export function optionsObject(options: unknown): Record<string, unknown> {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' && typeof options !== 'function') {
    throw invalid(`options must be an object, got ${describe(options)}`);
  }
  return options as Record<string, unknown>;
}

/** An optional dtype option (`outDtype`, `gradDtype`). */
export function dtypeOption(x: unknown, what: string): DType | undefined {
  if (x === undefined) return undefined;
  if (!isDType(x)) throw new UmfaError(Status.UNSUPPORTED_DTYPE, `${what}: unknown dtype ${typeof x === 'string' ? JSON.stringify(x) : describe(x)}`);
  return x;
}
