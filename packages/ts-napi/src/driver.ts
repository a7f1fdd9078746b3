import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  checkAbiVersion,
  checkEntryPoints,
  Frame,
  Slot,
  UmfaLoadError,
  type AsyncOutcome,
  type ClassicCall,
  type Driver,
} from '@umfa/api/internal';

type V = ArrayBufferView | bigint | undefined;

/** The functions the addon exports (native/umfa_napi.cc). */
interface Addon {
  abiVersionTargeted: number;
  load(path: string): { abiVersion: number; version: string; missing: string[] };
  abiVersion(): number;
  version(): number;
  versionString(): string;
  buildInfo(): string;
  statusString(status: number): string;
  backendAvailable(backend: number): [number, boolean, number];
  contextCreate(options: Uint8Array): [number, bigint];
  contextDestroy(handle: bigint): void;
  contextBackend(handle: bigint): [number, number];
  contextNumThreads(handle: bigint): [number, number];
  lastError(handle: bigint): string;
  bufferCreate(context: bigint, bytes: number): [number, bigint];
  bufferDestroy(buffer: bigint): void;
  bufferData(buffer: bigint): [number, bigint];
  bufferUpload(buffer: bigint, offset: number, src: ArrayBufferView): number;
  bufferDownload(buffer: bigint, offset: number, dst: ArrayBufferView): number;
  forward(h: bigint, f: ArrayBuffer, ...views: V[]): number;
  backward(h: bigint, f: ArrayBuffer, ...views: V[]): number;
  forwardAsync(h: bigint, f: ArrayBuffer, ...views: V[]): Promise<AsyncOutcome>;
  backwardAsync(h: bigint, f: ArrayBuffer, ...views: V[]): Promise<AsyncOutcome>;
  mfaCreateContext(): [number, bigint];
  mfaDestroyContext(handle: bigint): void;
  mfaForward(handle: bigint, q: ArrayBufferView, k: ArrayBufferView, v: ArrayBufferView, out: ArrayBufferView, ...rest: (number | boolean)[]): number;
  mfaErrorString(code: number): string;
  addressOf(data: ArrayBufferView): bigint;
  lastDataAddresses(): bigint[];
}

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Loads the compiled addon: a local build (`build/Release`) first, then the prebuilt one shipped
 * in `prebuilds/<platform>-<arch>/`.
 */
