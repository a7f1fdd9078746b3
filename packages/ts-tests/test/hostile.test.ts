// Hostile but legal JavaScript against both bindings (vitest projects `koffi` and `napi`): code
// that runs while a call is being encoded (option getters, proxies, valueOf), buffers detached or
// shrunk before, during and after a call, re-entrant calls, lying `byteLength` properties,
// out-of-range option values and handles disposed at the worst moment. Every case must end in a
// correct result or a typed error; none may write outside the memory the caller handed over.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type * as Koffi from '@umfa/koffi/internal';

type Binding = typeof Koffi;
type Tensor = Koffi.Tensor;
type UmfaError = Koffi.UmfaError;

/** Resizable ArrayBuffers (ES2024), typed for this test's TypeScript library level. */
interface Resizable extends ArrayBuffer {
  resize(length: number): void;
}
const ResizableArrayBuffer = ArrayBuffer as unknown as new (length: number, options: { maxByteLength: number }) => Resizable;

const which = process.env['UMFA_TS_BINDING'] === 'napi' ? 'napi' : 'koffi';
const u: Binding = (await import(`@umfa/${which}/internal`)) as Binding;
const { Status, UmfaError } = u;

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 4294967296) * 2 - 1;
  }
  return a;
}
function bshdRand(b: number, s: number, h: number, d: number, seed: number): Tensor {
  return u.bshd(rand(b * s * h * d, seed), [b, s, h, d]);
}

/** Detaches `buffer` (as `postMessage` with a transfer list does) and returns the new owner. */
function detach(buffer: ArrayBufferLike): ArrayBuffer {
  return structuredClone(buffer, { transfer: [buffer as ArrayBuffer] }) as ArrayBuffer;
}

/** Expects `f` to throw an UmfaError with `status` (and, when given, a message matching `re`). */
function expectUmfa(f: () => unknown, status: number, re?: RegExp): UmfaError {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected an UmfaError').toBeInstanceOf(UmfaError);
  const e = caught as UmfaError;
  expect(u.statusName(e.status), e.message).toBe(u.statusName(status));
  if (re) expect(e.message).toMatch(re);
  return e;
}

async function expectUmfaAsync(p: Promise<unknown>, status: number, re?: RegExp): Promise<UmfaError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected an UmfaError').toBeInstanceOf(UmfaError);
  const e = caught as UmfaError;
  expect(u.statusName(e.status), e.message).toBe(u.statusName(status));
  if (re) expect(e.message).toMatch(re);
  return e;
}

const SENTINEL = 777.25;
const allSentinel = (a: Float32Array): boolean => a.every((x) => x === SENTINEL);

// A small problem whose output is 1·4·2·8 = 64 floats.
const q = bshdRand(1, 4, 2, 8, 1);
const k = bshdRand(1, 5, 2, 8, 2);
const v = bshdRand(1, 5, 2, 8, 3);
const expected = u.attention(q, k, v).out.data as Float32Array;

// A problem big enough that an asynchronous call is still running when the next line executes.
const bq = bshdRand(1, 512, 4, 64, 11);
const bk = bshdRand(1, 512, 4, 64, 12);
const bv = bshdRand(1, 512, 4, 64, 13);

