/**
 * Element types of umfa tensors. Floating-point inputs are `f32`, `f16` (IEEE binary16) and
 * `bf16` (bfloat16); `bool` is for boolean attention masks and `i32` for `cu_seqlens`.
 *
 * In memory: `f32` is a `Float32Array`; `f16` a `Uint16Array` of raw bits (or Node's
 * `Float16Array` where the runtime has it); `bf16` a `Uint16Array` of raw bits; `bool` a
 * `Uint8Array` (0 = masked out); `i32` an `Int32Array`.
 */
export type DType = 'f32' | 'f16' | 'bf16' | 'bool' | 'i32';

/** The typed array that holds the elements of each {@link DType} when umfa allocates them. */
export interface DTypeData {
  /** 32-bit floats. */
  f32: Float32Array;
  /** binary16 bit patterns (a `Float16Array` only when allocated like a `Float16Array` input). */
  f16: Uint16Array;
  /** bfloat16 bit patterns. */
  bf16: Uint16Array;
  /** One byte per element, 0 = masked out. */
  bool: Uint8Array;
  /** 32-bit signed integers. */
  i32: Int32Array;
}

/** The `UMFA_DTYPE_*` value of each {@link DType}. */
export const DTypeCode: { readonly [K in DType]: number } = {
  f32: 0,
  f16: 1,
  bf16: 2,
  bool: 3,
  i32: 4,
};

const sizes: { readonly [K in DType]: number } = { f32: 4, f16: 2, bf16: 2, bool: 1, i32: 4 };

/** Size in bytes of one element of `dtype`. */
export function dtypeSize(dtype: DType): number {
  return sizes[dtype];
}

/** True when `value` is one of the {@link DType} names. */
export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(sizes, value);
}

/** A constructor of Node's `Float16Array` (present from Node 24, or behind a flag). */
export type Float16ArrayConstructorLike = new (length: number) => ArrayBufferView & { length: number };

/**
 * Node's `Float16Array` constructor when the runtime provides one, otherwise `undefined`.
 * Tensors of dtype `f16` accept it as well as a `Uint16Array` of raw bits.
 */
export const Float16ArrayCtor: Float16ArrayConstructorLike | undefined = (
  globalThis as unknown as { Float16Array?: Float16ArrayConstructorLike }
).Float16Array;

/** True when `data` is an instance of the runtime's `Float16Array`. */
export function isFloat16Array(data: unknown): boolean {
  return Float16ArrayCtor !== undefined && data instanceof Float16ArrayCtor;
}

/**
 * Allocates zero-filled storage for `length` elements of `dtype`: a `Float32Array`, `Uint16Array`
 * (f16/bf16 bits), `Uint8Array` or `Int32Array` (see {@link DTypeData}).
 */
export function allocData<T extends DType>(dtype: T, length: number, preferFloat16Array?: false): DTypeData[T];
/**
 * Allocates zero-filled storage for `length` elements of `dtype`; with `preferFloat16Array`, a
 * `Float16Array` for `f16` where the runtime has one.
 */
export function allocData(dtype: DType, length: number, preferFloat16Array?: boolean): ArrayBufferView;
export function allocData(dtype: DType, length: number, preferFloat16Array = false): ArrayBufferView {
  switch (dtype) {
    case 'f32':
      return new Float32Array(length);
    case 'f16':
      if (preferFloat16Array && Float16ArrayCtor) return new Float16ArrayCtor(length);
      return new Uint16Array(length);
    case 'bf16':
      return new Uint16Array(length);
    case 'bool':
      return new Uint8Array(length);
    case 'i32':
      return new Int32Array(length);
  }
}

// Bit-casting scratch for single values.
const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

function asFloat32(values: ArrayLike<number>): Float32Array {
  return values instanceof Float32Array ? values : Float32Array.from(values);
}

function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const abs = x & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | 0x7c00 | (abs > 0x7f800000 ? 0x0200 : 0); // inf / NaN
  if (abs >= 0x477ff000) return sign | 0x7c00; // >= 65520 rounds to infinity
  if (abs < 0x38800000) {
    // Subnormal (or zero) in binary16: the value in units of 2^-24, rounded to nearest even.
    u32buf[0] = abs;
    const v = (f32buf[0] as number) * 16777216;
    let r = Math.floor(v);
    const frac = v - r;
    if (frac > 0.5 || (frac === 0.5 && (r & 1) === 1)) r += 1;
    return sign | r;
  }
  const exp = (abs >>> 23) - 127 + 15;
  const mant = abs & 0x7fffff;
  let h = (exp << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h += 1;
  return sign | h;
}

