// The suite both TypeScript bindings run (vitest projects `koffi` and `napi`): every conformance
// vector, the bad-input cases, async calls, lifetimes, zero-copy and the ABI check.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type * as Koffi from '@umfa/koffi/internal';
import { npyData, readNpy } from './npy.js';

type Binding = typeof Koffi;
type Tensor = Koffi.Tensor;
type DType = Koffi.DType;

const which = process.env['UMFA_TS_BINDING'] === 'napi' ? 'napi' : 'koffi';
const packageName = `@umfa/${which}`;
const u: Binding = (await import(`${packageName}/internal`)) as Binding;
const { Status, UmfaError } = u;

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..', '..');
const conformanceDir = join(repo, 'conformance');

// ---------------------------------------------------------------------------------------------
// Conformance vectors

interface Entry {
  file: string;
  dtype: DType;
  shape: number[];
  storage_order: number[];
  strides: number[];
}
interface Tol {
  atol: number;
  rtol: number;
}
interface Case {
  id: string;
  description: string;
  dtype: DType;
  out_dtype: DType;
  backward: boolean;
  varlen: boolean;
  tolerances: Record<string, Tol>;
  options: {
    mask_mode: number;
    softmax_scale: number;
    softcap: number;
    has_window: number;
    flags: number;
    window_left: number;
    window_right: number;
    max_seqlen_q: number;
    max_seqlen_k: number;
    attn_mask: Entry | null;
    alibi_slopes: Entry | null;
    cu_seqlens_q: Entry | null;
    cu_seqlens_k: Entry | null;
  };
  inputs: Record<string, Entry>;
  expected: Record<string, Entry>;
}

const manifest = JSON.parse(readFileSync(join(conformanceDir, 'manifest.json'), 'utf8')) as {
  format_version: number;
  cases: Case[];
};

function readSkipList(path: string): Map<string, string> {
  const skips = new Map<string, string>();
  for (const raw of readFileSync(path, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+)\s+(.*)$/.exec(line);
    skips.set(m ? (m[1] as string) : line, m ? (m[2] as string) : 'no reason given');
  }
  return skips;
}
const skipList = readSkipList(join(here, `skip-${which}.txt`));
function skipReason(id: string): string | undefined {
  for (const [pat, reason] of skipList) {
    if (pat.endsWith('*') ? id.startsWith(pat.slice(0, -1)) : id === pat) return reason;
  }
  return undefined;
}

function loadInput(e: Entry): Tensor {
  const data = npyData(readNpy(join(conformanceDir, e.file)));
  return u.tensor(data, e.shape, { dtype: e.dtype, strides: e.strides });
}

const NAN_BITS: Record<string, number> = { f16: 0x7e00, bf16: 0x7fc0 };

/** A NaN-filled output with the expected entry's dtype, shape and strides. */
function makeOutput(e: Entry): Tensor {
  const n = u.numel(e.shape);
  const data = u.allocData(e.dtype, n);
  if (data instanceof Float32Array) data.fill(NaN);
  else if (data instanceof Uint16Array) data.fill(NAN_BITS[e.dtype] ?? 0);
  return u.tensor(data, e.shape, { dtype: e.dtype, strides: e.strides });
}

/** Compares an output buffer with the expected file, element by element in storage order. */
function compare(name: string, got: Tensor, e: Entry, tol: Tol): string | undefined {
  const want = new Float32Array(readNpy(join(conformanceDir, e.file)).bytes);
  const g = u.toFloat32Array(got.data, got.dtype);
  if (g.length !== want.length) return `${name}: ${g.length} elements, expected ${want.length}`;
  let worst = 0;
  let where = -1;
  for (let i = 0; i < want.length; i++) {
    const w = want[i] as number;
    const x = g[i] as number;
    let ratio: number;
    if (Number.isNaN(x)) ratio = Infinity;
    else if (!Number.isFinite(w)) ratio = x === w ? 0 : Infinity;
    else ratio = Math.abs(x - w) / (tol.atol + tol.rtol * Math.abs(w));
    if (ratio > worst) {
      worst = ratio;
      where = i;
    }
  }
  if (worst > 1) return `${name}[${where}] = ${g[where]}, expected ${want[where]} (error/tolerance ${worst.toFixed(2)})`;
  return undefined;
}

