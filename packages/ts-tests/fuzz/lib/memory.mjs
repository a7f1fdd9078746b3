// Caller memory with a shadow copy: every buffer a program hands to the library is allocated
// here, filled with a position-dependent guard pattern, and mirrored byte for byte. Each write the
// program itself makes (input values, resizes) goes to both; each output of a successful call
// marks the bytes of its elements as writable. At a checkpoint every byte that differs from the
// shadow must lie on an element of such an output; anything else is a write the library was not
// allowed to make (a guard region, an input, another view, a failed call's output).

export const DTYPE_SIZE = { f32: 4, f16: 2, bf16: 2, bool: 1, i32: 4 };

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** binary16 bits of `x`, rounded to nearest even (independent of the library's conversion). */
export function halfBits(x) {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++;
  return sign | h;
}

export function halfValue(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** bfloat16 bits of `x`, rounded to nearest even. */
export function bfloatBits(x) {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return ((b >>> 16) & 0x8000) | 0x7fc0;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bfloatValue(h) {
  u32[0] = h << 16;
  return f32[0];
}

/** Writes element value `x` of `dtype` at byte `pos` of `view` (a DataView). */
export function writeElement(view, pos, dtype, x) {
  switch (dtype) {
    case 'f32':
      view.setFloat32(pos, x, true);
      return;
    case 'f16':
      view.setUint16(pos, halfBits(x), true);
      return;
    case 'bf16':
      view.setUint16(pos, bfloatBits(x), true);
      return;
    case 'bool':
      view.setUint8(pos, x ? 1 : 0);
      return;
    case 'i32':
      view.setInt32(pos, x, true);
  }
}

/** Reads the element of `dtype` at byte `pos` of `view` (a DataView) as a number. */
export function readElement(view, pos, dtype) {
  switch (dtype) {
    case 'f32':
      return view.getFloat32(pos, true);
    case 'f16':
      return halfValue(view.getUint16(pos, true));
    case 'bf16':
      return bfloatValue(view.getUint16(pos, true));
    case 'bool':
      return view.getUint8(pos);
    case 'i32':
      return view.getInt32(pos, true);
  }
  return NaN;
}

/** True when every extent and stride is a safe non-negative integer (a view the core may accept). */
export function isPlainLayout(shape, strides) {
  if (!Array.isArray(shape) || shape.length > 4) return false;
  if (strides !== undefined && (!Array.isArray(strides) || strides.length !== shape.length)) return false;
  for (let i = 0; i < shape.length; i++) {
    if (!Number.isSafeInteger(shape[i]) || shape[i] < 0) return false;
    if (strides !== undefined && (!Number.isSafeInteger(strides[i]) || strides[i] < 0)) return false;
  }
  return true;
}

export function numel(shape) {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

export function denseStrides(shape) {
  const strides = new Array(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

/**
 * Element offsets (in elements) of a plain layout, in logical row-major order, or undefined when
 * the view has more elements than a check can afford to list.
 */
export function elementOffsets(shape, strides, limit = 1 << 21) {
  const n = numel(shape);
  if (n > limit) return undefined;
  const st = strides ?? denseStrides(shape);
  const out = new Float64Array(n);
  const rank = shape.length;
  const index = new Array(rank).fill(0);
  for (let e = 0; e < n; e++) {
    let off = 0;
    for (let d = 0; d < rank; d++) off += index[d] * st[d];
    out[e] = off;
    for (let d = rank - 1; d >= 0; d--) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

/** Bytes from a plain layout's first element to the end of its last (0 when it is empty). */
export function spanBytes(shape, strides, size) {
  const st = strides ?? denseStrides(shape);
  let last = 0;
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 0) return 0;
    last += (shape[i] - 1) * st[i];
  }
  return (last + 1) * size;
}

/** One buffer of caller memory and its shadow. */
export class Backing {
  constructor(id, kind, buffer) {
    this.id = id;
    /** 'ab' | 'sab' | 'resizable' | 'growable' */
    this.kind = kind;
    /** The buffer holding the memory now (a detach moves it to a new ArrayBuffer). */
    this.buffer = buffer;
    /** What the memory must hold, except where an output was allowed to write. */
    this.shadow = new Uint8Array(buffer.byteLength);
    /** Bytes successful calls may have written since the last checkpoint (1 = allowed). */
    this.allowed = new Uint8Array(buffer.byteLength);
    /** Some byte of {@link Backing.allowed} is set. */
    this.anyAllowed = false;
    /** Bumped by every write and every change of size: async checks compare it. */
    this.version = 0;
  }

  get byteLength() {
    return this.buffer.byteLength;
  }
}

export class Memory {
  constructor() {
    /** @type {Backing[]} */
    this.backings = [];
  }

  /**
   * A new buffer of `kind` filled with the guard pattern: each byte a function of its position
   * and of the buffer, so a shifted copy or a zero fill shows.
   */
  allocate(kind, byteLength) {
    let buffer;
    if (kind === 'sab') buffer = new SharedArrayBuffer(byteLength);
    else if (kind === 'growable') buffer = new SharedArrayBuffer(byteLength, { maxByteLength: byteLength * 2 + 64 });
    else if (kind === 'resizable') buffer = new ArrayBuffer(byteLength, { maxByteLength: byteLength * 2 + 64 });
    else buffer = new ArrayBuffer(byteLength);
    const b = new Backing(this.backings.length, kind, buffer);
    const bytes = new Uint8Array(buffer);
    for (let i = 0; i < byteLength; i++) bytes[i] = (0xa5 ^ (i * 29 + b.id * 71 + (i >>> 8) * 13)) & 0xff;
    b.shadow.set(bytes);
    this.backings.push(b);
    return b;
  }

  /** A DataView over the backing's memory as it is now (for the program's own writes). */
  view(b) {
    return new DataView(b.buffer);
  }

  /** Records that the program itself wrote bytes [start, end) (its own inputs). */
  wrote(b, start, end) {
    const now = new Uint8Array(b.buffer);
    b.shadow.set(now.subarray(start, Math.min(end, now.length)), start);
    b.version++;
  }

  /**
   * Allows the bytes of the elements at `offsets` (in elements of `size` bytes, from byte
   * `byteOffset`) to change: the output of a call that succeeded.
   */
  allow(b, byteOffset, size, offsets) {
    b.version++;
    b.anyAllowed = true;
    const limit = b.allowed.length;
    for (let e = 0; e < offsets.length; e++) {
      const start = byteOffset + offsets[e] * size;
      if (start < 0) continue;
      for (let i = 0; i < size && start + i < limit; i++) b.allowed[start + i] = 1;
    }
  }

  /** Allows bytes [start, end) to change (a download into a caller's view). */
  allowRange(b, start, end) {
    b.version++;
    b.anyAllowed = true;
    b.allowed.fill(1, Math.max(0, start), Math.min(end, b.allowed.length));
  }

  /** Detaches the backing's ArrayBuffer (as postMessage with a transfer list does); the memory moves. */
  detach(b) {
    if (b.kind === 'sab' || b.kind === 'growable') return false;
    b.buffer = structuredClone(b.buffer, { transfer: [b.buffer] });
    b.version++;
    return true;
  }

  /** Resizes a resizable or growable buffer; the shadow follows (new bytes read as zero). */
  resize(b, byteLength) {
    if (b.kind === 'resizable') b.buffer.resize(byteLength);
    else if (b.kind === 'growable' && byteLength >= b.buffer.byteLength) b.buffer.grow(byteLength);
    else return false;
    const shadow = new Uint8Array(byteLength);
    shadow.set(b.shadow.subarray(0, Math.min(byteLength, b.shadow.length)));
    const allowed = new Uint8Array(byteLength);
    allowed.set(b.allowed.subarray(0, Math.min(byteLength, b.allowed.length)));
    b.shadow = shadow;
    b.allowed = allowed;
    b.version++;
    return true;
  }

  /** The largest size a resize may give the backing (0 when it cannot be resized). */
  maxByteLength(b) {
    return b.kind === 'resizable' || b.kind === 'growable' ? b.buffer.maxByteLength : 0;
  }

  /**
   * Compares every buffer with its shadow. Returns the bytes that changed where no successful
   * output allowed it (at most a few per buffer, for the report), then takes the memory as it
   * is now as the new shadow.
   */
  checkpoint() {
    const violations = [];
    for (const b of this.backings) {
      const now = new Uint8Array(b.buffer);
      if (now.length !== b.shadow.length) {
        violations.push({ backing: b, message: `buffer #${b.id} (${b.kind}) is ${now.length} bytes, expected ${b.shadow.length}` });
        b.shadow = new Uint8Array(now.length);
        b.allowed = new Uint8Array(now.length);
      }
      // Most buffers are unchanged: compare them natively first.
      if (Buffer.compare(now, b.shadow) === 0) {
        if (b.anyAllowed) b.allowed.fill(0);
        b.anyAllowed = false;
        continue;
      }
      let reported = 0;
      for (let i = 0; i < now.length; i++) {
        if (now[i] !== b.shadow[i] && b.allowed[i] === 0) {
          if (reported++ < 4) {
            violations.push({
              backing: b,
              message: `buffer #${b.id} (${b.kind}, ${now.length} bytes): byte ${i} changed from ${b.shadow[i]} to ${now[i]} outside every output`,
            });
          }
        }
      }
      b.shadow.set(now);
      b.allowed.fill(0);
      b.anyAllowed = false;
    }
    return violations;
  }
}
