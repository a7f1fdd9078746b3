// Device tensors and CUDA contexts, run by both bindings (vitest projects `koffi` and `napi`)
// without a GPU: libumfa loads the mock CUDA backend of ../mock-cuda (two "devices" whose memory
// is host memory, every call computed by a CPU context, every tensor pointer checked against its
// live allocations, and an abort if a context is destroyed before its buffers). Results on the
// "device" must equal a CPU context's bit for bit (both run the same kernels on one thread).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as Koffi from '@umfa/koffi/internal';
import { mockCudaLibrary } from '../mock-cuda/build.js';

// Before the binding loads libumfa, which reads UMFA_CUDA_LIB once (each test file runs in its
// own process).
const mock = mockCudaLibrary();
process.env['UMFA_CUDA_LIB'] = mock;

type Binding = typeof Koffi;
type Tensor = Koffi.Tensor;
type DeviceTensor = Koffi.DeviceTensor;
type DType = Koffi.DType;

const which = process.env['UMFA_TS_BINDING'] === 'napi' ? 'napi' : 'koffi';
const packageName = `@umfa/${which}`;
const u: Binding = (await import(`${packageName}/internal`)) as Binding;
const { Status, UmfaError } = u;

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

function randTensor(shape: number[], seed: number, dtype: DType = 'f32'): Tensor {
  const values = rand(u.numel(shape), seed);
  return u.tensor(dtype === 'f32' ? values : u.fromFloat32(values, dtype), shape, { dtype });
}

/** The elements of a host tensor's typed array, for exact comparisons. */
function elements(t: Tensor): number[] {
  return Array.from(u.elementsOf(t.data, t.dtype));
}

function expectUmfaError(f: () => unknown, status: number, text?: string | RegExp): InstanceType<typeof UmfaError> {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(UmfaError);
  const e = err as InstanceType<typeof UmfaError>;
  expect({ status: e.statusName, message: e.message }).toMatchObject({ status: u.statusName(status) });
  if (text !== undefined) expect(e.message).toMatch(text);
  return e;
}

/** Counts buffers the binding creates and destroys (through its driver). */
function countBuffers(): { live: () => number; created: () => number; destroyed: () => number; restore: () => void } {
  const d = u._driver();
  const create = d.bufferCreate.bind(d);
  const destroy = d.bufferDestroy.bind(d);
  let created = 0;
  let destroyed = 0;
  d.bufferCreate = (c, n) => {
    const r = create(c, n);
    if (r[0] === Status.OK) created++;
    return r;
  };
  d.bufferDestroy = (b) => {
    destroyed++;
    destroy(b);
  };
  return {
    live: () => created - destroyed,
    created: () => created,
    destroyed: () => destroyed,
    restore: () => {
      d.bufferCreate = create;
      d.bufferDestroy = destroy;
    },
  };
}

async function collectGarbage(until: () => boolean): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  expect(gc, 'run with --expose-gc').toBeTypeOf('function');
  for (let i = 0; i < 50 && !until(); i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 10));
  }
}

let cuda: Koffi.Context;
let cpu: Koffi.Context;
beforeAll(() => {
  cuda = new u.Context({ backend: 'cuda' });
  cpu = new u.Context({ backend: 'cpu', numThreads: 1 });
});
afterAll(() => {
  cuda.dispose();
  cpu.dispose();
});

describe(`${packageName}: CUDA contexts (mock backend)`, () => {
  it('loads the mock as the CUDA backend; auto picks it; the default context stays on the CPU', () => {
    expect(u.backends()).toEqual([
      { name: 'cpu', available: true, deviceCount: 1 },
      { name: 'cuda', available: true, deviceCount: 2 },
      { name: 'metal', available: false, deviceCount: 0 },
    ]);
    expect(u.buildInfo()).toContain(mock);
    expect(cuda.backend).toBe('cuda');
    expect(cuda.numThreads).toBe(0);
    using auto = new u.Context({ backend: 'auto' });
    expect(auto.backend).toBe('cuda');
    using second = new u.Context({ backend: 'cuda', deviceIndex: 1 });
    expect(second.backend).toBe('cuda');
    expectUmfaError(() => new u.Context({ backend: 'cuda', deviceIndex: 2 }), Status.INVALID_ARGUMENT, /device_index/);
    const q = randTensor([1, 3, 2, 8], 1);
    expect(u.attention(q, q, q).out.data).toEqual(cpu.attention(q, q, q).out.data);
  });

  it('synchronize() returns once queued work is done (a no-op on the CPU)', () => {
    cuda.synchronize();
    cuda.synchronize();
    cpu.synchronize();
  });
});

