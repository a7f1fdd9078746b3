// Device tensors and native handle lifetimes against a fake driver (no native library): how a
// device tensor is encoded into a frame, and the order in which contexts and buffers are freed
// (buffers before their context; nothing while an asynchronous call may use it).
import { describe, expect, it } from 'vitest';
import {
  ContextBase,
  DeviceTensor,
  Frame,
  Layout,
  Runtime,
  Slot,
  Status,
  UmfaError,
  encodeTensor,
  isDeviceTensor,
  slotOffset,
  tensor,
  type AsyncOutcome,
  type Driver,
} from '../src/internal.js';

/** A driver over JavaScript memory that records every create and destroy, in order. */
class FakeDriver {
  readonly kind = 'fake';
  readonly libraryPath = '/fake/libumfa.so.1';
  readonly log: string[] = [];
  readonly memory = new Map<bigint, Uint8Array>();
  readonly contexts = new Set<bigint>();
  #next = 0x1000n;
  /** What contextBackend reports (1 = CPU, 2 = CUDA). */
  backendCode = 2;
  /** Pending asynchronous calls, settled by the test. */
  readonly pending: ((o: AsyncOutcome) => void)[] = [];
  /** Data addresses of the last forward call, per slot. */
  last: (ArrayBufferView | bigint | undefined)[] = [];

  contextCreate(): [number, bigint] {
    const h = (this.#next += 0x100n);
    this.contexts.add(h);
    this.log.push(`context+ ${h}`);
    return [0, h];
  }
  contextDestroy(h: bigint): void {
    for (const [b, _] of this.memory) if (this.owner.get(b) === h) throw new Error(`context ${h} destroyed before buffer ${b}`);
    this.contexts.delete(h);
    this.log.push(`context- ${h}`);
  }
  contextBackend(): [number, number] {
    return [0, this.backendCode];
  }
  contextNumThreads(): [number, number] {
    return [0, 0];
  }
  lastError(): string {
    return 'fake error';
  }
  readonly owner = new Map<bigint, bigint>();
  bufferCreate(ctx: bigint, bytes: number): [number, bigint] {
    if (!this.contexts.has(ctx)) return [Status.INVALID_HANDLE, 0n];
    const h = (this.#next += 0x100n);
    this.memory.set(h, new Uint8Array(bytes));
    this.owner.set(h, ctx);
    this.log.push(`buffer+ ${h}`);
    return [0, h];
  }
  bufferDestroy(h: bigint): void {
    if (!this.memory.delete(h)) throw new Error(`buffer ${h} destroyed twice`);
    this.owner.delete(h);
    this.log.push(`buffer- ${h}`);
  }
  bufferData(h: bigint): [number, bigint] {
    return [0, h + 0x10000000n]; // a "device address"
  }
  bufferUpload(h: bigint, offset: number, src: ArrayBufferView): number {
    this.memory.get(h)!.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), offset);
    return 0;
  }
  bufferDownload(h: bigint, offset: number, dst: ArrayBufferView): number {
    new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(this.memory.get(h)!.subarray(offset, offset + dst.byteLength));
    return 0;
  }
  forward(_h: bigint, frame: Frame): number {
    this.last = [...frame.views];
    return 0;
  }
  forwardAsync(_h: bigint, frame: Frame): Promise<AsyncOutcome> {
    this.last = [...frame.views];
    return new Promise((resolve) => this.pending.push(resolve));
  }
}

function fake(backendCode = 2): { driver: FakeDriver; ctx: ContextBase } {
  const driver = new FakeDriver();
  driver.backendCode = backendCode;
  const runtime = new Runtime(() => driver as unknown as Driver);
  return { driver, ctx: new ContextBase(runtime, { backend: backendCode === 2 ? 'cuda' : 'cpu', deviceIndex: backendCode === 2 ? 1 : 0 }) };
}