function loadAddon(): Addon {
  const require = createRequire(import.meta.url);
  const candidates = [
    join(packageRoot, 'build', 'Release', 'umfa_napi.node'),
    join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`, 'umfa_napi.node'),
  ];
  const tried: string[] = [];
  for (const p of candidates) {
    if (!existsSync(p)) {
      tried.push(`${p} (not found)`);
      continue;
    }
    try {
      return require(p) as Addon;
    } catch (e) {
      tried.push(`${p} (${(e as Error).message})`);
    }
  }
  throw new UmfaLoadError(
    `cannot load the @umfa/napi addon for ${process.platform}-${process.arch}. If you installed with ` +
      'pnpm, it may have skipped the package\'s install script ("Ignored build scripts"): run ' +
      '`pnpm approve-builds` (allow @umfa/napi) and `pnpm rebuild @umfa/napi`, or use @umfa/koffi, which ' +
      'needs no build step. Otherwise build the addon with `node scripts/build-addon.mjs` in the ' +
      'package (needs node-gyp, python3 and a C++17 compiler)',
    tried,
  );
}

/** The N-API implementation of the {@link Driver} contract. */
export class NapiDriver implements Driver {
  readonly kind = 'napi';
  readonly libraryPath: string;
  readonly #a: Addon;

  /**
   * Loads the addon and, through it, the library at `path`; checks the ABI version.
   *
   * @throws UmfaLoadError when either cannot be loaded or the ABI version differs
   */
  constructor(path: string, bindingName: string) {
    this.libraryPath = path;
    const a = loadAddon();
    let info: { abiVersion: number; version: string; missing: string[] };
    try {
      info = a.load(path);
    } catch (e) {
      throw new UmfaLoadError((e as Error).message);
    }
    checkAbiVersion(info.abiVersion, path, bindingName, info.version);
    checkEntryPoints(path, info.missing);
    this.#a = a;
  }

  abiVersion(): number {
    return this.#a.abiVersion();
  }
  version(): number {
    return this.#a.version();
  }
  versionString(): string {
    return this.#a.versionString();
  }
  buildInfo(): string {
    return this.#a.buildInfo();
  }
  statusString(status: number): string {
    return this.#a.statusString(status);
  }
  backendAvailable(backend: number): [number, boolean, number] {
    return this.#a.backendAvailable(backend);
  }
  contextCreate(options: Uint8Array): [number, bigint] {
    return this.#a.contextCreate(options);
  }
  contextDestroy(handle: bigint): void {
    this.#a.contextDestroy(handle);
  }
  contextBackend(handle: bigint): [number, number] {
    return this.#a.contextBackend(handle);
  }
  contextNumThreads(handle: bigint): [number, number] {
    return this.#a.contextNumThreads(handle);
  }
  lastError(handle: bigint): string {
    return this.#a.lastError(handle);
  }
  bufferCreate(context: bigint, bytes: number): [number, bigint] {
    return this.#a.bufferCreate(context, bytes);
  }
  bufferDestroy(buffer: bigint): void {
    this.#a.bufferDestroy(buffer);
  }
  bufferData(buffer: bigint): [number, bigint] {
    return this.#a.bufferData(buffer);
  }
  bufferUpload(buffer: bigint, offset: number, src: ArrayBufferView): number {
    return this.#a.bufferUpload(buffer, offset, src);
  }
  bufferDownload(buffer: bigint, offset: number, dst: ArrayBufferView): number {
    return this.#a.bufferDownload(buffer, offset, dst);
  }
  forward(handle: bigint, frame: Frame): number {
    const v = frame.views;
    return this.#a.forward(handle, frame.buffer, v[Slot.Q], v[Slot.K], v[Slot.V], v[Slot.OUT], v[Slot.LSE], undefined, undefined, undefined, undefined, v[Slot.MASK], v[Slot.ALIBI], v[Slot.CU_SEQLENS_Q], v[Slot.CU_SEQLENS_K]);
  }
  backward(handle: bigint, frame: Frame): number {
    const v = frame.views;
    return this.#a.backward(handle, frame.buffer, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12]);
  }
  forwardAsync(handle: bigint, frame: Frame): Promise<AsyncOutcome> {
    const v = frame.views;
    return this.#a.forwardAsync(handle, frame.buffer, v[Slot.Q], v[Slot.K], v[Slot.V], v[Slot.OUT], v[Slot.LSE], undefined, undefined, undefined, undefined, v[Slot.MASK], v[Slot.ALIBI], v[Slot.CU_SEQLENS_Q], v[Slot.CU_SEQLENS_K]);
  }
  backwardAsync(handle: bigint, frame: Frame): Promise<AsyncOutcome> {
    const v = frame.views;
    return this.#a.backwardAsync(handle, frame.buffer, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12]);
  }
  mfaCreateContext(): [number, bigint] {
    return this.#a.mfaCreateContext();
  }
  mfaDestroyContext(handle: bigint): void {
    this.#a.mfaDestroyContext(handle);
  }
  mfaForward(handle: bigint, q: ArrayBufferView, k: ArrayBufferView, v: ArrayBufferView, out: ArrayBufferView, c: ClassicCall): number {
    return this.#a.mfaForward(
      handle, q, k, v, out,
      c.batch, c.seqLenQ, c.seqLenKV, c.heads, c.headDim, c.softmaxScale, c.causal,
      c.inputPrecision, c.intermediatePrecision, c.outputPrecision, ...c.transpose,
    );
  }
  mfaErrorString(code: number): string {
    return this.#a.mfaErrorString(code);
  }
  addressOf(data: ArrayBufferView): bigint {
    return this.#a.addressOf(data);
  }
  lastDataAddresses(): bigint[] {
    return this.#a.lastDataAddresses();
  }
}
