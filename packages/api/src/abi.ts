/**
 * The C ABI's struct layouts and the encoding of a call into a *frame*: one buffer holding the
 * `umfa_attention_options` struct, a fixed set of `umfa_tensor` slots and the call's own error
 * message buffer (`umfa_attention_options.error_message`). Both bindings
 * encode calls with this module; each then patches the native addresses in (koffi in
 * TypeScript, the N-API addon in C++) and calls the core. Validation is left to the core: this
 * module only refuses what the C structs cannot represent (rank > 4, non-integer extents,
 * typed arrays too short for the view).
 *
 * @module
 */
import { UmfaError } from './errors.js';
import { Status } from './status.js';
import { dtypeSize, DTypeCode, isDType, type DType } from './dtype.js';
import type { Tensor } from './tensor.js';
import { deviceBuffer, isDeviceTensor, type DeviceTensor } from './device.js';
import type { BufferState } from './handles.js';
import type { AttentionOptions, ContextOptions, MaskMode } from './options.js';

/** The ABI version (`UMFA_ABI_VERSION`) these bindings are written for. */
export const ABI_VERSION = 1;

/** Byte layout of the ABI structs on 64-bit platforms (checked at compile time by the addon). */
export const Layout = {
  /** sizeof(umfa_context_options). */
  CONTEXT_OPTIONS_SIZE: 24,
  /** sizeof(umfa_attention_options). */
  OPTIONS_SIZE: 112,
  /** sizeof(umfa_tensor). */
  TENSOR_SIZE: 88,
  /** Offsets within umfa_attention_options. */
  options: {
    structSize: 0,
    maskMode: 4,
    softmaxScale: 8,
    softcap: 12,
    hasWindow: 16,
    flags: 20,
    windowLeft: 24,
    windowRight: 32,
    attnMask: 40,
    alibiSlopes: 48,
    cuSeqlensQ: 56,
    cuSeqlensK: 64,
    maxSeqlenQ: 72,
    maxSeqlenK: 80,
    stream: 88,
    errorMessage: 96,
    errorMessageCapacity: 104,
  },
  /** Offsets within umfa_tensor. */
  tensor: { data: 0, dtype: 8, device: 12, deviceIndex: 16, rank: 20, shape: 24, strides: 56 },
} as const;

/** The tensor slots of a frame, in the order the addon and the koffi driver expect. */
export const Slot = {
  /** Query. */
  Q: 0,
  /** Key. */
  K: 1,
  /** Value. */
  V: 2,
  /** Output (forward) / forward output read by backward. */
  OUT: 3,
  /** Log-sum-exp. */
  LSE: 4,
  /** Gradient of the output (backward). */
  DOUT: 5,
  /** Gradient of q (backward). */
  DQ: 6,
  /** Gradient of k (backward). */
  DK: 7,
  /** Gradient of v (backward). */
  DV: 8,
  /** attn_mask. */
  MASK: 9,
  /** alibi_slopes. */
  ALIBI: 10,
  /** cu_seqlens_q. */
  CU_SEQLENS_Q: 11,
  /** cu_seqlens_k. */
  CU_SEQLENS_K: 12,
} as const;

/** Number of tensor slots in a frame. */
export const SLOT_COUNT = 13;

/** Byte offset of tensor slot `slot` in a frame. */
export function slotOffset(slot: number): number {
  return Layout.OPTIONS_SIZE + slot * Layout.TENSOR_SIZE;
}

/**
 * Bytes of a frame's error message buffer: the core's messages are at most 1023 bytes plus the
 * terminating NUL, so they always fit.
 */
export const MESSAGE_CAPACITY = 1024;

/** Byte offset of the error message buffer in a frame (after the tensor slots). */
export const MESSAGE_OFFSET = Layout.OPTIONS_SIZE + SLOT_COUNT * Layout.TENSOR_SIZE;

/** Size in bytes of a frame. */
export const FRAME_SIZE = MESSAGE_OFFSET + MESSAGE_CAPACITY;

/**
 * The option fields of a frame that point into the frame itself (tensor slots, the message
 * buffer). The encoder writes them as byte offsets from the start of the frame (0 = NULL); a
 * driver adds the frame's address to each nonzero one before the call.
 */
