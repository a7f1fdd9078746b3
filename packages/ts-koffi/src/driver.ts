import * as koffi from 'koffi';
import {
  byteLengthOf,
  checkAbiVersion,
  checkEntryPoints,
  Frame,
  RELOCATED_OPTION_FIELDS,
  Slot,
  SLOT_COUNT,
  slotOffset,
  UmfaLoadError,
  type AsyncOutcome,
  type ClassicCall,
  type Driver,
} from '@umfa/api/internal';

type NativeFn = ReturnType<koffi.LibraryHandle['func']>;

/** Async calls koffi may have queued at once (its own limit is 256); the rest wait here. */
const MAX_ASYNC_IN_FLIGHT = 64;

/** Per-frame addresses, computed once per frame. */
interface FrameAddresses {
  base: bigint;
  slots: bigint[];
}

const frameAddresses = new WeakMap<Frame, FrameAddresses>();

/**
 * Library-owned memory whose address stands in the `data` field of views that need no bytes
 * (empty ones, and those the core refuses for negative extents or strides without reading them):
 * never the frame, never caller memory.
 */
const placeholder = new BigUint64Array(8);
let placeholderAddress: bigint | undefined;

/**
 * The koffi implementation of the {@link Driver} contract: every C entry point declared with
 * koffi, pointers passed as `bigint` addresses, typed arrays' memory handed over in place.
 */
export class KoffiDriver implements Driver {
  readonly kind = 'koffi';
  readonly libraryPath: string;
  readonly #fn: Record<string, NativeFn>;
  readonly #out64 = new BigUint64Array(2);
  readonly #out32 = new Int32Array(2);
  #lastFrame: Frame | undefined;
  #lastPresent = 0;
  #inflight = 0;
  readonly #waiting: (() => void)[] = [];

