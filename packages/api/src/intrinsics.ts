/**
 * The built-ins the bindings rely on for memory safety, captured when this module is first
 * evaluated. A caller can shadow `byteLength` with an own property, subclass a typed array with
 * lying getters or replace `Uint8Array` afterwards; none of that reaches the lengths, offsets
 * and buffers read here, which come from the engine's own getters. (Code that patches the
 * built-ins before this package is imported is outside what a library can defend against in
 * JavaScript; the N-API addon re-checks every length natively, the koffi driver relies on these.)
 *
 * @internal
 * @module
 */

type Getter = (this: unknown) => unknown;

function getter(proto: object, key: PropertyKey): Getter {
  const d = Object.getOwnPropertyDescriptor(proto, key);
  if (d === undefined || typeof d.get !== 'function') throw new Error(`umfa: the runtime lacks ${String(key)}`);
  return d.get as Getter;
}

const apply = Reflect.apply;
const TypedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object;
const typedArrayName = getter(TypedArrayPrototype, Symbol.toStringTag);
const typedArrayBuffer = getter(TypedArrayPrototype, 'buffer');
const typedArrayByteOffset = getter(TypedArrayPrototype, 'byteOffset');
const typedArrayByteLength = getter(TypedArrayPrototype, 'byteLength');
const dataViewBuffer = getter(DataView.prototype, 'buffer');
const dataViewByteOffset = getter(DataView.prototype, 'byteOffset');
const dataViewByteLength = getter(DataView.prototype, 'byteLength');
const arrayBufferByteLength = getter(ArrayBuffer.prototype, 'byteLength');
const isView = ArrayBuffer.isView;
const typedArraySet = (TypedArrayPrototype as { set: unknown }).set as (this: unknown, src: unknown, offset?: number) => void;
const U8 = Uint8Array;

/** What a typed array or DataView is, read through the engine's own getters. */
export interface ViewInfo {
  /** The typed array's name (`'Float32Array'`, ...) or `'DataView'`. */
  readonly kind: string;
  /** The memory it views. */
  readonly buffer: ArrayBufferLike;
  /** Offset of its first byte in {@link ViewInfo.buffer}. */
  readonly byteOffset: number;
  /** Bytes it spans now (0 once its buffer is detached, or shrunk below its start). */
  readonly byteLength: number;
  /** True for a `SharedArrayBuffer` (which can neither be detached nor shrink). */
  readonly shared: boolean;
}

/** True when `x` is a typed array or a DataView (`ArrayBuffer.isView` as it was at load). */
export function isArrayBufferView(x: unknown): x is ArrayBufferView {
  return isView(x);
}

/**
 * The {@link ViewInfo} of a typed array or DataView, or `undefined` for anything else. Runs no
 * code of the caller's: proxies, own properties and subclass getters are not consulted.
 */
export function viewInfo(x: unknown): ViewInfo | undefined {
  if (!isView(x)) return undefined;
  const name = apply(typedArrayName, x, []) as string | undefined;
  let buffer: ArrayBufferLike;
  let byteOffset = 0;
  let byteLength = 0;
  if (name !== undefined) {
    buffer = apply(typedArrayBuffer, x, []) as ArrayBufferLike;
    byteOffset = apply(typedArrayByteOffset, x, []) as number;
    byteLength = apply(typedArrayByteLength, x, []) as number;
  } else {
    buffer = apply(dataViewBuffer, x, []) as ArrayBufferLike;
    // A DataView's getters throw once its buffer is detached or shrunk below its end.
    try {
      byteOffset = apply(dataViewByteOffset, x, []) as number;
      byteLength = apply(dataViewByteLength, x, []) as number;
    } catch {
      byteOffset = 0;
      byteLength = 0;
    }
  }
  let shared = false;
  try {
    apply(arrayBufferByteLength, buffer, []);
  } catch {
    shared = true; // ArrayBuffer.prototype.byteLength refuses a SharedArrayBuffer
  }
  return { kind: name ?? 'DataView', buffer, byteOffset, byteLength, shared };
}

/** Bytes `x` spans now, read through the engine's getters (0 for anything that is not a view). */
export function byteLengthOf(x: unknown): number {
  return viewInfo(x)?.byteLength ?? 0;
}

/**
 * A `Uint8Array` over the first `length` bytes of view `x`, made with the `Uint8Array` of load
 * time. The caller has checked `length <= byteLengthOf(x)` (the engine checks it again).
 */
export function bytesOf(x: ArrayBufferView, length: number): Uint8Array {
  const info = viewInfo(x);
  if (info === undefined) throw new TypeError('umfa: not a typed array');
  return new U8(info.buffer, info.byteOffset, length);
}

/** A `Uint8Array` over bytes [byteOffset, byteOffset + length) of `buffer` (checked by the engine). */
export function bufferBytes(buffer: ArrayBufferLike, byteOffset: number, length: number): Uint8Array {
  return new U8(buffer, byteOffset, length);
}

/** A new zero-filled `Uint8Array` of `length` bytes (the constructor of load time). */
export function newBytes(length: number): Uint8Array {
  return new U8(length);
}

/** `dst.set(src, offset)` with the method of load time. */
export function copyBytes(dst: Uint8Array, src: Uint8Array, offset = 0): void {
  apply(typedArraySet, dst, [src, offset]);
}