describe(`${packageName}: upload and download`, () => {
  for (const dtype of ['f32', 'f16', 'bf16', 'bool', 'i32'] as const) {
    it(`round-trips ${dtype}, keeping dtype, shape and strides`, () => {
      const t = dtype === 'bool' ? u.tensor(Uint8Array.from([1, 0, 1, 1, 0, 0]), [2, 3], { dtype }) : randTensor([2, 3], 5, dtype);
      using d = cuda.upload(t);
      expect(d.device).toBe('cuda');
      expect(d.deviceIndex).toBe(0);
      expect(d.dtype).toBe(dtype);
      expect(d.shape).toEqual([2, 3]);
      expect(d.strides).toBeUndefined();
      expect(d.byteLength).toBe(6 * u.dtypeSize(dtype));
      expect(d.context).toBe(cuda);
      expect(typeof d.pointer).toBe('bigint');
      const back = d.download();
      expect(back.data.constructor).toBe(t.data.constructor);
      expect(back.data).not.toBe(t.data);
      expect(elements(back)).toEqual(elements(t));
    });
  }

  it('copies the bytes a strided view spans (a BHSD view stays one)', () => {
    const [B, H, S, D] = [2, 3, 4, 8];
    const data = rand(B * H * S * D, 9);
    const view = u.bhsd(data, [B, H, S, D]);
    using d = cuda.upload(view);
    expect(d.shape).toEqual([B, S, H, D]);
    expect(d.strides).toEqual(view.strides);
    const back = d.download();
    expect(back.strides).toEqual(view.strides);
    expect(back.data).toEqual(data);
    // A view of the middle of a larger array: only its span is copied.
    const big = rand(100, 3);
    using part = cuda.upload(u.tensor(big.subarray(10, 30), [4, 5]));
    expect(part.byteLength).toBe(80);
    expect(part.download().data).toEqual(big.subarray(10, 30));
  });

  it('downloads into a given array and uploads new values in place', () => {
    using d = cuda.upload(randTensor([4, 4], 2));
    const into = new Float32Array(16);
    const r = d.download(into);
    expect(r.data).toBe(into);
    expect(into).toEqual(rand(16, 2));
    d.upload(rand(16, 7));
    expect(d.download().data).toEqual(rand(16, 7));
    d.upload(u.tensor(rand(16, 8), [4, 4]));
    expect(d.download().data).toEqual(rand(16, 8));
    expectUmfaError(() => d.upload(new Float32Array(3)), Status.SHAPE_MISMATCH, /holds 12 bytes/);
    expectUmfaError(() => d.download(new Float32Array(3)), Status.SHAPE_MISMATCH, /holds 12 bytes/);
  });

  it('zeros() is zero-filled although device memory is not', () => {
    using z = cuda.zeros('bf16', [3, 5]);
    expect(z.dtype).toBe('bf16');
    const back = z.download();
    expect(back.data).toBeInstanceOf(Uint16Array);
    expect(Array.from(back.data)).toEqual(new Array(15).fill(0));
  });

  it('empty tensors, Float16Array data and CPU contexts', () => {
    using e = cuda.upload(u.tensor(new Float32Array(0), [0, 4]));
    expect(e.byteLength).toBe(0);
    expect(e.download().data.length).toBe(0);
    using h = cpu.upload(randTensor([2, 2], 4));
    expect(h.device).toBe('cpu');
    expect(h.download().data).toEqual(rand(4, 4));
    if (u.hasFloat16Array) {
      const F16 = u.Float16ArrayCtor as NonNullable<typeof u.Float16ArrayCtor>;
      const native = new F16(4) as unknown as Float32Array;
      native.set([1, 2, 3, 4]);
      using f = cuda.upload(u.tensor(native as unknown as ArrayBufferView, [4]));
      expect(f.download().data).toBeInstanceOf(F16);
    }
  });

  it('refuses what no buffer can hold', () => {
    expectUmfaError(() => cuda.upload(u.tensor(new Float32Array(4), [8])), Status.SHAPE_MISMATCH, /needs 32 bytes/);
    expectUmfaError(() => cuda.upload(u.tensor(new Float32Array(4), [2, 2], { strides: [-2, 1] })), Status.INVALID_STRIDE);
    expectUmfaError(() => cuda.upload(u.tensor(new Float32Array(4), [1, 1, 1, 1, 4])), Status.INVALID_RANK);
    expectUmfaError(() => cuda.zeros('f64' as DType, [2]), Status.UNSUPPORTED_DTYPE);
    expectUmfaError(() => cuda.zeros('f32', [2.5]), Status.INVALID_ARGUMENT);
    using d = cuda.upload(randTensor([2], 1));
    expectUmfaError(() => cuda.upload(d as unknown as Tensor), Status.NULL_POINTER, /already a device tensor/);
  });
});

