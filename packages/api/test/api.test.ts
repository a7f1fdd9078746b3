// Unit tests of the shared contract: dtype conversions, tensor helpers and the frame encoding
// (byte offsets as include/umfa.h lays the structs out; the N-API addon also checks them with
// static_asserts at compile time).
import { describe, expect, it } from 'vitest';
import {
  bf16ToF32,
  bhsd,
  contiguousStrides,
  encodeContextOptions,
  encodeOptions,
  encodeTensor,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  Frame,
  FRAME_SIZE,
  Layout,
  MESSAGE_CAPACITY,
  MESSAGE_OFFSET,
  RELOCATED_OPTION_FIELDS,
  resolveMaskMode,
  Slot,
  slotOffset,
  Status,
  statusName,
  tensor,
  toFloat32,
  UmfaError,
} from '../src/internal.js';

describe('f16 and bf16 conversions', () => {
  it('round-trips every binary16 value', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const back = f32ToF16(f16ToF32(all));
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN) expect((back[h] as number) & 0x7fff).toBeGreaterThan(0x7c00);
      else if (back[h] !== h) throw new Error(`0x${h.toString(16)} -> 0x${(back[h] as number).toString(16)}`);
    }
  });

  it('rounds to nearest even, overflows to infinity, keeps subnormals', () => {
    const h = f32ToF16([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504, 65519, 65520, -Infinity, 2 ** -24, 2 ** -25, 3 * 2 ** -25, 0, -0]);
    expect(Array.from(h)).toEqual([0x3c00, 0x3c02, 0x7bff, 0x7bff, 0x7c00, 0xfc00, 0x0001, 0x0000, 0x0002, 0, 0x8000]);
  });

  it('round-trips bfloat16 and rounds to nearest even', () => {
    const bits = new Uint16Array(65536).map((_, i) => i);
    const back = f32ToBf16(bf16ToF32(bits));
    for (let b = 0; b < 65536; b++) {
      const isNaN = (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0;
      if (!isNaN && back[b] !== b) throw new Error(`0x${b.toString(16)}`);
    }
    expect(Array.from(f32ToBf16([1 + 2 ** -8, 1 + 3 * 2 ** -8, NaN]))).toEqual([0x3f80, 0x3f82, 0x7fc0]);
  });
});

describe('tensor helpers', () => {
  it('describes BHSD memory as a BSHD view', () => {
    const t = bhsd(new Float32Array(2 * 3 * 4 * 5), [2, 3, 4, 5]);
    expect(t.shape).toEqual([2, 4, 3, 5]);
    expect(t.strides).toEqual([60, 5, 20, 1]);
    expect(contiguousStrides([2, 4, 3, 5])).toEqual([60, 15, 5, 1]);
  });

  it('gathers strided views', () => {
    const data = Float32Array.from({ length: 6 }, (_, i) => i);
    expect(Array.from(toFloat32(tensor(data, [3, 2], { strides: [1, 3] })))).toEqual([0, 3, 1, 4, 2, 5]);
    expect(Array.from(toFloat32(tensor(data, [2, 2], { strides: [0, 1] })))).toEqual([0, 1, 0, 1]);
  });

  it('needs an explicit dtype for Uint16Array', () => {
    expect(() => tensor(new Uint16Array(4), [4])).toThrow(UmfaError);
    expect(tensor(new Uint16Array(4), [4], { dtype: 'bf16' }).dtype).toBe('bf16');
  });
});