describe('device tensors', () => {
  it('are encoded with their device, device index and address', () => {
    const { ctx } = fake();
    const t = ctx.upload(tensor(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3]));
    expect(isDeviceTensor(t)).toBe(true);
    expect(t).toBeInstanceOf(DeviceTensor);
    expect(isDeviceTensor(tensor(new Float32Array(1), [1]))).toBe(false);
    expect([t.device, t.deviceIndex, t.byteLength]).toEqual(['cuda', 1, 24]);
    const frame = new Frame();
    encodeTensor(frame, Slot.K, t, 'k');
    const base = slotOffset(Slot.K);
    expect(frame.view.getInt32(base + Layout.tensor.device, true)).toBe(1);
    expect(frame.view.getInt32(base + Layout.tensor.deviceIndex, true)).toBe(1);
    expect(frame.view.getInt32(base + Layout.tensor.rank, true)).toBe(2);
    expect(frame.views[Slot.K]).toBe(t.pointer);
    expect(frame.buffers.length).toBe(1);
    frame.clear();
    expect(frame.buffers.length).toBe(0);
    expect(t.download().data).toEqual(Float32Array.from([1, 2, 3, 4, 5, 6]));
  });

  it('cannot be imitated, and refuse use once disposed', () => {
    const { ctx } = fake();
    const t = ctx.zeros('f32', [4]);
    const frame = new Frame();
    const imitation = Object.create(t, { shape: { value: [8] } }) as DeviceTensor;
    expect(isDeviceTensor(imitation)).toBe(false);
    expect(() => encodeTensor(frame, Slot.Q, imitation, 'q')).toThrow(/q: data must be a typed array \(or pass a DeviceTensor\)/);
    t.dispose();
    expect(() => encodeTensor(frame, Slot.Q, t, 'q')).toThrow(/q: this device tensor has been disposed/);
  });

  it('get outputs on the device from a call whose q is a device tensor', () => {
    const { ctx } = fake();
    const q = ctx.upload(tensor(new Float32Array(64), [1, 4, 2, 8]));
    const r = ctx.attention(q, q, q, { returnLse: true, outDtype: 'bf16' });
    expect(r.out).toBeInstanceOf(DeviceTensor);
    expect([r.out.dtype, r.out.shape, r.lse.shape]).toEqual(['bf16', [1, 4, 2, 8], [1, 2, 4]]);
    const host = ctx.attention(tensor(new Float32Array(64), [1, 4, 2, 8]), tensor(new Float32Array(64), [1, 4, 2, 8]), tensor(new Float32Array(64), [1, 4, 2, 8]));
    expect(host.out.data).toBeInstanceOf(Float32Array);
  });
});

describe('lifetimes', () => {
  it('disposing a context frees its buffers first, then the context, once', () => {
    const { driver, ctx } = fake();
    const a = ctx.zeros('f32', [4]);
    ctx.zeros('f32', [4]);
    driver.log.length = 0;
    ctx.dispose();
    ctx.dispose();
    expect(driver.log.map((l) => l.split(' ')[0])).toEqual(['buffer-', 'buffer-', 'context-']);
    expect(a.disposed).toBe(true);
    a.dispose(); // no second destroy
    expect(driver.log.length).toBe(3);
  });

  it('nothing a pending asynchronous call uses is freed before it settles', async () => {
    const { driver, ctx } = fake();
    const q = ctx.upload(tensor(new Float32Array(64), [1, 4, 2, 8]));
    const out = ctx.zeros('f32', [1, 4, 2, 8]);
    const call = ctx.attentionAsync(q, q, q, { out });
    await Promise.resolve();
    expect(driver.pending.length).toBe(1);
    driver.log.length = 0;
    q.dispose();
    out.dispose();
    ctx.dispose();
    expect(driver.log).toEqual([]);
    driver.pending[0]!({ status: 0 });
    const r = await call;
    expect(r.out).toBe(out);
    expect(driver.log.map((l) => l.split(' ')[0])).toEqual(['buffer-', 'buffer-', 'context-']);
  });

  it('a buffer of one context used by a call on another keeps its own context alive', async () => {
    const { driver, ctx: a } = fake();
    const b = new ContextBase(new Runtime(() => driver as unknown as Driver), { backend: 'cuda' });
    const t = a.upload(tensor(new Float32Array(64), [1, 4, 2, 8]));
    const out = b.zeros('f32', [1, 4, 2, 8]);
    const call = b.attentionAsync(t, t, t, { out });
    await Promise.resolve();
    driver.log.length = 0;
    a.dispose(); // t is in flight on b: a must wait
    expect(driver.log).toEqual([]);
    driver.pending[0]!({ status: 0 });
    await call;
    expect(driver.log.map((l) => l.split(' ')[0])).toEqual(['buffer-', 'context-']);
    b.dispose();
  });

  it('a failed call frees the device outputs it allocated', () => {
    const { driver, ctx } = fake();
    const q = ctx.upload(tensor(new Float32Array(64), [1, 4, 2, 8]));
    driver.forward = () => Status.SHAPE_MISMATCH;
    const before = driver.memory.size;
    expect(() => ctx.attention(q, q, q, { returnLse: true })).toThrow(UmfaError);
    expect(driver.memory.size).toBe(before);
  });

  it('CPU contexts make host-memory device tensors; synchronize() is a no-op there', () => {
    const { driver, ctx } = fake(1);
    const t = ctx.zeros('i32', [3]);
    expect([t.device, t.deviceIndex]).toEqual(['cpu', 0]);
    const buffers = driver.memory.size;
    ctx.synchronize();
    expect(driver.memory.size).toBe(buffers);
  });
});