// ---------------------------------------------------------------------------------------------
// Forward and backward on device tensors against the CPU context.

interface Variant {
  name: string;
  q: number[];
  kv: number[];
  options: (put: (t: Tensor) => Tensor | DeviceTensor) => Koffi.AttentionOptions;
  layout?: 'bhsd';
  dtypes?: DType[];
}

const variants: Variant[] = [
  { name: 'plain', q: [2, 5, 2, 16], kv: [2, 7, 2, 16], options: () => ({}) },
  { name: 'causal bottom-right, GQA', q: [1, 6, 4, 16], kv: [1, 9, 2, 16], options: () => ({ causal: true }) },
  { name: 'causal top-left, scale', q: [1, 6, 2, 8], kv: [1, 6, 2, 8], options: () => ({ causal: 'top-left', scale: 0.3 }) },
  { name: 'window and softcap', q: [1, 8, 2, 16], kv: [1, 8, 2, 16], options: () => ({ window: [2, 1], softcap: 5 }) },
  {
    name: 'ALiBi slopes on the device',
    q: [2, 4, 2, 8],
    kv: [2, 6, 2, 8],
    options: (put) => ({ causal: true, alibiSlopes: put(u.tensor(Float32Array.from([0.5, 0.25]), [2])) }),
  },
  {
    name: 'boolean mask on the device',
    q: [1, 4, 2, 8],
    kv: [1, 5, 2, 8],
    options: (put) => ({ attnMask: put(u.tensor(Uint8Array.from({ length: 20 }, (_, i) => (i % 3 ? 1 : 0)), [4, 5], { dtype: 'bool' })) }),
  },
  {
    name: 'additive bias on the device',
    q: [1, 4, 2, 8],
    kv: [1, 5, 2, 8],
    options: (put) => ({ attnMask: put(u.tensor(rand(2 * 4 * 5, 77), [2, 4, 5])) }),
  },
  { name: 'BHSD views', q: [2, 5, 3, 8], kv: [2, 6, 3, 8], options: () => ({ causal: true }), layout: 'bhsd' },
];

function inputs(v: Variant, dtype: DType, seed: number): { q: Tensor; k: Tensor; vv: Tensor; dout: Tensor } {
  const make = (shape: number[], s: number) => {
    if (v.layout !== 'bhsd') return randTensor(shape, s, dtype);
    const [b, n, h, d] = shape as [number, number, number, number];
    const values = rand(b * n * h * d, s);
    return u.bhsd(dtype === 'f32' ? values : u.fromFloat32(values, dtype), [b, h, n, d], dtype);
  };
  return { q: make(v.q, seed), k: make(v.kv, seed + 1), vv: make(v.kv, seed + 2), dout: make(v.q, seed + 3) };
}

