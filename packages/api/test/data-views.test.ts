// Reading tensors whose data is a view of raw bytes (a DataView, a Uint8Array, an unaligned
// slice): toFloat32 and toFloat32Array reinterpret the bytes as the tensor's dtype.
import { describe, expect, it } from 'vitest';
import { allocData, elementsOf, f32ToBf16, f32ToF16, fromFloat32, fromValues, tensor, toFloat32, toFloat32Array, zeros } from '../src/internal.js';

const values = Float32Array.from([1.5, -2, 3.25, 4, 0.125, -0.5]);

describe('byte views', () => {
  it('reads a DataView as its dtype', () => {
    const dv = new DataView(values.buffer);
    expect(Array.from(toFloat32Array(dv, 'f32'))).toEqual(Array.from(values));
    expect(Array.from(toFloat32(tensor(dv, [2, 3], { dtype: 'f32' })))).toEqual(Array.from(values));
    expect(Array.from(toFloat32(tensor(dv, [3, 2], { dtype: 'f32', strides: [1, 3] })))).toEqual([1.5, 4, -2, 0.125, 3.25, -0.5]);
    for (const [dtype, bits] of [['bf16', f32ToBf16(values)], ['f16', f32ToF16(values)]] as const) {
      expect(Array.from(toFloat32(tensor(new DataView(bits.buffer), [6], { dtype })))).toEqual(Array.from(values));
    }
    const ints = Int32Array.from([7, -3]);
    expect(Array.from(toFloat32Array(new DataView(ints.buffer), 'i32'))).toEqual([7, -3]);
  });

  it('reads raw and unaligned bytes (copying only when unaligned)', () => {
    const raw = new Uint8Array(4 + values.byteLength);
    raw.set(new Uint8Array(values.buffer), 4);
    const aligned = raw.subarray(4);
    const e = elementsOf(aligned, 'f32');
    expect(e).toBeInstanceOf(Float32Array);
    expect(e.buffer).toBe(raw.buffer);
    expect(Array.from(toFloat32Array(aligned, 'f32'))).toEqual(Array.from(values));
    const odd = new Uint8Array(1 + values.byteLength);
    odd.set(new Uint8Array(values.buffer), 1);
    expect(Array.from(toFloat32Array(new DataView(odd.buffer, 1), 'f32'))).toEqual(Array.from(values));
    expect(elementsOf(values, 'f32')).toBe(values);
  });
});

describe('allocation helpers are typed by dtype', () => {
  it('returns the typed array of the dtype', () => {
    const a: Float32Array = zeros('f32', [2]).data;
    const b: Uint16Array = zeros('bf16', [2]).data;
    const c: Int32Array = allocData('i32', 3);
    const d: Uint16Array = fromFloat32([1, 2], 'f16');
    const e: Float32Array = fromValues([1, 2], [2]).data;
    const f: Uint8Array = fromValues([1, 0], [2], 'bool').data;
    expect([a, b, c, d, e, f].map((x) => x.constructor.name)).toEqual(['Float32Array', 'Uint16Array', 'Int32Array', 'Uint16Array', 'Float32Array', 'Uint8Array']);
  });
});
