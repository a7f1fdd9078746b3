// In-process tests of the pieces the commands are built from.
import { describe, expect, test } from 'vitest';
import { intList } from '../src/args.js';
import { splitTopLevel } from '../src/commands/info.js';
import { FailureError, requireHostBackend } from '../src/errors.js';
import { attentionFlops } from '../src/flops.js';
import { parseNpy } from '../src/npy.js';
import { compare, referenceAttention } from '../src/reference.js';
import { renderPlot, tickLabel } from '../src/svg.js';
import { formatBytes, formatRate } from '../src/table.js';

function npy(descr: string, shape: number[], data: Uint8Array, version = 1): Uint8Array {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const pre = version === 1 ? 10 : 12;
  while ((pre + header.length + 1) % 64) header += ' ';
  header += '\n';
  const out = new Uint8Array(pre + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, header.length, true);
  else dv.setUint32(8, header.length, true);
  out.set(new TextEncoder().encode(header), pre);
  out.set(data, pre + header.length);
  return out;
}

describe('npy', () => {
  test('reads f4 of any shape, v1 and v2', () => {
    const values = new Float32Array([1, 2, 3, 4, 5, 6]);
    for (const v of [1, 2]) {
      const a = parseNpy(npy('<f4', [2, 3], new Uint8Array(values.buffer), v));
      expect(a.shape).toEqual([2, 3]);
      expect(Array.from(a.data)).toEqual([1, 2, 3, 4, 5, 6]);
    }
    expect(parseNpy(npy('<f4', [0, 4], new Uint8Array(0))).data.length).toBe(0);
    expect(parseNpy(npy('<i4', [3], new Uint8Array(new Int32Array([7, -1, 2]).buffer))).data).toEqual(new Int32Array([7, -1, 2]));
  });
  test('rejects what it cannot read', () => {
    expect(() => parseNpy(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]))).toThrow(/not a \.npy file/);
    expect(() => parseNpy(npy('>f4', [1], new Uint8Array(4)))).toThrow(/unsupported dtype >f4/);
    expect(() => parseNpy(npy('<f4', [4], new Uint8Array(8)))).toThrow(/truncated/);
  });
});

describe('float64 reference', () => {
  test('one key: the output is that value row; uniform scores: the mean', () => {
    const p = { batch: 1, seqlenQ: 2, seqlenK: 2, heads: 1, kvHeads: 1, headDim: 2, causal: 'bottom-right' as const };
    const q = [0, 0, 0, 0];
    const v = [1, 2, 3, 5];
    const r = referenceAttention(p, q, q, v);
    expect(Array.from(r.out)).toEqual([1, 2, 2, 3.5]); // row 0 sees key 0; row 1 averages both
    expect(r.lse[0]).toBeCloseTo(0, 12);
    expect(r.lse[1]).toBeCloseTo(Math.log(2), 12);
  });
  test('bottom-right vs top-left when Nq < Nk, and fully masked rows', () => {
    const base = { batch: 1, seqlenQ: 1, seqlenK: 3, heads: 1, kvHeads: 1, headDim: 1 };
    const q = [0];
    const k = [0, 0, 0];
    const v = [3, 6, 9];
    expect(referenceAttention({ ...base, causal: 'bottom-right' }, q, k, v).out[0]).toBeCloseTo(6, 12);
    expect(referenceAttention({ ...base, causal: 'top-left' }, q, k, v).out[0]).toBeCloseTo(3, 12);
    const masked = referenceAttention({ ...base, seqlenQ: 3, seqlenK: 1, causal: 'bottom-right' }, [0, 0, 0], [0], [4]);
    expect(Array.from(masked.out)).toEqual([0, 0, 4]);
    expect(masked.lse[0]).toBe(-Infinity);
  });
  test('GQA maps query heads onto key/value heads in groups', () => {
    const p = { batch: 1, seqlenQ: 1, seqlenK: 1, heads: 4, kvHeads: 2, headDim: 1, causal: 'none' as const };
    const r = referenceAttention(p, [0, 0, 0, 0], [0, 0], [10, 20]);
    expect(Array.from(r.out)).toEqual([10, 10, 20, 20]);
  });
  test('compare', () => {
    expect(compare([1, 2], [1, 2.001], 0, 1e-3).mismatches).toBe(0);
    expect(compare([1, 2], [1, 2.1], 0.01, 0).mismatches).toBe(1);
    expect(compare([-Infinity], [-Infinity], 0, 0).mismatches).toBe(0);
    expect(compare([Number.NaN], [0], 1, 1).mismatches).toBe(1);
  });
});

describe('pieces', () => {
  test('FLOPs', () => {
    const s = { batch: 1, heads: 1, kvHeads: 1, seqlenQ: 10, seqlenK: 10, headDim: 4, causal: false };
    expect(attentionFlops(s, 'fwd')).toBe(1600);
    expect(attentionFlops({ ...s, causal: true }, 'fwd')).toBe(800);
    expect(attentionFlops(s, 'bwd')).toBe(4000);
  });
  test('lists', () => {
    expect(intList('seqlen', ['128,256', '1024'], [])).toEqual([128, 256, 1024]);
    expect(intList('seqlen', '100..1000', [])).toEqual([100, 200, 400, 800]);
    expect(() => intList('seqlen', '0', [])).toThrow(/>= 1/);
    expect(() => intList('seqlen', '9..3', [])).toThrow(/empty range/);
  });
  test('check refuses a context that does not read host memory, naming why', () => {
    expect(() => requireHostBackend('check', 'cpu', 'auto')).not.toThrow();
    expect(() => requireHostBackend('check', 'cuda', 'auto')).toThrow(FailureError);
    expect(() => requireHostBackend('check', 'cuda', 'auto')).toThrow(/--backend auto gave a cuda context, but umfa check passes host memory/);
  });
  test('build info splits at top-level semicolons', () => {
    expect(splitTopLevel('umfa 1; cuda: absent (a; b); compiler: gcc')).toEqual(['umfa 1', 'cuda: absent (a; b)', 'compiler: gcc']);
  });
  test('formatting', () => {
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatRate(2.5e12)).toBe('2.50 TFLOP/s');
    expect(formatRate(3.21e10)).toBe('32.1 GFLOP/s');
    expect(formatRate(3.2e8)).toBe('0.320 GFLOP/s');
  });
  test('svg: log axis for wide ranges, escaped labels, one point per value', () => {
    const svg = renderPlot([{ label: 'a<b', points: [{ x: 128, y: 1 }, { x: 4096, y: 2 }] }], { title: 't', xLabel: 'x', yLabel: 'y' });
    expect(svg).toContain('x (log scale)');
    expect(svg).toContain('a&lt;b');
    expect(svg.match(/<circle /g)).toHaveLength(2);
  });
});

describe('plot axis labels', () => {
  test('sequence lengths print in full, round thousands from 10000 as k, others to 4 digits', () => {
    expect([512, 1024, 2048, 8192, 32768, 10000, 250000, 0].map(tickLabel)).toEqual(['512', '1024', '2048', '8192', '32768', '10k', '250k', '0']);
    expect([0.5, 2.5, 1234.5678].map(tickLabel)).toEqual(['0.5', '2.5', '1235']);
    const svg = renderPlot([{ label: 'a', points: [{ x: 1024, y: 1 }, { x: 4096, y: 2 }, { x: 16384, y: 3 }] }], { title: 't', xLabel: 'N', yLabel: 'y' });
    expect(svg).toContain('>1024</text>');
    expect(svg).not.toContain('1.024k');
  });
});