function f16ToF32Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 5.960464477539063e-8; // 2^-24
  if (exp === 31) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/**
 * Converts numbers to IEEE binary16 bits (round to nearest, ties to even; overflow gives ±inf;
 * NaN stays NaN).
 *
 * @param values - the values (a `Float32Array` is read without copying)
 * @returns a `Uint16Array` of binary16 bit patterns, usable as `f16` tensor data
 */
export function f32ToF16(values: ArrayLike<number>): Uint16Array {
  const src = asFloat32(values);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToF16(bits[i] as number);
  return out;
}

/**
 * Converts binary16 values to `Float32Array` (exact).
 *
 * @param bits - `Uint16Array` of binary16 bit patterns, or a `Float16Array`
 */
export function f16ToF32(bits: ArrayLike<number> | ArrayBufferView): Float32Array {
  if (isFloat16Array(bits)) return Float32Array.from(bits as unknown as ArrayLike<number>);
  const src = bits as ArrayLike<number>;
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f16ToF32Value(src[i] as number);
  return out;
}

/**
 * Converts numbers to bfloat16 bits (round to nearest, ties to even; NaN stays NaN).
 *
 * @param values - the values (a `Float32Array` is read without copying)
 * @returns a `Uint16Array` of bfloat16 bit patterns, usable as `bf16` tensor data
 */
export function f32ToBf16(values: ArrayLike<number>): Uint16Array {
  const src = asFloat32(values);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i] as number;
    if ((x & 0x7fffffff) > 0x7f800000) out[i] = ((x >>> 16) | 0x0040) & 0xffff;
    else out[i] = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

/**
 * Converts bfloat16 bit patterns to `Float32Array` (exact).
 *
 * @param bits - `Uint16Array` of bfloat16 bit patterns
 */
export function bf16ToF32(bits: ArrayLike<number>): Float32Array {
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outBits[i] = ((bits[i] as number) << 16) >>> 0;
  return out;
}

/**
 * Converts `values` to the storage of `dtype`: `Float32Array` for f32, binary16 or bfloat16 bits
 * for f16/bf16, `Uint8Array` (nonzero → 1) for bool, `Int32Array` (truncated) for i32.
 */
export function fromFloat32<T extends DType>(values: ArrayLike<number>, dtype: T): DTypeData[T];
export function fromFloat32(values: ArrayLike<number>, dtype: DType): ArrayBufferView {
  switch (dtype) {
    case 'f32':
      return Float32Array.from(values);
    case 'f16':
      return f32ToF16(values);
    case 'bf16':
      return f32ToBf16(values);
    case 'bool':
      return Uint8Array.from(values, (x) => (x !== 0 ? 1 : 0));
    case 'i32':
      return Int32Array.from(values, (x) => Math.trunc(x));
  }
}

/**
 * The elements of `data` as the typed array of `dtype` ({@link DTypeData}, or a `Float16Array`
 * for f16): `data` itself when it already is one, otherwise its bytes reinterpreted (DataView, a
 * `Uint8Array` of raw bytes, ...; copied when they are not aligned for the element type).
 * Trailing bytes that do not fill an element are dropped.
 */
export function elementsOf(data: ArrayBufferView, dtype: DType): ArrayBufferView & ArrayLike<number> {
  switch (dtype) {
    case 'f32':
      if (data instanceof Float32Array) return data;
      break;
    case 'f16':
      if (data instanceof Uint16Array || isFloat16Array(data)) return data as ArrayBufferView & ArrayLike<number>;
      break;
    case 'bf16':
      if (data instanceof Uint16Array) return data;
      break;
    case 'bool':
      if (data instanceof Uint8Array) return data;
      break;
    case 'i32':
      if (data instanceof Int32Array) return data;
      break;
  }
  const size = sizes[dtype];
  const count = Math.floor(data.byteLength / size);
  const aligned = data.byteOffset % size === 0;
  const buffer = aligned ? data.buffer : new Uint8Array(data.buffer, data.byteOffset, count * size).slice().buffer;
  const offset = aligned ? data.byteOffset : 0;
  switch (dtype) {
    case 'f32':
      return new Float32Array(buffer, offset, count);
    case 'f16':
    case 'bf16':
      return new Uint16Array(buffer, offset, count);
    case 'bool':
      return new Uint8Array(buffer, offset, count);
    case 'i32':
      return new Int32Array(buffer, offset, count);
  }
}

/**
 * Reads storage of `dtype` as numbers in a `Float32Array` (element by element, no layout
 * change). The inverse of {@link fromFloat32} for every finite value representable in `dtype`.
 * `data` may be the dtype's typed array or any view of its bytes (a `DataView`, say).
 */
export function toFloat32Array(data: ArrayBufferView, dtype: DType): Float32Array {
  const elements = elementsOf(data, dtype);
  switch (dtype) {
    case 'f16':
      return f16ToF32(elements);
    case 'bf16':
      return bf16ToF32(elements);
    default:
      return Float32Array.from(elements);
  }
}
