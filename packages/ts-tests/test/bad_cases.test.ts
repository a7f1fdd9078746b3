// The shared bad-input cases (conformance/bad_cases.json) through @umfa/koffi or @umfa/napi
// (UMFA_TS_BINDING), with the public API only: each case must throw UmfaError with the expected
// status (the core's message when the core refused it), leave every output and input element
// as it was, and keep the process alive. Cases TypeScript cannot express are skipped with the
// reason the file gives (bindings.ts.skip). Run by scripts/stress.sh (vitest.reliability.config.ts).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type * as Koffi from '@umfa/koffi/internal';

type Binding = typeof Koffi;
type Tensor = Koffi.Tensor;
type DType = Koffi.DType;

const which = process.env['UMFA_TS_BINDING'] === 'napi' ? 'napi' : 'koffi';
const packageName = `@umfa/${which}`;
const u: Binding = (await import(`${packageName}/internal`)) as Binding;
const { Status, UmfaError } = u;

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..', '..');

interface Spec {
  dtype?: DType | number;
  shape?: number[];
  strides?: number[];
  device?: string;
  data?: string;
  values?: number[];
}
interface BindingRule {
  skip?: string;
  binding?: boolean;
  raw?: boolean;
  status?: string;
}
interface Case {
  id: string;
  description: string;
  call: 'forward' | 'backward' | 'context_create' | 'load';
  varlen?: boolean;
  tensors?: Record<string, Spec | null>;
  options?: Record<string, unknown>;
  context?: { handle?: string; workspace_limit_bytes?: number };
  context_options?: Record<string, number>;
  status: string;
  message?: string;
  requires?: string;
  bindings?: Record<string, BindingRule>;
}
const doc = JSON.parse(readFileSync(join(repo, 'conformance', 'bad_cases.json'), 'utf8')) as {
  format_version: number;
  base: Record<'dense' | 'varlen', Record<string, Spec>>;
  cases: Case[];
};

const SENTINEL_BYTE = 0xa7;
const SHORT_BY = 24;

/** A typed array for a spec, covering every element the view reaches (non-negative strides). */
function makeArray(spec: Spec, output: boolean): ArrayBufferView {
  const dtype = spec.dtype ?? 'f32';
  const shape = spec.shape ?? [];
  const strides = spec.strides ?? u.contiguousStrides(shape);
  let reach = 1;
  let bounded = true;
  for (let i = 0; i < shape.length; i++) {
    const n = shape[i] as number;
    const s = strides[i] as number;
    if (n < 0) bounded = false;
    if (n > 0 && s > 0) reach += (n - 1) * s;
  }
  let count = bounded && reach <= 1 << 16 ? reach : 64;
  if (spec.data === 'short') count -= SHORT_BY;
  const size = typeof dtype === 'string' ? ({ f32: 4, f16: 2, bf16: 2, bool: 1, i32: 4 } as const)[dtype] : 4;
  const bytes = new Uint8Array(new ArrayBuffer(count * size));
  bytes.fill(SENTINEL_BYTE);
  let arr: ArrayBufferView;
  if (dtype === 'f32' || typeof dtype !== 'string') arr = new Float32Array(bytes.buffer);
  else if (dtype === 'f16' || dtype === 'bf16') arr = new Uint16Array(bytes.buffer);
  else if (dtype === 'bool') arr = new Uint8Array(bytes.buffer);
  else arr = new Int32Array(bytes.buffer);
  if (!output) {
    if (arr instanceof Float32Array) arr.fill(0.25);
    else if (arr instanceof Uint16Array) arr.fill(dtype === 'f16' ? 0x3400 : 0x3e80);
    else if (arr instanceof Uint8Array) arr.fill(1);
    else if (arr instanceof Int32Array) {
      arr.fill(0);
      if (spec.values) arr.set(spec.values);
    }
  }
  return arr;
}