describe(`${packageName}: forward and backward on device tensors equal the CPU's`, () => {
  for (const v of variants) {
    for (const dtype of v.dtypes ?? (['f32', 'f16', 'bf16'] as const)) {
      it(`${v.name}, ${dtype}`, () => {
        const { q, k, vv, dout } = inputs(v, dtype, 10);
        const owned: DeviceTensor[] = [];
        const put = (t: Tensor) => {
          const d = cuda.upload(t);
          owned.push(d);
          return d;
        };
        try {
          const ref = cpu.attention(q, k, vv, { ...v.options((t) => t), returnLse: true });
          const gref = cpu.attentionBackward(q, k, vv, ref.out, dout, ref.lse, { ...v.options((t) => t), deterministic: true });
          const [dq, dk, dv, ddout] = [q, k, vv, dout].map(put) as [DeviceTensor, DeviceTensor, DeviceTensor, DeviceTensor];
          const options = v.options(put);
          const r = cuda.attention(dq, dk, dv, { ...options, returnLse: true });
          owned.push(r.out, r.lse);
          expect(r.out).toBeInstanceOf(u.DeviceTensor);
          expect(r.out.context).toBe(cuda);
          expect(r.out.dtype).toBe(dtype);
          expect(r.out.shape).toEqual(q.shape);
          expect(r.lse.dtype).toBe('f32');
          expect(elements(r.out.download())).toEqual(elements(ref.out));
          expect(elements(r.lse.download())).toEqual(elements(ref.lse));
          const g = cuda.attentionBackward(dq, dk, dv, r.out, ddout, r.lse, { ...options, deterministic: true });
          owned.push(g.dq, g.dk, g.dv);
          expect(g.dk.shape).toEqual(k.shape);
          expect(elements(g.dq.download())).toEqual(elements(gref.dq));
          expect(elements(g.dk.download())).toEqual(elements(gref.dk));
          expect(elements(g.dv.download())).toEqual(elements(gref.dv));
        } finally {
          for (const t of owned) t.dispose();
        }
      });
    }
  }

  it('varlen with cu_seqlens on the device (max_seqlen given, as CUDA requires)', () => {
    const [H, D] = [2, 8];
    const q = randTensor([9, H, D], 31);
    const k = randTensor([11, H, D], 32);
    const vv = randTensor([11, H, D], 33);
    const cuQ = Int32Array.from([0, 4, 9]);
    const cuK = Int32Array.from([0, 5, 10]); // row 10 of k/v belongs to no sequence
    const host = { cuSeqlensQ: cuQ, cuSeqlensK: cuK, maxSeqlenQ: 5, maxSeqlenK: 5, causal: true } as const;
    const ref = cpu.attention(q, k, vv, { ...host, returnLse: true });
    using dcq = cuda.upload(u.tensor(cuQ, [3]));
    using dck = cuda.upload(u.tensor(cuK, [3]));
    using dq = cuda.upload(q);
    using dk = cuda.upload(k);
    using dv = cuda.upload(vv);
    const opts = { ...host, cuSeqlensQ: dcq, cuSeqlensK: dck };
    const r = cuda.attention(dq, dk, dv, { ...opts, returnLse: true });
    expect(r.lse.shape).toEqual([H, 9]);
    expect(elements(r.out.download())).toEqual(elements(ref.out));
    expect(elements(r.lse.download())).toEqual(elements(ref.lse));
    using dout = cuda.upload(q);
    const gref = cpu.attentionBackward(q, k, vv, ref.out, q, ref.lse, { ...host, deterministic: true });
    const g = cuda.attentionBackward(dq, dk, dv, r.out, dout, r.lse, { ...opts, deterministic: true });
    expect(elements(g.dk.download())).toEqual(elements(gref.dk));
    for (const t of [r.out, r.lse, g.dq, g.dk, g.dv]) t.dispose();
  });

  it('writes into given device outputs, in another dtype, and through the free functions', async () => {
    const q = randTensor([1, 4, 2, 8], 41);
    using dq = cuda.upload(q);
    using out = cuda.zeros('bf16', [1, 4, 2, 8]);
    using lse = cuda.zeros('f32', [1, 2, 4]);
    const r = cuda.attention(dq, dq, dq, { out, lse });
    expect(r.out).toBe(out);
    expect(r.lse).toBe(lse);
    const ref = cpu.attention(q, q, q, { outDtype: 'bf16', returnLse: true });
    expect(elements(out.download())).toEqual(elements(ref.out));
    // The free functions run on the context of their device tensors.
    const f = u.attention(dq, dq, dq, { outDtype: 'f32' });
    expect(f.out.context).toBe(cuda);
    expect(f.out.download().data).toEqual(cpu.attention(q, q, q).out.data);
    const fa = await u.attentionAsync(dq, dq, dq);
    expect(fa.out.download().data).toEqual(cpu.attention(q, q, q).out.data);
    const dout = cuda.upload(q);
    const ga = await u.attentionBackwardAsync(dq, dq, dq, r.out, dout, lse);
    const gs = u.attentionBackward(dq, dq, dq, r.out, dout, lse);
    expect(ga.dq.download().data).toEqual(gs.dq.download().data);
    for (const t of [f.out, fa.out, dout, ga.dq, ga.dk, ga.dv, gs.dq, gs.dk, gs.dv]) t.dispose();
  });

  it('runs many asynchronous calls at once, each equal to the synchronous result', async () => {
    const q = randTensor([1, 8, 2, 16], 51);
    using dq = cuda.upload(q);
    const want = cpu.attention(q, q, q, { causal: true }).out.data;
    const results = await Promise.all(Array.from({ length: 200 }, () => cuda.attentionAsync(dq, dq, dq, { causal: true })));
    for (const r of results) {
      expect(r.out.download().data).toEqual(want);
      r.out.dispose();
    }
  });
});

