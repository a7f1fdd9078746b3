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
import { dtypeSize, DTypeCode, type DType } from './dtype.js';
import type { Tensor } from './tensor.js';
import { deviceBuffer, type DeviceTensor } from './device.js';
import type { BufferState } from './handles.js';
import { bufferBytes, bytesOf, copyBytes, newBytes, viewInfo, type ViewInfo } from './intrinsics.js';
import type { AttentionOptions, ContextOptions } from './options.js';
import {
  optionsObject,
  rangedInt,
  snapshotAttentionOptions,
  snapshotTensor,
  uint64Option,
  type OptionsSnapshot,
  type TensorSnapshot,
} from './snapshot.js';

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
 *
 * Host memory is bound last: `bindHostMemory` (synchronous calls) or
 * `stageHostMemory` (asynchronous calls) re-reads every typed array's length through the
 * engine's getters and refuses the call when a view no longer covers {@link Frame.needed} bytes.
 * Drivers pass a library-owned placeholder address for slots that need 0 bytes (empty views, and
 * views with negative extents or strides, which the core refuses without reading them).
 */
export class Frame {
  /** The struct bytes (options at 0, slot i at {@link slotOffset}(i)). */
  readonly buffer: ArrayBuffer;
  /** A view of {@link Frame.buffer} for writing fields. */
  readonly view: DataView;
  /** Data of each slot: a typed array, a device address, or undefined when the slot is unused. */
  readonly views: (ArrayBufferView | bigint | undefined)[];
  /** Bytes each slot's view spans from its first byte (0: nothing is read or written there). */
  readonly needed: number[];
  /** Each slot's name in messages. */
  readonly roles: string[];
  /** Slots whose host memory the library allocated for this call (no caller holds it yet). */
  readonly owned: boolean[];
  /**
   * The buffers of the device tensors encoded into this frame (kept alive by async calls).
   *
   * @internal
   */
  readonly buffers: BufferState[];
  /**
   * Outputs an asynchronous call writes into library-owned staging memory, copied back into the
   * caller's views when it completes (`stageHostMemory`, `copyBackStaged`).
   *
   * @internal
   */
  readonly staged: StagedOutput[];

  constructor() {
    this.buffer = new ArrayBuffer(FRAME_SIZE);
    this.view = new DataView(this.buffer);
    this.views = new Array<ArrayBufferView | bigint | undefined>(SLOT_COUNT).fill(undefined);
    this.needed = new Array<number>(SLOT_COUNT).fill(0);
    this.roles = new Array<string>(SLOT_COUNT).fill('');
    this.owned = new Array<boolean>(SLOT_COUNT).fill(false);
    this.buffers = [];
    this.staged = [];
  }