function makeTensor(spec: Spec, output: boolean, arrays: Map<string, ArrayBufferView>, role: string): Tensor {
  let data: ArrayBufferView | null;
  if (spec.data === 'null') data = null;
  else if (spec.data?.startsWith('same_as:')) data = arrays.get(spec.data.slice(8)) ?? null;
  else data = makeArray(spec, output);
  if (data) arrays.set(role, data);
  const t: { data: ArrayBufferView | null; dtype: DType; shape: number[]; strides?: number[] } = {
    data,
    dtype: spec.dtype as DType,
    shape: spec.shape ?? [],
  };
  if (spec.strides) t.strides = spec.strides;
  return t as Tensor;
}

function merged(base: Spec | undefined, over: Spec | undefined): Spec {
  return { ...(base ?? {}), ...(over ?? {}) };
}

function num(x: unknown): number {
  if (x === 'nan') return NaN;
  if (x === 'inf') return Infinity;
  if (x === '-inf') return -Infinity;
  return x as number;
}

function snapshot(arrays: Map<string, ArrayBufferView>): Map<string, Uint8Array> {
  const m = new Map<string, Uint8Array>();
  for (const [k, a] of arrays) m.set(k, new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice());
  return m;
}

function expectThrows(c: Case, rule: BindingRule, f: () => unknown): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, `${c.id}: expected an UmfaError`).toBeInstanceOf(UmfaError);
  const ue = err as InstanceType<typeof UmfaError>;
  const want = rule.status ?? c.status;
  expect(ue.statusName, ue.message).toBe(want);
  expect(ue.code).toBe(`UMFA_STATUS_${want}`);
  expect(ue.status).toBe(Status[want as keyof typeof Status]);
  expect(ue.message.length).toBeGreaterThan(0);
  if (!rule.binding && c.message) expect(ue.message).toContain(c.message);
}

function cudaAvailable(): boolean {
  return u.backends().find((b) => b.name === 'cuda')?.available ?? false;
}