  /**
   * Loads the library at `path` and checks its ABI version.
   *
   * @throws UmfaLoadError when it cannot be loaded or has another ABI version
   */
  constructor(path: string, bindingName: string) {
    this.libraryPath = path;
    let lib: koffi.LibraryHandle;
    try {
      lib = koffi.load(path);
    } catch (e) {
      throw new UmfaLoadError(`cannot load ${path}: ${(e as Error).message}`);
    }
    let abi: number;
    let versionString: string | undefined;
    try {
      abi = (lib.func('uint32_t umfa_abi_version(void)') as () => number)();
    } catch (e) {
      throw new UmfaLoadError(`${path} is not a umfa library (no umfa_abi_version): ${(e as Error).message}`);
    }
    try {
      versionString = (lib.func('const char *umfa_version_string(void)') as () => string)();
    } catch {
      versionString = undefined;
    }
    checkAbiVersion(abi, path, bindingName, versionString);
    const decls: Record<string, string> = {
      abiVersion: 'uint32_t umfa_abi_version(void)',
      version: 'uint32_t umfa_version(void)',
      versionString: 'const char *umfa_version_string(void)',
      buildInfo: 'const char *umfa_build_info(void)',
      statusString: 'const char *umfa_status_string(int32_t status)',
      backendAvailable: 'int32_t umfa_backend_available(uint32_t backend, void *available, void *count)',
      contextCreate: 'int32_t umfa_context_create(void *options, void *out)',
      contextDestroy: 'void umfa_context_destroy(void *ctx)',
      contextBackend: 'int32_t umfa_context_backend(void *ctx, void *out)',
      contextNumThreads: 'int32_t umfa_context_num_threads(void *ctx, void *out)',
      lastError: 'const char *umfa_last_error(void *ctx)',
      bufferCreate: 'int32_t umfa_buffer_create(void *ctx, uint64_t size, void *out)',
      bufferDestroy: 'void umfa_buffer_destroy(void *buf)',
      bufferData: 'int32_t umfa_buffer_data(void *buf, void *out)',
      bufferUpload: 'int32_t umfa_buffer_upload(void *buf, uint64_t offset, void *src, uint64_t size)',
      bufferDownload: 'int32_t umfa_buffer_download(void *buf, uint64_t offset, void *dst, uint64_t size)',
      forward: 'int32_t umfa_attention_forward(void *ctx, void *opts, void *q, void *k, void *v, void *out, void *lse)',
      backward:
        'int32_t umfa_attention_backward(void *ctx, void *opts, void *q, void *k, void *v, void *out, void *dout, void *lse, void *dq, void *dk, void *dv)',
      mfaCreateContext: 'int mfa_create_context(void *out)',
      mfaDestroyContext: 'void mfa_destroy_context(void *ctx)',
      mfaBufferFromPtr: 'int mfa_buffer_from_ptr(void *ctx, void *data, size_t size, void *out)',
      mfaDestroyBuffer: 'void mfa_destroy_buffer(void *buf)',
      mfaForward:
        'int mfa_attention_forward(void *ctx, void *q, void *k, void *v, void *out, uint32_t batch, uint32_t seq_q, uint32_t seq_kv, uint32_t heads, uint16_t head_dim, float scale, bool causal, int ip, int imp, int op, bool tq, bool tk, bool tv, bool to)',
      mfaErrorString: 'const char *mfa_error_string(int code)',
    };
    this.#fn = {};
    const missing: string[] = [];
    for (const [key, decl] of Object.entries(decls)) {
      try {
        this.#fn[key] = lib.func(decl);
      } catch {
        missing.push(/(\w+)\(/.exec(decl)?.[1] ?? decl);
      }
    }
    checkEntryPoints(path, missing);
  }

  abiVersion(): number {
    return this.#fn['abiVersion']!() as number;
  }
  version(): number {
    return this.#fn['version']!() as number;
  }
  versionString(): string {
    return this.#fn['versionString']!() as string;
  }
  buildInfo(): string {
    return this.#fn['buildInfo']!() as string;
  }
  statusString(status: number): string {
    return this.#fn['statusString']!(status) as string;
  }
  backendAvailable(backend: number): [number, boolean, number] {
    const out = this.#out32;
    out.fill(0);
    const status = this.#fn['backendAvailable']!(backend, out.subarray(0, 1), out.subarray(1, 2)) as number;
    return [status, out[0] !== 0, out[1] as number];
  }
  contextCreate(options: Uint8Array): [number, bigint] {
    const out = this.#out64;
    out[0] = 0n;
    const status = this.#fn['contextCreate']!(options, out) as number;
    return [status, out[0] as bigint];
  }
  contextDestroy(handle: bigint): void {
    this.#fn['contextDestroy']!(handle);
  }
  contextBackend(handle: bigint): [number, number] {
    const out = this.#out32;
    out[0] = 0;
    const status = this.#fn['contextBackend']!(handle, out) as number;
    return [status, out[0] as number];
  }
  contextNumThreads(handle: bigint): [number, number] {
    const out = this.#out32;
    out[0] = 0;
    const status = this.#fn['contextNumThreads']!(handle, out) as number;
    return [status, out[0] as number];
  }
  lastError(handle: bigint): string {
    return (this.#fn['lastError']!(handle === 0n ? null : handle) as string | null) ?? '';
  }
  bufferCreate(context: bigint, bytes: number): [number, bigint] {
    const out = this.#out64;
    out[0] = 0n;
    const status = this.#fn['bufferCreate']!(context, bytes, out) as number;
    return [status, out[0] as bigint];
  }
  bufferDestroy(buffer: bigint): void {
    this.#fn['bufferDestroy']!(buffer);
  }
  bufferData(buffer: bigint): [number, bigint] {
    const out = this.#out64;
    out[0] = 0n;
    const status = this.#fn['bufferData']!(buffer, out) as number;
    return [status, out[0] as bigint];
  }
  bufferUpload(buffer: bigint, offset: number, src: ArrayBufferView): number {
    const length = byteLengthOf(src);
    return this.#fn['bufferUpload']!(buffer, offset, length === 0 ? null : koffi.address(src), length) as number;
  }
  bufferDownload(buffer: bigint, offset: number, dst: ArrayBufferView): number {
    const length = byteLengthOf(dst);
    return this.#fn['bufferDownload']!(buffer, offset, length === 0 ? null : koffi.address(dst), length) as number;
  }

  /**
   * Patches a frame's addresses in: option pointers into the frame (tensor slots, the message
   * buffer), and each slot's data pointer.
   */
  #relocate(frame: Frame): FrameAddresses {
    let addrs = frameAddresses.get(frame);
    if (addrs === undefined) {
      const base = koffi.address(frame.buffer);
      const slots = new Array<bigint>(SLOT_COUNT);
      for (let i = 0; i < SLOT_COUNT; i++) slots[i] = base + BigInt(slotOffset(i));
      addrs = { base, slots };
      frameAddresses.set(frame, addrs);
    }
    const v = frame.view;
    for (const field of RELOCATED_OPTION_FIELDS) {
      const off = v.getUint32(field, true);
      if (off !== 0) v.setBigUint64(field, addrs.base + BigInt(off), true);
    }
    const views = frame.views;
    let present = 0;
    for (let i = 0; i < SLOT_COUNT; i++) {
      const data = views[i];
      if (data === undefined) continue;
      present |= 1 << i;
      let address: bigint;
      if (typeof data === 'bigint') {
        address = data;
      } else {
        const needed = frame.needed[i] as number;
        if (needed === 0) {
          address = placeholderAddress ??= koffi.address(placeholder);
        } else {
          // The shared code checked this immediately before; nothing of the caller's ran since.
          if (byteLengthOf(data) < needed) throw new RangeError(`umfa: ${frame.roles[i]} no longer covers ${needed} bytes`);
          address = koffi.address(data);
        }
      }
      v.setBigUint64(slotOffset(i), address, true);
    }
    this.#lastFrame = frame;
    this.#lastPresent = present;
    return addrs;
  }

  #forwardArgs(handle: bigint, frame: Frame): unknown[] {
    const a = this.#relocate(frame);
    const s = a.slots;
    return [handle, a.base, s[Slot.Q], s[Slot.K], s[Slot.V], s[Slot.OUT], frame.views[Slot.LSE] ? s[Slot.LSE] : null];
  }