describe(`hostile callers (${which})`, () => {
  describe('buffers detached or shrunk while a call is encoded', () => {
    it('refuses an output detached by an option getter, and writes nowhere', () => {
      const out = u.tensor(new Float32Array(64).fill(SENTINEL), [1, 4, 2, 8]);
      let moved: ArrayBuffer | undefined;
      const options = {
        out,
        get scale() {
          moved = detach(out.data.buffer);
          return 0;
        },
      };
      expectUmfa(() => u.attention(q, k, v, options), Status.SHAPE_MISMATCH, /out: .*detached or shrunk/);
      expect(allSentinel(new Float32Array(moved as ArrayBuffer))).toBe(true);
    });

    it('refuses an input detached by an option getter', () => {
      const qq = u.tensor((q.data as Float32Array).slice(), q.shape);
      const options = {
        get causal() {
          detach(qq.data.buffer);
          return false;
        },
      };
      expectUmfa(() => u.attention(qq, k, v, options), Status.SHAPE_MISMATCH, /q: .*detached or shrunk/);
    });

    it('refuses an output detached from inside a shape proxy', () => {
      const out = u.tensor(new Float32Array(64).fill(SENTINEL), [1, 4, 2, 8]);
      const kk = { ...k, shape: new Proxy(k.shape as number[], { get: (t, p) => { if (p === '3') detach(out.data.buffer); return Reflect.get(t, p); } }) };
      expectUmfa(() => u.attention(q, kk, v, { out }), Status.SHAPE_MISMATCH, /detached or shrunk/);
    });

    it('refuses an output whose resizable buffer shrank in a getter, and keeps the bytes past the new end', () => {
      const ab = new ResizableArrayBuffer(64 * 4, { maxByteLength: 4096 });
      const data = new Float32Array(ab);
      data.fill(SENTINEL);
      const out = u.tensor(data, [1, 4, 2, 8]);
      const options = {
        out,
        get softcap() {
          ab.resize(16);
          return 0;
        },
      };
      expectUmfa(() => u.attention(q, k, v, options), Status.SHAPE_MISMATCH, /out: .*detached or shrunk/);
      ab.resize(64 * 4);
      // Bytes cut off by the shrink read back as zero; the library wrote none of them.
      expect(new Float32Array(ab, 0, 4).every((x) => x === SENTINEL)).toBe(true);
      expect(new Float32Array(ab, 16).every((x) => x === 0)).toBe(true);
    });

    it('ignores a byteLength property that lies, and writes nothing past the real view', () => {
      const backing = new Float32Array(256).fill(SENTINEL);
      const data = backing.subarray(0, 8); // 8 floats; the view below needs 64
      Object.defineProperty(data, 'byteLength', { value: 64 * 4 });
      expectUmfa(() => u.attention(q, k, v, { out: u.tensor(data, [1, 4, 2, 8]) }), Status.SHAPE_MISMATCH, /out/);
      expect(allSentinel(backing)).toBe(true);
    });

    it('refuses a typed array whose element type is not the dtype', () => {
      const q64 = u.tensor(Float64Array.from(q.data as Float32Array), q.shape, { dtype: 'f32' });
      expectUmfa(() => u.attention(q64, k, v), Status.UNSUPPORTED_DTYPE, /q: a Float64Array cannot hold f32/);
      const out16 = u.tensor(new Int16Array(64), [1, 4, 2, 8], { dtype: 'f16' });
      const h = (x: Tensor) => u.tensor(u.f32ToF16(x.data as Float32Array), x.shape, { dtype: 'f16' });
      expectUmfa(() => u.attention(h(q), h(k), h(v), { out: out16 }), Status.UNSUPPORTED_DTYPE, /out: an Int16Array cannot hold f16/);
      // Raw bytes stay accepted for every dtype.
      const bytes = new Uint8Array((q.data as Float32Array).slice().buffer);
      expect(u.attention(u.tensor(bytes, q.shape, { dtype: 'f32' }), k, v).out.data).toEqual(expected);
    });
  });

  describe('re-entrancy and handles disposed mid-call', () => {
    it('serves a synchronous call made from inside an option getter of another', () => {
      let inner: Float32Array | undefined;
      const options = {
        get scale() {
          inner = u.attention(bq, bk, bv).out.data as Float32Array;
          return 0;
        },
      };
      const outer = u.attention(q, k, v, options).out.data as Float32Array;
      expect(outer).toEqual(expected);
      expect(inner).toEqual(u.attention(bq, bk, bv).out.data);
    });

    it('refuses a call whose context an option getter disposed', () => {
      const ctx = new u.Context({ numThreads: 1 });
      const options = {
        get scale() {
          ctx.dispose();
          return 0;
        },
      };
      expectUmfa(() => ctx.attention(q, k, v, options), Status.INVALID_HANDLE, /disposed/);
    });

    it('refuses a device tensor an option getter disposed', () => {
      const ctx = new u.Context({ numThreads: 1 });
      const dq = ctx.upload(q);
      const options = {
        get scale() {
          dq.dispose();
          return 0;
        },
      };
      expectUmfa(() => ctx.attention(dq, ctx.upload(k), ctx.upload(v), options), Status.INVALID_HANDLE, /disposed/);
      ctx.dispose();
    });

    it('refuses device tensors that were not made by a context', () => {
      const ctx = new u.Context({ numThreads: 1 });
      const real = ctx.upload(q);
      const Ctor = u.DeviceTensor as unknown as new (...args: unknown[]) => unknown;
      const fake = { owner: { device: 0, deviceIndex: 0, driver: u._driver(), handle: 0n, buffers: new Set() }, handle: 1n, pointer: 4096n, byteLength: 1 << 30, released: false, destroyed: false, pins: 0 };
      expect(() => new Ctor(fake, ctx, 'f32', [1, 4, 2, 8], undefined, false)).toThrow();
      class Sub extends (u.DeviceTensor as unknown as new (...args: unknown[]) => object) {
        constructor() {
          super(fake, ctx, 'f32', [1, 4, 2, 8], undefined, false);
        }
      }
      expect(() => new Sub()).toThrow();
      real.dispose();
      ctx.dispose();
    });

    it('leaves the binding usable after an option getter throws', () => {
      const options = {
        get scale(): number {
          throw new Error('boom');
        },
      };
      expect(() => u.attention(q, k, v, options)).toThrow('boom');
      expect(u.attention(q, k, v).out.data).toEqual(expected);
    });

    it('finishes an asynchronous call whose context is disposed meanwhile, and one on another context', async () => {
      const a = new u.Context({ numThreads: 1 });
      const b = new u.Context({ numThreads: 1 });
      const p = a.attentionAsync(bq, bk, bv);
      const r = b.attentionAsync(q, k, v);
      b.dispose();
      a.dispose();
      const [ra, rb] = await Promise.all([p, r]);
      expect(ra.out.data).toEqual(u.attention(bq, bk, bv).out.data);
      expect(rb.out.data).toEqual(expected);
      expectUmfa(() => a.attention(q, k, v), Status.INVALID_HANDLE);
    });
  });

  describe('process exit', () => {
    it('exits cleanly while contexts that were never disposed still own worker threads', () => {
      // koffi unloads the library at Node's environment teardown, under live contexts.
      const script = [
        `const u = await import('@umfa/${which}');`,
        'new u.Context({ numThreads: 2 });',
        'new u.MFAContext();',
        'const t = u.bshd(new Float32Array(2 * 64 * 2 * 16), [2, 64, 2, 16]);',
        'u.attention(t, t, t);',
        'await u.attentionAsync(t, t, t);',
      ].join(' ');
      const crashes: string[] = [];
      for (let i = 0; i < 12; i++) {
        const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
        if (r.status !== 0) crashes.push(`run ${i}: status ${String(r.status)} signal ${String(r.signal)} ${r.stderr.slice(0, 200)}`);
      }
      expect(crashes).toEqual([]);
    });
  });

  describe('asynchronous calls never touch memory JavaScript can free or shrink meanwhile', () => {
    it('does not write into an output detached while the call runs', async () => {
      const data = new Float32Array((bq.data as Float32Array).length).fill(SENTINEL);
      const out = u.tensor(data, bq.shape);
      const p = u.attentionAsync(bq, bk, bv, { out });
      const moved = detach(data.buffer);
      await expectUmfaAsync(p, Status.SHAPE_MISMATCH, /out: .*detached or shrunk while the call ran/);
      expect(allSentinel(new Float32Array(moved))).toBe(true);
    });

    it('does not read an input detached while the call runs', async () => {
      const qq = u.tensor((bq.data as Float32Array).slice(), bq.shape);
      const p = u.attentionAsync(qq, bk, bv);
      const moved = new Float32Array(detach(qq.data.buffer));
      moved.fill(Number.NaN); // what the call would read if it used this memory
      const r = await p;
      expect(r.out.data).toEqual(u.attention(bq, bk, bv).out.data);
    });

    it('does not write into an output shrunk while the call runs', async () => {
      const ab = new ResizableArrayBuffer(bq.data.byteLength, { maxByteLength: bq.data.byteLength });
      const data = new Float32Array(ab).fill(SENTINEL);
      const p = u.attentionAsync(bq, bk, bv, { out: u.tensor(data, bq.shape) });
      ab.resize(64);
      await expectUmfaAsync(p, Status.SHAPE_MISMATCH, /detached or shrunk while the call ran/);
      ab.resize(bq.data.byteLength);
      expect(new Float32Array(ab, 0, 16).every((x) => x === SENTINEL)).toBe(true);
      expect(new Float32Array(ab, 64).every((x) => x === 0)).toBe(true);
    });

    it('does not write into an output detached while its call waits in the queue', async () => {
      const pending: Promise<unknown>[] = [];
      for (let i = 0; i < 80; i++) pending.push(u.attentionAsync(q, k, v));
      const data = new Float32Array(64).fill(SENTINEL);
      const last = u.attentionAsync(q, k, v, { out: u.tensor(data, [1, 4, 2, 8]) });
      const moved = detach(data.buffer);
      // Handled at once: without the driver's queue (napi) it may settle before the calls ahead of it.
      const refused = expectUmfaAsync(last, Status.SHAPE_MISMATCH, /detached or shrunk while the call ran/);
      await Promise.all(pending);
      await refused;
      expect(allSentinel(new Float32Array(moved))).toBe(true);
    });

    it('writes the result back when the output is still there, including strided views sharing a buffer', async () => {
      // out and lse live in one buffer, out as a BHSD view: both staged once, both written back.
      const [b, s, h, d] = bq.shape as [number, number, number, number];
      const backing = new Float32Array(b * s * h * d + b * h * s + 16).fill(SENTINEL);
      const out = u.bhsd(backing.subarray(0, b * s * h * d), [b, h, s, d]);
      const lse = u.tensor(backing.subarray(b * s * h * d, b * s * h * d + b * h * s), [b, h, s]);
      const r = await u.attentionAsync(bq, bk, bv, { out, lse });
      const ref = u.attention(bq, bk, bv, { returnLse: true });
      expect(u.toFloat32(r.out)).toEqual(u.toFloat32(ref.out));
      expect(r.lse.data).toEqual(ref.lse.data);
      expect(backing.subarray(backing.length - 16).every((x) => x === SENTINEL)).toBe(true);
    });

    it('still refuses an output that aliases an input', async () => {
      const same = u.tensor((q.data as Float32Array).slice(), q.shape);
      await expectUmfaAsync(u.attentionAsync(same, k, v, { out: same }), Status.INVALID_ARGUMENT, /same memory/);
    });
  });

  describe('options are range-checked before they are converted', () => {
    const cases: [string, () => unknown, RegExp][] = [
      ['numThreads 2^32+1', () => new u.Context({ numThreads: 2 ** 32 + 1 }), /numThreads/],
      ['numThreads 2^31', () => new u.Context({ numThreads: 2 ** 31 }), /numThreads/],
      ['deviceIndex -2^31-1', () => new u.Context({ deviceIndex: -(2 ** 31) - 1 }), /deviceIndex/],
      ['workspaceLimitBytes -1', () => new u.Context({ workspaceLimitBytes: -1 }), /workspaceLimitBytes/],
      ['workspaceLimitBytes -1n', () => new u.Context({ workspaceLimitBytes: -1n }), /workspaceLimitBytes/],
      ['workspaceLimitBytes 2^64', () => new u.Context({ workspaceLimitBytes: 2n ** 64n }), /workspaceLimitBytes/],
      ['maskMode 2^32+1', () => u.attention(q, k, v, { maskMode: 2 ** 32 + 1 }), /maskMode/],
      ['maskMode -1', () => u.attention(q, k, v, { maskMode: -1 }), /maskMode/],
      ['maskMode 1.5', () => u.attention(q, k, v, { maskMode: 1.5 }), /maskMode/],
      ['scale 1e-50 (rounds to 0, the default)', () => u.attention(q, k, v, { scale: 1e-50 }), /scale/],
      ['scale 1e40 (no float32)', () => u.attention(q, k, v, { scale: 1e40 }), /scale/],
      ['scale as a string', () => u.attention(q, k, v, { scale: '0.5' as unknown as number }), /scale/],
      ['softcap 1e40', () => u.attention(q, k, v, { softcap: 1e40 }), /softcap/],
      ['window 2^53', () => u.attention(q, k, v, { window: [2 ** 53, 0] }), /window/],
      ['maxSeqlenQ 1.5', () => u.attention(q, k, v, { maxSeqlenQ: 1.5 }), /maxSeqlenQ/],
      ['stream -1n', () => u.attention(q, k, v, { stream: -1n }), /stream/],
      ['stream 2^64', () => u.attention(q, k, v, { stream: 2n ** 64n }), /stream/],
      ['shape 2^53', () => u.attention(u.tensor(q.data, [1, 2 ** 53, 2, 8]), k, v), /q/],
    ];
    for (const [name, f, re] of cases) {
      it(`refuses ${name}`, () => {
        expectUmfa(f, Status.INVALID_ARGUMENT, re);
      });
    }

    it('refuses out-of-range classic arguments', () => {
      const ctx = new u.MFAContext();
      const big = u.tensor(new Uint16Array(16), [1, 1, 1, 2 ** 16 + 16], { dtype: 'f16' });
      expect(() => ctx.forward(big, big, big)).toThrow(/head_dim|headDim/);
      ctx.dispose();
    });

    it('refuses a q with a negative extent with the core status, not a RangeError from the output allocation', () => {
      const bad = u.tensor(new Float32Array(64), [1, -1, 2, 8]);
      expectUmfa(() => u.attention(bad, k, v), Status.INVALID_ARGUMENT, /q\.shape\[1\] \(-1\) is negative/);
      const lse = u.tensor(new Float32Array(8), [1, 2, 4]);
      expectUmfa(() => u.attentionBackward(bad, k, v, bad, bad, lse), Status.INVALID_ARGUMENT, /q\.shape\[1\] \(-1\) is negative/);
    });

    it('allocates nothing for a q the core refuses (a negative stride next to a huge extent), and reports q', async () => {
      // Such a view spans 0 bytes as the bindings count it, so its 2^37 elements were allocated for the output.
      const bad = u.tensor(new Float32Array(8), [2, 2 ** 32, 2, 8], { strides: [2 ** 36, 16, 8, -1] });
      const kk = u.tensor(new Float32Array(16), [2, 1, 1, 8]);
      expectUmfa(() => u.attention(bad, kk, kk, { returnLse: true }), Status.INVALID_STRIDE, /q\.strides\[3\] \(-1\) is negative/);
      await expectUmfaAsync(u.attentionAsync(bad, kk, kk), Status.INVALID_STRIDE, /q\.strides\[3\]/);
      const lse = u.tensor(new Float32Array(4), [2, 2, 1]);
      expectUmfa(() => u.attentionBackward(bad, kk, kk, bad, bad, lse), Status.INVALID_STRIDE, /q\.strides\[3\] \(-1\) is negative/);
    });

    it('passes a view with an extent of 0 as empty, however far its other extents and strides reach', () => {
      // (2^31 - 2) * 2^40 overflows 64 bits; the N-API addon used to throw a RangeError for it.
      const empty = u.tensor(new Uint16Array(0), [2 ** 31 - 1, 0, 2, 3], { dtype: 'f16', strides: [2 ** 40, 6, 3, 1] });
      const one = u.tensor(new Uint16Array(3), [1, 1, 1, 3], { dtype: 'f16' });
      expectUmfa(() => u.attention(empty, one, one), Status.SHAPE_MISMATCH, /k\.shape\[0\] \(batch\) is 1; it must equal q\.shape\[0\]/);
    });

    it('refuses an output no typed array can hold (a broadcast q of 2^40 rows) with OUT_OF_MEMORY', () => {
      const broadcast = u.tensor(new Float32Array(8), [1, 2 ** 40, 1, 8], { strides: [0, 0, 0, 1] });
      const one = u.tensor(new Float32Array(8), [1, 1, 1, 8]);
      expectUmfa(() => u.attention(broadcast, one, one), Status.OUT_OF_MEMORY, /out: cannot allocate/);
    });

    it('refuses a classic operand too small for its shape before allocating the output', () => {
      const ctx = new u.MFAContext();
      const small = u.tensor(new Float32Array(8), [1, 2 ** 20, 2 ** 10, 64]);
      expect(() => ctx.forward(small, small, small)).toThrow(/q holds 32 bytes but the shapes need/);
      expect(() => ctx.forward(small, small, small)).toThrow(u.MFAError);
      ctx.dispose();
    });

    it('sizes a zeros() tensor and gives it its shape from one read of the caller shape', () => {
      const ctx = new u.Context({ numThreads: 1 });
      let reads = 0;
      const shape = new Proxy([1, 2, 3], { get: (t, p, r) => (p === '0' && ++reads > 1 ? 4096 : Reflect.get(t, p, r)) });
      const t = ctx.zeros('f32', shape);
      expect([...t.shape]).toEqual([1, 2, 3]);
      expect(t.byteLength).toBe(24);
      ctx.dispose();
    });

    it('refuses a classic output whose byteLength lies', () => {
      const ctx = new u.MFAContext();
      const backing = new Float32Array(256).fill(SENTINEL);
      const out = backing.subarray(0, 8);
      Object.defineProperty(out, 'byteLength', { value: 64 * 4 });
      expect(() => ctx.forward(q, q, q, { out })).toThrow();
      expect(allSentinel(backing)).toBe(true);
      ctx.dispose();
    });
  });
});