function caseOptions(c: Case): Koffi.AttentionOptions {
  const o = c.options;
  const opts: Koffi.AttentionOptions = {
    maskMode: o.mask_mode,
    scale: o.softmax_scale,
    softcap: o.softcap,
    deterministic: (o.flags & 1) !== 0,
    maxSeqlenQ: o.max_seqlen_q,
    maxSeqlenK: o.max_seqlen_k,
  };
  if (o.has_window) opts.window = [o.window_left, o.window_right];
  if (o.attn_mask) opts.attnMask = loadInput(o.attn_mask);
  if (o.alibi_slopes) opts.alibiSlopes = loadInput(o.alibi_slopes);
  if (o.cu_seqlens_q) opts.cuSeqlensQ = loadInput(o.cu_seqlens_q);
  if (o.cu_seqlens_k) opts.cuSeqlensK = loadInput(o.cu_seqlens_k);
  return opts;
}

const tally = { passed: 0, failed: 0, skipped: 0 };

describe(`${packageName}: conformance vectors`, () => {
  expect(manifest.format_version).toBe(1);
  let ctx: Koffi.Context;
  beforeAll(() => {
    ctx = new u.Context({ backend: 'cpu' });
  });
  afterAll(() => {
    ctx.dispose();
    console.log(`${packageName} conformance: ${tally.passed} passed, ${tally.failed} failed, ${tally.skipped} skipped`);
  });

  for (const c of manifest.cases) {
    const reason = skipReason(c.id);
    if (reason !== undefined) {
      it.skip(`${c.id} (skipped: ${reason})`, () => {});
      tally.skipped++;
      console.log(`SKIP ${c.id}: ${reason}`);
      continue;
    }
    it(c.id, () => {
      try {
        const q = loadInput(c.inputs['q'] as Entry);
        const k = loadInput(c.inputs['k'] as Entry);
        const v = loadInput(c.inputs['v'] as Entry);
        const opts = caseOptions(c);
        const out = makeOutput(c.expected['out'] as Entry);
        const lse = makeOutput(c.expected['lse'] as Entry);
        const r = ctx.attention(q, k, v, { ...opts, out, lse });
        expect(r.out).toBe(out);
        expect(r.lse).toBe(lse);
        const failures: string[] = [];
        for (const [name, t] of [['out', out], ['lse', lse]] as const) {
          const f = compare(name, t, c.expected[name] as Entry, c.tolerances[name] as Tol);
          if (f) failures.push(f);
        }
        if (c.backward) {
          const dout = loadInput(c.inputs['dout'] as Entry);
          const dq = makeOutput(c.expected['dq'] as Entry);
          const dk = makeOutput(c.expected['dk'] as Entry);
          const dv = makeOutput(c.expected['dv'] as Entry);
          const g = ctx.attentionBackward(q, k, v, out, dout, lse, { ...opts, dq, dk, dv });
          expect(g.dq).toBe(dq);
          for (const [name, t] of [['dq', dq], ['dk', dk], ['dv', dv]] as const) {
            const f = compare(name, t, c.expected[name] as Entry, c.tolerances[name] as Tol);
            if (f) failures.push(f);
          }
        }
        expect(failures, c.description).toEqual([]);
        tally.passed++;
      } catch (e) {
        tally.failed++;
        throw e;
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Helpers for hand-written cases

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

function bshdRand(b: number, s: number, h: number, d: number, seed: number): Tensor {
  return u.bshd(rand(b * s * h * d, seed), [b, s, h, d]);
}

const SENTINEL = 12345.5;
function sentinelOut(shape: number[]): Tensor {
  return u.tensor(new Float32Array(u.numel(shape)).fill(SENTINEL), shape);
}
function untouched(t: Tensor): boolean {
  return (t.data as Float32Array).every((x) => x === SENTINEL);
}

/** Runs `f`, expects an UmfaError with `status`, and checks the outputs were not written. */
function expectRejected(status: number, f: (out: Tensor, lse: Tensor) => unknown, outShape = [1, 4, 2, 8], lseShape = [1, 2, 4]): void {
  const out = sentinelOut(outShape);
  const lse = sentinelOut(lseShape);
  let err: unknown;
  try {
    f(out, lse);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(UmfaError);
  const ue = err as InstanceType<typeof UmfaError>;
  expect({ status: ue.statusName, message: ue.message }).toMatchObject({ status: u.statusName(status) });
  expect(ue.code).toBe(`UMFA_STATUS_${u.statusName(status)}`);
  expect(ue.message.length).toBeGreaterThan(0);
  expect(untouched(out)).toBe(true);
  expect(untouched(lse)).toBe(true);
}

// ---------------------------------------------------------------------------------------------

describe(`${packageName}: library`, () => {
  it('reports versions and backends', () => {
    expect(u.version()).toMatch(/^\d+\.\d+\.\d+/);
    expect(u.abiVersion()).toBe(u.ABI_VERSION);
    const b = u.backends();
    expect(b.find((x) => x.name === 'cpu')).toEqual({ name: 'cpu', available: true, deviceCount: 1 });
    expect(b.map((x) => x.name)).toEqual(['cpu', 'cuda', 'metal']);
    expect(u.buildInfo().length).toBeGreaterThan(0);
    expect(existsSync(u.libraryPath())).toBe(true);
  });

  it("selects 'metal': BACKEND_UNAVAILABLE naming Metal where the library has none", () => {
    const metal = u.backends().find((x) => x.name === 'metal');
    if (metal?.available) {
      using ctx = new u.Context({ backend: 'metal' });
      expect(ctx.backend).toBe('metal');
      return;
    }
    expect(metal).toEqual({ name: 'metal', available: false, deviceCount: 0 });
    let err: unknown;
    try {
      new u.Context({ backend: 'metal' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UmfaError);
    expect((err as InstanceType<typeof UmfaError>).status).toBe(Status.BACKEND_UNAVAILABLE);
    expect((err as Error).message).toContain('Metal');
  });

  it('context reports backend and threads', () => {
    const ctx = new u.Context({ backend: 'cpu', numThreads: 2 });
    expect(ctx.backend).toBe('cpu');
    expect(ctx.numThreads).toBe(2);
    expect(typeof ctx.nativeHandle).toBe('bigint');
    ctx.dispose();
  });

  it('refuses a library with another ABI version, with a clear message', () => {
    const dir = mkdtempSync(join(tmpdir(), 'umfa-abi-'));
    try {
      const src = join(dir, 'fake.c');
      require_('node:fs').writeFileSync(
        src,
        '#include <stdint.h>\nuint32_t umfa_abi_version(void){return 99;}\nconst char* umfa_version_string(void){return "9.0.0";}\n',
      );
      execFileSync('cc', ['-shared', '-fPIC', '-o', join(dir, 'libumfa.so.1'), src]);
      const entry = fileURLToPath(import.meta.resolve(packageName));
      const script = `import(${JSON.stringify(entry)}).then(u => { try { u.version(); console.log('LOADED'); } catch (e) { console.log(e.name + ': ' + e.message); } })`;
      const r = spawnSync(process.execPath, ['-e', script], {
        env: { ...process.env, UMFA_LIB_DIR: dir },
        encoding: 'utf8',
      });
      expect(r.stdout).toContain('UmfaLoadError');
      expect(r.stdout).toContain('ABI version 99');
      expect(r.stdout).toContain(`targets ABI version ${u.ABI_VERSION}`);
      expect(r.stdout).toContain(join(dir, 'libumfa.so.1'));
      expect(r.stdout).not.toContain('LOADED');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails at import on a platform without a native package, naming it and the ways out', () => {
    const entry = fileURLToPath(import.meta.resolve(packageName));
    // The binding's driver (and with it the FFI package, koffi, which picks its own native build
    // by platform) is loaded first, on the real platform: only umfa's platform check is under test.
    const driver = pathToFileURL(join(dirname(entry), 'driver.js')).href;
    const script = `import(${JSON.stringify(driver)}).then(() => {
      Object.defineProperty(process, 'platform', { value: 'freebsd' });
      return import(${JSON.stringify(entry)}); }).then(() => console.log('IMPORTED'), (e) => console.log(JSON.stringify({ name: e.name, message: e.message })));`;
    const env = { ...process.env };
    delete env['NODE_PATH'];
    delete env['UMFA_LIB_DIR'];
    const r = spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8' });
    expect(r.stdout).not.toContain('IMPORTED');
    const err = JSON.parse(r.stdout.trim().split('\n').pop() as string) as { name: string; message: string };
    expect(err.name).toBe('UmfaLoadError');
    expect(err.message).toContain('freebsd-x64');
    expect(err.message).toContain('scripts/build-native.sh');
    expect(err.message).toContain('UMFA_LIB_DIR');
    // With a library named by UMFA_LIB_DIR (a build from source), the same import succeeds.
    const lib = dirname(u.libraryPath());
    const ok = spawnSync(process.execPath, ['-e', script], { env: { ...env, UMFA_LIB_DIR: lib }, encoding: 'utf8' });
    expect(ok.stdout).toContain('IMPORTED');
  });

  it('lists what it tried when no library is found', () => {
    // In a child process without NODE_PATH (package managers' shims set it to their store).
    const entry = fileURLToPath(import.meta.resolve(`${packageName}/internal`)); // findNativeLibrary is internal
    const script = `import(${JSON.stringify(entry)}).then(u => { try { u.findNativeLibrary({ from: 'file:///nonexistent/dir/index.js', env: {} }); console.log('FOUND'); } catch (e) { console.log(JSON.stringify({ name: e.name, tried: e.tried })); } })`;
    const env = { ...process.env };
    delete env['NODE_PATH'];
    const r = spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8' });
    const result = JSON.parse(r.stdout) as { name: string; tried: string[] };
    expect(result.name).toBe('UmfaLoadError');
    expect(result.tried.length).toBe(3);
    expect(result.tried[0]).toContain('UMFA_LIB_DIR');
    expect(result.tried[1]).toContain('workspace');
    expect(result.tried[2]).toContain(u.platformPackageName());
  });

  it('prefers UMFA_LIB_DIR', () => {
    const libDir = dirname(u.libraryPath());
    const found = u.findNativeLibrary({ from: import.meta.url, env: { UMFA_LIB_DIR: libDir } });
    expect(found.source).toBe('UMFA_LIB_DIR');
    const fallback = u.findNativeLibrary({ from: import.meta.url, env: { UMFA_LIB_DIR: '/nonexistent' } });
    expect(fallback.source).not.toBe('UMFA_LIB_DIR');
    expect(fallback.tried[0]).toContain('/nonexistent');
  });
});

const require_ = createRequire(import.meta.url);

describe(`${packageName}: forward and backward`, () => {
  it('matches a BSHD copy when given a BHSD view (no copy)', () => {
    const [B, H, S, D] = [2, 3, 5, 8];
    const bhsdData = rand(B * H * S * D, 7);
    const view = u.bhsd(bhsdData, [B, H, S, D]);
    const dense = u.bshd(u.toFloat32(view), [B, S, H, D]);
    const a = u.attention(view, view, view, { causal: true });
    const b = u.attention(dense, dense, dense, { causal: true });
    expect(Array.from(a.out.data as Float32Array)).toEqual(Array.from(b.out.data as Float32Array));
  });

  it('computes GQA, LSE and gradients with allocated outputs', () => {
    const q = bshdRand(1, 6, 4, 16, 1);
    const k = bshdRand(1, 7, 2, 16, 2);
    const v = bshdRand(1, 7, 2, 16, 3);
    const { out, lse } = u.attention(q, k, v, { returnLse: true, causal: 'bottom-right' });
    expect(out.shape).toEqual([1, 6, 4, 16]);
    expect(lse?.shape).toEqual([1, 4, 6]);
    const dout = bshdRand(1, 6, 4, 16, 4);
    const g = u.attentionBackward(q, k, v, out, dout, lse as Tensor, { causal: 'bottom-right' });
    expect(g.dq.shape).toEqual(q.shape);
    expect(g.dk.shape).toEqual(k.shape);
    expect(g.dv.shape).toEqual(v.shape);
    expect((g.dk.data as Float32Array).some((x) => x !== 0)).toBe(true);
  });

  it('takes f16 and bf16 (Uint16Array bits) and converts exactly', () => {
    const vals = rand(1 * 4 * 2 * 8, 9);
    const f16 = u.f32ToF16(vals);
    const bf16 = u.f32ToBf16(vals);
    expect(Array.from(u.f16ToF32(u.f32ToF16([1, -2, 0.5, 65504, 1e-7]))).map((x) => +x.toPrecision(6))).toEqual([1, -2, 0.5, 65504, 1.19209e-7]);
    expect(u.f32ToF16([70000])[0]).toBe(0x7c00);
    expect(Array.from(u.bf16ToF32(u.f32ToBf16([1, -3, 0.15625])))).toEqual([1, -3, 0.15625]);
    const r16 = u.attention(u.bshd(f16, [1, 4, 2, 8], 'f16'), u.bshd(f16, [1, 4, 2, 8], 'f16'), u.bshd(f16, [1, 4, 2, 8], 'f16'));
    expect(r16.out.dtype).toBe('f16');
    expect(r16.out.data).toBeInstanceOf(Uint16Array);
    const rb = u.attention(u.bshd(bf16, [1, 4, 2, 8], 'bf16'), u.bshd(bf16, [1, 4, 2, 8], 'bf16'), u.bshd(bf16, [1, 4, 2, 8], 'bf16'), { outDtype: 'f32' });
    expect(rb.out.dtype).toBe('f32');
    const ref = u.attention(u.bshd(u.f16ToF32(f16), [1, 4, 2, 8]), u.bshd(u.f16ToF32(f16), [1, 4, 2, 8]), u.bshd(u.f16ToF32(f16), [1, 4, 2, 8]));
    const a = u.toFloat32(r16.out);
    const b = ref.out.data as Float32Array;
    for (let i = 0; i < a.length; i++) expect(Math.abs((a[i] as number) - (b[i] as number))).toBeLessThan(2e-3);
    if (u.hasFloat16Array) {
      const F16 = u.Float16ArrayCtor as NonNullable<typeof u.Float16ArrayCtor>;
      const native = new F16(vals.length) as unknown as Float32Array;
      native.set(vals);
      const t = u.bshd(native as unknown as ArrayBufferView, [1, 4, 2, 8]);
      expect(t.dtype).toBe('f16');
      expect(u.attention(t, t, t).out.data).toBeInstanceOf(F16);
    }
  });

  it('classic API matches the umfa API (top-left causal)', () => {
    const q = bshdRand(2, 5, 2, 16, 11);
    const k = bshdRand(2, 7, 2, 16, 12);
    const v = bshdRand(2, 7, 2, 16, 13);
    const ctx = new u.MFAContext();
    const classic = u.flashAttentionForward(ctx, q, k, v, { causal: true, softmaxScale: 0.3, inputPrecision: 'fp32', intermediatePrecision: 'fp32', outputPrecision: 'fp32' });
    const modern = u.attention(q, k, v, { causal: 'top-left', scale: 0.3 });
    expect(classic.shape).toEqual([2, 5, 2, 16]);
    const a = classic.data as Float32Array;
    const b = modern.out.data as Float32Array;
    for (let i = 0; i < a.length; i++) expect(Math.abs((a[i] as number) - (b[i] as number))).toBeLessThan(1e-6);
    let err: unknown;
    try {
      u.flashAttentionForward(ctx, u.tensor(new Float32Array(8), [2, 5, 2, 16]), k, v);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(u.MFAError);
    expect((err as InstanceType<typeof u.MFAError>).code).toBe('MFA_ERROR_INVALID_ARGS');
    ctx.dispose();
    ctx[Symbol.dispose]();
  });
});

describe(`${packageName}: bad input (UmfaError with the right status, nothing written)`, () => {
  const q = bshdRand(1, 4, 2, 8, 21);
  const k = bshdRand(1, 5, 2, 8, 22);
  const v = bshdRand(1, 5, 2, 8, 23);
  const cases: [string, number, (out: Tensor, lse: Tensor) => unknown, number[]?, number[]?][] = [
    ['k/v head count differs', Status.SHAPE_MISMATCH, (out, lse) => u.attention(q, k, bshdRand(1, 5, 1, 8, 1), { out, lse })],
    ['batch differs', Status.SHAPE_MISMATCH, (out, lse) => u.attention(q, bshdRand(2, 5, 2, 8, 1), bshdRand(2, 5, 2, 8, 1), { out, lse })],
    ['q heads not a multiple of kv heads', Status.HEADS_NOT_DIVISIBLE, (out, lse) => u.attention(bshdRand(1, 4, 3, 8, 1), bshdRand(1, 5, 2, 8, 1), bshdRand(1, 5, 2, 8, 1), { out, lse }), [1, 4, 3, 8], [1, 3, 4]],
    ['head_dim above 256', Status.HEAD_DIM_OUT_OF_RANGE, (out) => {
      const big = bshdRand(1, 1, 1, 300, 1);
      return u.attention(big, big, big, { out: u.tensor(new Float32Array(300).fill(SENTINEL), [1, 1, 1, 300]) }) && out;
    }],
    ['rank-2 q', Status.INVALID_RANK, (out, lse) => u.attention(u.tensor(q.data, [4, 16]), k, v, { out, lse })],
    ['negative stride', Status.INVALID_STRIDE, (out, lse) => u.attention(u.tensor(q.data, q.shape, { strides: [64, 16, -8, 1] }), k, v, { out, lse })],
    ['overlapping output', Status.INVALID_STRIDE, (out, lse) => u.attention(q, k, v, { out: u.tensor(out.data, out.shape, { strides: [0, 0, 0, 1] }), lse })],
    ['q/k dtype differ', Status.UNSUPPORTED_DTYPE, (out, lse) => u.attention(q, u.bshd(u.f32ToF16(k.data as Float32Array), [1, 5, 2, 8], 'f16'), v, { out, lse })],
    ['i32 mask', Status.UNSUPPORTED_DTYPE, (out, lse) => u.attention(q, k, v, { out, lse, attnMask: u.tensor(new Int32Array(20), [4, 5]) })],
    ['mask shape not broadcastable', Status.SHAPE_MISMATCH, (out, lse) => u.attention(q, k, v, { out, lse, attnMask: u.tensor(new Uint8Array(12), [4, 3], { dtype: 'bool' }) })],
    ['negative softcap', Status.INVALID_ARGUMENT, (out, lse) => u.attention(q, k, v, { out, lse, softcap: -1 })],
    ['NaN scale', Status.INVALID_ARGUMENT, (out, lse) => u.attention(q, k, v, { out, lse, scale: NaN })],
    ['unknown mask mode', Status.INVALID_ARGUMENT, (out, lse) => u.attention(q, k, v, { out, lse, maskMode: 7 })],
    ['decreasing cu_seqlens', Status.INVALID_SEQLENS, (out, lse) => {
      const t = u.tensor(rand(6 * 2 * 8, 1), [6, 2, 8]);
      return u.attention(t, t, t, { out, lse, cuSeqlensQ: Int32Array.from([0, 4, 2]), cuSeqlensK: Int32Array.from([0, 3, 6]) });
    }, [6, 2, 8], [2, 6]],
    ['view past the end of its array', Status.SHAPE_MISMATCH, (out, lse) => u.attention(u.tensor(q.data, [1, 5, 2, 8]), k, v, { out, lse })],
    ['rank 5', Status.INVALID_RANK, (out, lse) => u.attention(u.tensor(q.data, [1, 1, 4, 2, 8]), k, v, { out, lse })],
    ['unknown dtype', Status.UNSUPPORTED_DTYPE, (out, lse) => u.attention({ data: q.data, dtype: 'f64' as DType, shape: q.shape }, k, v, { out, lse })],
    ['non-integer extent', Status.INVALID_ARGUMENT, (out, lse) => u.attention(u.tensor(q.data, [1, 4, 2, 7.5]), k, v, { out, lse })],
    ['causal and maskMode disagree', Status.INVALID_ARGUMENT, (out, lse) => u.attention(q, k, v, { out, lse, causal: true, maskMode: 'causal-top-left' })],
    ['backward without lse', Status.NULL_POINTER, (out) => u.attentionBackward(q, k, v, bshdRand(1, 4, 2, 8, 5), bshdRand(1, 4, 2, 8, 6), undefined as unknown as Tensor, { dq: out })],
    ['disposed context', Status.INVALID_HANDLE, (out, lse) => {
      const ctx = new u.Context();
      ctx.dispose();
      return u.attention(q, k, v, { out, lse, context: ctx });
    }],
  ];
  for (const [name, status, f, outShape, lseShape] of cases) {
    it(`${name} -> ${u.statusName(status)}`, () => expectRejected(status, f, outShape, lseShape));
  }

  it('an unavailable backend -> BACKEND_UNAVAILABLE', () => {
    if (u.backends().find((b) => b.name === 'cuda')?.available) return;
    let err: unknown;
    try {
      new u.Context({ backend: 'cuda' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UmfaError);
    expect((err as InstanceType<typeof UmfaError>).status).toBe(Status.BACKEND_UNAVAILABLE);
  });

  it('async calls reject with UmfaError and write nothing', async () => {
    const out = sentinelOut([1, 4, 2, 8]);
    await expect(u.attentionAsync(q, k, bshdRand(1, 5, 1, 8, 1), { out })).rejects.toMatchObject({
      name: 'UmfaError',
      status: Status.SHAPE_MISMATCH,
    });
    await expect(u.attentionAsync(u.tensor(q.data, [1, 1, 4, 2, 8]), k, v, { out })).rejects.toBeInstanceOf(UmfaError);
    const msg = await u.attentionAsync(q, k, v, { out, softcap: -1 }).catch((e: Error) => e.message);
    expect(msg).toMatch(/softcap/);
    expect(untouched(out)).toBe(true);
  });
});

describe(`${packageName}: async`, () => {
  it('runs 1000 concurrent calls, each equal to the synchronous result', async () => {
    const inputs = Array.from({ length: 8 }, (_, i) => [bshdRand(1, 8, 2, 16, 100 + i), bshdRand(1, 8, 2, 16, 200 + i), bshdRand(1, 8, 2, 16, 300 + i)] as const);
    const expected = inputs.map(([q, k, v]) => u.attention(q, k, v, { causal: true }).out.data as Float32Array);
    const promises = Array.from({ length: 1000 }, (_, i) => {
      const [q, k, v] = inputs[i % inputs.length] as readonly [Tensor, Tensor, Tensor];
      return u.attentionAsync(q, k, v, { causal: true });
    });
    const results = await Promise.all(promises);
    expect(results.length).toBe(1000);
    results.forEach((r, i) => expect(r.out.data).toEqual(expected[i % inputs.length]));
  });

  it('keeps inputs alive until completion when the caller drops them (gc mid-flight)', async () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    const pending = Array.from({ length: 300 }, (_, i) =>
      u.attentionAsync(bshdRand(1, 16, 2, 32, 1000 + i), bshdRand(1, 16, 2, 32, 2000 + i), bshdRand(1, 16, 2, 32, 3000 + i)),
    );
    gc?.();
    await new Promise((r) => setTimeout(r, 0));
    gc?.();
    const results = await Promise.all(pending);
    for (const i of [0, 150, 299]) {
      const want = u.attention(bshdRand(1, 16, 2, 32, 1000 + i), bshdRand(1, 16, 2, 32, 2000 + i), bshdRand(1, 16, 2, 32, 3000 + i));
      expect(results[i]?.out.data).toEqual(want.out.data);
    }
  });

  it('gives each of many calls failing at once on one context its own message', async () => {
    // The context keeps one "last error"; a message read from it after an async call settles may
    // be another call's. Each call must report its own (the per-call error_message buffer).
    const ctx = new u.Context();
    const q = bshdRand(1, 4, 2, 8, 51);
    const badV = bshdRand(1, 5, 2, 8, 52);
    const { out, lse } = ctx.attention(q, q, q, { returnLse: true });
    const calls = Array.from({ length: 300 }, (_, i) => {
      switch (i % 3) {
        case 0:
          return ctx.attentionAsync(q, q, q, { softcap: -1 });
        case 1:
          return ctx.attentionAsync(q, q, badV);
        default:
          return ctx.attentionBackwardAsync(q, q, q, out, q, lse as Tensor, { maskMode: 7 });
      }
    });
    const settled = await Promise.allSettled(calls);
    const wrong: string[] = [];
    settled.forEach((s, i) => {
      const want = [
        { status: Status.INVALID_ARGUMENT, text: 'umfa_attention_forward: options->softcap' },
        { status: Status.SHAPE_MISMATCH, text: 'umfa_attention_forward: v.shape[1]' },
        { status: Status.INVALID_ARGUMENT, text: 'umfa_attention_backward: options->mask_mode' },
      ][i % 3] as { status: number; text: string };
      const e = s.status === 'rejected' ? (s.reason as InstanceType<typeof UmfaError>) : undefined;
      if (!(e instanceof UmfaError) || e.status !== want.status || !e.message.includes(want.text)) {
        wrong.push(`call ${i}: ${e === undefined ? 'resolved' : `${e.status} ${e.message}`}`);
      }
    });
    expect(wrong, 'calls that reported another call\'s error').toEqual([]);
    ctx.dispose();
  });

  it('runs backward asynchronously', async () => {
    const q = bshdRand(1, 6, 2, 16, 31);
    const { out, lse } = u.attention(q, q, q, { returnLse: true });
    const dout = bshdRand(1, 6, 2, 16, 32);
    const sync = u.attentionBackward(q, q, q, out, dout, lse as Tensor);
    const all = await Promise.all(Array.from({ length: 50 }, () => u.attentionBackwardAsync(q, q, q, out, dout, lse as Tensor)));
    for (const g of all) {
      expect(g.dq.data).toEqual(sync.dq.data);
      expect(g.dv.data).toEqual(sync.dv.data);
    }
  });

  it('does not block the event loop', async () => {
    // A call long enough to tell apart (seqlen 2048 on one thread; the kernels keep getting
    // faster), timed a few times: on a loaded machine one sample can stall for a time slice,
    // so the fastest return of the Promise variant is compared with the synchronous call.
    const q = bshdRand(1, 2048, 8, 64, 41);
    const out = u.zeros('f32', [1, 2048, 8, 64]);
    const ctx = new u.Context({ numThreads: 1 });
    await ctx.attentionAsync(bshdRand(1, 4, 1, 8, 1), bshdRand(1, 4, 1, 8, 2), bshdRand(1, 4, 1, 8, 3));
    let syncMs = Infinity;
    let returnMs = Infinity;
    let ticks = 0;
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      ctx.attention(q, q, q, { out });
      syncMs = Math.min(syncMs, performance.now() - t0);
      const t1 = performance.now();
      const p = ctx.attentionAsync(q, q, q, { out });
      returnMs = Math.min(returnMs, performance.now() - t1);
      const timer = setInterval(() => ticks++, 0);
      await p;
      clearInterval(timer);
    }
    expect(syncMs).toBeGreaterThan(20);
    expect(returnMs).toBeLessThan(syncMs / 4);
    expect(ticks).toBeGreaterThan(0);
    ctx.dispose();
  });
});

describe(`${packageName}: lifetimes and zero copy`, () => {
  it('dispose is idempotent and Symbol.dispose works', () => {
    const ctx = new u.Context();
    expect(ctx.disposed).toBe(false);
    ctx[Symbol.dispose]();
    expect(ctx.disposed).toBe(true);
    ctx.dispose();
    expect(() => ctx.backend).toThrow(UmfaError);
  });

  it('disposing with calls in flight frees the context after they finish', async () => {
    const ctx = new u.Context();
    const q = bshdRand(1, 64, 2, 32, 51);
    const pending = Array.from({ length: 20 }, () => ctx.attentionAsync(q, q, q));
    ctx.dispose();
    const results = await Promise.all(pending);
    expect(results.length).toBe(20);
    await expect(ctx.attentionAsync(q, q, q)).rejects.toMatchObject({ status: Status.INVALID_HANDLE });
  });

  it('frees contexts the program forgot, via the finalizer', async () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    expect(gc, 'run with --expose-gc').toBeTypeOf('function');
    const driver = u._driver();
    const original = driver.contextDestroy.bind(driver);
    let destroyed = 0;
    driver.contextDestroy = (h: bigint) => {
      destroyed++;
      original(h);
    };
    try {
      (() => {
        for (let i = 0; i < 20; i++) new u.Context({ numThreads: 1 });
      })();
      for (let i = 0; i < 50 && destroyed < 20; i++) {
        gc?.();
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(destroyed).toBeGreaterThanOrEqual(20);
    } finally {
      driver.contextDestroy = original;
    }
  });

  it('accepts typed arrays over a SharedArrayBuffer and DataViews', () => {
    const q = bshdRand(1, 4, 2, 8, 71);
    const shared = new Float32Array(new SharedArrayBuffer(q.data.byteLength));
    shared.set(q.data as Float32Array);
    const a = u.attention(u.bshd(shared, [1, 4, 2, 8]), q, q);
    const dv = new DataView((q.data as Float32Array).buffer);
    const b = u.attention(u.tensor(dv, [1, 4, 2, 8], { dtype: 'f32' }), q, q);
    const c = u.attention(q, q, q);
    expect(a.out.data).toEqual(c.out.data);
    expect(b.out.data).toEqual(c.out.data);
  });

  it('hands typed arrays to the core in place', () => {
    const driver = u._driver();
    const big = rand(1 << 16, 61);
    const qData = big.subarray(1024, 1024 + 4 * 2 * 8);
    const q = u.bshd(qData, [1, 4, 2, 8]);
    const k = bshdRand(1, 4, 2, 8, 62);
    const out = u.zeros('f32', [1, 4, 2, 8]);
    const r = u.attention(q, k, k, { out });
    expect(r.out).toBe(out);
    expect((out.data as Float32Array).some((x) => x !== 0)).toBe(true);
    const addrs = driver.lastDataAddresses();
    expect(addrs[u.Slot.Q]).toBe(driver.addressOf(qData));
    expect(addrs[u.Slot.Q]).toBe(driver.addressOf(big) + 1024n * 4n);
    expect(addrs[u.Slot.K]).toBe(driver.addressOf(k.data));
    expect(addrs[u.Slot.OUT]).toBe(driver.addressOf(out.data));
  });
});