describe('frame encoding', () => {
  it('has the ABI sizes', () => {
    expect(Layout.OPTIONS_SIZE).toBe(112);
    expect(Layout.TENSOR_SIZE).toBe(88);
    expect(MESSAGE_OFFSET).toBe(112 + 13 * 88);
    expect(FRAME_SIZE).toBe(112 + 13 * 88 + MESSAGE_CAPACITY);
    expect(slotOffset(Slot.K)).toBe(112 + 88);
  });

  it('encodes a tensor view', () => {
    const f = new Frame();
    const data = new Float32Array(2 * 3 * 4 * 5);
    encodeTensor(f, Slot.K, bhsd(data, [2, 3, 4, 5]), 'k');
    const v = f.view;
    const base = slotOffset(Slot.K);
    expect(v.getInt32(base + Layout.tensor.dtype, true)).toBe(0);
    expect(v.getInt32(base + Layout.tensor.rank, true)).toBe(4);
    const shape = [0, 1, 2, 3].map((i) => Number(v.getBigInt64(base + Layout.tensor.shape + 8 * i, true)));
    const strides = [0, 1, 2, 3].map((i) => Number(v.getBigInt64(base + Layout.tensor.strides + 8 * i, true)));
    expect(shape).toEqual([2, 4, 3, 5]);
    expect(strides).toEqual([60, 5, 20, 1]);
    expect(f.views[Slot.K]).toBe(data);
  });

  it('refuses views past the end of their array, rank > 4 and fractional extents', () => {
    const f = new Frame();
    const err = (fn: () => void) => {
      try {
        fn();
      } catch (e) {
        return statusName((e as UmfaError).status);
      }
      return 'OK';
    };
    expect(err(() => encodeTensor(f, 0, tensor(new Float32Array(5), [2, 3]), 'q'))).toBe('SHAPE_MISMATCH');
    expect(err(() => encodeTensor(f, 0, tensor(new Float32Array(6), [2, 3], { strides: [0, 2] }), 'q'))).toBe('OK');
    expect(err(() => encodeTensor(f, 0, tensor(new Float32Array(1), [1, 1, 1, 1, 1]), 'q'))).toBe('INVALID_RANK');
    expect(err(() => encodeTensor(f, 0, tensor(new Float32Array(4), [2.5]), 'q'))).toBe('INVALID_ARGUMENT');
    expect(err(() => encodeTensor(f, 0, tensor(new Float32Array(0), [0, 3]), 'q'))).toBe('OK');
    // Negative extents and strides are the core's to judge.
    expect(err(() => encodeTensor(f, 0, tensor(new Float32Array(4), [2, 2], { strides: [-2, 1] }), 'q'))).toBe('OK');
  });

  it('encodes options with slot references as frame offsets', () => {
    const f = new Frame();
    encodeOptions(f, {
      causal: 'top-left',
      scale: 0.5,
      softcap: 3,
      window: { left: 4 },
      deterministic: true,
      alibiSlopes: Float32Array.from([0.1, 0.2]),
      maxSeqlenK: 2 ** 40,
    });
    const v = f.view;
    const o = Layout.options;
    expect(v.getUint32(o.structSize, true)).toBe(112);
    expect(v.getUint32(o.maskMode, true)).toBe(1);
    expect(v.getFloat32(o.softmaxScale, true)).toBe(0.5);
    expect(v.getFloat32(o.softcap, true)).toBe(3);
    expect(v.getUint32(o.hasWindow, true)).toBe(1);
    expect(v.getUint32(o.flags, true)).toBe(1);
    expect(v.getBigInt64(o.windowLeft, true)).toBe(4n);
    expect(v.getBigInt64(o.windowRight, true)).toBe(-1n);
    expect(v.getBigUint64(o.attnMask, true)).toBe(0n);
    expect(Number(v.getBigUint64(o.alibiSlopes, true))).toBe(slotOffset(Slot.ALIBI));
    expect(v.getBigInt64(o.maxSeqlenK, true)).toBe(2n ** 40n);
    expect(f.views[Slot.ALIBI]).toBeInstanceOf(Float32Array);
  });

  it('points the per-call error message at the frame\'s own buffer, started empty', () => {
    const f = new Frame();
    new Uint8Array(f.buffer).fill(0x41);
    encodeOptions(f, {});
    const v = f.view;
    const o = Layout.options;
    expect(Number(v.getBigUint64(o.errorMessage, true))).toBe(MESSAGE_OFFSET);
    expect(Number(v.getBigUint64(o.errorMessageCapacity, true))).toBe(MESSAGE_CAPACITY);
    expect(RELOCATED_OPTION_FIELDS).toContain(o.errorMessage);
    expect(f.message()).toBe('');
    // What the core writes: NUL-terminated UTF-8 (a full buffer without a NUL is read whole).
    new TextEncoder().encodeInto('umfa_attention_forward: q.rank is 3\0junk', new Uint8Array(f.buffer, MESSAGE_OFFSET));
    expect(f.message()).toBe('umfa_attention_forward: q.rank is 3');
    new Uint8Array(f.buffer, MESSAGE_OFFSET).fill(0x62);
    expect(f.message()).toBe('b'.repeat(MESSAGE_CAPACITY));
  });

  it('resolves causal shorthands', () => {
    expect(resolveMaskMode({})).toBe(0);
    expect(resolveMaskMode({ causal: true })).toBe(2);
    expect(resolveMaskMode({ causal: 'top-left' })).toBe(1);
    expect(resolveMaskMode({ maskMode: 'causal-bottom-right', causal: true })).toBe(2);
    expect(() => resolveMaskMode({ maskMode: 'none', causal: true })).toThrow(UmfaError);
  });

  it('encodes context options', () => {
    const b = encodeContextOptions({ backend: 'cpu', numThreads: 3, workspaceLimitBytes: 1024 });
    const v = new DataView(b.buffer);
    expect([v.getUint32(0, true), v.getUint32(4, true), v.getInt32(12, true), Number(v.getBigUint64(16, true))]).toEqual([24, 1, 3, 1024]);
    // Host memory only: the CPU backend unless another is asked for (AUTO would pick CUDA on a
    // machine with a GPU, and CUDA contexts refuse host tensors).
    expect(new DataView(encodeContextOptions(undefined).buffer).getUint32(4, true)).toBe(1);
    expect(new DataView(encodeContextOptions({}).buffer).getUint32(4, true)).toBe(1);
    expect(new DataView(encodeContextOptions({ backend: 'auto' }).buffer).getUint32(4, true)).toBe(0);
    expect(new DataView(encodeContextOptions({ backend: 'cuda' }).buffer).getUint32(4, true)).toBe(2);
    expect(Status.OK).toBe(0);
  });
});