describe(`${packageName}: device mismatches and bad handles (UmfaError, nothing written)`, () => {
  const q = randTensor([1, 4, 2, 8], 61);

  /** A device output filled with a sentinel, to check a refused call did not write it. */
  function sentinel(ctx: Koffi.Context, shape: number[]): DeviceTensor {
    return ctx.upload(u.tensor(new Float32Array(u.numel(shape)).fill(12345.5), shape));
  }
  const untouched = (t: DeviceTensor) => (t.download().data as Float32Array).every((x) => x === 12345.5);

  it('host tensors on a CUDA context: DEVICE_MISMATCH from the core, with a hint', () => {
    using dq = cuda.upload(q);
    using out = sentinel(cuda, [1, 4, 2, 8]);
    const e = expectUmfaError(() => cuda.attention(q, q, q), Status.DEVICE_MISMATCH, /^umfa_attention_forward: q\.device is CPU/);
    expect(e.message).toContain('ctx.upload(tensor)');
    expectUmfaError(() => cuda.attention(dq, q as unknown as DeviceTensor, dq, { out }), Status.DEVICE_MISMATCH, /k\.device is CPU/);
    expect(untouched(out)).toBe(true);
    // auto on a machine with CUDA is CUDA: the same, honestly (nothing is copied behind the call).
    using auto = new u.Context({ backend: 'auto' });
    expectUmfaError(() => auto.attention(q, q, q), Status.DEVICE_MISMATCH, /q\.device is CPU/);
  });

  it('backward names the host tensor', () => {
    using dq = cuda.upload(q);
    const r = cuda.attention(dq, dq, dq, { returnLse: true });
    using dq2 = cuda.zeros('f32', [1, 4, 2, 8]);
    expectUmfaError(() => cuda.attentionBackward(dq, dq, dq, r.out, q as unknown as DeviceTensor, r.lse, { dq: dq2 }), Status.DEVICE_MISMATCH, /dout\.device is CPU/);
    expect(dq2.download().data.every((x) => x === 0)).toBe(true);
    r.out.dispose();
    r.lse.dispose();
  });

  it('device tensors of another device, or on a CPU context', () => {
    using other = new u.Context({ backend: 'cuda', deviceIndex: 1 });
    using dq = cuda.upload(q);
    using dk = other.upload(q);
    expect(dk.deviceIndex).toBe(1);
    using out = sentinel(cuda, [1, 4, 2, 8]);
    expectUmfaError(() => cuda.attention(dq, dk, dq, { out }), Status.DEVICE_MISMATCH, /k\.device_index/);
    expect(untouched(out)).toBe(true);
    const hostOut = u.tensor(new Float32Array(64).fill(12345.5), [1, 4, 2, 8]);
    expectUmfaError(() => cpu.attention(dq, dq, dq, { context: cpu }), Status.DEVICE_MISMATCH, /q\.device is CUDA/);
    expectUmfaError(() => cpu.attention(q, q, q, { out: hostOut, attnMask: dq as unknown as Tensor }), Status.DEVICE_MISMATCH, /attn_mask/);
    expect((hostOut.data as Float32Array).every((x) => x === 12345.5)).toBe(true);
  });

  it('disposed tensors, and tensors of a disposed context: INVALID_HANDLE', () => {
    const dq = cuda.upload(q);
    dq.dispose();
    dq.dispose();
    expect(dq.disposed).toBe(true);
    expectUmfaError(() => cuda.attention(dq, dq, dq), Status.INVALID_HANDLE, /^q: this device tensor has been disposed$/);
    expectUmfaError(() => dq.download(), Status.INVALID_HANDLE);
    expectUmfaError(() => dq.pointer, Status.INVALID_HANDLE);
    const ctx = new u.Context({ backend: 'cuda' });
    const t = ctx.upload(q);
    ctx.dispose();
    expect(t.disposed).toBe(true);
    expectUmfaError(() => t.download(), Status.INVALID_HANDLE, /with its context/);
    expectUmfaError(() => ctx.upload(q), Status.INVALID_HANDLE);
    t.dispose();
  });

  it('a refused call frees the outputs it allocated', () => {
    const count = countBuffers();
    try {
      using dq = cuda.upload(q);
      const before = count.live();
      expectUmfaError(() => cuda.attention(dq, dq, dq, { returnLse: true, softcap: -1 }), Status.INVALID_ARGUMENT);
      expect(count.created() - 1).toBeGreaterThanOrEqual(2); // out and lse were allocated...
      expect(count.live()).toBe(before); // ...and freed
    } finally {
      count.restore();
    }
  });
});