describe(`${packageName}: conformance/bad_cases.json`, () => {
  expect(doc.format_version).toBe(1);
  for (const c of doc.cases) {
    const rule = c.bindings?.['ts'] ?? {};
    if (rule.skip !== undefined) {
      it.skip(`${c.id} (skipped: ${rule.skip})`, () => {});
      continue;
    }
    it(`${c.id} -> ${rule.status ?? c.status}`, () => {
      if (c.requires === 'no_cuda' && cudaAvailable()) return;
      if (c.call === 'load') return abiMismatch();
      if (c.call === 'context_create') {
        const co = c.context_options ?? {};
        const names: Record<number, string> = { 0: 'auto', 1: 'cpu', 2: 'cuda' };
        const backend = (names[co['backend'] ?? 0] ?? `backend-${co['backend']}`) as Koffi.BackendName;
        expectThrows(c, rule, () => new u.Context({ backend, numThreads: co['num_threads'] ?? 0, deviceIndex: co['device_index'] ?? 0 }));
        return;
      }
      const backward = c.call === 'backward';
      const base = doc.base[c.varlen ? 'varlen' : 'dense'];
      const arrays = new Map<string, ArrayBufferView>();
      const outputs = backward ? ['dq', 'dk', 'dv'] : ['out', 'lse'];
      const roles = backward ? ['q', 'k', 'v', 'out', 'dout', 'lse', 'dq', 'dk', 'dv'] : ['q', 'k', 'v', 'out', 'lse'];
      const t: Record<string, Tensor | undefined> = {};
      for (const role of roles) {
        const over = c.tensors?.[role];
        if (over === null) continue;
        t[role] = makeTensor(merged(base[role], over), outputs.includes(role), arrays, role);
      }
      const o = c.options ?? {};
      const opts: Koffi.AttentionOptions = {};
      if ('mask_mode' in o) opts.maskMode = o['mask_mode'] as number;
      if ('softmax_scale' in o) opts.scale = num(o['softmax_scale']);
      if ('softcap' in o) opts.softcap = num(o['softcap']);
      if (o['has_window']) opts.window = [o['window_left'] as number, o['window_right'] as number];
      if ('max_seqlen_q' in o) opts.maxSeqlenQ = o['max_seqlen_q'] as number;
      if ('max_seqlen_k' in o) opts.maxSeqlenK = o['max_seqlen_k'] as number;
      const optTensor = (name: string): Tensor | undefined => {
        const over = o[name] as Spec | null | undefined;
        if (over === null) return undefined;
        if (over === undefined && base[name] === undefined) return undefined;
        return makeTensor(merged(base[name], over ?? undefined), false, arrays, name);
      };
      const mask = optTensor('attn_mask');
      const alibi = optTensor('alibi_slopes');
      const cuq = optTensor('cu_seqlens_q');
      const cuk = optTensor('cu_seqlens_k');
      if (mask) opts.attnMask = mask;
      if (alibi) opts.alibiSlopes = alibi;
      if (cuq) opts.cuSeqlensQ = cuq;
      if (cuk) opts.cuSeqlensK = cuk;
      for (const f of ['flags', 'struct_size', 'struct_size_delta']) {
        if (f in o) throw new Error(`${c.id}: '${f}' cannot be set through the TypeScript API; give the case a ts skip`);
      }
      const ctx = new u.Context({ backend: 'cpu', numThreads: 2, workspaceLimitBytes: c.context?.workspace_limit_bytes ?? 0 });
      if (c.context?.handle === 'disposed') ctx.dispose();
      const before = snapshot(arrays);
      try {
        if (backward) {
          const bo: Koffi.BackwardOptions = { ...opts, context: ctx };
          if (t['dq']) bo.dq = t['dq'];
          if (t['dk']) bo.dk = t['dk'];
          if (t['dv']) bo.dv = t['dv'];
          expectThrows(c, rule, () =>
            ctx.attentionBackward(t['q'] as Tensor, t['k'] as Tensor, t['v'] as Tensor, t['out'] as Tensor, t['dout'] as Tensor, t['lse'] as Tensor, bo),
          );
        } else {
          const fo: Koffi.ForwardOptions = { ...opts, context: ctx };
          if (t['out']) fo.out = t['out'];
          if (t['lse']) fo.lse = t['lse'];
          expectThrows(c, rule, () => ctx.attention(t['q'] as Tensor, t['k'] as Tensor, t['v'] as Tensor, fo));
        }
      } finally {
        ctx.dispose();
      }
      const after = snapshot(arrays);
      for (const [k, b] of before) expect(Buffer.compare(Buffer.from(b), Buffer.from(after.get(k) as Uint8Array)), `${k} unchanged`).toBe(0);
    });
  }

  it('the process is alive and computes after every rejected case', () => {
    const q = u.tensor(new Float32Array(1 * 4 * 2 * 8).fill(0.5), [1, 4, 2, 8]);
    const r = u.attention(q, q, q);
    expect(Array.from(r.out.data as Float32Array).every((x) => Math.abs(x - 0.5) < 1e-6)).toBe(true);
  });
});

/** A library of another ABI version in UMFA_LIB_DIR: loading fails with a clear UmfaLoadError. */
function abiMismatch(): void {
  const dir = mkdtempSync(join(tmpdir(), 'umfa-abi-'));
  try {
    const src = join(dir, 'fake.c');
    writeFileSync(src, '#include <stdint.h>\nuint32_t umfa_abi_version(void){return 99;}\nconst char* umfa_version_string(void){return "9.0.0";}\n');
    execFileSync('cc', ['-shared', '-fPIC', '-o', join(dir, 'libumfa.so.1'), src]);
    const entry = fileURLToPath(import.meta.resolve(packageName));
    const script = `import(${JSON.stringify(entry)}).then(u => { try { u.version(); console.log('LOADED'); } catch (e) { console.log(e.name + ': ' + e.message); } })`;
    const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, UMFA_LIB_DIR: dir }, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('UmfaLoadError');
    expect(r.stdout).toContain('ABI version 99');
    expect(r.stdout).not.toContain('LOADED');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