export const RELOCATED_OPTION_FIELDS: readonly number[] = [
  Layout.options.attnMask,
  Layout.options.alibiSlopes,
  Layout.options.cuSeqlensQ,
  Layout.options.cuSeqlensK,
  Layout.options.errorMessage,
];

/**
 * One encoded call: the struct bytes and, for each present tensor slot, what goes into its
 * `data` field: a typed array (its memory is passed in place) or a `bigint` address (device
 * memory of a {@link DeviceTensor}); `undefined` = slot unused, passed as NULL.
 */
export class Frame {
  /** The struct bytes (options at 0, slot i at {@link slotOffset}(i)). */
  readonly buffer: ArrayBuffer;
  /** A view of {@link Frame.buffer} for writing fields. */
  readonly view: DataView;
  /** Data of each slot: a typed array, a device address, or undefined when the slot is unused. */
  readonly views: (ArrayBufferView | bigint | undefined)[];
  /**
   * The buffers of the device tensors encoded into this frame (kept alive by async calls).
   *
   * @internal
   */
  readonly buffers: BufferState[];

  constructor() {
    this.buffer = new ArrayBuffer(FRAME_SIZE);
    this.view = new DataView(this.buffer);
    this.views = new Array<ArrayBufferView | bigint | undefined>(SLOT_COUNT).fill(undefined);
    this.buffers = [];
  }

  /** Marks every slot unused (before encoding a new call into a reused frame). */
  clear(): void {
    this.views.fill(undefined);
    if (this.buffers.length > 0) this.buffers.length = 0;
  }

  /**
   * The message the core wrote into this frame's message buffer when the call failed ("" when
   * it wrote none). It belongs to this call alone, unlike the context's last error, which a
   * concurrent failing call on the same context may overwrite.
   */
  message(): string {
    const bytes = new Uint8Array(this.buffer, MESSAGE_OFFSET, MESSAGE_CAPACITY);
    let end = bytes.indexOf(0);
    if (end < 0) end = MESSAGE_CAPACITY;
    return utf8.decode(bytes.subarray(0, end));
  }
}

const utf8 = new TextDecoder();

const TWO32 = 4294967296;

/** Writes an integer (|x| < 2^53) as little-endian int64 without BigInt. */
export function setInt64(view: DataView, offset: number, x: number): void {
  const hi = Math.floor(x / TWO32);
  view.setUint32(offset, x - hi * TWO32, true);
  view.setInt32(offset + 4, hi, true);
}

function checkInt(value: number, what: string, index = -1): number {
  if (!Number.isSafeInteger(value)) {
    const name = index >= 0 ? `${what}[${index}]` : what;
    throw new UmfaError(Status.INVALID_ARGUMENT, `${name} must be an integer, got ${String(value)}`);
  }
  return value;
}

/**
 * Encodes tensor `t` into slot `slot` of `frame` (the `data` field is left 0 for the driver).
 * `t` is a host {@link Tensor} or a {@link DeviceTensor} (its device and address are encoded).
 * Refuses what the struct cannot hold and views that reach past the end of their memory.
 *
 * @param role - the tensor's name in error messages ("q", "attn_mask", ...)
 */