describe(`${packageName}: lifetimes of device tensors`, () => {
  it('dispose, Symbol.dispose and using free the buffer once', () => {
    const count = countBuffers();
    try {
      const a = cuda.upload(randTensor([4], 1));
      a.dispose();
      a.dispose();
      {
        using b = cuda.zeros('f32', [4]);
        void b;
      }
      const c = cuda.zeros('f32', [4]);
      c[Symbol.dispose]();
      expect(count.created()).toBe(3);
      expect(count.destroyed()).toBe(3);
    } finally {
      count.restore();
    }
  });

  it('frees device tensors the program forgot, via the finalizer', async () => {
    const count = countBuffers();
    try {
      (() => {
        for (let i = 0; i < 20; i++) cuda.upload(randTensor([64], i));
      })();
      await collectGarbage(() => count.destroyed() >= 20);
      expect(count.destroyed()).toBe(20);
    } finally {
      count.restore();
    }
  });

  it('a forgotten context and its tensors are freed buffers first (the mock aborts otherwise)', async () => {
    const count = countBuffers();
    const d = u._driver();
    const destroyContext = d.contextDestroy.bind(d);
    let contexts = 0;
    d.contextDestroy = (h) => {
      contexts++;
      destroyContext(h);
    };
    try {
      (() => {
        for (let i = 0; i < 10; i++) {
          const ctx = new u.Context({ backend: 'cuda' });
          for (let j = 0; j < 3; j++) ctx.upload(randTensor([16], j));
        }
      })();
      await collectGarbage(() => contexts >= 10 && count.destroyed() >= 30);
      expect(contexts).toBe(10);
      expect(count.destroyed()).toBe(30);
    } finally {
      count.restore();
      d.contextDestroy = destroyContext;
    }
  });

  it('a device tensor keeps its context alive', async () => {
    let t: DeviceTensor | undefined = (() => new u.Context({ backend: 'cuda' }).upload(randTensor([8], 3)))();
    await collectGarbage(() => false);
    expect(t.disposed).toBe(false);
    expect(t.download().data).toEqual(rand(8, 3));
    t = undefined;
  });

  it('disposing tensors and their context while async calls use them frees them afterwards', async () => {
    const count = countBuffers();
    try {
      const ctx = new u.Context({ backend: 'cuda' });
      const q = randTensor([1, 16, 2, 16], 71);
      const dq = ctx.upload(q);
      const pending = Array.from({ length: 20 }, () => ctx.attentionAsync(dq, dq, dq));
      dq.dispose();
      ctx.dispose();
      expect(count.destroyed()).toBe(0);
      const results = await Promise.all(pending);
      expect(results.length).toBe(20);
      // Every result was computed from live memory (the mock refuses freed pointers) and the
      // outputs, made on the disposed context, were freed with it.
      expect(results.every((r) => r.out.disposed)).toBe(true);
      expect(count.live()).toBe(0);
    } finally {
      count.restore();
    }
  });
});