  /** Marks every slot unused (before encoding a new call into a reused frame). */
  clear(): void {
    this.views.fill(undefined);
    this.needed.fill(0);
    this.owned.fill(false);
    if (this.buffers.length > 0) this.buffers.length = 0;
    if (this.staged.length > 0) this.staged.length = 0;
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

/** An output staged by `stageHostMemory`. */
export interface StagedOutput {
  /** The slot's name in messages. */
  readonly role: string;
  /** The caller's view. */
  readonly target: ArrayBufferView;
  /** The library-owned bytes the core writes. */
  readonly staging: Uint8Array;
}

const utf8 = new TextDecoder();

const TWO32 = 4294967296;

/** Writes an integer (|x| < 2^53) as little-endian int64 without BigInt. */
export function setInt64(view: DataView, offset: number, x: number): void {
  const hi = Math.floor(x / TWO32);
  view.setUint32(offset, x - hi * TWO32, true);
  view.setInt32(offset + 4, hi, true);
}

/** Output slots: the ones the core writes. */
const OUTPUT_SLOTS: readonly number[] = [Slot.OUT, Slot.LSE, Slot.DQ, Slot.DK, Slot.DV];

/**
 * Bytes a view spans from its first element to the end of its last (0 when it is empty, or when
 * an extent or stride is negative: the core refuses those without reading any memory).
 */
function spanBytes(shape: readonly number[], strides: readonly number[] | undefined, dtype: DType): number {
  const rank = shape.length;
  let maxOffset = 0;
  let dense = 1;
  for (let i = rank - 1; i >= 0; i--) {
    const n = shape[i] as number;
    const s = strides === undefined ? dense : (strides[i] as number);
    dense *= n;
    if (n === 0) return 0;
    if (n < 0 || s < 0) return 0;
    maxOffset += (n - 1) * s;
  }
  const bytes = (maxOffset + 1) * dtypeSize(dtype);
  if (!Number.isSafeInteger(bytes)) {
    throw new UmfaError(Status.SIZE_OVERFLOW, 'the view spans more bytes than a safe integer holds');
  }
  return bytes;
}

/** "(its buffer was detached or shrunk)" when that is why a view is too short. */
function shrinkNote(info: ViewInfo | undefined): string {
  if (info === undefined) return '';
  const b = info.buffer as ArrayBuffer & { resizable?: boolean };
  return info.byteLength === 0 || b.resizable === true || info.shared ? '; its buffer was detached or shrunk' : '';
}

function tooShort(role: string, needed: number, info: ViewInfo | undefined, when: string): UmfaError {
  const holder = info?.kind ?? 'view';
  return new UmfaError(
    Status.SHAPE_MISMATCH,
    `${role}: the view needs ${needed} bytes but its ${holder} holds ${info?.byteLength ?? 0}${when}${shrinkNote(info)}`,
  );
}

/**
 * Encodes a tensor read by `snapshotTensor` into slot `slot` of `frame` (the `data` field
 * is left 0 for the driver). Refuses what the struct cannot hold and views that reach past the
 * end of their memory; for a device tensor, one that has been disposed. Runs no caller code.
 *
 * @param owned - the library allocated this output for the call (no caller can reach it yet)
 */
export function encodeSnapshot(frame: Frame, slot: number, t: TensorSnapshot, owned = false): void {
  const role = t.role;
  const dtype = t.dtype;
  const shape = t.shape;
  const strides = t.strides;
  const rank = shape.length;
  if (rank > 4) throw new UmfaError(Status.INVALID_RANK, `${role}: rank ${rank} is above the maximum of 4`);
  let device = 0;
  let deviceIndex = 0;
  let ref: ArrayBufferView | bigint;
  let available: number;
  let info: ViewInfo | undefined;
  if (t.device !== undefined) {
    const b = deviceBuffer(t.device, role);
    available = b.byteLength;
    ref = b.pointer;
    device = b.owner.device;
    deviceIndex = b.owner.deviceIndex;
    frame.buffers.push(b);
  } else {
    info = viewInfo(t.host);
    if (info === undefined) throw new UmfaError(Status.NULL_POINTER, `${role}: data must be a typed array (or pass a DeviceTensor)`);
    available = info.byteLength;
    ref = t.host as ArrayBufferView;
  }
  const v = frame.view;
  const base = slotOffset(slot);
  v.setUint32(base, 0, true);
  v.setUint32(base + 4, 0, true);
  v.setInt32(base + Layout.tensor.dtype, DTypeCode[dtype], true);
  v.setInt32(base + Layout.tensor.device, device, true);
  v.setInt32(base + Layout.tensor.deviceIndex, deviceIndex, true);
  v.setInt32(base + Layout.tensor.rank, rank, true);
  let dense = 1;
  for (let i = rank - 1; i >= 0; i--) {
    const n = shape[i] as number;
    const s = strides === undefined ? dense : (strides[i] as number);
    dense *= n;
    setInt64(v, base + Layout.tensor.shape + 8 * i, n);
    setInt64(v, base + Layout.tensor.strides + 8 * i, s);
  }
  for (let i = rank; i < 4; i++) {
    setInt64(v, base + Layout.tensor.shape + 8 * i, 0);
    setInt64(v, base + Layout.tensor.strides + 8 * i, 0);
  }
  const needed = spanBytes(shape, strides, dtype);
  if (needed > available) {
    if (typeof ref === 'bigint') {
      throw new UmfaError(Status.SHAPE_MISMATCH, `${role}: the view needs ${needed} bytes but its device tensor holds ${available}`);
    }
    throw tooShort(role, needed, info, '');
  }
  frame.views[slot] = ref;
  frame.needed[slot] = needed;
  frame.roles[slot] = role;
  frame.owned[slot] = owned;
}

/**
 * Encodes tensor `t` into slot `slot` of `frame`: `snapshotTensor` then
 * `encodeSnapshot`. `t` is a host {@link Tensor} or a {@link DeviceTensor}.
 *
 * @param role - the tensor's name in error messages ("q", "attn_mask", ...)
 */
export function encodeTensor(frame: Frame, slot: number, t: Tensor | DeviceTensor, role: string): void {
  encodeSnapshot(frame, slot, snapshotTensor(t, role));
}

/**
 * Re-reads the length of every host view in `frame` through the engine's getters and refuses
 * the call if one no longer covers the bytes its shape needs. Synchronous calls run this last,
 * immediately before the driver takes the addresses and calls the core, with no caller code in
 * between; the N-API addon repeats the check natively.
 */
export function bindHostMemory(frame: Frame): void {
  forEachHostView(frame, () => {});
}

/**
 * Calls `visit` for each host view of `frame` that needs bytes, after checking through the
 * engine's getters that it still covers them (SHAPE_MISMATCH otherwise).
 */
function forEachHostView(frame: Frame, visit: (slot: number, view: ArrayBufferView, info: ViewInfo, needed: number) => void): void {
  const views = frame.views;
  for (let i = 0; i < SLOT_COUNT; i++) {
    const data = views[i];
    if (data === undefined || typeof data === 'bigint') continue;
    const needed = frame.needed[i] as number;
    if (needed === 0) continue;
    const info = viewInfo(data);
    if (info === undefined || info.byteLength < needed) throw tooShort(frame.roles[i] as string, needed, info, ' now');
    visit(i, data, info, needed);
  }
}

/** The address alignment (bytes) a staged copy reproduces. */
const STAGING_ALIGNMENT = 64;

interface StagingGroup {
  start: number;
  end: number;
  members: { slot: number; view: ArrayBufferView; byteOffset: number }[];
}

/**
 * Prepares `frame` for an asynchronous call: no memory that JavaScript can free or shrink while
 * the call runs is handed to the core. Each caller-owned `ArrayBuffer` that a slot views is
 * copied once, over the byte range its views span, into library-owned memory that the frame's
 * slots then point into; the copies keep the views' relative placement (so the core's alias and
 * overlap checks see what they would have seen) and their address alignment modulo 64 (so its
 * alignment check does too). Outputs are copied back by `copyBackStaged`. Left in place:
 * views over a `SharedArrayBuffer` (which can neither be detached nor shrink), outputs the
 * library allocated for this call, and views that need no bytes. Costs one copy of each input
 * and output (O(N·D), against attention's O(N²·D)).
 *
 * @param addressOf - the driver's address of a view's first byte
 */
export function stageHostMemory(frame: Frame, addressOf: (data: ArrayBufferView) => bigint): void {
  const groups = new Map<ArrayBufferLike, StagingGroup>();
  const views = frame.views;
  forEachHostView(frame, (slot, view, info, needed) => {
    if (info.shared || frame.owned[slot]) return;
    let g = groups.get(info.buffer);
    if (g === undefined) {
      g = { start: info.byteOffset, end: info.byteOffset + needed, members: [] };
      groups.set(info.buffer, g);
    }
    g.start = Math.min(g.start, info.byteOffset);
    g.end = Math.max(g.end, info.byteOffset + needed);
    g.members.push({ slot, view, byteOffset: info.byteOffset });
  });
  for (const g of groups.values()) {
    const first = g.members[0] as { view: ArrayBufferView; byteOffset: number };
    const buffer = (viewInfo(first.view) as ViewInfo).buffer;
    const startAddress = addressOf(first.view) - BigInt(first.byteOffset - g.start);
    const length = g.end - g.start;
    const staging = newBytes(length + STAGING_ALIGNMENT);
    const want = Number(startAddress % BigInt(STAGING_ALIGNMENT));
    const have = Number(addressOf(staging) % BigInt(STAGING_ALIGNMENT));
    const shift = (want - have + STAGING_ALIGNMENT) % STAGING_ALIGNMENT;
    copyBytes(staging, bufferBytes(buffer, g.start, length), shift);
    for (const m of g.members) {
      const at = shift + (m.byteOffset - g.start);
      const region = staging.subarray(at, at + (frame.needed[m.slot] as number));
      views[m.slot] = region;
      if (OUTPUT_SLOTS.includes(m.slot)) frame.staged.push({ role: frame.roles[m.slot] as string, target: m.view, staging: region });
    }
  }
}

/**
 * Copies a completed asynchronous call's staged outputs into the caller's views. If any of them
 * was detached or shrunk while the call ran, copies none and throws SHAPE_MISMATCH: the result
 * is discarded rather than written into memory the caller has given away.
 */
export function copyBackStaged(frame: Frame): void {
  for (const s of frame.staged) {
    const info = viewInfo(s.target);
    if (info === undefined || info.byteLength < s.staging.length) {
      throw new UmfaError(
        Status.SHAPE_MISMATCH,
        `${s.role}: its memory was detached or shrunk while the call ran (it holds ${info?.byteLength ?? 0} of ${s.staging.length} bytes); the result was discarded`,
      );
    }
  }
  for (const s of frame.staged) copyBytes(bytesOf(s.target, s.staging.length), s.staging);
}

/** Resolves `causal` / `maskMode` to a `UMFA_MASK_*` value. */
export function resolveMaskMode(options: AttentionOptions): number {
  return snapshotAttentionOptions({ causal: options.causal, maskMode: options.maskMode }).maskMode;
}

/** Encodes an optional tensor an options field points to (0 = NULL, else the slot's offset). */
function encodeRef(frame: Frame, field: number, slot: number, t: TensorSnapshot | undefined): void {
  if (t === undefined) {
    setInt64(frame.view, field, 0);
    return;
  }
  encodeSnapshot(frame, slot, t);
  setInt64(frame.view, field, slotOffset(slot));
}

/**
 * Encodes `umfa_attention_options` (and the tensors it points to, in slots MASK, ALIBI,
 * CU_SEQLENS_Q/K) into `frame` from options read by `snapshotAttentionOptions`. Pointer
 * fields to slots are written as frame offsets (see {@link RELOCATED_OPTION_FIELDS}).
 */
export function encodeOptionsSnapshot(frame: Frame, o: OptionsSnapshot): void {
  const v = frame.view;
  const f = Layout.options;
  v.setUint32(f.structSize, Layout.OPTIONS_SIZE, true);
  v.setUint32(f.maskMode, o.maskMode, true);
  v.setFloat32(f.softmaxScale, o.scale, true);
  v.setFloat32(f.softcap, o.softcap, true);
  v.setUint32(f.hasWindow, o.window === undefined ? 0 : 1, true);
  v.setUint32(f.flags, o.deterministic ? 1 : 0, true);
  setInt64(v, f.windowLeft, o.window?.[0] ?? -1);
  setInt64(v, f.windowRight, o.window?.[1] ?? -1);
  encodeRef(frame, f.attnMask, Slot.MASK, o.attnMask);
  encodeRef(frame, f.alibiSlopes, Slot.ALIBI, o.alibiSlopes);
  encodeRef(frame, f.cuSeqlensQ, Slot.CU_SEQLENS_Q, o.cuSeqlensQ);
  encodeRef(frame, f.cuSeqlensK, Slot.CU_SEQLENS_K, o.cuSeqlensK);
  setInt64(v, f.maxSeqlenQ, o.maxSeqlenQ);
  setInt64(v, f.maxSeqlenK, o.maxSeqlenK);
  v.setBigUint64(f.stream, o.stream, true);
  // The call's own message buffer (written by the core only on failure): start it empty.
  setInt64(v, f.errorMessage, MESSAGE_OFFSET);
  setInt64(v, f.errorMessageCapacity, MESSAGE_CAPACITY);
  v.setUint8(MESSAGE_OFFSET, 0);
}

/**
 * Encodes `umfa_attention_options` from an options object: `snapshotAttentionOptions`
 * then `encodeOptionsSnapshot`.
 */
export function encodeOptions(frame: Frame, options: AttentionOptions | undefined): void {
  encodeOptionsSnapshot(frame, snapshotAttentionOptions(optionsObject(options)));
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
  const opts = optionsObject(options);
  const backend = opts['backend'] ?? 'cpu';
  const deviceIndex = opts['deviceIndex'] ?? 0;
  const numThreads = opts['numThreads'] ?? 0;
  const limit = opts['workspaceLimitBytes'] ?? 0;
  const code = backend === 'auto' ? 0 : backend === 'cpu' ? 1 : backend === 'cuda' ? 2 : backend === 'metal' ? 3 : -1;
  if (code < 0) {
    throw new UmfaError(Status.INVALID_ARGUMENT, `unknown backend ${typeof backend === 'string' ? JSON.stringify(backend) : typeof backend}`);
  }
  v.setUint32(0, Layout.CONTEXT_OPTIONS_SIZE, true);
  v.setUint32(4, code, true);
  v.setInt32(8, rangedInt(deviceIndex, 'deviceIndex', INT32_MIN, INT32_MAX), true);
  v.setInt32(12, rangedInt(numThreads, 'numThreads', INT32_MIN, INT32_MAX), true);
  v.setBigUint64(16, uint64Option(limit, 'workspaceLimitBytes'), true);
  return bytes;
}

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