export function encodeTensor(frame: Frame, slot: number, t: Tensor | DeviceTensor, role: string): void {
  const data = (t as Tensor).data;
  let available: number;
  let ref: ArrayBufferView | bigint;
  let device = 0;
  let deviceIndex = 0;
  if (data !== null && typeof data === 'object' && ArrayBuffer.isView(data)) {
    available = data.byteLength;
    ref = data;
  } else if (isDeviceTensor(t)) {
    const b = deviceBuffer(t, role);
    available = b.byteLength;
    ref = b.pointer;
    device = b.owner.device;
    deviceIndex = b.owner.deviceIndex;
    frame.buffers.push(b);
  } else {
    throw new UmfaError(Status.NULL_POINTER, `${role}: data must be a typed array (or pass a DeviceTensor)`);
  }
  const dtype: DType = t.dtype;
  if (!isDType(dtype)) {
    throw new UmfaError(Status.UNSUPPORTED_DTYPE, `${role}: unknown dtype ${JSON.stringify(dtype)}`);
  }
  const shape = t.shape;
  const rank = shape.length;
  if (rank > 4) throw new UmfaError(Status.INVALID_RANK, `${role}: rank ${rank} is above the maximum of 4`);
  const strides = t.strides;
  if (strides !== undefined && strides.length !== rank) {
    throw new UmfaError(
      Status.INVALID_ARGUMENT,
      `${role}: ${strides.length} strides given for a rank-${rank} shape`,
    );
  }
  const v = frame.view;
  const base = slotOffset(slot);
  v.setUint32(base, 0, true);
  v.setUint32(base + 4, 0, true);
  v.setInt32(base + Layout.tensor.dtype, DTypeCode[dtype], true);
  v.setInt32(base + Layout.tensor.device, device, true);
  v.setInt32(base + Layout.tensor.deviceIndex, deviceIndex, true);
  v.setInt32(base + Layout.tensor.rank, rank, true);
  // Dense strides when omitted; extent check in elements.
  let maxOffset = 0;
  let empty = false;
  let negative = false;
  let dense = 1;
  for (let i = rank - 1; i >= 0; i--) {
    const n = shape[i] as number;
    if (!Number.isSafeInteger(n)) checkInt(n, `${role}: shape`, i);
    const s = strides === undefined ? dense : (strides[i] as number);
    if (!Number.isSafeInteger(s)) checkInt(s, `${role}: strides`, i);
    dense *= n;
    if (n === 0) empty = true;
    if (n < 0 || s < 0) negative = true;
    else if (n > 0) maxOffset += (n - 1) * s;
    setInt64(v, base + Layout.tensor.shape + 8 * i, n);
    setInt64(v, base + Layout.tensor.strides + 8 * i, s);
  }
  for (let i = rank; i < 4; i++) {
    setInt64(v, base + Layout.tensor.shape + 8 * i, 0);
    setInt64(v, base + Layout.tensor.strides + 8 * i, 0);
  }
  // Negative extents or strides are the core's to reject; never let a view run past its memory.
  if (!empty && !negative) {
    const needed = (maxOffset + 1) * dtypeSize(dtype);
    if (needed > available) {
      const holder = typeof ref === 'bigint' ? 'device tensor' : (ref.constructor.name);
      throw new UmfaError(
        Status.SHAPE_MISMATCH,
        `${role}: the view needs ${needed} bytes but its ${holder} holds ${available}`,
      );
    }
  }
  frame.views[slot] = ref;
}

function vectorTensor(x: Tensor | DeviceTensor | ArrayBufferView, dtype: DType): Tensor | DeviceTensor {
  if (ArrayBuffer.isView(x)) {
    const n = x.byteLength / dtypeSize(dtype);
    return { data: x, dtype, shape: [Math.floor(n)] };
  }
  return x;
}

function maskModeCode(m: MaskMode): number {
  switch (m) {
    case 'none':
      return 0;
    case 'causal-top-left':
      return 1;
    case 'causal-bottom-right':
      return 2;
    default:
      if (typeof m === 'number') return m >>> 0;
      throw new UmfaError(Status.INVALID_ARGUMENT, `unknown maskMode ${JSON.stringify(m)}`);
  }
}

/** Resolves `causal` / `maskMode` to a `UMFA_MASK_*` value. */
export function resolveMaskMode(options: AttentionOptions): number {
  const { causal, maskMode } = options;
  let fromCausal: number | undefined;
  if (causal !== undefined) {
    if (causal === false) fromCausal = 0;
    else if (causal === true || causal === 'bottom-right') fromCausal = 2;
    else if (causal === 'top-left') fromCausal = 1;
    else throw new UmfaError(Status.INVALID_ARGUMENT, `unknown causal value ${JSON.stringify(causal)}`);
  }
  const fromMode = maskMode === undefined ? undefined : maskModeCode(maskMode);
  if (fromCausal !== undefined && fromMode !== undefined && fromCausal !== fromMode) {
    throw new UmfaError(Status.INVALID_ARGUMENT, `causal (${String(causal)}) and maskMode (${String(maskMode)}) disagree`);
  }
  return fromMode ?? fromCausal ?? 0;
}

/** Encodes an optional tensor an options field points to (0 = NULL, else the slot's offset). */
function encodeRef(
  frame: Frame,
  field: number,
  slot: number,
  t: Tensor | DeviceTensor | ArrayBufferView | undefined,
  dtype: DType,
  role: string,
): void {
  if (t === undefined || t === null) {
    setInt64(frame.view, field, 0);
    return;
  }
  encodeTensor(frame, slot, vectorTensor(t, dtype), role);
  setInt64(frame.view, field, slotOffset(slot));
}