  #backwardArgs(handle: bigint, frame: Frame): unknown[] {
    const a = this.#relocate(frame);
    const s = a.slots;
    const p = (slot: number) => (frame.views[slot] ? s[slot] : null);
    return [
      handle,
      a.base,
      p(Slot.Q),
      p(Slot.K),
      p(Slot.V),
      p(Slot.OUT),
      p(Slot.DOUT),
      p(Slot.LSE),
      p(Slot.DQ),
      p(Slot.DK),
      p(Slot.DV),
    ];
  }

  forward(handle: bigint, frame: Frame): number {
    const a = this.#relocate(frame);
    const s = a.slots;
    const views = frame.views;
    return this.#fn['forward']!(
      handle,
      a.base,
      views[Slot.Q] ? s[Slot.Q] : null,
      views[Slot.K] ? s[Slot.K] : null,
      views[Slot.V] ? s[Slot.V] : null,
      views[Slot.OUT] ? s[Slot.OUT] : null,
      views[Slot.LSE] ? s[Slot.LSE] : null,
    ) as number;
  }

  backward(handle: bigint, frame: Frame): number {
    return this.#fn['backward']!(...this.#backwardArgs(handle, frame)) as number;
  }

  forwardAsync(handle: bigint, frame: Frame): Promise<AsyncOutcome> {
    return this.#async('forward', () => this.#forwardArgs(handle, frame), frame);
  }

  backwardAsync(handle: bigint, frame: Frame): Promise<AsyncOutcome> {
    return this.#async('backward', () => this.#backwardArgs(handle, frame), frame);
  }

  async #async(name: string, args: () => unknown[], frame: Frame): Promise<AsyncOutcome> {
    // At most MAX_ASYNC_IN_FLIGHT calls are handed to koffi; a finished call passes its slot
    // straight to the oldest waiting one.
    if (this.#inflight < MAX_ASYNC_IN_FLIGHT) this.#inflight++;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      const fn = this.#fn[name]!;
      const status = await new Promise<number>((resolve, reject) => {
        // `frame` (and through it every typed array) stays referenced by this closure until
        // the worker thread is done with it.
        fn.async(...args(), (err: unknown, res: number) => {
          void frame;
          if (err) reject(err as Error);
          else resolve(res);
        });
      });
      return { status };
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#inflight--;
    }
  }

  mfaCreateContext(): [number, bigint] {
    const out = this.#out64;
    out[0] = 0n;
    const code = this.#fn['mfaCreateContext']!(out) as number;
    return [code, out[0] as bigint];
  }
  mfaDestroyContext(handle: bigint): void {
    this.#fn['mfaDestroyContext']!(handle);
  }
  mfaForward(
    handle: bigint,
    q: ArrayBufferView,
    k: ArrayBufferView,
    v: ArrayBufferView,
    out: ArrayBufferView,
    c: ClassicCall,
  ): number {
    const wrap = this.#fn['mfaBufferFromPtr']!;
    const destroy = this.#fn['mfaDestroyBuffer']!;
    const handles: bigint[] = [];
    const slot = new BigUint64Array(1);
    try {
      for (const data of [q, k, v, out]) {
        slot[0] = 0n;
        const length = byteLengthOf(data);
        const code = wrap(handle, length === 0 ? null : koffi.address(data), length, slot) as number;
        if (code !== 0) return code;
        handles.push(slot[0] as bigint);
      }
      const [tq, tk, tv, to] = c.transpose;
      return this.#fn['mfaForward']!(
        handle,
        handles[0],
        handles[1],
        handles[2],
        handles[3],
        c.batch,
        c.seqLenQ,
        c.seqLenKV,
        c.heads,
        c.headDim,
        c.softmaxScale,
        c.causal,
        c.inputPrecision,
        c.intermediatePrecision,
        c.outputPrecision,
        tq,
        tk,
        tv,
        to,
      ) as number;
    } finally {
      for (const h of handles) destroy(h);
    }
  }
  mfaErrorString(code: number): string {
    return this.#fn['mfaErrorString']!(code) as string;
  }
  addressOf(data: ArrayBufferView): bigint {
    return koffi.address(data);
  }
  lastDataAddresses(): bigint[] {
    const f = this.#lastFrame;
    const out = new Array<bigint>(SLOT_COUNT).fill(0n);
    if (f === undefined) return out;
    for (let i = 0; i < SLOT_COUNT; i++) {
      if (this.#lastPresent & (1 << i)) out[i] = f.view.getBigUint64(slotOffset(i), true);
    }
    return out;
  }
}