/**
 * Encodes `umfa_attention_options` (and the tensors it points to, in slots MASK, ALIBI,
 * CU_SEQLENS_Q/K) into `frame`. Pointer fields to slots are written as frame offsets (see
 * {@link RELOCATED_OPTION_FIELDS}).
 */
export function encodeOptions(frame: Frame, options: AttentionOptions | undefined): void {
  const v = frame.view;
  const o = Layout.options;
  const opts = options ?? {};
  v.setUint32(o.structSize, Layout.OPTIONS_SIZE, true);
  v.setUint32(o.maskMode, resolveMaskMode(opts), true);
  v.setFloat32(o.softmaxScale, opts.scale ?? 0, true);
  v.setFloat32(o.softcap, opts.softcap ?? 0, true);
  const w = opts.window;
  let left = -1;
  let right = -1;
  if (w !== undefined) {
    if (Array.isArray(w)) {
      left = (w as readonly number[])[0] ?? -1;
      right = (w as readonly number[])[1] ?? -1;
    } else {
      const ww = w as { left?: number; right?: number };
      left = ww.left ?? -1;
      right = ww.right ?? -1;
    }
    checkInt(left, 'window left');
    checkInt(right, 'window right');
  }
  v.setUint32(o.hasWindow, w === undefined ? 0 : 1, true);
  v.setUint32(o.flags, opts.deterministic ? 1 : 0, true);
  setInt64(v, o.windowLeft, left);
  setInt64(v, o.windowRight, right);
  encodeRef(frame, o.attnMask, Slot.MASK, opts.attnMask, 'f32', 'attn_mask');
  encodeRef(frame, o.alibiSlopes, Slot.ALIBI, opts.alibiSlopes, 'f32', 'alibi_slopes');
  encodeRef(frame, o.cuSeqlensQ, Slot.CU_SEQLENS_Q, opts.cuSeqlensQ, 'i32', 'cu_seqlens_q');
  encodeRef(frame, o.cuSeqlensK, Slot.CU_SEQLENS_K, opts.cuSeqlensK, 'i32', 'cu_seqlens_k');
  setInt64(v, o.maxSeqlenQ, checkInt(opts.maxSeqlenQ ?? 0, 'maxSeqlenQ'));
  setInt64(v, o.maxSeqlenK, checkInt(opts.maxSeqlenK ?? 0, 'maxSeqlenK'));
  v.setBigUint64(o.stream, opts.stream ?? 0n, true);
  // The call's own message buffer (written by the core only on failure): start it empty.
  setInt64(v, o.errorMessage, MESSAGE_OFFSET);
  setInt64(v, o.errorMessageCapacity, MESSAGE_CAPACITY);
  v.setUint8(MESSAGE_OFFSET, 0);
}

/**
 * Encodes `umfa_context_options` into a new 24-byte buffer. The backend defaults to `'cpu'`, not
 * the C ABI's AUTO: tensors built from typed arrays are host memory, which a CUDA context refuses
 * (`DEVICE_MISMATCH`), so AUTO would break such calls on a machine with a GPU. Code written for
 * the GPU asks for `'cuda'` or `'auto'` and passes {@link DeviceTensor}s.
 */
export function encodeContextOptions(options: ContextOptions | undefined): Uint8Array {
  const bytes = new Uint8Array(Layout.CONTEXT_OPTIONS_SIZE);
  const v = new DataView(bytes.buffer);
  const opts = options ?? {};
  const backend = opts.backend ?? 'cpu';
  const code = backend === 'auto' ? 0 : backend === 'cpu' ? 1 : backend === 'cuda' ? 2 : -1;
  if (code < 0) throw new UmfaError(Status.INVALID_ARGUMENT, `unknown backend ${JSON.stringify(backend)}`);
  v.setUint32(0, Layout.CONTEXT_OPTIONS_SIZE, true);
  v.setUint32(4, code, true);
  v.setInt32(8, checkInt(opts.deviceIndex ?? 0, 'deviceIndex'), true);
  v.setInt32(12, checkInt(opts.numThreads ?? 0, 'numThreads'), true);
  const limit = opts.workspaceLimitBytes ?? 0;
  v.setBigUint64(16, typeof limit === 'bigint' ? limit : BigInt(checkInt(limit, 'workspaceLimitBytes')), true);
  return bytes;
}
